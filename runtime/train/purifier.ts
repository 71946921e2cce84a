// Purifier training, used for both stages of AToP:
// - pre-training: inpaint randomly transformed clean images (hinge GAN + L1 to the clean image);
// - fine-tuning: the same on transformed *adversarial* images, plus lambda * CE of the frozen
//   classifier on the purified image. Generator and critic alternate every step.
// Loss terms are the spec's weighted list, so custom weightings need no new code.

import { type Tensor, tidy, tidyAsync } from "../tensor.ts";
import { CompiledStep } from "../graph/capture.ts";
import * as ops from "../ops/mod.ts";
import { backward } from "../autograd.ts";
import { Adam } from "../optim.ts";
import { Rng } from "../rng.ts";
import type { Classifier, PatchDiscriminator, Purifier } from "../models/mod.ts";
import { type CifarDataset, DataLoader, toTensorBatch } from "../data/mod.ts";
import { type MaskedImage, toClassifierSize, toPurifierSize } from "../transforms.ts";
import { imageGrid } from "../io/png.ts";
import { blurDiffusionFill, diffusionFill, fillSettingsAt } from "../metrics/fill.ts";
import { purifierImages } from "../eval/inpainting.ts";
import { Progress } from "../io/progress.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { classifierTarget } from "../attacks/target.ts";
import { pgd } from "../attacks/pgd.ts";
import type { Norm } from "../attacks/common.ts";
import { loadCheckpoint, saveCheckpoint, type TrainSettings } from "./checkpoint.ts";
import { READ_EVERY, ScalarLog } from "./scalars.ts";
import { WeightAverage } from "./ema.ts";

export type LossTermName = "gan" | "l1-coarse" | "l1-fine" | "ce" | "mse-fine";
export interface WeightedTerm {
  term: LossTermName;
  weight: number;
  /** Active from this step on (lambda warm-up). */
  after: number;
  /** L1/MSE terms: weight of a hole pixel against a known one (1: the plain mean). The split
   * into hole and valid pixels of Liu et al. 2018 (partial convolutions, hole weight 6). */
  holes?: number;
}

/** AToP's fine-tuning loss: L_gan + a (L1 coarse + L1 fine) + lambda CE (from `warmup`). */
export function atopTerms(a = 1, lambda = 0.1, warmup = 0): WeightedTerm[] {
  return [
    { term: "gan", weight: 1, after: 0 },
    { term: "l1-coarse", weight: a, after: 0 },
    { term: "l1-fine", weight: a, after: 0 },
    { term: "ce", weight: lambda, after: warmup },
  ];
}

export interface TrainAttackOptions {
  kind: "fgsm" | "pgd";
  norm: Norm;
  eps: number;
  steps: number;
  stepSize?: number;
}

export interface TrainPurifierOptions {
  purifier: Purifier;
  discriminator: PatchDiscriminator;
  train: CifarDataset;
  /** The random transform applied before purification (RT1/RT2 of the spec). */
  transform: (rng: Rng, x: Tensor) => MaskedImage;
  terms: WeightedTerm[];
  epochs: number;
  batchSize: number;
  lr: number;
  /** Frozen classifier and training attack: required when a "ce" term is present. */
  classifier?: Classifier | null;
  attack?: TrainAttackOptions | null;
  seed?: number;
  trainLimit?: number;
  checkpoint?: string | null;
  checkpointEvery?: number;
  logPath?: string | null;
  stopAfterSteps?: number;
  quiet?: boolean;
  label?: string;
  /** The purifier works at this many times the data's resolution (purifierSize): clean and
   * adversarial images go up before the transform (L1 targets and the critic's real images at
   * that size), the refined image comes down before the classifier's CE. Default 1. */
  scale?: number;
  /** Decay of an exponential moving average of the generator's weights (e.g. 0.99): `onEpoch`
   * sees the average, and the purifier holds it when training ends. Off when absent. */
  ema?: number;
  /** More settings to record in the checkpoint and compare on resume (e.g. the width). */
  settings?: TrainSettings;
  /** Capture the step and replay it (default true); false when `transform` runs code with
   * host effects a replay would skip (a custom stage). */
  compile?: boolean;
  /** Runs after each epoch with the purifier in eval mode (e.g. inpainting metrics on test
   * images); what it returns is kept with the epoch in the checkpoint, so a resumed run still
   * has it, and written to log.json's "epochs". It must not draw from the training Rng. */
  onEpoch?: (epoch: number, step: number) => Promise<Record<string, unknown>>;
}

