// Flag parsing shared by every CLI: typed parsers that check a value before any GPU work or
// file write, so a typo fails at once with `--flag: expected ..., got "..."` instead of deep
// inside a run (or after a state file was written that then blocks the corrected rerun).
// Each parser returns undefined for an absent flag, so callers write `?? default`.

import { maxEps, type Norm } from "../attacks/common.ts";

/** Plain decimal numbers: 1, -2, 0.5, .5, 1e-3. Not "", "0x10", "Infinity" or "NaN", which
 * Number() would turn into 0, 16 or non-finite values. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export interface Range {
  min?: number;
  max?: number;
  /** The minimum itself is refused (a number > min). */
  minExclusive?: boolean;
  /** Appended to the expectation, e.g. " for linf (pixels are in [0,1])". */
  note?: string;
}

function fail(flag: string, expected: string, s: string): never {
  throw new Error(`${flag}: expected ${expected}, got "${s}"`);
}

function decimal(s: string): number | null {
  const t = s.trim();
  return DECIMAL.test(t) ? Number(t) : null;
}

/** "an integer >= 1", "a number > 0", "a number in [0, 1]". */
function expectation(kind: "an integer" | "a number", r: Range): string {
  const lo = r.min, hi = r.max;
  let s = kind;
  if (lo !== undefined && hi !== undefined) s += ` in ${r.minExclusive ? "(" : "["}${lo}, ${hi}]`;
  else if (lo !== undefined) s += ` ${r.minExclusive ? ">" : ">="} ${lo}`;
  else if (hi !== undefined) s += ` <= ${hi}`;
  return s + (r.note ?? "");
}

function inRange(v: number, r: Range): boolean {
  if (!Number.isFinite(v)) return false;
  if (r.min !== undefined && (r.minExclusive ? v <= r.min : v < r.min)) return false;
  return r.max === undefined || v <= r.max;
}

/** A whole number in range (and a safe integer: 1e30 is "integer" to JS but not to a loop). */
export function intFlag(flag: string, s: string | undefined, r: Range = {}): number | undefined {
  if (s === undefined) return undefined;
  const v = decimal(s);
  if (v === null || !Number.isSafeInteger(v) || !inRange(v, r)) {
    fail(flag, expectation("an integer", r), s);
  }
  return v;
}

/** A finite decimal number in range. */
export function numberFlag(flag: string, s: string | undefined, r: Range = {}): number | undefined {
  if (s === undefined) return undefined;
  const v = decimal(s);
  if (v === null || !inRange(v, r)) fail(flag, expectation("a number", r), s);
  return v;
}

/** A number written as a decimal or a fraction of two decimals, like 8/255. */
export function fractionFlag(
  flag: string,
  s: string | undefined,
  r: Range = {},
): number | undefined {
  if (s === undefined) return undefined;
  const parts = s.split("/");
  const nums = parts.map(decimal);
  let v: number | null = null;
  if (parts.length === 1) v = nums[0];
  else if (parts.length === 2 && nums[0] !== null && nums[1] !== null && nums[1] !== 0) {
    v = nums[0] / nums[1];
  }
  if (v === null || !inRange(v, r)) {
    fail(flag, `${expectation("a number", r)} (a decimal or a fraction like 8/255)`, s);
  }
  return v;
}

/** One of a fixed list of words. */
export function enumFlag<T extends string>(
  flag: string,
  s: string | undefined,
  values: readonly T[],
): T | undefined {
  if (s === undefined) return undefined;
  if (!(values as readonly string[]).includes(s)) fail(flag, `one of ${values.join("|")}`, s);
  return s as T;
}

export const ADAPTERS = ["auto", "cpu", "gpu"] as const;
export type AdapterFlag = typeof ADAPTERS[number];

/** --adapter auto|cpu|gpu (default auto). */
export function adapterFlag(s: string | undefined): AdapterFlag {
  return enumFlag("--adapter", s, ADAPTERS) ?? "auto";
}

/** Refuses flags that would be silently ignored: `--width: only used with --arch deepfill`. */
export function refuseUnused(
  values: Record<string, unknown>,
  names: readonly string[],
  when: string,
): void {
  for (const f of names) {
    if (values[f] !== undefined && values[f] !== false) {
      throw new Error(`--${f}: only used ${when}; drop it`);
    }
  }
}

/** Throws `--name is required` (with the usage) for the first missing flag. */
export function requireFlags(
  values: Record<string, unknown>,
  names: readonly string[],
  usage: string,
): void {
  for (const f of names) {
    if (values[f] === undefined || values[f] === "") {
      throw new Error(`--${f} is required\n${usage}`);
    }
  }
}

/** --eps for a norm on CIFAR images (3x32x32): [0,1] for linf, [0, sqrt(3072)] for l2. */
export function epsFlag(s: string | undefined, norm: Norm): number | undefined {
  const max = maxEps(norm, 3 * 32 * 32);
  const note = norm === "linf"
    ? " for linf (pixels are in [0,1])"
    : " for l2 (sqrt(3072), the largest distance between two 3x32x32 images)";
  return fractionFlag("--eps", s, { min: 0, max: Math.floor(max * 1e4) / 1e4, note });
}
