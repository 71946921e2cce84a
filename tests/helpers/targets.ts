// Small attack targets shared by the attack and execution tests.

import { rng } from "./check.ts";
import { Tensor } from "../../runtime/tensor.ts";
import * as ops from "../../runtime/ops/mod.ts";
import type { Target } from "../../runtime/attacks/mod.ts";

/** A 2-layer tanh MLP on flattened images of `d` values, fixed random weights. */
export function mlpTarget(d: number, seed: number, k = 10, hidden = 24): Target {
  const r = rng(seed);
  const w1 = Tensor.fromData(Array.from({ length: hidden * d }, () => (r() - 0.5) * 0.6), [
    hidden,
    d,
  ]);
  const w2 = Tensor.fromData(Array.from({ length: k * hidden }, () => r() - 0.5), [k, hidden]);
  return {
    name: "mlp",
    numClasses: k,
    randomized: false,
    logits: (x) => ops.linear(ops.tanh(ops.linear(ops.flatten(x), w1)), w2),
  };
}
