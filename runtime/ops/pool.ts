// 2-D pooling on NCHW tensors (PyTorch semantics, ceil_mode=false): maxPool2d (padding acts as
// -inf; gradient to the first maximum in window scan order), avgPool2d (count_include_pad),
// globalAvgPool. Backward kernels run one thread per input element and gather from the
// windows that contain it, so no atomics are needed and results are bit-identical.

import { record } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, words } from "./util.ts";
import { mean } from "./reduce.ts";
import type { Pair } from "./conv.ts";

export interface Pool2dOptions {
  kernel: Pair;
  /** Defaults to the kernel size. */
  stride?: Pair;
  /** Implicit padding on both sides; at most half the kernel (like PyTorch). */
  padding?: Pair;
}

interface PoolGeometry {
  planes: number;
  H: number;
  W: number;
  Ho: number;
  Wo: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
}

function pair(
  op: string,
  field: string,
  v: Pair | undefined,
  dflt: readonly [number, number],
  min: number,
) {
  const [a, b] = v === undefined ? dflt : typeof v === "number" ? [v, v] : v;
  const ok = (typeof v === "number" || v === undefined || (Array.isArray(v) && v.length === 2)) &&
    [a, b].every((x) => Number.isInteger(x) && x >= min);
  if (!ok) {
    throw new Error(
      `${op}: ${field} must be an integer >= ${min} or a pair [h, w] of them, got ${
        JSON.stringify(v)
      }`,
    );
  }
  return [a, b] as const;
}

function geometry(op: string, x: Tensor, o: Pool2dOptions): PoolGeometry {
  if (x.ndim !== 4) throw new Error(`${op}: expected a 4-d NCHW tensor, got shape [${x.shape}]`);
  if (!o || o.kernel === undefined) throw new Error(`${op}: options.kernel is required`);
  const [KH, KW] = pair(op, "kernel", o.kernel, [0, 0], 1);
  const [SH, SW] = pair(op, "stride", o.stride, [KH, KW], 1);
  const [PH, PW] = pair(op, "padding", o.padding, [0, 0], 0);
  if (2 * PH > KH || 2 * PW > KW) {
    throw new Error(
      `${op}: padding [${PH},${PW}] must be at most half the kernel [${KH},${KW}] (PyTorch's rule)`,
    );
  }
  const [N, C, H, W] = x.shape;
  const Ho = Math.floor((H + 2 * PH - KH) / SH) + 1;
  const Wo = Math.floor((W + 2 * PW - KW) / SW) + 1;
  if (Ho < 1 || Wo < 1) {
    throw new Error(
      `${op}: kernel [${KH},${KW}] with padding [${PH},${PW}] does not fit input [${x.shape}]`,
    );
  }
  return { planes: N * C, H, W, Ho, Wo, KH, KW, SH, SW, PH, PW };
}

function geoWords(n: number, g: PoolGeometry): number[] {
  return words(n, g.H, g.W, g.Ho, g.Wo, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW);
}

function pool(op: string, mode: 0 | 1, x: Tensor, o: Pool2dOptions): Tensor {
  const g = geometry(op, x, o);
  const [N, C] = x.shape;
  const y = Tensor.empty([N, C, g.Ho, g.Wo]);
  // Max pooling keeps each window's argmax; average pooling binds a 1-value placeholder.
  const arg = Tensor.empty(mode === 0 ? y.shape : [1]);
  launch1d("pool", y.size, [x.buffer, y.buffer, arg.buffer], geoWords(y.size, g), { MODE: mode });
  if (mode === 1) arg.dispose();
  const out = record(y, op, [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    const argBuf = mode === 0 ? arg.buffer : gy.buffer;
    launch1d("pool_grad", x.size, [gy.buffer, argBuf, gx.buffer], geoWords(x.size, g), {
      MODE: mode,
    });
    return [gx];
  });
  if (mode === 0 && !out.gradFn) arg.dispose();
  return out;
}

/** Max pooling over x [N,C,H,W]; padding counts as -inf. Gradient goes to the first maximum of
 * each window in row-major scan order. */
export function maxPool2d(x: Tensor, o: Pool2dOptions): Tensor {
  return pool("maxPool2d", 0, x, o);
}

/** Average pooling over x [N,C,H,W]; padded zeros count in the divisor (count_include_pad). */
export function avgPool2d(x: Tensor, o: Pool2dOptions): Tensor {
  return pool("avgPool2d", 1, x, o);
}

/** Mean over all spatial positions: x [N,C,H,W] (or [N,C,...]) -> [N,C]. */
export function globalAvgPool(x: Tensor): Tensor {
  if (x.ndim < 3) {
    throw new Error(`globalAvgPool: expected [N,C,H,W] (at least 3 dims), got shape [${x.shape}]`);
  }
  if (x.shape.slice(2).some((d) => d === 0)) {
    throw new Error(`globalAvgPool: spatial dims of [${x.shape}] must be non-empty`);
  }
  return mean(x, x.shape.map((_, i) => i).slice(2));
}
