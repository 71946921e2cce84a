// deno task attack: attack a classifier (--arch/--weights) or a DSL defense (--pipeline) on a
// CIFAR-format file and write a robustness report (JSON + Markdown + PNG grid). Progress is
// saved per batch in OUT.state.jsonl; rerunning the same command resumes. `--shard i/n`
// evaluates a deterministic slice; merge the shard reports with `deno task merge`.

import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { initEngine } from "../engine.ts";
import { ATTACK_NAMES, resolveParams } from "../eval/attacks.ts";
import { parseAttackList } from "./attack_list.ts";
import { parseShard, readCifarBin, shardRange } from "../eval/data.ts";
import { exists } from "../eval/files.ts";
import { loadClassifier, loadDefense } from "../eval/model.ts";
import { type EvalConfig, markdownPath, reportMarkdown, writeReport } from "../eval/report.ts";
import { runEvaluation } from "../eval/runner.ts";
import { parseThreatModel, threatTargets } from "../eval/threat.ts";
import type { Target } from "../attacks/target.ts";
import { ARCHS, classesInWeights } from "../models/mod.ts";
import { DEFENSE_NAMES } from "../eval/threat.ts";
import { runInputFiles } from "../eval/run_files.ts";
import { CIFAR_NAMES, cifarFiles } from "../data/cifar.ts";
import { readSafetensorsRaw } from "../io/safetensors.ts";
import { refuseClassMismatch } from "./classes.ts";
import { refuseOverwrite } from "../io/guard.ts";
import { acquireRunLock, cleanStaleTemps } from "../io/runlock.ts";
import {
  adapterFlag,
  enumFlag,
  epsFlag,
  fractionFlag,
  intFlag,
  refuseUnused,
  requireFlags,
} from "./flags.ts";

const USAGE = `usage: deno task attack --data FILE.bin --attack NAME --out OUT.json
         (--arch A [--weights W.safetensors] | --pipeline FILE.ts) [options]

  --attack     ${ATTACK_NAMES.join("|")} (comma-separate to run several; worst case reported).
               Settings of one attack follow its name: pgd:steps=20:eot=4,autoattack:steps=100
               (keys norm, eps, steps, step-size, restarts, eot, queries, bound, tau, kappa,
               and for AutoAttack attacks=apgd-ce+apgd-t+fab+fab-t+square+apgd-dlr);
               the plain flags below are the defaults of every attack in the list
  --norm       linf|l2 (default linf)
  --eps        radius, a number or a fraction like 8/255 (default 8/255 linf, 0.5 l2)
  --steps      iterations (default: pgd 10, apgd/fab/stadv/autoattack 100)
  --step-size  step size (pgd: 2/255 linf, eps/4 l2; stadv: Adam learning rate)
  --restarts   restarts (default 1; AutoAttack's are set by its version: 1, plus 5)
  --eot        EOT draws per gradient (default 1; autoattack-rand 20)
  --flow-bound StAdv: Linf bound on the flow, normalised grid units (default 0.05)
  --tau        StAdv: weight of the flow smoothness loss (default 0.05)
  --kappa      StAdv: clip of the margin loss (default: none)
  --votes      K: a randomized defense's clean and adversarial predictions are the majority
               vote over K draws (default 1, a single draw); recorded in the report
  --queries    Square query budget (default 5000)
  --seed       base seed of the per-example random streams (default 0)
  --limit      evaluate only the first N examples
  --shard      i/n: evaluate slice i of n (contiguous, deterministic)
  --threat     classifier-only|full-pipeline (with --pipeline; default full-pipeline)
  --run        with a DSL pipeline file: its run directory (the pipeline's --out; default
               out/<pipeline name>), whose trained stage weights are loaded
  --defense    with a DSL pipeline file: none|rt-only|purifier|atop (default atop)
  --dataset    cifar10|cifar100 (default: told by the record size)
  --batch-size examples per batch (default 32)
  --grid       PNG grid path (default OUT.png; "none" to skip)
  --adapter    auto|cpu|gpu (default auto)`;

