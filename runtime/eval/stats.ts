// Confidence intervals for accuracies: every accuracy in a report is a share of n examples,
// so it comes with the 95% Wilson score interval (good coverage also near 0% and 100%, where
// the normal approximation fails, and closed form, so merged shards recompute it exactly).

const Z95 = 1.959963984540054;

/** The Wilson score interval [lo, hi] of k successes in n trials (z = 1.96 for 95%). */
export function wilson(k: number, n: number, z = Z95): [number, number] {
  if (!(Number.isInteger(n) && n >= 0 && k >= 0 && k <= n)) {
    throw new Error(`wilson: need 0 <= k <= n with integer n, got k=${k}, n=${n}`);
  }
  if (n === 0) return [0, 1];
  const p = k / n, z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** The interval of an accuracy given as a share of n (rounded to the nearest count). */
export function accuracyInterval(acc: number, n: number): [number, number] {
  return wilson(Math.min(n, Math.max(0, Math.round(acc * n))), n);
}

/** "54.2% [40.3, 67.4]": an accuracy with its 95% interval, in percent. */
export function pctWithInterval(acc: number, n: number, digits = 1): string {
  const [lo, hi] = accuracyInterval(acc, n);
  const f = (v: number) => (100 * v).toFixed(digits);
  return `${f(acc)}% [${f(lo)}, ${f(hi)}]`;
}
