// Image resizing with PyTorch's F.interpolate semantics: upsampleNearest (integer factor) and
// upsampleBilinear (scale or target size, align_corners either way). Both backward passes in
// shaders/upsample.wgsl gather per input element (no atomics, bit-identical run to run).

import { record } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, words } from "./util.ts";

export interface UpsampleBilinearOptions {
  /** Output = floor(input * scale) per spatial dim; the coordinate map then uses 1/scale. */
  scale?: number;
  /** Output [h, w]; the coordinate map uses input/output. Give scale or size, not both. */
  size?: readonly [number, number];
  /** Default false (PyTorch's default). */
  alignCorners?: boolean;
}

function assertImage(op: string, x: Tensor): void {
  if (x.ndim !== 4) throw new Error(`${op}: x must be a 4-d NCHW tensor, got shape [${x.shape}]`);
}

function launch(
  pass: 0 | 1 | 2 | 3,
  align: boolean,
  input: Tensor,
  out: Tensor,
  geo: { H: number; W: number; Ho: number; Wo: number; S: number; RH: number; RW: number },
  threads: number,
): void {
  launch1d(
    "upsample",
    threads,
    [input.buffer, out.buffer],
    words(threads, geo.H, geo.W, geo.Ho, geo.Wo, geo.S, { f: geo.RH }, { f: geo.RW }),
    { PASS: pass, ALIGN: align ? 1 : 0 },
  );
}

/** Nearest-neighbour upsampling of x [N,C,H,W] by an integer factor -> [N,C,H*s,W*s]. The
 * gradient of each input is the sum over its s x s output block. */
export function upsampleNearest(x: Tensor, scale: number): Tensor {
  assertImage("upsampleNearest", x);
  if (!Number.isInteger(scale) || scale < 1) {
    throw new Error(`upsampleNearest: scale must be an integer >= 1, got ${scale}`);
  }
  const [N, C, H, W] = x.shape;
  const geo = { H, W, Ho: H * scale, Wo: W * scale, S: scale, RH: 0, RW: 0 };
  const y = Tensor.empty([N, C, geo.Ho, geo.Wo]);
  launch(0, false, x, y, geo, y.size);
  return record(y, "upsampleNearest", [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    launch(1, false, gy, gx, geo, gx.size);
    return [gx];
  });
}

/** Source-index ratio of one axis, as PyTorch's area_pixel_compute_scale. */
function ratio(inSize: number, outSize: number, align: boolean, scale?: number): number {
  if (align) return outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return scale !== undefined ? 1 / scale : inSize / outSize;
}

/** Bilinear resizing of x [N,C,H,W] like F.interpolate(mode='bilinear'); give `scale` (output
 * floor(H*scale) x floor(W*scale)) or `size` ([h, w]). Gradient flows to x. */
export function upsampleBilinear(x: Tensor, o: UpsampleBilinearOptions): Tensor {
  assertImage("upsampleBilinear", x);
  const { scale, size } = o ?? {};
  const align = o?.alignCorners ?? false;
  if (typeof align !== "boolean") {
    throw new Error(
      `upsampleBilinear: alignCorners must be a boolean, got ${JSON.stringify(align)}`,
    );
  }
  if ((scale === undefined) === (size === undefined)) {
    throw new Error("upsampleBilinear: give exactly one of options.scale or options.size");
  }
  const [N, C, H, W] = x.shape;
  let Ho: number, Wo: number;
  if (scale !== undefined) {
    if (typeof scale !== "number" || !Number.isFinite(scale) || scale <= 0) {
      throw new Error(`upsampleBilinear: scale must be a finite number > 0, got ${scale}`);
    }
    Ho = Math.floor(H * scale);
    Wo = Math.floor(W * scale);
  } else {
    const ok = Array.isArray(size) && size.length === 2 &&
      size.every((d) => Number.isInteger(d) && d >= 1);
    if (!ok) {
      throw new Error(
        `upsampleBilinear: size must be [h, w] of integers >= 1, got ${JSON.stringify(size)}`,
      );
    }
    [Ho, Wo] = size!;
  }
  if (Ho < 1 || Wo < 1 || H < 1 || W < 1) {
    throw new Error(
      `upsampleBilinear: input [${x.shape}] with scale ${scale} gives an empty output ` +
        `[${Ho}, ${Wo}]; use a larger scale or options.size`,
    );
  }
  const geo = {
    H,
    W,
    Ho,
    Wo,
    S: 1,
    RH: ratio(H, Ho, align, scale),
    RW: ratio(W, Wo, align, scale),
  };
  const y = Tensor.empty([N, C, Ho, Wo]);
  launch(2, align, x, y, geo, y.size);
  return record(y, "upsampleBilinear", [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    launch(3, align, gy, gx, geo, gx.size);
    return [gx];
  });
}
