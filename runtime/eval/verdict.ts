// The prediction rule of an evaluation, one for the clean verdict and for every attack's
// verdict: a single forward pass, or for a randomized target the majority vote over K draws
// (as BPDA+EOT evaluations of purification defenses report it). K = 1 is a single draw.

import { drawsPerPass, stackDraws, stackedImages } from "../attacks/target.ts";
import { noGrad } from "../autograd.ts";
import { type Tensor, tidy } from "../tensor.ts";
import { predictions } from "../attacks/common.ts";
import type { Target } from "../attacks/target.ts";
import { checkFiniteLogits } from "./finite.ts";

/** Version of the verdict protocol and of the defense's draws, in every state-file key and
 * eval stage key, so results of an older one are never resumed into a newer report.
 * 2: one clean verdict per example, every clean-correct example attacked by every attack,
 * defense draws keyed by (example, call). 3: each attack draws in a scope of its own; PGD
 * restarts only on rows still robust; targets exclude the label. */
export const EVAL_PROTOCOL_VERSION = 3;

/** The protocol sentence every report carries. */
export function protocolText(votes: number): string {
  return `one clean verdict per example; every example correct under it is attacked by every ` +
    `attack; an attack's verdict is its verification of its final adversarial; ` +
    (votes > 1
      ? `a randomized defense's prediction is the majority vote over ${votes} draws`
      : `a randomized defense's prediction is a single draw (K = 1)`) +
    `; robust = correct under the clean verdict and under every attack's verdict`;
}

/** Majority class per row over `draws` logits [N,K] (flattened). Ties go to the class with
 * the larger summed logits, then the smaller index, so the vote is deterministic. */
export function majorityVote(draws: Float32Array[], n: number, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const votes = new Array<number>(k).fill(0);
    const sums = new Array<number>(k).fill(0);
    for (const z of draws) {
      let best = 0;
      for (let j = 1; j < k; j++) if (z[i * k + j] > z[i * k + best]) best = j;
      votes[best]++;
      for (let j = 0; j < k; j++) sums[j] += z[i * k + j];
    }
    let c = 0;
    for (let j = 1; j < k; j++) {
      if (votes[j] > votes[c] || (votes[j] === votes[c] && sums[j] > sums[c])) c = j;
    }
    out.push(c);
  }
  return out;
}

/** Predictions of `t` on `x` (rows: the examples' global indices) under the protocol. NaN or
 * Inf logits fail the batch, naming `what` was evaluated. */
export async function protocolPredict(
  t: Target,
  x: Tensor,
  rows: readonly number[],
  votes: number,
  what = "evaluation",
): Promise<number[]> {
  if (!Number.isInteger(votes) || votes < 1) {
    throw new Error(`votes: expected an integer >= 1, got ${votes}`);
  }
  const k = !t.randomized ? 1 : votes;
  const n = x.shape[0], nc = t.numClasses;
  if (k === 1) {
    const z = tidy(() => noGrad(() => t.logits(x, rows)));
    const r = await predictions(z);
    z.dispose();
    checkFiniteLogits(r.z, nc, `${t.name}, ${what}`, rows);
    return r.pred;
  }
  // The K votes as stacked passes (the same draws as K calls), one readback each.
  const draws: Float32Array[] = [];
  const per = drawsPerPass(n, k, stackedImages(t));
  for (let d0 = 0; d0 < k; d0 += per) {
    const m = Math.min(per, k - d0);
    const z = tidy(() =>
      noGrad(() => {
        const s = stackDraws(x, rows, m);
        return t.logits(s.xt, s.rows);
      })
    );
    const all = await z.data();
    z.dispose();
    for (let j = 0; j < m; j++) {
      const zj = all.subarray(j * n * nc, (j + 1) * n * nc);
      checkFiniteLogits(zj, nc, `${t.name}, ${what}`, rows);
      draws.push(zj);
    }
  }
  return majorityVote(draws, n, nc);
}
