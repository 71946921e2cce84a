// Runs a pipeline spec end to end, stage by stage: classifier -> purifier pre-training ->
// AToP fine-tuning -> evaluation. Each stage writes its artifacts into
// <out>/<stage>-<hash of everything it depends on>/ and marks completion with done.json, so
// a second run skips finished stages and an interrupted one resumes from its checkpoints.

import { join } from "node:path";
import type { Tensor } from "../runtime/tensor.ts";
import { engine } from "../runtime/engine.ts";
import { convStorage } from "../runtime/ops/precision.ts";
import type { Rng } from "../runtime/rng.ts";
import { PatchDiscriminator, Purifier, PURIFIER_ARCH_VERSION } from "../runtime/models/mod.ts";
import { type CifarDataset, cifarFiles, readCifar } from "../runtime/data/mod.ts";
import { type PathArg, refuseOutputDir } from "../runtime/io/guard.ts";
import { acquireRunLock, cleanStaleTemps } from "../runtime/io/runlock.ts";
import { readSafetensors, writeSafetensors } from "../runtime/io/safetensors.ts";
import { writeFileAtomic, writeJsonAtomic } from "../runtime/io/atomic.ts";
import { hashFile, hashJson } from "../runtime/io/hash.ts";
import { trainClassifier } from "../runtime/train/classifier.ts";
import { inpaintingGrid, trainPurifier, type WeightedTerm } from "../runtime/train/purifier.ts";
import { type PipelineSpecT, PURIFIER_STAGES, purifierScale, type PurifierStage } from "./spec.ts";
import type { MaskedImage } from "../runtime/transforms.ts";
import * as ops from "../runtime/ops/mod.ts";
import { classifierOf, purifierOptions, transformSteps } from "./compile.ts";
import { evaluateDefenses, type PipelineReport } from "./evaluate.ts";
import { EVAL_PROTOCOL_VERSION } from "../runtime/eval/verdict.ts";
import {
  evaluateInpainting,
  type InpaintingReport,
  inpaintingSettings,
  inpaintingSummary,
} from "./inpainting_eval.ts";

export interface RunOptions {
  spec: PipelineSpecT;
  /** Directory with the dataset (.bin files or cifar-10-batches-bin/). */
  data: string;
  /** Test file for evaluation (default: the dataset's test split). */
  testFile?: string | null;
  out: string;
  threat: "classifier-only" | "full-pipeline" | "both";
  log?: (msg: string) => void;
}

interface StageDir {
  dir: string;
  key: string;
  done: boolean;
}

/** A stage's key: the hash of what it depends on. Half-float conv operands (ATOP_F16=1) change
 * every result, so such stages get keys of their own; the default's keys stay what they were. */
export async function stageKey(deps: unknown): Promise<string> {
  const storage = convStorage();
  return (await hashJson(storage === "f32" ? deps : { deps, convStorage: storage })).slice(0, 12);
}

async function stageDir(out: string, name: string, deps: unknown): Promise<StageDir> {
  const key = await stageKey(deps);
  const dir = join(out, `${name}-${key}`);
  await Deno.mkdir(dir, { recursive: true });
  const done = await Deno.stat(join(dir, "done.json")).then(() => true, () => false);
  return { dir, key, done };
}

async function markDone(s: StageDir, info: Record<string, unknown>) {
  await writeJsonAtomic(join(s.dir, "done.json"), {
    key: s.key,
    finished: new Date().toISOString(),
    ...info,
  });
}