export async function main(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      arch: { type: "string" },
      weights: { type: "string" },
      data: { type: "string" },
      attack: { type: "string" },
      norm: { type: "string" },
      eps: { type: "string" },
      steps: { type: "string" },
      "step-size": { type: "string" },
      restarts: { type: "string" },
      eot: { type: "string" },
      votes: { type: "string" },
      "flow-bound": { type: "string" },
      tau: { type: "string" },
      kappa: { type: "string" },
      queries: { type: "string" },
      seed: { type: "string" },
      limit: { type: "string" },
      shard: { type: "string" },
      threat: { type: "string" },
      "batch-size": { type: "string" },
      grid: { type: "string" },
      pipeline: { type: "string" },
      run: { type: "string" },
      defense: { type: "string" },
      dataset: { type: "string" },
      out: { type: "string" },
      adapter: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  requireFlags(v, ["data", "attack", "out"], USAGE);
  if (!v.arch && !v.pipeline) {
    throw new Error(`give --arch (with --weights) or --pipeline\n${USAGE}`);
  }
  if (!v.pipeline) refuseUnused(v, ["run", "defense", "threat"], "with --pipeline");
  const arch = enumFlag("--arch", v.arch, ARCHS);
  const norm = enumFlag("--norm", v.norm?.toLowerCase(), ["linf", "l2"] as const) ?? "linf";
  const input = {
    norm,
    eps: epsFlag(v.eps, norm),
    steps: intFlag("--steps", v.steps, { min: 1 }),
    stepSize: fractionFlag("--step-size", v["step-size"], { min: 0, minExclusive: true }),
    restarts: intFlag("--restarts", v.restarts, { min: 1 }),
    eot: intFlag("--eot", v.eot, { min: 1 }),
    seed: intFlag("--seed", v.seed, { min: 0 }),
    queries: intFlag("--queries", v.queries, { min: 1 }),
    bound: fractionFlag("--flow-bound", v["flow-bound"], { min: 0, minExclusive: true }),
    tau: fractionFlag("--tau", v.tau, { min: 0 }),
    kappa: fractionFlag("--kappa", v.kappa, { min: 0 }),
  };
  // Each attack of the list: the flags above, then its own `name:key=value` settings.
  const attacks = parseAttackList(v.attack!, input).map(({ name, input: own }) => ({
    name,
    params: resolveParams(name, own),
  }));
  const names = attacks.map((a) => a.name);
  // A plain --steps meant for PGD also shortens AutoAttack: say so, with the per-attack form.
  if (input.steps !== undefined && input.steps < 100 && names.length > 1) {
    for (const a of attacks) {
      if (a.name.startsWith("autoattack") && a.params.steps < 100) {
        console.error(
          `note: --steps ${input.steps} applies to every attack of the list, so ${a.name} runs ` +
            `${a.params.steps} iterations (the reference runs 100); give ${a.name}:steps=100 to ` +
            `keep its own`,
        );
      }
    }
  }
  const limit = intFlag("--limit", v.limit, { min: 1 }) ?? null;
  const shard = v.shard ? parseShard(v.shard) : null;
  const threat = parseThreatModel(v.threat ?? "full-pipeline");
  const batchSize = intFlag("--batch-size", v["batch-size"], { min: 1 }) ?? 32;
  const votes = intFlag("--votes", v.votes, { min: 1 }) ?? 1;
  enumFlag("--defense", v.defense, DEFENSE_NAMES);
  const dataset = enumFlag("--dataset", v.dataset, CIFAR_NAMES);
  const adapter = adapterFlag(v.adapter);
  const out = v.out!;

  const stem = out.endsWith(".json") ? out.slice(0, -5) : out;
  const statePath = `${stem}.state.jsonl`;
  const gridPath = v.grid === "none" ? null : (v.grid ?? `${stem}.png`);
  await refuseOverwrite(
    [
      { flag: "--out", path: out },
      { flag: "--out (its Markdown report)", path: markdownPath(out) },
      { flag: "--out (its state file)", path: statePath },
      ...(gridPath ? [{ flag: v.grid ? "--grid" : "--out (its PNG grid)", path: gridPath }] : []),
    ],
    [
      ...(await cifarFiles(v.data!, ["test"], dataset)).map((path) => ({ flag: "--data", path })),
      ...(v.weights ? [{ flag: "--weights", path: v.weights }] : []),
      ...(v.pipeline ? [{ flag: "--pipeline", path: v.pipeline }] : []),
      ...(v.run ? (await runInputFiles(v.run)).map((path) => ({ flag: "--run", path })) : []),
    ],
  );
  // Data and weights are read on the CPU first: a class mismatch fails before the GPU starts.
  const data = await readCifarBin(v.data!, dataset);
  const dataSide = {
    flag: "--data",
    path: v.data!,
    dataset: data.dataset,
    classes: data.numClasses,
  };
  const weights = v.weights ? (await readSafetensorsRaw(v.weights)).tensors : null;
  const weightClasses = arch && weights ? classesInWeights(arch, weights) : null;
  if (weightClasses !== null) {
    refuseClassMismatch(dataSide, `--weights ${v.weights} (${arch})`, weightClasses);
  }
  const nTotal = Math.min(limit ?? data.labels.length, data.labels.length);
  const [lo, hi] = shard ? shardRange(nTotal, shard.index, shard.count) : [0, nTotal];
  const indices = Array.from({ length: hi - lo }, (_, i) => lo + i);

  // One evaluation per --out at a time (its state file must have one writer); temp files of
  // killed runs go.
  await acquireRunLock(`${stem}.lock`, `--out ${out}`);
  await cleanStaleTemps(dirname(out), 0);
  await initEngine(adapter);
  let classifier: Target | null = arch
    ? await loadClassifier(arch, weights, weightClasses ?? data.numClasses)
    : null;
  let defense: Target | undefined;
  let purify;
  if (v.pipeline) {
    const mod = await loadDefense(v.pipeline, classifier, {
      run: v.run ?? null,
      defense: v.defense ?? null,
    });
    defense = await mod.buildTarget();
    purify = mod.purify?.bind(mod);
    if (mod.buildClassifier) classifier = await mod.buildClassifier();
  }
  if (!classifier) {
    if (threat === "classifier-only") {
      throw new Error("--threat classifier-only needs --arch or a pipeline with buildClassifier");
    }
    classifier = defense!;
  }
  const targets = threatTargets(threat, classifier, defense, purify);
  // Checked before the state file is written.
  refuseClassMismatch(
    dataSide,
    v.pipeline ? `--pipeline ${v.pipeline}` : `--arch ${arch}`,
    targets.evaluate.numClasses,
  );
  const p0 = attacks[0].params;
  const config: EvalConfig = {
    attacks: names,
    norm: p0.norm,
    eps: p0.eps,
    steps: p0.steps,
    step_size: p0.stepSize,
    restarts: p0.restarts,
    eot: p0.eot,
    attack_params: Object.fromEntries(attacks.map((a) => [a.name, a.params])),
    votes,
    seed: p0.seed,
    threat_model: defense ? threat : "full-pipeline",
    queries: attacks.find((a) => a.params.queries !== null)?.params.queries ?? null,
    batch_size: batchSize,
    target_randomized: targets.attack.randomized,
    n_total: nTotal,
    arch: v.arch ?? null,
    weights: v.weights ?? null,
    data: v.data!,
    pipeline: v.pipeline ?? null,
    run: v.pipeline ? (v.run ?? null) : null,
    defense: v.pipeline ? (v.defense ?? "atop") : null,
    limit,
  };
  if (await exists(statePath)) console.error(`resuming from ${statePath}`);
  const report = await runEvaluation({
    config,
    attacks,
    data,
    indices,
    shard,
    targets,
    statePath,
    gridPath,
    log: (m) => console.error(m),
  });
  await writeReport(out, report!);
  await Deno.remove(statePath).catch(() => {});
  console.log(reportMarkdown(report!));
  for (const c of report!.checks) {
    if (c.level === "warning") console.error(`WARNING ${c.id}: ${c.message}`);
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`attack: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
