// Image quality of a batch against the clean images: PSNR, SSIM and L1, over the whole image
// and over the holes alone (mask = 1 on holes). CPU, float64, from NCHW Float32Arrays: the
// batches are small (tens of 32x32 images) and exact figures matter more than speed.
//
// What is computed, per image (pixel values in [0,1], data range 1):
// - L1: mean |x - y| over all C*H*W values; holes: over the hole pixels' C values.
// - PSNR: 10 log10(1 / MSE), MSE over the same values as L1. An MSE below 1e-10 counts as
//   1e-10 (100 dB), so identical images give a finite, JSON-safe figure.
// - SSIM (Wang et al. 2004): per channel, local statistics under an 11x11 Gaussian window
//   (sigma 1.5, normalised to sum 1) at every position where the window lies inside the image
//   ("valid", as in the reference MATLAB code): mu = sum w x, sigma_x^2 = sum w x^2 - mu_x^2,
//   sigma_xy = sum w x y - mu_x mu_y, SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) /
//   ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)), C1 = 0.01^2, C2 = 0.03^2. The image's
//   SSIM is the mean of that map over positions, then over channels. Holes-only SSIM is the
//   mean of the map over the positions whose window centre is a hole pixel, so holes within 5
//   pixels of the border do not count for it.
// Batch figures are means over images of the per-image figures; hole figures are averaged
// over the images that have holes (null when none has, or for SSIM no hole centre).

export type Nchw = readonly [number, number, number, number];

export interface ImageQuality {
  psnr: number;
  ssim: number;
  l1: number;
  psnr_holes: number | null;
  ssim_holes: number | null;
  l1_holes: number | null;
}

export const METRIC_KEYS = ["psnr", "ssim", "l1", "psnr_holes", "ssim_holes", "l1_holes"] as const;

export interface BatchQuality {
  perImage: ImageQuality[];
  mean: ImageQuality;
}

export const SSIM_WINDOW = 11;
export const SSIM_SIGMA = 1.5;
export const SSIM_C1 = 0.01 ** 2;
export const SSIM_C2 = 0.03 ** 2;
const MIN_MSE = 1e-10;

type Pixels = ArrayLike<number>;

export function psnrOfMse(mse: number): number {
  return 10 * Math.log10(1 / Math.max(mse, MIN_MSE));
}

/** The 1-D Gaussian of the SSIM window, normalised to sum 1 (the 2-D window is its outer
 * product, which then also sums to 1). */
export function ssimKernel1d(size = SSIM_WINDOW, sigma = SSIM_SIGMA): Float64Array {
  const r = (size - 1) / 2;
  const k = Float64Array.from(
    { length: size },
    (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma ** 2)),
  );
  const s = k.reduce((a, b) => a + b, 0);
  return k.map((v) => v / s);
}

/** Valid-mode separable filtering of one h x w plane: [(h-k+1) x (w-k+1)]. */
function filterValid(p: Float64Array, h: number, w: number, k: Float64Array): Float64Array {
  const n = k.length, oh = h - n + 1, ow = w - n + 1;
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += k[i] * p[y * w + x + i];
      rows[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += k[i] * rows[(y + i) * ow + x];
      out[y * ow + x] = s;
    }
  }
  return out;
}

/** The SSIM map of one channel pair (h x w planes), valid positions only:
 * [(h-10) x (w-10)], entry (i, j) belonging to the window centred at (i+5, j+5). */
export function ssimMap(x: Pixels, y: Pixels, h: number, w: number): Float64Array {
  if (h < SSIM_WINDOW || w < SSIM_WINDOW) {
    throw new Error(`ssim: images must be at least ${SSIM_WINDOW}x${SSIM_WINDOW}, got ${h}x${w}`);
  }
  const k = ssimKernel1d();
  const px = Float64Array.from(x), py = Float64Array.from(y);
  const f = (p: Float64Array) => filterValid(p, h, w, k);
  const mx = f(px), my = f(py);
  const xx = f(px.map((v) => v * v)), yy = f(py.map((v) => v * v));
  const xy = f(px.map((v, i) => v * py[i]));
  return mx.map((_, i) => {
    const a = mx[i], b = my[i];
    const sxx = xx[i] - a * a, syy = yy[i] - b * b, sxy = xy[i] - a * b;
    return ((2 * a * b + SSIM_C1) * (2 * sxy + SSIM_C2)) /
      ((a * a + b * b + SSIM_C1) * (sxx + syy + SSIM_C2));
  });
}

