// The last line of defence of every evaluation: an attack's adversarials must lie in its
// threat model (inside the eps ball of its norm, inside [0,1], no NaN) before any accuracy is
// computed from them. A violation is a bug in an attack, so it fails the batch loudly.

import type { Norm } from "../attacks/common.ts";

/** Float32 rounding of x + delta and the ball projections: slack on top of eps. */
const SLACK = 1e-5;

/** Throws naming the attack, the example and what is wrong; `ball` null: no norm ball (StAdv).
 * Returns each example's Linf and L2 distance to x (the report's perturbation norms). */
export function assertValidAdversarials(
  attack: string,
  adv: Float32Array,
  x: Float32Array,
  n: number,
  ball: { norm: Norm; eps: number } | null,
  indices: readonly number[],
): { linf: number[]; l2: number[] } {
  const d = x.length / n;
  const norms = { linf: [] as number[], l2: [] as number[] };
  for (let i = 0; i < n; i++) {
    let linf = 0, l2 = 0;
    for (let j = i * d; j < (i + 1) * d; j++) {
      const v = adv[j];
      if (!Number.isFinite(v)) {
        throw new Error(
          `${attack}: the adversarial of example ${indices[i]} has a non-finite pixel (${v} at ` +
            `${j - i * d}): the attack is broken, no accuracy is reported`,
        );
      }
      if (v < 0 || v > 1) {
        throw new Error(
          `${attack}: the adversarial of example ${indices[i]} leaves the image box [0,1] ` +
            `(${v} at ${j - i * d}): the attack is broken, no accuracy is reported`,
        );
      }
      const e = Math.abs(v - x[j]);
      if (e > linf) linf = e;
      l2 += e * e;
    }
    norms.linf.push(linf);
    norms.l2.push(Math.sqrt(l2));
    if (!ball) continue;
    const got = ball.norm === "linf" ? linf : Math.sqrt(l2);
    if (got > ball.eps * (1 + SLACK) + SLACK) {
      throw new Error(
        `${attack}: the adversarial of example ${indices[i]} is at ${ball.norm} distance ` +
          `${got.toPrecision(6)} > eps ${ball.eps.toPrecision(6)}: the attack is broken, no ` +
          `accuracy is reported`,
      );
    }
  }
  return norms;
}