export interface PurifierStepLog {
  step: number;
  d: number;
  g: number;
  terms: Partial<Record<LossTermName, number>>;
}

/** What `onEpoch` returned for an epoch (0-based) that ended at `step`. */
export type PurifierEpochLog = { epoch: number; step: number } & Record<string, unknown>;

interface LoopState {
  epoch: number;
  batch: number;
  step: number;
  rng: ReturnType<Rng["getState"]>;
  log: PurifierStepLog[];
  /** Absent in checkpoints written before the hook existed. */
  epochs?: PurifierEpochLog[];
}

/** A line for every weighted term whose warm-up outlasts the stage, so it never acts (a preset's
 * GAN term, on from step 100 in a 64-step fine-tuning, did exactly that, silently). */
export function neverActive(terms: WeightedTerm[], steps: number, label = "purifier"): string[] {
  return terms.filter((t) => t.weight > 0 && t.after >= steps).map((t) =>
    `[${label}] loss term "${t.term}" is on from step ${t.after}, but this stage has ` +
    `${steps} steps: it never acts (lower its "after" or drop it)`
  );
}

/** The generator's loss: sum of weight * term over the active terms. L1/MSE targets are the
 * clean image x; CE is the frozen classifier's on the refined output (already in [0,1]). */
export function generatorLoss(
  active: WeightedTerm[],
  out: { coarse: Tensor; fine: Tensor },
  x: Tensor,
  y: Tensor,
  f: {
    critic: (img: Tensor) => Tensor;
    classifier: ((img: Tensor) => Tensor) | null;
    /** The hole mask [N,1,H,W] (needed by terms with a hole weight). */
    mask?: Tensor;
  },
): { total: Tensor | null; values: Partial<Record<LossTermName, Tensor>> } {
  const values: Partial<Record<LossTermName, Tensor>> = {};
  // L1 (or MSE) to the clean image; with a hole weight, mean(|d| w) with w = 1 on known pixels
  // and `holes` on holes.
  const pixelLoss = (t: WeightedTerm, out: Tensor, square: boolean) => {
    if ((t.holes ?? 1) === 1) return square ? ops.mseLoss(out, x) : ops.l1Loss(out, x);
    if (!f.mask) throw new Error(`generatorLoss: "${t.term}" with a hole weight needs the mask`);
    const d = ops.sub(out, x);
    const e = square ? ops.square(d) : ops.abs(d);
    return ops.mean(ops.mul(e, ops.add(1, ops.scale(f.mask, t.holes! - 1))));
  };
  for (const t of active) {
    switch (t.term) {
      case "gan":
        values.gan = ops.hingeGanLossG(f.critic(out.fine));
        break;
      case "l1-coarse":
        values["l1-coarse"] = pixelLoss(t, out.coarse, false);
        break;
      case "l1-fine":
        values["l1-fine"] = pixelLoss(t, out.fine, false);
        break;
      case "mse-fine":
        values["mse-fine"] = pixelLoss(t, out.fine, true);
        break;
      case "ce":
        if (!f.classifier) throw new Error('generatorLoss: the "ce" term needs a classifier');
        values.ce = ops.crossEntropy(f.classifier(out.fine), y);
        break;
    }
  }
  let total: Tensor | null = null;
  for (const t of active) {
    const v = ops.scale(values[t.term]!, t.weight);
    total = total ? ops.add(total, v) : v;
  }
  return { total, values };
}

