// Batch norm (training: batch statistics and running-statistics update; eval: running
// statistics) and instance norm. Data is viewed as [N, C, S] with S the spatial size; the
// statistics kernels reduce each channel deterministically in one workgroup.

import { record } from "../autograd.ts";
import { engine } from "../engine.ts";
import { Tensor } from "../tensor.ts";
import { words } from "./util.ts";
import { binaryRaw, unaryRaw } from "./pointwise.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";

interface NormView {
  N: number;
  C: number;
  S: number;
  /** Channels of the affine weight: group c uses weight[c % WC]. */
  WC: number;
}

/** Per-group mean and biased variance [C] each (exported for its bit-exact test); with
 * `running`, the running statistics are updated in place by the same kernel. */
export function groupStats(
  x: Tensor,
  v: NormView,
  running?: { mean: Tensor; variance: Tensor; momentum: number },
): { mean: Tensor; variance: Tensor } {
  const mean = Tensor.empty([v.C]), variance = Tensor.empty([v.C]);
  engine().dispatch({
    kernel: "norm_stats",
    entry: running ? "running" : "main",
    buffers: [
      x.buffer,
      mean.buffer,
      variance.buffer,
      ...(running ? [running.mean.buffer, running.variance.buffer] : []),
    ],
    params: words(v.N, v.C, v.S, { f: running?.momentum ?? 0 }),
    paramsAt: 3,
    workgroups: [v.C],
  });
  return { mean, variance };
}

/** Shapes that broadcast per-group values and per-channel weights over x: [1,C,1..] for batch
 * norm, [N,C,1..] for instance norm (groups are (n, c) planes). */
function normShapes(x: Tensor, perExample: boolean) {
  const ones = x.shape.slice(2).map(() => 1);
  return {
    group: [perExample ? x.shape[0] : 1, x.shape[1], ...ones],
    channel: [1, x.shape[1], ...ones],
  };
}

/** The normalization as a fused elementwise expression:
 * y = (x - mean) * inverseSqrt(var + eps) [* w + b]. */
function applyNorm(
  x: Tensor,
  mean: Tensor,
  variance: Tensor,
  w: Tensor | null,
  b: Tensor | null,
  perExample: boolean,
  eps: number,
): Tensor {
  const s = normShapes(x, perExample);
  const inv = unaryRaw("rsqrt", unaryRaw("affine", variance.view(s.group), 1, eps));
  const y = binaryRaw("mul", binaryRaw("sub", x, mean.view(s.group)), inv);
  if (!w || !b) return y;
  return binaryRaw("add", binaryRaw("mul", y, w.view(s.channel)), b.view(s.channel));
}

/** Backward of applyNorm: input gradient plus per-group sums (sum gy, sum gy*xhat). */
function normBackward(
  x: Tensor,
  gy: Tensor,
  mean: Tensor,
  variance: Tensor,
  w: Tensor | null,
  v: NormView,
  perExample: boolean,
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
      params: words(v.N, v.C, v.S, { f: eps }, 0),
      workgroups: [v.C],
    });
  }
  let gx: Tensor | null = null;
  if (needX) {
    // gx = w * invstd * (gy - sum(gy)/m - xhat * sum(gy*xhat)/m), m = N*S per group; with
    // running statistics (constants) gx = w * invstd * gy.
    const s = normShapes(x, perExample);
    const inv = unaryRaw("rsqrt", unaryRaw("affine", variance.view(s.group), 1, eps));
    const scale = w ? binaryRaw("mul", inv, w.view(s.channel)) : inv;
    if (batchStats) {
      const m = v.N * v.S;
      const xhat = binaryRaw("mul", binaryRaw("sub", x, mean.view(s.group)), inv);
      const centered = binaryRaw(
        "sub",
        binaryRaw("sub", gy, binaryRaw("div", sumG!.view(s.group), m)),
        binaryRaw("div", binaryRaw("mul", xhat, sumGX!.view(s.group)), m),
      );
      gx = binaryRaw("mul", scale, centered);
    } else gx = binaryRaw("mul", scale, gy);
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
    const y = applyNorm(x, runningMean, runningVar, weight, bias, false, eps);
    return recordNorm(op, y, x, weight, bias, runningMean, runningVar, v, false, eps, false);
  }
  if (N * S < 2) {
    throw new Error(
      `${op}: training needs more than one value per channel, got input [${x.shape}]`,
    );
  }
  const { mean, variance } = groupStats(
    x,
    v,
    runningMean && runningVar ? { mean: runningMean, variance: runningVar, momentum } : undefined,
  );
  const y = applyNorm(x, mean, variance, weight, bias, false, eps);
  return recordNorm(op, y, x, weight, bias, mean, variance, v, false, eps, true);
}

function recordNorm(
  op: string,
  y: Tensor,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  mean: Tensor,
  variance: Tensor,
  v: NormView,
  perExample: boolean,
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
      weight,
      v,
      perExample,
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
  const { mean, variance } = groupStats(x, v);
  const y = applyNorm(x, mean, variance, weight ?? null, bias ?? null, true, eps);
  return recordNorm(op, y, x, weight ?? null, bias ?? null, mean, variance, v, true, eps, true);
}