function checkSizes(what: string, shape: Nchw, x: Pixels, clean: Pixels, mask: Pixels | null) {
  const [n, c, h, w] = shape;
  if (!shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new Error(`${what}: shape must be 4 positive integers [N,C,H,W], got [${shape}]`);
  }
  if (x.length !== n * c * h * w || clean.length !== x.length) {
    throw new Error(
      `${what}: [${shape}] needs ${n * c * h * w} values, got ${x.length} and ${clean.length}`,
    );
  }
  if (mask && mask.length !== n * h * w) {
    throw new Error(`${what}: the mask must be [${n},1,${h},${w}], got ${mask.length} values`);
  }
}

/** Quality of image `i` of `x` against `clean`; `mask` [N,1,H,W] is 1 on holes. */
function imageQuality(
  x: Pixels,
  clean: Pixels,
  mask: Pixels | null,
  shape: Nchw,
  i: number,
): ImageQuality {
  const [, c, h, w] = shape;
  const plane = h * w, d = c * plane;
  let abs = 0, sq = 0, absH = 0, sqH = 0, holes = 0;
  for (let p = 0; p < plane; p++) {
    const hole = mask !== null && mask[i * plane + p] > 0.5;
    if (hole) holes++;
    for (let ch = 0; ch < c; ch++) {
      const j = i * d + ch * plane + p;
      const e = x[j] - clean[j];
      abs += Math.abs(e);
      sq += e * e;
      if (hole) {
        absH += Math.abs(e);
        sqH += e * e;
      }
    }
  }
  let ssim = 0, ssimH = 0, centres = 0;
  const oh = h - SSIM_WINDOW + 1, ow = w - SSIM_WINDOW + 1, r = (SSIM_WINDOW - 1) / 2;
  for (let ch = 0; ch < c; ch++) {
    const o = i * d + ch * plane;
    const m = ssimMap(sliceOf(x, o, plane), sliceOf(clean, o, plane), h, w);
    ssim += m.reduce((a, b) => a + b, 0) / m.length;
    for (let yy = 0; yy < oh; yy++) {
      for (let xx = 0; xx < ow; xx++) {
        if (mask !== null && mask[i * plane + (yy + r) * w + xx + r] > 0.5) {
          ssimH += m[yy * ow + xx];
          if (ch === 0) centres++;
        }
      }
    }
  }
  return {
    psnr: psnrOfMse(sq / d),
    ssim: ssim / c,
    l1: abs / d,
    psnr_holes: holes ? psnrOfMse(sqH / (holes * c)) : null,
    ssim_holes: centres ? ssimH / (centres * c) : null,
    l1_holes: holes ? absH / (holes * c) : null,
  };
}

function sliceOf(a: Pixels, o: number, n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, k) => a[o + k]);
}

/** Mean of each metric over the images where it is defined (null where it is nowhere). */
export function meanQuality(rows: readonly ImageQuality[]): ImageQuality {
  const out = {} as Record<(typeof METRIC_KEYS)[number], number | null>;
  for (const k of METRIC_KEYS) {
    const vs = rows.map((r) => r[k]).filter((v): v is number => v !== null);
    out[k] = vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  }
  return out as unknown as ImageQuality;
}

/** PSNR, SSIM and L1 of every image of `x` against `clean` (both NCHW, values in [0,1]), over
 * the whole image and over the holes of `mask` ([N,1,H,W], 1 = hole; null: no holes). */
export function imageQualityBatch(
  x: Pixels,
  clean: Pixels,
  mask: Pixels | null,
  shape: Nchw,
): BatchQuality {
  checkSizes("imageQuality", shape, x, clean, mask);
  const perImage = Array.from(
    { length: shape[0] },
    (_, i) => imageQuality(x, clean, mask, shape, i),
  );
  return { perImage, mean: meanQuality(perImage) };
}