/** One adversarial step's two updates from one generator forward: the critic's hinge step on
 * real vs generated images (detached), then the generator's loss `loss(out)`, built and
 * backpropagated with the critic frozen so gradients flow through it to G only. G's weights do
 * not change in between, so this is the two-forward step, one forward cheaper. The caller steps
 * G's optimizer after this scope. Shared by the trainer and its benchmark. */
export function criticThenGeneratorLoss<T extends { total: Tensor | null }>(
  m: { G: Purifier; D: PatchDiscriminator; optD: Adam; dParams: Tensor[] },
  b: { image: Tensor; mask: Tensor; noise?: Tensor; real: Tensor },
  loss: (out: { coarse: Tensor; fine: Tensor }) => T,
): T & { dLoss: Tensor } {
  return tidy(() => {
    const out = m.G.run(b.image, b.mask, b.noise);
    // The critic's update runs after its graph's scope: forward values nobody read are
    // dropped, not computed after the weights they depend on change.
    setTrainable(m.dParams, true);
    const dLoss = tidy(() => {
      const l = ops.hingeGanLossD(
        m.D.score(b.real, b.mask),
        m.D.score(ops.detach(out.fine), b.mask),
      );
      backward(l);
      return l;
    });
    m.optD.step();
    m.optD.zeroGrad();
    setTrainable(m.dParams, false);
    const r = loss(out);
    if (r.total) backward(r.total);
    return { ...r, dLoss };
  });
}

/** The scalars a step logs, in the order it packs them: the active terms, the critic's loss,
 * the generator's total (when any term is active). */
function scalarNames(active: WeightedTerm[]): (LossTermName | "#d" | "#g")[] {
  const terms = [...new Set(active.map((t) => t.term))];
  return [...terms, "#d", ...(active.length ? ["#g" as const] : [])];
}

function setTrainable(params: Tensor[], on: boolean) {
  for (const p of params) p.requiresGrad = on;
}

/** Crafts x_adv on the frozen classifier (FGSM by default, as in the AToP reference code). */
async function adversarial(
  clf: Classifier,
  x: Tensor,
  labels: number[],
  a: TrainAttackOptions,
  seed: number,
  step: number,
) {
  const res = await pgd({ target: classifierTarget(clf, { name: clf.arch }), x, labels }, {
    norm: a.norm,
    eps: a.eps,
    steps: a.kind === "fgsm" ? 1 : a.steps,
    stepSize: a.stepSize ?? (a.kind === "fgsm" ? a.eps : undefined),
    randomStart: a.kind !== "fgsm",
    restarts: 1,
    seed: seed * 100003 + step,
  });
  return res.xAdv;
}

