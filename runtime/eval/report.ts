// Evaluation reports: per-example results, robust accuracy per attack and worst case over
// attacks, the settings that produced them, and the sanity checks. Written as JSON and a
// Markdown table (atomically), plus an optional PNG grid.

import type { Norm } from "../attacks/common.ts";
import { writeFileAtomic } from "./files.ts";
import { derivedChecks, isDerivedCheck } from "./checks.ts";
import { pctWithInterval, wilson } from "./stats.ts";
import { protocolText } from "./verdict.ts";

export type ThreatModel = "classifier-only" | "full-pipeline";

export interface EvalConfig {
  /** Attacks run on every example (the worst case is taken over them). */
  attacks: string[];
  norm: Norm;
  eps: number;
  /** Iterations (resolved attack default when not given). */
  steps: number;
  step_size: number | null;
  restarts: number;
  /** EOT draws per gradient. */
  eot: number;
  /** Every attack's own resolved settings (steps, EOT, step size, StAdv's bound, ...); the
   * flat fields above are the first attack's. Absent in older reports. */
  attack_params?: Record<string, unknown>;
  /** Draws in the majority vote that decides a randomized defense's prediction (clean and
   * adversarial verdicts); 1 = a single draw. Absent in reports older than the protocol. */
  votes?: number;
  seed: number;
  threat_model: ThreatModel;
  /** Square query budget, when Square runs. */
  queries: number | null;
  batch_size: number;
  /** Whether the attacked target is randomized (declared or detected). */
  target_randomized: boolean;
  /** Examples in the evaluated set before sharding (after --limit). */
  n_total: number;
  arch: string | null;
  weights: string | null;
  data: string | null;
  pipeline: string | null;
  /** With a DSL pipeline: its run directory and which defense of it was attacked. */
  run?: string | null;
  defense?: string | null;
  limit: number | null;
}

export interface AttackEntry {
  adv_pred: number;
  /** Correct on the clean image and on this attack's adversarial. */
  robust: boolean;
  perturbation_norm: number;
  /** Attack loss at the start and the best reached (gradient attacks). */
  loss_start?: number;
  loss_best?: number;
  /** Forward passes (score-based attacks). */
  queries?: number;
  /** AutoAttack: still robust (on the attack's target) after each stage. */
  stages?: Record<string, boolean>;
}

export interface ExampleResult {
  index: number;
  label: number;
  clean_pred: number;
  /** Clean prediction under the attack's own forward pass (differs from clean_pred only when
   * the attack target is not the evaluated defense, or when it is randomized). */
  attack_clean_pred: number;
  /** Prediction on the worst-case adversarial (first successful attack, else the last). */
  adv_pred: number;
  /** Correct on the clean image and on every attack. */
  robust: boolean;
  /** Norm (config.norm) of the worst-case perturbation, and both norms. */
  perturbation_norm: number;
  perturbation_linf: number;
  perturbation_l2: number;
  attacks: Record<string, AttackEntry>;
}

export type CheckLevel = "ok" | "info" | "warning";

export interface CheckResult {
  id: string;
  level: CheckLevel;
  message: string;
  /** Batches (or examples) the finding was made on, after merging. */
  count?: number;
}

export interface EvalReport {
  format: "atop-eval/1";
  config: EvalConfig;
  /** Null for a whole (or merged) evaluation. */
  shard: { index: number; count: number } | null;
  n: number;
  clean_accuracy: number;
  /** Worst case over all attacks, per example. */
  robust_accuracy: number;
  per_attack: Record<string, number>;
  /** AutoAttack: robust accuracy on the attack target after each stage. */
  stages: Record<string, Record<string, number>>;
  examples: ExampleResult[];
  checks: CheckResult[];
  timing?: { seconds: number; images_per_second: number };
  /** How the clean and robust verdicts were decided (see runtime/eval/verdict.ts). */
  protocol: string;
  /** 95% Wilson intervals of clean_accuracy, robust_accuracy and each per_attack value. */
  intervals: {
    clean: [number, number];
    robust: [number, number];
    per_attack: Record<string, [number, number]>;
  };
  /** Per true class: examples, clean and worst-case robust accuracy. */
  per_class: Record<string, { n: number; clean_accuracy: number; robust_accuracy: number }>;
}

const LEVEL_RANK: Record<CheckLevel, number> = { ok: 0, info: 1, warning: 2 };

/** Merges check findings with the same id: the worst level wins, counts add up. */
export function mergeChecks(all: CheckResult[]): CheckResult[] {
  const byId = new Map<string, CheckResult>();
  for (const c of all) {
    const prev = byId.get(c.id);
    if (!prev) {
      byId.set(c.id, { ...c, count: c.count ?? 1 });
      continue;
    }
    const count = (prev.count ?? 1) + (c.count ?? 1);
    if (LEVEL_RANK[c.level] > LEVEL_RANK[prev.level]) byId.set(c.id, { ...c, count });
    else prev.count = count;
  }
  return [...byId.values()].sort((a, b) =>
    LEVEL_RANK[b.level] - LEVEL_RANK[a.level] || a.id.localeCompare(b.id)
  );
}

/** Builds the report from per-example results (sorted by index); accuracies and the checks
 * derived from examples are recomputed here, so merged shards give what one run gives.
 * `checks` are the per-batch findings (derived ones in it are replaced). */
