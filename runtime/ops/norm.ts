// Batch norm (training: batch statistics and running-statistics update; eval: running
// statistics) and instance norm. Data is viewed as [N, C, S] with S the spatial size; the
// statistics kernels reduce each channel deterministically in one workgroup.

import { record } from "../autograd.ts";
import { engine } from "../engine.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, words } from "./util.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";

interface NormView {
  N: number;
  C: number;
  S: number;
  /** Channels of the affine weight: group c uses weight[c % WC]. */
  WC: number;
}

function groupStats(x: Tensor, v: NormView): Tensor {
  const stats = Tensor.empty([2, v.C]);
  engine().dispatch({
    kernel: "norm_stats",
    buffers: [x.buffer, stats.buffer],
    params: words(v.N, v.C, v.S),
    workgroups: [v.C],
  });
  return stats;
}

/** mean/var are the same [2,C] stats tensor (varOffset C) or separate running tensors (0). */
function applyNorm(
  x: Tensor,
  mean: Tensor,
  variance: Tensor,
  varOffset: number,
  w: Tensor | null,
  b: Tensor | null,
  v: NormView,
  eps: number,
): Tensor {
  const y = Tensor.empty(x.shape);
  launch1d(
    "norm_apply",
    y.size,
    [x.buffer, mean.buffer, variance.buffer, (w ?? x).buffer, (b ?? x).buffer, y.buffer],
    words(v.N, v.C, v.S, v.WC, { f: eps }, varOffset),
    { AFFINE: w ? 1 : 0 },
  );
  return y;
}

/** Backward of applyNorm: input gradient plus per-group sums (sum gy, sum gy*xhat). */
function normBackward(
  x: Tensor,
  gy: Tensor,
  mean: Tensor,
  variance: Tensor,
  varOffset: number,
  w: Tensor | null,
  v: NormView,
  eps: number,
  batchStats: boolean,
  needX: boolean,
  needSums: boolean,
): { gx: Tensor | null; sumG: Tensor | null; sumGX: Tensor | null } {
  let sumG: Tensor | null = null, sumGX: Tensor | null = null;
  if (batchStats || needSums) {
    sumG = Tensor.empty([v.C]);
    sumGX = Tensor.empty([v.C]);
    engine().dispatch({
      kernel: "norm_bwd_stats",
      buffers: [x.buffer, gy.buffer, mean.buffer, variance.buffer, sumG.buffer, sumGX.buffer],
      params: words(v.N, v.C, v.S, { f: eps }, varOffset),
      workgroups: [v.C],
    });
  }
  let gx: Tensor | null = null;
  if (needX) {
    gx = Tensor.empty(x.shape);
    launch1d(
      "norm_bwd_apply",
      gx.size,
      [
        x.buffer,
        gy.buffer,
        mean.buffer,
        variance.buffer,
        (sumG ?? gy).buffer,
        (sumGX ?? gy).buffer,
        (w ?? x).buffer,
        gx.buffer,
      ],
      words(v.N, v.C, v.S, v.WC, { f: eps }, varOffset),
      { AFFINE: w ? 1 : 0, BATCH: batchStats ? 1 : 0 },
    );
  }
  return { gx, sumG, sumGX };
}

function checkParam(op: string, name: string, t: Tensor | null | undefined, c: number) {
  if (t && (t.ndim !== 1 || t.shape[0] !== c)) {
    throw new Error(`${op}: ${name} has shape [${t.shape}], expected [${c}] (one per channel)`);
  }
}

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch norm over x [N,C,...]. In training mode normalizes with the batch statistics and
 * updates runningMean/runningVar in place (unbiased variance, like PyTorch); in eval mode
 * uses the running statistics. weight/bias may be null (no affine). */
export function batchNorm(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  o: BatchNormOptions,
): Tensor {
  const op = "batchNorm";
  if (x.ndim < 2) throw new Error(`${op}: input must be [N,C,...], got [${x.shape}]`);
  const [N, C] = x.shape;
  const S = x.size / (N * C);
  for (
    const [name, t] of [["weight", weight], ["bias", bias], ["runningMean", runningMean], [
      "runningVar",
      runningVar,
    ]] as const
  ) {
    checkParam(op, name, t, C);
  }
  if ((weight === null) !== (bias === null)) {
    throw new Error(`${op}: weight and bias must both be given or both be null`);
  }
  const momentum = o.momentum ?? 0.1, eps = o.eps ?? 1e-5;
  const v: NormView = { N, C, S, WC: C };
  if (!o.training) {
    if (!runningMean || !runningVar) {
      throw new Error(`${op}: eval mode needs runningMean and runningVar (or pass training: true)`);
    }
    const y = applyNorm(x, runningMean, runningVar, 0, weight, bias, v, eps);
    return recordNorm(op, y, x, weight, bias, runningMean, runningVar, 0, v, eps, false);
  }
  if (N * S < 2) {
    throw new Error(
      `${op}: training needs more than one value per channel, got input [${x.shape}]`,
    );
  }
  const stats = groupStats(x, v);
  if (runningMean && runningVar) {
    engine().dispatch({
      kernel: "norm_running",
      buffers: [stats.buffer, runningMean.buffer, runningVar.buffer],
      params: words(C, N * S, { f: momentum }),
      workgroups: [Math.ceil(C / 64)],
    });
  }
  const y = applyNorm(x, stats, stats, C, weight, bias, v, eps);
  return recordNorm(op, y, x, weight, bias, stats, stats, C, v, eps, true);
}

function recordNorm(
  op: string,
  y: Tensor,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  mean: Tensor,
  variance: Tensor,
  varOffset: number,
  v: NormView,
  eps: number,
  batchStats: boolean,
): Tensor {
  const inputs = weight && bias ? [x, weight, bias] : [x];
  return record(y, op, inputs, (gy, needs) => {
    const { gx, sumG, sumGX } = normBackward(
      x,
      gy,
      mean,
      variance,
      varOffset,
      weight,
      v,
      eps,
      batchStats,
      needs[0],
      !!(needs[1] || needs[2]),
    );
    // Per-group sums fold onto the weight's channels (instance norm: sum over the batch).
    const fold = (t: Tensor | null) =>
      t === null ? null : v.WC === v.C ? t : sum(reshape(t, [v.C / v.WC, v.WC]), 0);
    return [gx, needs[1] ? fold(sumGX) : null, needs[2] ? fold(sumG) : null];
  });
}

/** Instance norm: each (n, c) plane normalized by its own statistics; optional affine. */
export function instanceNorm(
  x: Tensor,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const op = "instanceNorm";
  if (x.ndim < 3) throw new Error(`${op}: input must be [N,C,H,W] (or [N,C,L]), got [${x.shape}]`);
  const [N, C] = x.shape;
  const S = x.size / (N * C);
  if (S < 2) throw new Error(`${op}: needs more than one value per plane, got [${x.shape}]`);
  checkParam(op, "weight", weight, C);
  checkParam(op, "bias", bias, C);
  if (!weight !== !bias) {
    throw new Error(`${op}: weight and bias must both be given or both be null`);
  }
  const v: NormView = { N: 1, C: N * C, S, WC: C };
  const stats = groupStats(x, v);
  const y = applyNorm(x, stats, stats, N * C, weight ?? null, bias ?? null, v, eps);
  return recordNorm(op, y, x, weight ?? null, bias ?? null, stats, stats, N * C, v, eps, true);
}
