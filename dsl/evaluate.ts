// Side-by-side evaluation of the four defenses AToP is compared with: no defense, random
// transform only, purifier without fine-tuning, and AToP; under the classifier-only and the
// full-pipeline (adaptive: gradients through everything, EOT over the randomness) threat
// models. Every number in the report carries the protocol that produced it.

import { join } from "node:path";
import { Tensor } from "../runtime/tensor.ts";
import { ExampleDraws, Rng } from "../runtime/rng.ts";
import { classifierTarget, type Target } from "../runtime/attacks/target.ts";
import type { Classifier, Purifier } from "../runtime/models/mod.ts";
import type { AdapterReport } from "../runtime/device.ts";
import { type AttackName, resolveParams } from "../runtime/eval/attacks.ts";
import { runEvaluation } from "../runtime/eval/runner.ts";
import { type EvalConfig, type EvalReport, writeReport } from "../runtime/eval/report.ts";
import { threatTargets } from "../runtime/eval/threat.ts";
import type { Dataset } from "../runtime/eval/data.ts";
import { writeFileAtomic, writeJsonAtomic } from "../runtime/io/atomic.ts";
import { Progress } from "../runtime/io/progress.ts";
import { attackUnits, type EtaJob, EtaModel } from "../runtime/eval/eta.ts";
import { accuracyInterval, pctWithInterval, wilson } from "../runtime/eval/stats.ts";
import { protocolPredict, protocolText } from "../runtime/eval/verdict.ts";
import { gatherImages } from "../runtime/eval/data.ts";
import { type DefenseParts, defenseTarget, preprocess, type Variant } from "./compile.ts";
import type { PipelineSpecT } from "./spec.ts";
import { inpaintingMarkdown, type InpaintingReport } from "./inpainting_eval.ts";
import {
  attackColumn,
  type Significance,
  significance,
  significanceMarkdown,
  toBits,
} from "./significance.ts";

export type { DefenseName } from "../runtime/eval/threat.ts";
import type { DefenseName } from "../runtime/eval/threat.ts";
export type Threat = "classifier-only" | "full-pipeline";

export interface AttackRow {
  attack: string;
  norm: string;
  eps: number;
  steps: number;
  restarts: number;
  eot: number;
  robust_accuracy: number;
  /** 95% Wilson interval of robust_accuracy over the n test images. */
  interval: [number, number];
  report: string;
  /** Robust per test image, as "0"/"1" (character i: image i), for paired tests. */
  verdicts: string;
}

export interface DefenseRow {
  defense: DefenseName;
  threat: Threat;
  randomized: boolean;
  clean_accuracy: number;
  attacks: AttackRow[];
  /** Per example worst case over all attacks of this row. */
  worst_case_robust_accuracy: number;
  /** 95% Wilson intervals of clean_accuracy and worst_case_robust_accuracy. */
  intervals: { clean: [number, number]; worst_case: [number, number] };
  /** Per test image, as "0"/"1" (character i: image i): clean correct, robust to every attack. */
  verdicts: { clean: string; worst_case: string };
  warnings: string[];
}

/** One defense over every attack of every threat model it was evaluated under. */
export interface DefenseSummary {
  defense: DefenseName;
  threats: Threat[];
  /** Mean clean accuracy over the defense's evaluations (each draws its own randomness). */
  clean_accuracy: number;
  /** Share of examples robust to every attack under every threat model. */
  worst_case_robust_accuracy: number;
  intervals: { clean: [number, number]; worst_case: [number, number] };
  /** Clean accuracy on the first `n` test images (evaluation.cleanLimit), 95% Wilson interval,
   * and the per-image verdicts ("0"/"1"). */
  clean_all?: { n: number; accuracy: number; interval: [number, number]; verdicts: string };
}

