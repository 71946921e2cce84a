// Attack objectives, oriented so that the attack maximizes them: a per-example GPU loss for
// gradients and the same loss in float64 on the CPU for bookkeeping.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { ceLoss, dlrLoss, dlrTargetedLoss, lossCpu, marginLoss } from "./losses.ts";

export type AttackLoss = "ce" | "dlr" | "margin";

export function parseLoss(s: string): AttackLoss {
  if (s === "ce" || s === "dlr" || s === "margin") return s;
  throw new Error(`loss: expected ce|dlr|margin, got "${s}"`);
}

/** Per-example loss to maximize on GPU logits. `targets` only for the targeted DLR. */
export function objective(
  name: AttackLoss | "dlr-targeted",
  labels: Tensor,
  targets?: Tensor,
): (z: Tensor) => Tensor {
  switch (name) {
    case "ce":
      return (z) => ceLoss(z, labels);
    case "dlr":
      return (z) => dlrLoss(z, labels);
    case "margin":
      return (z) => ops.neg(marginLoss(z, labels));
    case "dlr-targeted":
      if (!targets) throw new Error("objective: dlr-targeted needs targets");
      return (z) => dlrTargetedLoss(z, labels, targets);
  }
}

/** The same objective for every row of CPU logits z [N*K]. */
export function objectiveCpu(
  name: AttackLoss | "dlr-targeted",
  z: Float32Array,
  k: number,
  labels: number[],
  targets?: number[],
): number[] {
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const row = z.subarray(i * k, (i + 1) * k);
    if (name === "margin") out.push(-lossCpu("margin", row, labels[i]));
    else out.push(lossCpu(name, row, labels[i], targets?.[i] ?? -1));
  }
  return out;
}
