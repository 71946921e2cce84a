// Paired comparisons of two defenses evaluated on the same examples: McNemar's exact test on
// the discordant pairs, and the Newcombe interval for the difference of the two accuracies.

import { wilson } from "./stats.ts";

/** Paired verdicts of defenses A and B: correct under both, A only, B only, neither. */
export interface PairedTable {
  both: number;
  onlyA: number;
  onlyB: number;
  neither: number;
}

/** Counts the 2x2 table of two verdict vectors over the same examples. */
export function pairedTable(a: readonly boolean[], b: readonly boolean[]): PairedTable {
  if (a.length !== b.length) throw new Error(`pairedTable: ${a.length} vs ${b.length} examples`);
  const t = { both: 0, onlyA: 0, onlyB: 0, neither: 0 };
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) t.both++;
    else if (a[i]) t.onlyA++;
    else if (b[i]) t.onlyB++;
    else t.neither++;
  }
  return t;
}

/** x * 2^e without overflow or underflow on the way (only the result may underflow). */
function ldexp(x: number, e: number): number {
  for (; e < -1000; e += 1000) x *= 2 ** -1000;
  for (; e > 1000; e -= 1000) x *= 2 ** 1000;
  return x * 2 ** e;
}

/** P[X <= k] for X ~ Bin(m, 1/2): C(m, k) / 2^m as a product of ratios with its binary
 * exponent kept apart, times the sum of C(m, i) / C(m, k) from the largest term down. Nothing
 * overflows or cancels (a sum of logs would lose ~1e-11 to ln C(m, k) ~ m ln 2 at m = 10^4). */
export function binomHalfCdf(k: number, m: number): number {
  if (!(Number.isInteger(k) && Number.isInteger(m) && m >= 0)) {
    throw new Error(`binomHalfCdf: need integers k and m >= 0, got k=${k}, m=${m}`);
  }
  if (k < 0) return 0;
  if (k >= m) return 1;
  if (2 * k > m) return 1 - binomHalfCdf(m - k - 1, m); // symmetry keeps the terms decreasing
  let mant = 1, exp = -m; // C(m, k) / 2^m = mant * 2^exp
  for (let i = 1; i <= k; i++) {
    mant *= (m - k + i) / i;
    if (mant > 2 ** 500) [mant, exp] = [mant * 2 ** -500, exp + 500];
  }
  let term = 1, sum = 1; // C(m, i) / C(m, k) for i = k, k-1, ...
  for (let i = k; i > 0; i--) {
    term *= i / (m - i + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return ldexp(mant * sum, exp);
}

/** Exact two-sided McNemar test: b and c are the discordant pairs (A right and B wrong, and
 * the reverse); p = min(1, 2 P[X <= min(b, c)]) with X ~ Bin(b + c, 1/2); 1 without any. */
export function mcnemarExact(b: number, c: number): number {
  if (!(Number.isInteger(b) && Number.isInteger(c) && b >= 0 && c >= 0)) {
    throw new Error(`mcnemarExact: need counts b, c >= 0, got b=${b}, c=${c}`);
  }
  if (b + c === 0) return 1;
  return Math.min(1, 2 * binomHalfCdf(Math.min(b, c), b + c));
}

/** Accuracy of A minus accuracy of B with its 95% interval: Newcombe's square-and-add
 * interval for paired proportions (method 10 of Newcombe 1998, Stat Med 17:2635), built from
 * the two Wilson intervals and the continuity-corrected phi correlation of the table. */
export function pairedDifference(
  t: PairedTable,
): { difference: number; interval: [number, number] } {
  const n = t.both + t.onlyA + t.onlyB + t.neither;
  if (n === 0) return { difference: 0, interval: [-1, 1] };
  const kA = t.both + t.onlyA, kB = t.both + t.onlyB;
  const pA = kA / n, pB = kB / n, d = pA - pB;
  const [lA, uA] = wilson(kA, n), [lB, uB] = wilson(kB, n);
  const phi = tablePhi(t, n);
  const half = (x: number, y: number) => Math.sqrt(Math.max(0, x * x + y * y - 2 * phi * x * y));
  return {
    difference: d,
    interval: [Math.max(-1, d - half(pA - lA, uB - pB)), Math.min(1, d + half(uA - pA, pB - lB))],
  };
}

/** Newcombe's phi: (ad - bc - n/2) / sqrt(marginals) when ad - bc > n/2, 0 up to n/2, the
 * plain phi when negative; 0 when a margin is empty. */
function tablePhi(t: PairedTable, n: number): number {
  const margins = (t.both + t.onlyA) * (t.onlyB + t.neither) * (t.both + t.onlyB) *
    (t.onlyA + t.neither);
  if (margins === 0) return 0;
  const a = t.both * t.neither - t.onlyA * t.onlyB;
  const num = a > n / 2 ? a - n / 2 : a >= 0 ? 0 : a;
  return num / Math.sqrt(margins);
}
