// Float64 references for resampling ops, written from PyTorch's documented formulas
// (F.grid_sample bilinear, F.interpolate nearest / bilinear), not from the kernels.

export interface ImageDims {
  N: number;
  C: number;
  H: number;
  W: number;
}

/** Bilinear read of plane `base` at continuous pixel coordinates (px, py); taps outside the
 * image count as 0. */
function bilinear(x: Float64Array, base: number, d: ImageDims, px: number, py: number): number {
  const x0 = Math.floor(px), y0 = Math.floor(py);
  let s = 0;
  for (const [xi, yi] of [[x0, y0], [x0 + 1, y0], [x0, y0 + 1], [x0 + 1, y0 + 1]]) {
    if (xi < 0 || yi < 0 || xi >= d.W || yi >= d.H) continue;
    const w = (1 - Math.abs(px - xi)) * (1 - Math.abs(py - yi));
    s += w * x[base + yi * d.W + xi];
  }
  return s;
}

/** F.grid_sample(x, grid, mode='bilinear', padding_mode, align_corners); inputs [x, grid]. */
export function gridSampleRef(
  d: ImageDims,
  Ho: number,
  Wo: number,
  alignCorners: boolean,
  padding: "zeros" | "border",
) {
  const unnorm = (g: number, size: number) =>
    alignCorners ? (g + 1) / 2 * (size - 1) : ((g + 1) * size - 1) / 2;
  const clip = (c: number, size: number) =>
    padding === "border" ? Math.min(size - 1, Math.max(0, c)) : c;
  return ([x, grid]: Float64Array[]): Float64Array => {
    const y = new Float64Array(d.N * d.C * Ho * Wo);
    for (let n = 0; n < d.N; n++) {
      for (let oh = 0; oh < Ho; oh++) {
        for (let ow = 0; ow < Wo; ow++) {
          const gi = ((n * Ho + oh) * Wo + ow) * 2;
          const px = clip(unnorm(grid[gi], d.W), d.W);
          const py = clip(unnorm(grid[gi + 1], d.H), d.H);
          for (let c = 0; c < d.C; c++) {
            y[((n * d.C + c) * Ho + oh) * Wo + ow] = bilinear(
              x,
              (n * d.C + c) * d.H * d.W,
              d,
              px,
              py,
            );
          }
        }
      }
    }
    return y;
  };
}

/** Output (i, j) = x bilinearly at (j + flow[n,0,i,j], i + flow[n,1,i,j]), zeros outside;
 * inputs [x, flow [N,2,H,W]]. */
export function flowWarpRef(d: ImageDims) {
  return ([x, flow]: Float64Array[]): Float64Array => {
    const y = new Float64Array(d.N * d.C * d.H * d.W);
    const hw = d.H * d.W;
    for (let n = 0; n < d.N; n++) {
      for (let i = 0; i < d.H; i++) {
        for (let j = 0; j < d.W; j++) {
          const px = j + flow[(n * 2) * hw + i * d.W + j];
          const py = i + flow[(n * 2 + 1) * hw + i * d.W + j];
          for (let c = 0; c < d.C; c++) {
            y[((n * d.C + c) * d.H + i) * d.W + j] = bilinear(x, (n * d.C + c) * hw, d, px, py);
          }
        }
      }
    }
    return y;
  };
}

/** F.interpolate(x, scale_factor=s, mode='nearest') for an integer s. */
export function upsampleNearestRef(d: ImageDims, s: number) {
  return ([x]: Float64Array[]): Float64Array => {
    const Ho = d.H * s, Wo = d.W * s;
    const y = new Float64Array(d.N * d.C * Ho * Wo);
    for (let p = 0; p < d.N * d.C; p++) {
      for (let oh = 0; oh < Ho; oh++) {
        for (let ow = 0; ow < Wo; ow++) {
          y[(p * Ho + oh) * Wo + ow] = x[(p * d.H + Math.floor(oh / s)) * d.W + Math.floor(ow / s)];
        }
      }
    }
    return y;
  };
}

/** One axis of F.interpolate(mode='bilinear'): the two source indices and their weights. */
function axisTaps(
  dst: number,
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  scale?: number,
): [number, number, number, number] {
  let src: number;
  if (alignCorners) {
    src = outSize > 1 ? dst * (inSize - 1) / (outSize - 1) : 0;
  } else {
    const r = scale !== undefined ? 1 / scale : inSize / outSize;
    src = Math.max(0, (dst + 0.5) * r - 0.5);
  }
  const i0 = Math.min(Math.floor(src), inSize - 1);
  const i1 = Math.min(i0 + 1, inSize - 1);
  const l = src - i0;
  return [i0, i1, 1 - l, l];
}

/** F.interpolate(x, size | scale_factor, mode='bilinear', align_corners). */
export function upsampleBilinearRef(
  d: ImageDims,
  Ho: number,
  Wo: number,
  alignCorners: boolean,
  scale?: number,
) {
  return ([x]: Float64Array[]): Float64Array => {
    const y = new Float64Array(d.N * d.C * Ho * Wo);
    for (let p = 0; p < d.N * d.C; p++) {
      for (let oh = 0; oh < Ho; oh++) {
        const [h0, h1, a0, a1] = axisTaps(oh, d.H, Ho, alignCorners, scale);
        for (let ow = 0; ow < Wo; ow++) {
          const [w0, w1, b0, b1] = axisTaps(ow, d.W, Wo, alignCorners, scale);
          const at = (h: number, w: number) => x[(p * d.H + h) * d.W + w];
          y[(p * Ho + oh) * Wo + ow] = a0 * (b0 * at(h0, w0) + b1 * at(h0, w1)) +
            a1 * (b0 * at(h1, w0) + b1 * at(h1, w1));
        }
      }
    }
    return y;
  };
}