async function loadInto(
  m: { loadStateDict(s: Map<string, Tensor>, o?: { strict?: boolean }): void },
  path: string,
) {
  const tensors = await readSafetensors(path);
  try {
    m.loadStateDict(tensors, { strict: true });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** The training-time random transform of the spec: the evaluated chain (compile.ts), with
 * RT3 as one RT2 round of its masks. It takes images at the purifier's size (purifierSize).
 * `schedule`: the stage's noise variation (Schedule.noiseFreeShare, noiseScaleShare). */
export function trainingTransform(
  spec: PipelineSpecT,
  schedule: { noiseFreeShare?: number; noiseScaleShare?: number } = {},
) {
  const noise = { free: schedule.noiseFreeShare, scaled: schedule.noiseScaleShare };
  return (rng: Rng, x: Tensor) => {
    const [n, , h, w] = x.shape;
    let s: MaskedImage = { image: x, mask: ops.zeros([n, 1, h, w]) };
    const steps = transformSteps(spec, rng, null, { training: true, noise });
    for (const step of steps) s = step.run(s);
    return s;
  };
}

/** The loss terms a purifier stage trains with: those whose `stages` name it (all when absent),
 * without that field, so a stage's key and settings change only when its own terms do.
 * Pre-training never has CE (no classifier). */
export function stageTerms(
  loss: PipelineSpecT["loss"],
  stage: PurifierStage,
): WeightedTerm[] {
  return loss
    .filter((t) => (t.stages ?? PURIFIER_STAGES).includes(stage))
    .filter((t) => stage === "finetuning" || t.term !== "ce")
    .map(({ stages: _, ...t }) => t);
}

/** Stage-key field for a noise-free share: since 2026-12-02 one gate per training draw for the
 * whole chain (it was one per noisy step), so stages trained with a share before are not reused.
 * Absent otherwise (noiseScaleShare came with the per-chain gate): other stages keep their keys. */
function noiseDrawKey(s: { noiseFreeShare?: number }) {
  return (s.noiseFreeShare ?? 0) > 0 ? { noiseDraw: "per-chain" } : {};
}

/** Inpainting quality of purifiers under the spec's RT1/RT2 settings (fixed draws keyed by the
 * seed, the first test images). */
function measureInpainting(
  spec: PipelineSpecT,
  test: CifarDataset,
  purifiers: { label: string; purifier: Purifier }[],
): Promise<InpaintingReport> {
  return evaluateInpainting({
    settings: inpaintingSettings(spec),
    test,
    purifiers,
    seed: spec.seed,
    scale: purifierScale(spec),
  });
}

/** What a run reads, which its --out (where every stage writes) must not contain. */
async function runInputs(o: RunOptions): Promise<PathArg[]> {
  const { spec } = o;
  const arg = (flag: string) => (path: string) => ({ flag, path });
  return [
    ...(await cifarFiles(o.data, o.testFile ? ["train"] : ["train", "test"], spec.dataset))
      .map(arg("--data")),
    ...(o.testFile ? await cifarFiles(o.testFile, ["test"], spec.dataset) : [])
      .map(arg("--test-file")),
    ...(spec.classifier.weights ? [spec.classifier.weights] : []).map(arg("classifier.weights")),
    ...(spec.purifier.kind === "deepfill" && spec.purifier.weights ? [spec.purifier.weights] : [])
      .map(arg("purifier.weights")),
  ];
}

export interface RunResult {
  report: PipelineReport;
  stages: Record<string, { dir: string; cached: boolean }>;
}

export async function runPipeline(o: RunOptions): Promise<RunResult> {
  await refuseOutputDir({ flag: "--out", path: o.out }, await runInputs(o));
  await Deno.mkdir(o.out, { recursive: true });
  // One run per --out at a time; temp files of killed runs go.
  const lock = await acquireRunLock(join(o.out, ".lock"), `--out ${o.out}`);
  try {
    await cleanStaleTemps(o.out, 2);
    return await runStages(o);
  } finally {
    lock.release();
  }
}

async function runStages(o: RunOptions): Promise<RunResult> {
  const { spec } = o;
  const log = o.log ?? ((m: string) => console.error(m));
  const train = await readCifar(o.data, { dataset: spec.dataset, split: "train" });
  const test = o.testFile
    ? await readCifar(o.testFile, { dataset: spec.dataset, split: "test" })
    : await readCifar(o.data, { dataset: spec.dataset, split: "test" });
  const dataHash = { train: train.hash, test: test.hash };
  const stages: RunResult["stages"] = {};
  // In stage keys only when set, so stages cached before the field existed keep their keys.
  const sized = spec.purifierSize !== undefined ? { purifierSize: spec.purifierSize } : {};

  // 1. Classifier.
  const clfDeps = {
    classifier: spec.classifier,
    training: spec.classifierTraining,
    seed: spec.seed,
    data: dataHash.train,
  };
  const clfStage = await stageDir(o.out, "classifier", clfDeps);
  const classifier = classifierOf(spec);
  const clfWeights = join(clfStage.dir, "classifier.safetensors");
  if (spec.classifier.weights) {
    await loadInto(classifier, spec.classifier.weights);
    stages.classifier = { dir: spec.classifier.weights, cached: true };
  } else if (clfStage.done) {
    log(`[classifier] cached in ${clfStage.dir}`);
    await loadInto(classifier, clfWeights);
    stages.classifier = { dir: clfStage.dir, cached: true };
  } else {
    log(`[classifier] training ${spec.classifier.arch} -> ${clfStage.dir}`);
    const t = spec.classifierTraining;
    const history = await trainClassifier({
      model: classifier,
      train,
      test,
      epochs: t.epochs,
      batchSize: t.batchSize,
      lr: t.lr,
      seed: spec.seed,
      trainLimit: t.limit,
      testLimit: spec.evaluation.limit,
      checkpoint: join(clfStage.dir, "checkpoint.safetensors"),
      checkpointEvery: 50,
      logPath: join(clfStage.dir, "log.json"),
    });
    await writeSafetensors(clfWeights, classifier.stateDict(), { arch: spec.classifier.arch });
    await markDone(clfStage, { history });
    stages.classifier = { dir: clfStage.dir, cached: false };
  }
  classifier.eval();

  // 2. Purifier pre-training (inpainting of transformed clean images) and 3. AToP fine-tuning.
  let pretrained: Purifier | null = null, atop: Purifier | null = null;
  let inpainting: InpaintingReport | null = null;
  if (spec.purifier.kind === "deepfill") {
    const p = spec.purifier;
    const make = () => new Purifier(purifierOptions(spec));
    const makeD = () =>
      new PatchDiscriminator({ width: p.discWidth, layers: p.discLayers, seed: spec.seed });
    // The evaluated chain's training form (the PNG grids); each stage adds its noise shares.
    const transform = trainingTransform(spec);
    // Inpainting quality on fixed RT1/RT2 draws of a few test images, logged after every epoch.
    const onEpoch = (stage: string, label: string, purifier: Purifier) => async (epoch: number) => {
      const r = await measureInpainting(spec, test, [{ label, purifier }]);
      log(`[${stage}] epoch ${epoch + 1}: ${inpaintingSummary(r)}`);
      return { inpainting: r };
    };
    const noCe = stageTerms(spec.loss, "pretraining");
    const ftTerms = stageTerms(spec.loss, "finetuning");
    const scale = purifierScale(spec);
    const preDeps = {
      ...sized,
      arch: PURIFIER_ARCH_VERSION,
      purifier: p,
      transform: spec.transform,
      loss: noCe,
      schedule: spec.pretraining,
      ...noiseDrawKey(spec.pretraining),
      seed: spec.seed,
      data: dataHash.train,
    };
    const preStage = await stageDir(o.out, "pretrain", preDeps);
    pretrained = make();
    const preWeights = join(preStage.dir, "purifier.safetensors");
    if (p.weights) {
      await loadInto(pretrained, p.weights);
      stages.pretrain = { dir: p.weights, cached: true };
    } else if (preStage.done) {
      log(`[pretrain] cached in ${preStage.dir}`);
      await loadInto(pretrained, preWeights);
      stages.pretrain = { dir: preStage.dir, cached: true };
    } else {
      log(`[pretrain] inpainting pre-training -> ${preStage.dir}`);
      const D = makeD();
      const s = spec.pretraining;
      await trainPurifier({
        purifier: pretrained,
        discriminator: D,
        train,
        transform: trainingTransform(spec, s),
        terms: noCe,
        epochs: s.epochs,
        batchSize: s.batchSize,
        lr: s.lr,
        seed: spec.seed,
        trainLimit: s.limit,
        checkpoint: join(preStage.dir, "checkpoint.safetensors"),
        checkpointEvery: 25,
        logPath: join(preStage.dir, "log.json"),
        label: "pretrain",
        scale,
        ema: s.ema,
        // A custom stage is user code: its host effects would be skipped by a replay.
        compile: !spec.transform.some((t) => t.kind === "custom"),
        onEpoch: onEpoch("pretrain", "purifier", pretrained),
      });
      await writeSafetensors(preWeights, pretrained.stateDict(), {});
      // Rows: original, transformed, diffusion fill, blur + diffusion, coarse, refined (test
      // images, fixed draw).
      await writeFileAtomic(
        join(preStage.dir, "inpainting.png"),
        await inpaintingGrid(pretrained, test, transform, 8, spec.seed, scale),
      );
      await writeSafetensors(join(preStage.dir, "discriminator.safetensors"), D.stateDict(), {});
      D.dispose();
      await markDone(preStage, {});
      stages.pretrain = { dir: preStage.dir, cached: false };
    }
    pretrained.eval();

    const ftDeps = {
      pre: preStage.key,
      clf: clfStage.key,
      loss: ftTerms,
      attack: spec.trainAttack,
      schedule: spec.finetuning,
      ...noiseDrawKey(spec.finetuning),
      seed: spec.seed,
    };
    const ftStage = await stageDir(o.out, "atop", ftDeps);
    atop = make();
    const ftWeights = join(ftStage.dir, "purifier.safetensors");
    if (ftStage.done) {
      log(`[atop] cached in ${ftStage.dir}`);
      await loadInto(atop, ftWeights);
      stages.atop = { dir: ftStage.dir, cached: true };
    } else {
      log(`[atop] adversarial fine-tuning -> ${ftStage.dir}`);
      atop.loadStateDict(pretrained.stateDict());
      const D = makeD();
      const dPath = join(preStage.dir, "discriminator.safetensors");
      if (await Deno.stat(dPath).then(() => true, () => false)) await loadInto(D, dPath);
      const s = spec.finetuning;
      await trainPurifier({
        purifier: atop,
        discriminator: D,
        train,
        transform: trainingTransform(spec, s),
        terms: ftTerms,
        epochs: s.epochs,
        batchSize: s.batchSize,
        lr: s.lr,
        seed: spec.seed + 1,
        trainLimit: s.limit,
        classifier,
        attack: spec.trainAttack,
        checkpoint: join(ftStage.dir, "checkpoint.safetensors"),
        checkpointEvery: 25,
        logPath: join(ftStage.dir, "log.json"),
        label: "atop",
        scale,
        ema: s.ema,
        // A custom stage is user code: its host effects would be skipped by a replay.
        compile: !spec.transform.some((t) => t.kind === "custom"),
        onEpoch: onEpoch("atop", "atop", atop),
      });
      await writeSafetensors(ftWeights, atop.stateDict(), {});
      await writeFileAtomic(
        join(ftStage.dir, "inpainting.png"),
        await inpaintingGrid(atop, test, transform, 8, spec.seed, scale),
      );
      D.dispose();
      await markDone(ftStage, {});
      stages.atop = { dir: ftStage.dir, cached: false };
    }
    atop.eval();
    // The final figures of both purifiers for the report (recomputed: a stage may be cached).
    inpainting = await measureInpainting(spec, test, [
      { label: "purifier", purifier: pretrained },
      { label: "atop", purifier: atop },
    ]);
    log(`[inpainting] ${inpaintingSummary(inpainting)}`);
  }

  // 4. Evaluation of the four defenses under the chosen threat models.
  const evalDeps = {
    // Version of the verdict protocol and of the defense's draws: results of an older one are
    // never resumed into a newer report.
    protocol: EVAL_PROTOCOL_VERSION,
    stages: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, v.dir])),
    evaluation: spec.evaluation,
    threat: o.threat,
    transform: spec.transform,
    ...sized,
    seed: spec.seed,
    test: dataHash.test,
  };
  const evStage = await stageDir(o.out, "eval", evalDeps);
  const report = await evaluateDefenses({
    spec,
    classifier,
    pretrained,
    atop,
    test,
    threat: o.threat,
    dir: evStage.dir,
    log,
    adapter: engine().adapter,
    inpainting,
  });
  await markDone(evStage, {});
  stages.eval = { dir: evStage.dir, cached: evStage.done };
  return { report, stages };
}

export { hashFile };