export async function trainPurifier(o: TrainPurifierOptions): Promise<PurifierStepLog[]> {
  const G = o.purifier, D = o.discriminator;
  const seed = o.seed ?? 0;
  const needsCe = o.terms.some((t) => t.term === "ce" && t.weight > 0);
  if (needsCe && !o.classifier) {
    throw new Error('trainPurifier: a "ce" loss term needs a frozen classifier');
  }
  const scale = o.scale ?? 1;
  const size = o.train.shape[1];
  const up = (t: Tensor) => toPurifierSize(t, size * scale);
  const gParams = G.parameters(), dParams = D.parameters();
  const clfParams = o.classifier?.parameters() ?? [];
  // DeepFillv2 settings: Adam(lr, betas 0.5/0.999) for both networks.
  const optG = new Adam(gParams, { lr: o.lr, betas: [0.5, 0.999] });
  const optD = new Adam(dParams, { lr: o.lr, betas: [0.5, 0.999] });
  const loader = new DataLoader(o.train, {
    batchSize: o.batchSize,
    shuffle: true,
    seed: seed + 17,
    dropLast: true,
    limit: o.trainLimit,
  });
  const total = loader.numBatches() * o.epochs;
  const rng = new Rng(seed, 0x5eed);
  const ema = o.ema !== undefined ? new WeightAverage(gParams, o.ema) : null;
  const parts = {
    modules: { purifier: G, discriminator: D },
    optimizers: { g: optG, d: optD, ...(ema ? { ema } : {}) },
  };
  // Everything the weights depend on (the transform is code: the caller's settings name it).
  const settings: TrainSettings = {
    trainer: "purifier",
    purifier: G.numParameters(),
    discriminator: D.numParameters(),
    terms: o.terms,
    attack: needsCe ? (o.attack ?? null) : null,
    classifier: needsCe ? o.classifier!.arch : null,
    epochs: o.epochs,
    batchSize: o.batchSize,
    lr: o.lr,
    seed,
    limit: o.trainLimit ?? null,
    data: o.train.hash,
    ...(scale !== 1 ? { scale } : {}),
    ...(ema ? { ema: o.ema } : {}),
    ...o.settings,
  };
  let st: LoopState = { epoch: 0, batch: 0, step: 0, rng: rng.getState(), log: [] };
  if (o.checkpoint) {
    const saved = await loadCheckpoint<LoopState>(o.checkpoint, parts, settings);
    if (saved) {
      st = saved;
      rng.setState(st.rng);
      if (!o.quiet) console.error(`resuming from step ${st.step} of ${total} (${o.checkpoint})`);
    }
  }
  // Step scalars stay on the GPU until READ_EVERY steps are pending (or a save needs them).
  const scalars = new ScalarLog<LossTermName | "#d" | "#g">();
  const lastRead: { entry: PurifierStepLog | null } = { entry: null };
  const readScalars = async () => {
    for (const { tag, values } of await scalars.read()) {
      const { "#d": d, "#g": g, ...terms } = values;
      lastRead.entry = { step: tag, d, g: g ?? 0, terms };
      st.log.push(lastRead.entry);
    }
  };
  const save = async () => {
    await readScalars();
    st.rng = rng.getState();
    if (o.checkpoint) await saveCheckpoint(o.checkpoint, parts, st, settings);
  };
  if (!o.quiet) neverActive(o.terms, total, o.label).forEach((m) => console.error(m));
  const progress = o.quiet ? null : new Progress(total, o.label ?? "purifier", st.step);
  o.classifier?.eval();
  setTrainable(clfParams, false);
  let stepsThisCall = 0;
  // The loss terms active at this step (the key of the compiled step: a warm-up changes them).
  let active: WeightedTerm[] = [];
  // One adversarial step: the critic's update, the generator's, the weight average; captured
  // after its first call and replayed from then on (the transform's draws included: the
  // generator's counter moves on at each replay). In: the clean batch, its labels and, when
  // fine-tuning on attacks, the adversarial batch; out: the step's scalars, packed.
  const compiled = new CompiledStep(
    o.label ?? "purifier step",
    (x: Tensor, y: Tensor, adv?: Tensor) => {
      // The clean image at the purifier's size: L1 target and the critic's real images.
      const real = up(x);
      const { image, mask, noise } = o.transform(rng, adv ? up(adv) : real);
      setTrainable(gParams, true);
      const g = criticThenGeneratorLoss(
        { G, D, optD, dParams },
        { image, mask, noise, real },
        (out) =>
          generatorLoss(active, out, real, y, {
            critic: (img) => D.score(img, mask),
            mask,
            classifier: o.classifier
              ? (img) => o.classifier!.forward(toClassifierSize(img, size))
              : null,
          }),
      );
      if (g.total) {
        optG.step();
        optG.zeroGrad();
        ema?.update();
      }
      setTrainable(dParams, true);
      const values: Record<string, Tensor> = { ...g.values, "#d": g.dLoss };
      if (g.total) values["#g"] = g.total;
      return ScalarLog.pack(scalarNames(active).map((k) => values[k]));
    },
    {
      // The active entries themselves (a term may be listed twice with its own warm-up).
      key: () => active.map((t) => o.terms.indexOf(t)).join(","),
      eager: o.compile === false,
    },
  );
  try {
    while (st.epoch < o.epochs) {
      G.train();
      D.train();
      for await (const { x, y, labels } of loader.batches(st.epoch, st.batch)) {
        const step = st.step;
        active = o.terms.filter((t) => t.weight > 0 && step >= t.after);
        const source = needsCe && o.attack
          ? await adversarial(o.classifier!, x, labels, o.attack!, seed, step)
          : null;
        const names = scalarNames(active);
        // Read back in groups of steps, not now.
        scalars.pushPacked(step, names, source ? compiled.run(x, y, source) : compiled.run(x, y));
        source?.dispose();
        x.dispose();
        y.dispose();
        st.batch++;
        st.step++;
        stepsThisCall++;
        if (scalars.pending >= READ_EVERY) await readScalars();
        const e = lastRead.entry;
        progress?.tick(1, e ? `D ${e.d.toFixed(3)} G ${e.g.toFixed(3)} (step ${e.step + 1})` : "");
        if (o.checkpointEvery && st.step % o.checkpointEvery === 0) await save();
        if (o.stopAfterSteps !== undefined && stepsThisCall >= o.stopAfterSteps) {
          await save();
          return st.log;
        }
      }
      await readScalars();
      if (o.onEpoch) {
        G.eval();
        ema?.swap();
        const extra = await o.onEpoch(st.epoch, st.step);
        ema?.swap();
        st.epochs = [...(st.epochs ?? []), { ...extra, epoch: st.epoch, step: st.step }];
      }
      st = { ...st, epoch: st.epoch + 1, batch: 0 };
      await save();
      if (o.logPath) await writeJsonAtomic(o.logPath, { log: st.log, epochs: st.epochs ?? [] });
    }
    // Training is complete: the purifier keeps the averaged weights.
    ema?.swap();
  } finally {
    compiled.dispose();
    ema?.dispose();
    scalars.dispose();
    progress?.done();
    setTrainable(clfParams, true);
    setTrainable(gParams, true);
    setTrainable(dParams, true);
    optG.dispose();
    optD.dispose();
  }
  G.eval();
  D.eval();
  return st.log;
}

