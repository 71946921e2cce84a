// The "Significance" section of the pipeline report: AToP against the purifier without
// fine-tuning and against no defense, under each threat model, paired by test image (clean,
// each attack, worst case): McNemar's exact test and Newcombe's interval for the difference.

import { mcnemarExact, pairedDifference, pairedTable } from "../runtime/eval/significance.ts";
import { pctWithInterval } from "../runtime/eval/stats.ts";
import type { AttackRow, DefenseRow, Threat } from "./evaluate.ts";

export const ALPHA = 0.05;
const THREATS: Threat[] = ["classifier-only", "full-pipeline"];
const BASELINES = [
  { name: "purifier", label: "the purifier without fine-tuning" },
  { name: "none", label: "no defense" },
] as const;

export interface Comparison {
  threat: Threat;
  /** The defense AToP is compared with (no defense: its one row, under both threat models). */
  baseline: "purifier" | "none";
  /** "clean", "worst case" or an attack column. */
  metric: string;
  atop_accuracy: number;
  baseline_accuracy: number;
  /** AToP minus baseline, with Newcombe's 95% interval for paired proportions. */
  difference: number;
  interval: [number, number];
  /** Discordant images: b right under AToP only, c right under the baseline only. */
  b: number;
  c: number;
  /** McNemar's exact two-sided test on b and c. */
  p_value: number;
  significant: boolean;
}

export interface Significance {
  alpha: number;
  comparisons: Comparison[];
  /** Comparisons skipped, and why. */
  notes: string[];
}

/** Per-example verdicts as a "0"/"1" string (character i: test image i), compact in JSON. */
export const toBits = (v: readonly boolean[]): string => v.map((x) => (x ? "1" : "0")).join("");
export const fromBits = (s: string): boolean[] => [...s].map((c) => c === "1");

/** Report column of an attack: StAdv has no norm ball, the others show norm and radius. */
export function attackColumn(a: AttackRow): string {
  return a.attack === "stadv" ? "stadv (flow)" : `${a.attack} ${a.norm} eps=${+a.eps.toFixed(4)}`;
}

/** One paired comparison of two verdict strings over the same n images. */
export function compare(
  head: Pick<Comparison, "threat" | "baseline" | "metric">,
  atop: string,
  base: string,
): Comparison {
  const t = pairedTable(fromBits(atop), fromBits(base));
  const n = atop.length;
  const { difference, interval } = pairedDifference(t);
  const p = mcnemarExact(t.onlyA, t.onlyB);
  return {
    ...head,
    atop_accuracy: (t.both + t.onlyA) / n,
    baseline_accuracy: (t.both + t.onlyB) / n,
    difference,
    interval,
    b: t.onlyA,
    c: t.onlyB,
    p_value: p,
    significant: p < ALPHA,
  };
}

/** Clean, each attack (matched by position in the spec's list), worst case. */
function compareRows(
  head: Pick<Comparison, "threat" | "baseline">,
  atop: DefenseRow,
  base: DefenseRow,
): Comparison[] {
  const out = [compare({ ...head, metric: "clean" }, atop.verdicts.clean, base.verdicts.clean)];
  atop.attacks.forEach((a, i) => {
    const b = base.attacks[i];
    if (!b) return;
    const metric = attackColumn(a) +
      (b.attack === a.attack ? "" : ` (${head.baseline}: ${b.attack})`);
    out.push(compare({ ...head, metric }, a.verdicts, b.verdicts));
  });
  out.push(
    compare({ ...head, metric: "worst case" }, atop.verdicts.worst_case, base.verdicts.worst_case),
  );
  return out;
}

/** Whether a row carries per-example verdicts of all n images (older reports do not). */
function hasVerdicts(r: DefenseRow, n: number): boolean {
  const v = r.verdicts;
  return !!v && n > 0 && v.clean.length === n && v.worst_case.length === n &&
    r.attacks.every((a) => a.verdicts?.length === n);
}

/** AToP against each baseline under each threat model it was evaluated under. */
export function significance(rows: DefenseRow[], n: number): Significance {
  const notes: string[] = [];
  const comparisons: Comparison[] = [];
  const find = (d: string, t?: Threat) =>
    rows.find((r) => r.defense === d && (!t || r.threat === t));
  if (!find("atop")) notes.push("AToP is not in this run: no comparisons.");
  for (const threat of find("atop") ? THREATS : []) {
    const atop = find("atop", threat);
    if (!atop) {
      notes.push(`${threat}: not evaluated in this run.`);
      continue;
    }
    for (const b of BASELINES) {
      const base = find(b.name, b.name === "none" ? undefined : threat);
      if (!base) notes.push(`${threat}: ${b.label} is not in this run: AToP vs ${b.name} skipped.`);
      else if (!hasVerdicts(atop, n) || !hasVerdicts(base, n)) {
        notes.push(`${threat}: per-example verdicts missing: AToP vs ${b.name} skipped.`);
      } else comparisons.push(...compareRows({ threat, baseline: b.name }, atop, base));
    }
  }
  return { alpha: ALPHA, comparisons, notes };
}

const signed = (v: number) => `${v >= 0 ? "+" : "-"}${Math.abs(100 * v).toFixed(1)}`;
const pValue = (p: number) => (p < 1e-4 ? "< 0.0001" : p.toFixed(4));

/** One table line: both accuracies with their intervals, the difference, b / c, p, verdict. */
function comparisonLine(c: Comparison, n: number): string {
  const [lo, hi] = c.interval;
  return "| " + [
    c.threat,
    c.baseline,
    c.metric,
    pctWithInterval(c.atop_accuracy, n),
    pctWithInterval(c.baseline_accuracy, n),
    `${signed(c.difference)} pts [${signed(lo)}, ${signed(hi)}]`,
    `${c.b} / ${c.c}`,
    pValue(c.p_value),
    c.significant ? `significant at ${100 * ALPHA}%` : "not significant",
  ].join(" | ") + " |";
}

/** The "Significance" section of report.md. */
export function significanceMarkdown(s: Significance, n: number): string[] {
  const lines = [
    "## Significance",
    "",
    "AToP against the purifier without fine-tuning and against no defense (the bare classifier's",
    "one row, under both threat models), paired by test image. Difference: AToP minus baseline in",
    "points, with Newcombe's 95% interval for paired proportions. b / c: images only AToP / only",
    "the baseline gets right. p: McNemar's exact two-sided test on b and c. The verdict is p below",
    `${ALPHA} (near it the interval can still touch 0); each line is one test, with no correction`,
    "for the number of lines.",
    "",
  ];
  if (s.comparisons.length) {
    lines.push(
      "| threat model | AToP vs | accuracy | AToP | baseline | difference [95% CI] | b / c | p | verdict |",
      "|---|---|---|---|---|---|---|---|---|",
      ...s.comparisons.map((c) => comparisonLine(c, n)),
      ...(s.notes.length ? [""] : []),
    );
  }
  return [...lines, ...s.notes.map((x) => `- ${x}`)];
}