/** Per example AND: an example stays robust only if it is robust in `robust` too. */
export function andRobust(acc: boolean[] | undefined, robust: boolean[]): boolean[] {
  if (acc && acc.length !== robust.length) {
    throw new Error(`andRobust: ${acc.length} vs ${robust.length} examples`);
  }
  return robust.map((r, i) => r && (acc ? acc[i] : true));
}

export interface PipelineReport {
  format: "atop-pipeline/1";
  pipeline: string;
  n: number;
  seed: number;
  adapter: AdapterReport;
  /** How the clean and robust verdicts were decided, and K of the majority vote. */
  protocol: string;
  votes: number;
  rows: DefenseRow[];
  summary: DefenseSummary[];
  /** Inpainting quality of the pretrained and the AToP purifier beside classical baselines
   * (RT1 and RT2 tables); null without a purifier. */
  inpainting: InpaintingReport | null;
  /** AToP against the purifier without fine-tuning and against no defense, paired by image. */
  significance: Significance;
}

export interface EvaluateOptions {
  spec: PipelineSpecT;
  classifier: Classifier;
  pretrained: Purifier | null;
  atop: Purifier | null;
  /** Test data: [0,1] float images in the evaluation format. */
  test: Dataset;
  threat: Threat | "both";
  dir: string;
  log: (m: string) => void;
  adapter: AdapterReport;
  /** No progress line (tests). */
  quiet?: boolean;
  /** Final inpainting figures of the purifiers, carried into the report. */
  inpainting?: InpaintingReport | null;
}

function variants(
  o: EvaluateOptions,
): { name: DefenseName; variant: Variant; purifier: Purifier | null }[] {
  const out: { name: DefenseName; variant: Variant; purifier: Purifier | null }[] = [
    { name: "none", variant: { transform: false, purifier: false }, purifier: null },
  ];
  if (o.spec.transform.length && !o.spec.transform.some((t) => t.kind === "rt3")) {
    out.push({ name: "rt-only", variant: { transform: true, purifier: false }, purifier: null });
  }
  if (o.pretrained) {
    out.push({
      name: "purifier",
      variant: { transform: true, purifier: true },
      purifier: o.pretrained,
    });
  }
  if (o.atop) {
    out.push({ name: "atop", variant: { transform: true, purifier: true }, purifier: o.atop });
  }
  return out;
}

/** EOT draws of an evaluation attack: every attack on a randomized defense gets at least
 * evaluation.eotDraws (AutoAttack's rand version included: the spec's default eot of 1 must
 * not override its 20); a deterministic target needs one. */
export function attackEot(
  spec: PipelineSpecT,
  a: { eot: number },
  randomized: boolean,
): number {
  return randomized ? Math.max(a.eot, spec.evaluation.eotDraws) : 1;
}