export function buildReport(
  config: EvalConfig,
  shard: EvalReport["shard"],
  examples: ExampleResult[],
  checks: CheckResult[],
  timing?: EvalReport["timing"],
): EvalReport {
  const ex = [...examples].sort((a, b) => a.index - b.index);
  for (let i = 1; i < ex.length; i++) {
    if (ex[i].index === ex[i - 1].index) {
      throw new Error(`report: example ${ex[i].index} appears twice`);
    }
  }
  const n = ex.length;
  const frac = (k: number) => (n === 0 ? 0 : k / n);
  const perAttack: Record<string, number> = {};
  const stages: Record<string, Record<string, number>> = {};
  for (const a of config.attacks) {
    perAttack[a] = frac(ex.filter((e) => e.attacks[a]?.robust).length);
    const names = Object.keys(ex.find((e) => e.attacks[a]?.stages)?.attacks[a].stages ?? {});
    if (names.length) {
      stages[a] = {};
      for (const s of names) {
        stages[a][s] = frac(ex.filter((e) => e.attacks[a]?.stages?.[s]).length);
      }
    }
  }
  const cleanK = ex.filter((e) => e.clean_pred === e.label).length;
  const robustK = ex.filter((e) => e.robust).length;
  const perClass: EvalReport["per_class"] = {};
  for (const c of [...new Set(ex.map((e) => e.label))].sort((a, b) => a - b)) {
    const of = ex.filter((e) => e.label === c);
    perClass[String(c)] = {
      n: of.length,
      clean_accuracy: of.filter((e) => e.clean_pred === e.label).length / of.length,
      robust_accuracy: of.filter((e) => e.robust).length / of.length,
    };
  }
  return {
    format: "atop-eval/1",
    config,
    shard,
    n,
    clean_accuracy: frac(cleanK),
    robust_accuracy: frac(robustK),
    protocol: protocolText(config.votes ?? 1),
    intervals: {
      clean: wilson(cleanK, n),
      robust: wilson(robustK, n),
      per_attack: Object.fromEntries(
        config.attacks.map((a) => [a, wilson(ex.filter((e) => e.attacks[a]?.robust).length, n)]),
      ),
    },
    per_class: perClass,
    per_attack: perAttack,
    stages,
    examples: ex,
    checks: mergeChecks([
      ...checks.filter((c) => !isDerivedCheck(c.id)),
      ...derivedChecks(config, ex, perAttack, stages, config.target_randomized),
    ]),
    ...(timing ? { timing } : {}),
  };
}

/** One line per attack with its own settings (what each attack of a list really ran). */
function attackSettings(c: EvalConfig): string[] {
  if (!c.attack_params) return [];
  const fmt = (v: unknown): string =>
    v === null
      ? "default"
      : typeof v === "object" && v
      ? Object.entries(v).map(([k, x]) => `${k} ${x === null ? "none" : x}`).join(", ")
      : String(v);
  return [
    `| attack | settings as run |`,
    `| --- | --- |`,
    ...Object.entries(c.attack_params).map(([name, p]) =>
      `| ${name} | ${
        Object.entries(p as Record<string, unknown>).map(([k, v]) => `${k} ${fmt(v)}`).join("; ")
      } |`
    ),
    "",
  ];
}

export function reportMarkdown(r: EvalReport): string {
  const c = r.config;
  const lines = [
    `# Robust evaluation${r.shard ? ` (shard ${r.shard.index}/${r.shard.count})` : ""}`,
    "",
    `| setting | value |`,
    `| --- | --- |`,
    `| threat model | ${c.threat_model} |`,
    `| norm / eps | ${c.norm} / ${c.eps.toPrecision(6)} |`,
    `| iterations | ${c.steps} |`,
    `| step size | ${c.step_size ?? "default"} |`,
    `| restarts | ${c.restarts} |`,
    `| EOT draws | ${c.eot} |`,
    `| verdict draws (majority vote, K) | ${c.votes ?? 1} |`,
    `| seed | ${c.seed} |`,
    ...(c.queries !== null ? [`| Square queries | ${c.queries} |`] : []),
    `| examples | ${r.n} |`,
    ...(c.arch ? [`| model | ${c.arch}${c.weights ? ` (${c.weights})` : ""} |`] : []),
    ...(c.pipeline ? [`| pipeline | ${c.pipeline} |`] : []),
    "",
    ...attackSettings(c),
    `Protocol: ${r.protocol}.`,
    "",
    `| attack | robust accuracy [95% CI] |`,
    `| --- | --- |`,
    `| clean | ${pctWithInterval(r.clean_accuracy, r.n, 2)} |`,
    ...Object.entries(r.per_attack).map(([a, v]) => `| ${a} | ${pctWithInterval(v, r.n, 2)} |`),
    ...Object.entries(r.stages).flatMap(([a, s]) =>
      Object.entries(s).map(([k, v]) =>
        `| ${a} after ${k} (attack target) | ${pctWithInterval(v, r.n, 2)} |`
      )
    ),
    `| **worst case** | **${pctWithInterval(r.robust_accuracy, r.n, 2)}** |`,
    "",
  ];
  if (r.timing) {
    lines.push(
      `Time: ${r.timing.seconds.toFixed(1)} s (${r.timing.images_per_second.toFixed(3)} images/s).`,
      "",
    );
  }
  lines.push("## Sanity checks", "");
  if (r.checks.length === 0) lines.push("(none run)");
  for (const ch of r.checks) {
    const tag = ch.level === "warning" ? "**WARNING**" : ch.level;
    lines.push(
      `- ${tag} \`${ch.id}\`: ${ch.message}${ch.count && ch.count > 1 ? ` (x${ch.count})` : ""}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Where writeReport puts the Markdown next to the JSON report. */
export function markdownPath(path: string): string {
  return path.endsWith(".json") ? path.slice(0, -5) + ".md" : path + ".md";
}

/** Writes OUT.json and OUT.md (same stem) atomically. */
export async function writeReport(path: string, r: EvalReport): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(r, null, 1) + "\n");
  await writeFileAtomic(markdownPath(path), reportMarkdown(r));
}
