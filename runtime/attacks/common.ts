// Shared pieces of the attacks: option/result types, eps-ball projections (GPU), per-example
// broadcasting, and row selection for running an attack on the points still robust.

import { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import type { Target } from "./target.ts";

export type Norm = "linf" | "l2";

export function parseNorm(s: string): Norm {
  const n = s.toLowerCase();
  if (n === "linf" || n === "l2") return n;
  throw new Error(`norm: expected "linf" or "l2", got "${s}"`);
}

/** Inputs every attack takes. */
export interface AttackInput {
  target: Target;
  /** Clean images [N,C,H,W] in [0,1]. */
  x: Tensor;
  /** True class per example. */
  labels: number[];
  /** Global example indices: each example's randomness comes from Rng(seed).fork(index), so
   * results do not depend on batch or shard layout. Default 0..N-1. */
  indices?: number[];
  /** The caller has already given every row its clean verdict (correct) and wants each row
   * attacked. Without it an attack skips the rows its own clean pass misclassifies, which on
   * a randomized target can leave examples that are correct under the caller's verdict
   * never attacked. */
  attackAll?: boolean;
  /** How the caller decides a prediction (e.g. a majority vote over K draws of a randomized
   * defense). AutoAttack verifies each stage's adversarials with it; default: one forward. */
  verify?: (x: Tensor, rows: readonly number[]) => Promise<number[]>;
}

export interface AttackResult {
  /** Adversarial images (the clean image where the attack failed), within eps and [0,1]. */
  xAdv: Tensor;
  /** Per example: misclassified at xAdv under the attack's own forward passes. */
  fooled: boolean[];
  /** Per example: loss at the start point and best loss reached (gradient attacks), for the
   * "loss never increased" sanity check. Losses are oriented so that higher = stronger. */
  lossStart?: number[];
  lossBest?: number[];
  /** Per example: model queries spent (score-based attacks). */
  queries?: number[];
  /** Per example: the prediction of the verification that decided `fooled` (AutoAttack). */
  verdictPred?: number[];
}

export function defaultIndices(input: AttackInput): number[] {
  const n = input.x.shape[0];
  const idx = input.indices ?? Array.from({ length: n }, (_, i) => i);
  if (idx.length !== n) {
    throw new Error(`attack: ${idx.length} indices for a batch of ${n} images`);
  }
  if (input.labels.length !== n) {
    throw new Error(`attack: ${input.labels.length} labels for a batch of ${n} images`);
  }
  if (input.x.ndim !== 4) throw new Error(`attack: x must be NCHW, got [${input.x.shape}]`);
  return idx;
}

/** The largest radius that still constrains anything for images of `pixels` values in [0,1]:
 * 1 for linf, sqrt(pixels) (the distance between an all-0 and an all-1 image) for l2. */
export function maxEps(norm: Norm, pixels: number): number {
  return norm === "linf" ? 1 : Math.sqrt(pixels);
}

export function checkEps(op: string, eps: number): void {
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new Error(`${op}: eps must be >= 0, got ${eps}`);
}

/** Reshapes a per-example vector [N] to [N,1,1,1] for broadcasting against images. */
export function perExample(v: Tensor, like: Tensor): Tensor {
  return ops.reshape(v, [like.shape[0], ...like.shape.slice(1).map(() => 1)]);
}

/** A per-example constant tensor [N,1,...] from CPU values. */
export function perExampleConst(values: ArrayLike<number>, like: Tensor): Tensor {
  return Tensor.fromData(Float32Array.from(values), [
    like.shape[0],
    ...like.shape.slice(1).map(() => 1),
  ]);
}

/** Projects xa onto {|xa - x|_inf <= eps} ∩ [0,1]^d. */
export function projectLinf(xa: Tensor, x: Tensor, eps: number): Tensor {
  return ops.clamp(ops.minimum(ops.maximum(xa, ops.sub(x, eps)), ops.add(x, eps)), 0, 1);
}

/** Projects xa onto {||xa - x||_2 <= eps} and then [0,1] (clipping toward x only shortens
 * the perturbation since x is in [0,1], so both constraints hold). */
export function projectL2(xa: Tensor, x: Tensor, eps: number): Tensor {
  const d = ops.sub(xa, x);
  const n = ops.normL2PerExample(d);
  // Slightly inside the ball so float32 rounding of the norm never lands above eps.
  const f = ops.minimum(ops.div(eps * (1 - 1e-6), ops.add(n, 1e-12)), 1);
  return ops.clamp(ops.add(x, ops.mul(d, perExample(f, d))), 0, 1);
}

export function project(norm: Norm, xa: Tensor, x: Tensor, eps: number): Tensor {
  return norm === "linf" ? projectLinf(xa, x, eps) : projectL2(xa, x, eps);
}

/** g / (||g||_2 + 1e-12) per example. */
export function normalizeL2(g: Tensor): Tensor {
  return ops.div(g, perExample(ops.add(ops.normL2PerExample(g), 1e-12), g));
}

/** g / (||g||_inf + 1e-12) per example. */
export function normalizeLinf(g: Tensor): Tensor {
  return ops.div(g, perExample(ops.add(ops.normLinfPerExample(g), 1e-12), g));
}

/** Rows of x (first axis) in the given order, as a new tensor (a GPU gather: no readback). */
export function selectRows(x: Tensor, rows: readonly number[]): Tensor {
  return ops.takeRows(x, rows);
}

/** x with rows[i] replaced by src row i (new tensor; a GPU gather, no readback). */
export function scatterRows(x: Tensor, rows: readonly number[], src: Tensor): Tensor {
  const n = x.shape[0];
  const idx = Array.from({ length: n }, (_, i) => i);
  rows.forEach((r, i) => (idx[r] = n + i));
  return ops.takeRows(x, idx, src);
}

/** Per-example perturbation norms (float64 on CPU). */
export async function perturbationNorms(
  xAdv: Tensor,
  x: Tensor,
): Promise<{ linf: number[]; l2: number[] }> {
  const a = await xAdv.data();
  const b = await x.data();
  const n = x.shape[0], d = x.size / n;
  const linf: number[] = [], l2: number[] = [];
  for (let i = 0; i < n; i++) {
    let m = 0, s = 0;
    for (let j = i * d; j < (i + 1) * d; j++) {
      const v = Math.abs(a[j] - b[j]);
      if (v > m) m = v;
      s += v * v;
    }
    linf.push(m);
    l2.push(Math.sqrt(s));
  }
  return { linf, l2 };
}

/** Reads logits and returns the first-argmax prediction per row. */
export async function predictions(logits: Tensor): Promise<{ pred: number[]; z: Float32Array }> {
  const z = await logits.data();
  const [n, k] = logits.shape;
  const pred: number[] = [];
  for (let i = 0; i < n; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (z[i * k + j] > z[i * k + b]) b = j;
    pred.push(b);
  }
  return { pred, z };
}