export async function evaluateDefenses(o: EvaluateOptions): Promise<PipelineReport> {
  const { spec } = o;
  const data = o.test;
  const n = Math.min(spec.evaluation.limit, data.labels.length);
  const nClean = Math.min(spec.evaluation.cleanLimit ?? 0, data.labels.length);
  const indices = Array.from({ length: n }, (_, i) => i);
  const threats: Threat[] = o.threat === "both" ? ["classifier-only", "full-pipeline"] : [o.threat];
  const clf = classifierTarget(o.classifier, { name: spec.classifier.arch });
  const rows: DefenseRow[] = [];
  const summary: DefenseSummary[] = [];
  const vs = variants(o);
  // The undefended classifier has no transform: one threat model.
  const threatsOf = (v: { name: DefenseName }) =>
    v.name === "none" ? ["full-pipeline" as Threat] : threats;
  type AttackSpec = PipelineSpecT["evaluation"]["attacks"][number];
  // Randomized defenses attacked adaptively get EOT and AutoAttack's rand version.
  const attackOn = (a: AttackSpec, randomized: boolean) => {
    let name = a.attack as AttackName;
    if (randomized && name === "autoattack") name = "autoattack-rand";
    const params = resolveParams(name, {
      norm: a.norm,
      eps: a.eps,
      steps: a.steps,
      restarts: a.restarts,
      eot: attackEot(spec, a, randomized),
      seed: spec.seed,
      queries: a.queries,
      stepSize: a.stepSize,
      bound: a.bound,
      components: a.attacks,
      tau: a.tau,
      kappa: a.kappa,
    });
    return { name, params };
  };
  // One progress line over every (defense, threat, attack) evaluation, in images. The time left
  // weighs each job by its attack work, timed per defense kind and threat model (an attack
  // through a purifier costs 30x one on the bare classifier).
  const etaJobs: EtaJob[] = [];
  for (const v of vs) {
    for (const threat of threatsOf(v)) {
      const randomized = v.name !== "none" && threat === "full-pipeline";
      for (const a of spec.evaluation.attacks) {
        const { name, params } = attackOn(a, randomized);
        etaJobs.push({
          group: `${v.purifier ? "purifier" : v.name}.${threat}`,
          images: n,
          unitsPerImage: attackUnits(name, params),
        });
      }
    }
  }
  const eta = new EtaModel(etaJobs);
  let job = -1;
  const progress = o.quiet
    ? null
    : new Progress(etaJobs.length * n, "eval", 0, { unit: "img", eta: () => eta.estimate() });
  try {
    for (const v of vs) await evaluateVariant(v);
  } finally {
    progress?.done();
  }
  async function evaluateVariant(v: ReturnType<typeof variants>[number]) {
    let robustAll: boolean[] | undefined;
    const cleans: number[] = [];
    const parts: DefenseParts = {
      spec,
      modules: { classifier: o.classifier, purifier: v.purifier },
      variant: v.variant,
      rng: new Rng(spec.seed, 0xe7a1),
      draws: new ExampleDraws(spec.seed, 0xe7a1),
    };
    const defense: Target | undefined = v.name === "none" ? undefined : defenseTarget(parts);
    const purify = v.name === "none" ? undefined : (x: Tensor) => preprocess(parts, x);
    for (const threat of threatsOf(v)) {
      const targets = threatTargets(threat, clf, defense, purify);
      const randomized = targets.attack.randomized;
      const attackRows: AttackRow[] = [];
      let perExampleRobust: boolean[] | undefined;
      const cleanVerdicts: string[] = [];
      const rowCleans: number[] = [];
      const warnings: string[] = [];
      for (const a of spec.evaluation.attacks) {
        const { name, params } = attackOn(a, randomized);
        const tag = `${v.name}.${threat}.${name}-${a.norm}`;
        const config: EvalConfig = {
          attacks: [name],
          norm: params.norm,
          eps: params.eps,
          steps: params.steps,
          step_size: params.stepSize,
          restarts: params.restarts,
          eot: params.eot,
          seed: params.seed,
          threat_model: threat,
          queries: params.queries,
          batch_size: 32,
          target_randomized: randomized,
          attack_params: { [name]: params },
          votes: spec.evaluation.votes ?? 1,
          n_total: n,
          arch: spec.classifier.arch,
          weights: null,
          data: null,
          pipeline: `${spec.name}:${v.name}`,
          limit: n,
        };
        o.log(`[eval] ${tag} on ${n} images`);
        const j = ++job;
        eta.start(j);
        const report = await runEvaluation({
          config,
          attacks: [{ name, params }],
          data,
          indices,
          shard: null,
          targets,
          statePath: join(o.dir, `${tag}.state.jsonl`),
          gridPath: join(o.dir, `${tag}.png`),
          log: o.log,
          onBatch: (m, resumed) => {
            eta.progress(j, m, resumed);
            if (resumed) progress?.resumed(m);
            else progress?.tick(m, tag);
          },
        }) as EvalReport;
        const path = join(o.dir, `${tag}.json`);
        await writeReport(path, report);
        rowCleans.push(report.clean_accuracy);
        cleanVerdicts.push(toBits(report.examples.map((e) => e.clean_pred === e.label)));
        perExampleRobust = andRobust(perExampleRobust, report.examples.map((e) => e.robust));
        for (const c of report.checks) {
          if (c.level === "warning") warnings.push(`${name}: ${c.id}: ${c.message}`);
        }
        attackRows.push({
          attack: name,
          norm: params.norm,
          eps: params.eps,
          steps: params.steps,
          restarts: params.restarts,
          eot: params.eot,
          robust_accuracy: report.robust_accuracy,
          interval: report.intervals.robust,
          report: path,
          verdicts: toBits(report.examples.map((e) => e.robust)),
        });
      }
      const robust = perExampleRobust ?? new Array(n).fill(true);
      robustAll = andRobust(robustAll, robust);
      cleans.push(...rowCleans);
      if (new Set(cleanVerdicts).size > 1) {
        warnings.push("clean verdicts differ between this row's attack reports (first one kept)");
      }
      rows.push({
        defense: v.name,
        threat,
        randomized,
        clean_accuracy: mean(rowCleans),
        attacks: attackRows,
        worst_case_robust_accuracy: robust.filter(Boolean).length / n,
        intervals: {
          clean: accuracyInterval(mean(rowCleans), n),
          worst_case: wilson(robust.filter(Boolean).length, n),
        },
        verdicts: { clean: cleanVerdicts[0] ?? "", worst_case: toBits(robust) },
        warnings,
      });
    }
    summary.push({
      defense: v.name,
      threats: rows.filter((r) => r.defense === v.name).map((r) => r.threat),
      clean_accuracy: mean(cleans),
      worst_case_robust_accuracy: (robustAll ?? []).filter(Boolean).length / n,
      intervals: {
        clean: accuracyInterval(mean(cleans), n),
        worst_case: wilson((robustAll ?? []).filter(Boolean).length, n),
      },
      ...(nClean > 0 ? { clean_all: await cleanAll(defense ?? clf) } : {}),
    });
  }
  /** The clean verdicts of images 0..nClean-1 as the runner decides them (draws keyed by
   * example, restarted per batch; the same majority vote). */
  async function cleanAll(t: Target): Promise<NonNullable<DefenseSummary["clean_all"]>> {
    o.log(`[eval] ${t.name}: clean accuracy on ${nClean} images`);
    const bits: string[] = [];
    for (let s = 0; s < nClean; s += CLEAN_BATCH) {
      const idx = Array.from({ length: Math.min(CLEAN_BATCH, nClean - s) }, (_, i) => s + i);
      const x = Tensor.fromData(gatherImages(data, idx), [idx.length, ...data.shape]);
      try {
        t.resetDraws?.(idx);
        const pred = await protocolPredict(t, x, idx, spec.evaluation.votes ?? 1, "clean images");
        bits.push(...idx.map((i, j) => (pred[j] === data.labels[i] ? "1" : "0")));
      } finally {
        x.dispose();
      }
    }
    const k = bits.filter((b) => b === "1").length;
    return {
      n: nClean,
      accuracy: k / nClean,
      interval: wilson(k, nClean),
      verdicts: bits.join(""),
    };
  }
  const report: PipelineReport = {
    format: "atop-pipeline/1",
    pipeline: spec.name,
    n,
    seed: spec.seed,
    adapter: o.adapter,
    protocol: protocolText(spec.evaluation.votes ?? 1),
    votes: spec.evaluation.votes ?? 1,
    rows,
    summary,
    inpainting: o.inpainting ?? null,
    significance: significance(rows, n),
  };
  await writeJsonAtomic(join(o.dir, "report.json"), report);
  await writeFileAtomic(join(o.dir, "report.md"), pipelineMarkdown(report));
  return report;
}

