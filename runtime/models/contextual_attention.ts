// Contextual attention (DeepFillv2, Yu et al. 2018/2019) at one feature position per patch: every
// position of a feature map borrows a softmax-weighted mix of the features at the *known*
// positions, weighted by cosine similarity. Hole features are what the convolutions guessed; the
// attention offers matching known features from anywhere in the image beside them (the caller
// merges the two), which the dilated convolutions can only blur together. Memory: a P x P score
// matrix per example (P bottleneck positions: 256 at 64x64), quadratic in the purifier's size.
// Built from differentiable ops (matmul, softmax, permute), so attacks differentiate through it
// like any other layer.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";

/** DeepFillv2's softmax scale on cosine similarities (a sharp choice of the best match). */
export const ATTENTION_SOFTMAX_SCALE = 10;
/** Added to the scores of hole keys: exp(-1e4) is 0 in float32, so holes never lend features. */
const HOLE_PENALTY = -1e4;

/** f [N,C,H,W] features; hole [N,1,H,W] with 1 where the position is (partly) missing. Returns
 * [N,C,H,W]: at each position, sum over known positions k of softmax_k(scale * cos(f_p, f_k)) f_k.
 * An example with no known position attends over all its positions instead. */
export function contextualAttention(
  f: Tensor,
  hole: Tensor,
  scale = ATTENTION_SOFTMAX_SCALE,
): Tensor {
  if (f.ndim !== 4) {
    throw new Error(`contextualAttention: features must be [N,C,H,W], got [${f.shape}]`);
  }
  const [n, c, h, w] = f.shape;
  hole.assertShape([n, 1, h, w], "contextualAttention: hole mask");
  const p = h * w;
  const v = ops.permute(ops.reshape(f, [n, c, p]), [0, 2, 1]); // [N,P,C]
  // Unit vectors per position (the epsilon keeps all-zero features finite).
  const norm = ops.sqrt(ops.add(ops.sum(ops.square(v), 2, true), 1e-8)); // [N,P,1]
  const u = ops.div(v, norm);
  const cos = ops.matmul(u, ops.permute(u, [0, 2, 1])); // [N,P(query),P(key)]
  // Hole keys are penalised only in examples that have a known key: an all-hole example keeps
  // its scores exact (in float32, score - 1e4 would round the scores to 1e-3).
  const anyKnown = ops.sub(1, ops.min(hole, [1, 2, 3], true)); // [N,1,1,1]
  const penalty = ops.mul(ops.reshape(hole, [n, 1, p]), ops.reshape(anyKnown, [n, 1, 1]));
  const scores = ops.add(ops.scale(cos, scale), ops.scale(penalty, HOLE_PENALTY));
  const att = ops.reshape(ops.softmax(ops.reshape(scores, [n * p, p])), [n, p, p]);
  const out = ops.matmul(att, v); // [N,P,C]
  return ops.reshape(ops.permute(out, [0, 2, 1]), [n, c, h, w]);
}