/** PNG grid of inpainting on `n` images, one row each: original, transformed (masked),
 * diffusion fill, blur + diffusion fill (the classical baselines of runtime/metrics/fill.ts on
 * the same draw; the blur only matters under noise), purifier coarse, purifier refined. With a
 * `scale` (purifierSize) every row is shown at the purifier's resolution. */
export async function inpaintingGrid(
  purifier: Purifier,
  ds: CifarDataset,
  transform: (rng: Rng, x: Tensor) => MaskedImage,
  n = 8,
  seed = 0,
  scale = 1,
): Promise<Uint8Array> {
  const idx = Array.from({ length: Math.min(n, ds.n) }, (_, i) => i);
  const [c, h, w] = ds.shape;
  const img = [c, h * scale, w * scale] as [number, number, number];
  const shape = [idx.length, ...img] as [number, number, number, number];
  const { x, image, mask, noise } = await tidyAsync(async () => {
    const x = toPurifierSize(toTensorBatch(ds, idx).x, h * scale);
    const t = transform(new Rng(seed, 0x9a1d), x);
    return {
      x: await x.data(),
      image: await t.image.data(),
      mask: await t.mask.data(),
      noise: t.noise ? await t.noise.data() : undefined,
    };
  });
  const out = await purifierImages(purifier, image, mask, shape, { noise });
  purifier.eval();
  // The same baselines as the inpainting tables (runtime/eval/inpainting.ts).
  const { sweeps, sigma } = fillSettingsAt(scale);
  return await imageGrid(
    [
      x,
      image,
      diffusionFill(image, mask, shape, sweeps),
      blurDiffusionFill(image, mask, shape, sweeps, sigma),
      out.coarse,
      out.fine,
    ],
    img,
    { scale: Math.max(1, 3 / scale) | 0 },
  );
}
