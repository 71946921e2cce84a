// Per-example attack losses on logits [N,K] with labels [N] (float class indices), built from
// the core ops so every one is differentiable. Ties are handled like a sort: the k-th largest
// value is found by masking exactly one occurrence of the current maximum.

import { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";

function checkLogits(op: string, z: Tensor, labels: Tensor): void {
  if (z.ndim !== 2) throw new Error(`${op}: logits must be [N,K], got [${z.shape}]`);
  labels.assertShape([z.shape[0]], `${op}: labels`);
}

/** 1/0 mask [N,K] of class `idx[n]` per row (idx: float indices [N]). */
export function oneHotMask(idx: Tensor, k: number): Tensor {
  const iota = Tensor.fromData(Array.from({ length: k }, (_, i) => i), [1, k]);
  const m = ops.eq(iota, ops.reshape(idx, [idx.shape[0], 1]));
  iota.dispose();
  return m;
}

/** z[n, idx[n]] -> [N], differentiable in z. */
export function pick(z: Tensor, idx: Tensor): Tensor {
  const m = oneHotMask(idx, z.shape[1]);
  return ops.sum(ops.mul(z, m), 1);
}

/** The k largest values per row, each [N], largest first (differentiable). */
export function topValues(z: Tensor, k: number): Tensor[] {
  if (k > z.shape[1]) throw new Error(`topValues: k=${k} exceeds ${z.shape[1]} classes`);
  const out: Tensor[] = [];
  let cur = z;
  for (let i = 0; i < k; i++) {
    out.push(ops.max(cur, 1));
    if (i + 1 < k) cur = ops.where(oneHotMask(ops.argmax(cur, 1), z.shape[1]), -3e38, cur);
  }
  return out;
}

/** Cross-entropy per example: logsumexp(z) - z_y. */
export function ceLoss(z: Tensor, labels: Tensor): Tensor {
  checkLogits("ceLoss", z, labels);
  const m = ops.max(ops.detach(z), 1, true);
  const lse = ops.add(ops.log(ops.sum(ops.exp(ops.sub(z, m)), 1)), ops.reshape(m, [z.shape[0]]));
  return ops.sub(lse, pick(z, labels));
}

/** Margin z_y - max_{i != y} z_i (negative when misclassified). */
export function marginLoss(z: Tensor, labels: Tensor): Tensor {
  checkLogits("marginLoss", z, labels);
  const others = ops.where(oneHotMask(labels, z.shape[1]), -3e38, z);
  return ops.sub(pick(z, labels), ops.max(others, 1));
}

/** DLR loss (Croce & Hein 2020), untargeted:
 * -(z_y - max_{i!=y} z_i) / (z_(1) - z_(3) + 1e-12), z_(k) the k-th largest logit. */
export function dlrLoss(z: Tensor, labels: Tensor): Tensor {
  checkLogits("dlrLoss", z, labels);
  if (z.shape[1] < 3) throw new Error(`dlrLoss: needs at least 3 classes, got ${z.shape[1]}`);
  const [s1, s2, s3] = topValues(z, 3);
  const zy = pick(z, labels);
  const yIsTop = ops.eq(ops.argmax(ops.detach(z), 1), labels);
  const other = ops.where(yIsTop, s2, s1);
  return ops.div(ops.neg(ops.sub(zy, other)), ops.add(ops.sub(s1, s3), 1e-12));
}

/** Targeted DLR: -(z_y - z_t) / (z_(1) - (z_(3) + z_(4))/2 + 1e-12). */
export function dlrTargetedLoss(z: Tensor, labels: Tensor, targets: Tensor): Tensor {
  checkLogits("dlrTargetedLoss", z, labels);
  targets.assertShape([z.shape[0]], "dlrTargetedLoss: targets");
  if (z.shape[1] < 4) {
    throw new Error(`dlrTargetedLoss: needs at least 4 classes, got ${z.shape[1]}`);
  }
  const [s1, , s3, s4] = topValues(z, 4);
  const num = ops.neg(ops.sub(pick(z, labels), pick(z, targets)));
  const den = ops.add(ops.sub(s1, ops.scale(ops.add(s3, s4), 0.5)), 1e-12);
  return ops.div(num, den);
}

export type LossName = "ce" | "dlr" | "margin" | "dlr-targeted";

/** Float64 CPU versions on one row of logits, for bookkeeping and tests. */
export function lossCpu(name: LossName, z: ArrayLike<number>, y: number, t = -1): number {
  const k = z.length;
  const sorted = Array.from(z).sort((a, b) => b - a);
  let top = 0;
  for (let i = 1; i < k; i++) if (z[i] > z[top]) top = i;
  let maxOther = -Infinity;
  for (let i = 0; i < k; i++) if (i !== y) maxOther = Math.max(maxOther, z[i]);
  switch (name) {
    case "ce": {
      const m = sorted[0];
      let s = 0;
      for (let i = 0; i < k; i++) s += Math.exp(z[i] - m);
      return m + Math.log(s) - z[y];
    }
    case "margin":
      return z[y] - maxOther;
    case "dlr": {
      const other = top === y ? sorted[1] : sorted[0];
      return -(z[y] - other) / (sorted[0] - sorted[2] + 1e-12);
    }
    case "dlr-targeted":
      return -(z[y] - z[t]) / (sorted[0] - 0.5 * (sorted[2] + sorted[3]) + 1e-12);
  }
}

/** Index of the first maximum (the GPU argmax convention). */
export function argmaxCpu(z: ArrayLike<number>, off = 0, k = z.length): number {
  let best = 0;
  for (let i = 1; i < k; i++) if (z[off + i] > z[off + best]) best = i;
  return best;
}