/** Images per clean-accuracy pass (evaluation.cleanLimit). */
const CLEAN_BATCH = 64;

const mean = (xs: number[]) => xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;

/** One table: a row per (defense, threat model), a column per attack, then the worst case. */
export function pipelineMarkdown(r: PipelineReport): string {
  const ci = (acc: number) => pctWithInterval(acc, r.n);
  const attacks = [...new Set(r.rows.flatMap((x) => x.attacks.map(attackColumn)))];
  const lines = [
    `# ${r.pipeline}: robustness report`,
    "",
    `${r.n} test images, seed ${r.seed}, adapter ${
      r.adapter.description || r.adapter.device || r.adapter.vendor || "?"
    }${r.adapter.backend ? ` on ${r.adapter.backend}` : ""}.`,
    "",
    "Threat models: **classifier-only** crafts the attack on the bare classifier and feeds it to",
    "the defense (the original AToP protocol); **full-pipeline** differentiates through transform,",
    "purifier and classifier with EOT over the randomness (adaptive). A weak adaptive attack can",
    "undershoot the transfer attack, so quote the worst case over both threat models (last table).",
    "A randomized defense's draws are keyed by (example, call), so every evaluation of a defense",
    "sees the same clean draw of an example: clean accuracy is one verdict per example.",
    "Brackets: 95% Wilson confidence intervals over the test images.",
    "",
    `Protocol: ${r.protocol ?? protocolText(1)}.`,
    "",
    `| defense | threat model | clean | ${attacks.join(" | ")} | worst case |`,
    `|---|---|---|${attacks.map(() => "---").join("|")}|---|`,
  ];
  for (const row of r.rows) {
    const cells = attacks.map((k) => {
      const a = row.attacks.find((x) => attackColumn(x) === k);
      return a ? `${ci(a.robust_accuracy)} (${a.steps} it, EOT ${a.eot})` : "-";
    });
    lines.push(
      `| ${row.defense} | ${row.defense === "none" ? "-" : row.threat} | ${
        ci(row.clean_accuracy)
      } | ${cells.join(" | ")} | ${ci(row.worst_case_robust_accuracy)} |`,
    );
  }
  const all = r.summary.filter((s) => s.clean_all);
  if (all.length) {
    const m = all[0].clean_all!.n;
    const none = r.summary.find((s) => s.defense === "none")?.clean_all;
    lines.push(
      "",
      `## Clean accuracy on ${m} test images`,
      "",
      `Every defense on the first ${m} test images (evaluation.cleanLimit; the attacks above run on`,
      `the first ${r.n}), with the same verdict rule and per-example draws; share: of the bare`,
      "classifier's accuracy on the same images.",
      "",
      "| defense | clean | share of none |",
      "|---|---|---|",
      ...all.map((s) => {
        const c = s.clean_all!;
        const share = none && none.accuracy > 0
          ? `${(100 * c.accuracy / none.accuracy).toFixed(1)}%`
          : "-";
        return `| ${s.defense} | ${pctWithInterval(c.accuracy, c.n)} | ${share} |`;
      }),
    );
  }
  lines.push(
    "",
    "## Worst case per defense",
    "",
    "An example counts as robust only if every attack under every threat model failed on it.",
    "",
    "| defense | threat models | clean | worst case |",
    "|---|---|---|---|",
    ...r.summary.map((s) =>
      `| ${s.defense} | ${s.defense === "none" ? "-" : s.threats.join(", ")} | ${
        ci(s.clean_accuracy)
      } | ${ci(s.worst_case_robust_accuracy)} |`
    ),
  );
  // Older reports have no section: recomputed (it then notes the missing verdicts).
  lines.push("", ...significanceMarkdown(r.significance ?? significance(r.rows, r.n), r.n));
  if (r.inpainting) lines.push("", ...inpaintingMarkdown(r.inpainting));
  const warn = r.rows.flatMap((x) => x.warnings.map((w) => `- ${x.defense}/${x.threat}: ${w}`));
  if (warn.length) lines.push("", "## Sanity-check warnings", "", ...warn);
  return lines.join("\n") + "\n";
}
