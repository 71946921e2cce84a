// Non-finite logits mean a broken model or input: argmax still picks a class, so accuracy
// would look like a number. Every evaluation checks the logits it reads back and fails the
// batch loudly instead.

/** Throws when any logit in `z` (rows of `classes`) is NaN or +-Inf, naming the example
 * (its global index from `indices`) and `what` was evaluated. */
export function checkFiniteLogits(
  z: ArrayLike<number>,
  classes: number,
  what: string,
  indices: readonly number[],
): void {
  let first = -1, count = 0;
  for (let i = 0; i < z.length; i++) {
    if (!Number.isFinite(z[i])) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first < 0) return;
  const row = Math.floor(first / classes);
  throw new Error(
    `${what}: the logits of example ${indices[row] ?? row} are ${z[first]} (class ` +
      `${first % classes}; ${count} non-finite logits in the batch): the model's weights or ` +
      `its input are broken, so no accuracy is reported`,
  );
}
