// Supervised training of a classifier: seeded shuffling and augmentation, SGD with momentum
// (or Adam), cosine schedule, evaluation each epoch, JSON log, progress with items/s and ETA,
// and checkpoints that make an interrupted run resume to the same weights.

import { tidy, tidyAsync } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { backward, noGrad } from "../autograd.ts";
import { Adam, SGD } from "../optim.ts";
import { cosineLR } from "../schedule.ts";
import type { Classifier } from "../models/mod.ts";
import { type CifarDataset, DataLoader, toTensorBatch } from "../data/mod.ts";
import { Progress } from "../io/progress.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { checkFiniteLogits } from "../eval/finite.ts";
import { loadCheckpoint, saveCheckpoint, type TrainSettings } from "./checkpoint.ts";
import { READ_EVERY, ScalarLog } from "./scalars.ts";
import { CompiledStep } from "../graph/capture.ts";
import type { Tensor } from "../tensor.ts";

export interface TrainClassifierOptions {
  model: Classifier;
  train: CifarDataset;
  test?: CifarDataset | null;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer?: "sgd" | "adam";
  momentum?: number;
  weightDecay?: number;
  seed?: number;
  augment?: boolean;
  /** Limit on training / test images (quick runs). */
  trainLimit?: number;
  testLimit?: number;
  checkpoint?: string | null;
  /** Save a checkpoint every this many steps (and at each epoch end). */
  checkpointEvery?: number;
  logPath?: string | null;
  /** Stop after this many steps in this call (tests of interruption). */
  stopAfterSteps?: number;
  quiet?: boolean;
  /** More settings to record in the checkpoint and compare on resume. */
  settings?: TrainSettings;
}

export interface EpochLog {
  epoch: number;
  step: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number | null;
  seconds: number;
}

interface LoopState {
  epoch: number;
  batch: number;
  step: number;
  lossSum: number;
  correct: number;
  seen: number;
  /** Examples of this epoch whose loss has been read back (the rest are still on the GPU). */
  read?: number;
  seconds: number;
  history: EpochLog[];
}

/** Top-1 accuracy of a model (eval mode) on up to `limit` examples. */
export async function accuracy(
  model: Classifier,
  ds: CifarDataset,
  batchSize = 256,
  limit = Infinity,
): Promise<number> {
  model.eval();
  const n = Math.min(ds.n, limit);
  let correct = 0;
  for (let i = 0; i < n; i += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, n - i) }, (_, k) => i + k);
    correct += await tidyAsync(async () => {
      const { x, y } = toTensorBatch(ds, idx);
      const z = noGrad(() => model.forward(x));
      const what = `${model.arch} accuracy, images ${i}..${i + idx.length - 1}`;
      checkFiniteLogits(await z.data(), z.shape[1], what, idx);
      const pred = noGrad(() => ops.argmax(z, 1));
      const eq = ops.eq(pred, y);
      return (await ops.sum(eq).item());
    });
  }
  return correct / n;
}

export async function trainClassifier(o: TrainClassifierOptions): Promise<EpochLog[]> {
  const { model } = o;
  const seed = o.seed ?? 0;
  const params = model.parameters();
  const adam = o.optimizer === "adam";
  const momentum = adam ? null : o.momentum ?? 0.9;
  const weightDecay = o.weightDecay ?? (adam ? 0 : 5e-4);
  const opt = adam
    ? new Adam(params, { lr: o.lr, weightDecay })
    : new SGD(params, { lr: o.lr, momentum: momentum!, weightDecay, nesterov: true });
  // Everything the weights depend on: a checkpoint from other settings is not resumed.
  const settings: TrainSettings = {
    trainer: "classifier",
    arch: model.arch,
    classes: model.numClasses,
    parameters: model.numParameters(),
    epochs: o.epochs,
    batchSize: o.batchSize,
    lr: o.lr,
    optimizer: adam ? "adam" : "sgd",
    momentum,
    weightDecay,
    seed,
    augment: o.augment !== false,
    limit: o.trainLimit ?? null,
    data: o.train.hash,
    ...o.settings,
  };
  const loader = new DataLoader(o.train, {
    batchSize: o.batchSize,
    shuffle: true,
    seed,
    augment: o.augment === false ? undefined : { crop: 4, flip: true },
    dropLast: true,
    limit: o.trainLimit,
  });
  const perEpoch = loader.numBatches();
  const total = perEpoch * o.epochs;
  const schedule = cosineLR(o.lr, Math.max(1, total));
  const parts = { modules: { model }, optimizers: { opt } };
  let st: LoopState = {
    epoch: 0,
    batch: 0,
    step: 0,
    lossSum: 0,
    correct: 0,
    seen: 0,
    seconds: 0,
    history: [],
  };
  if (o.checkpoint) {
    const saved = await loadCheckpoint<LoopState>(o.checkpoint, parts, settings);
    if (saved) {
      st = saved;
      if (!o.quiet) console.error(`resuming from step ${st.step} of ${total} (${o.checkpoint})`);
    }
  }
  // Step losses and hits stay on the GPU until READ_EVERY steps are pending (or a save needs
  // them); `read` counts the examples whose scalars have been added in.
  const scalars = new ScalarLog<"loss" | "hits">();
  const readScalars = async () => {
    for (const { values } of await scalars.read()) {
      st.lossSum += values.loss;
      st.correct += values.hits;
      st.read = (st.read ?? 0) + o.batchSize;
    }
  };
  const save = async () => {
    await readScalars();
    if (o.checkpoint) await saveCheckpoint(o.checkpoint, parts, st, settings);
  };
  const progress = o.quiet ? null : new Progress(total, `train ${model.arch}`, st.step);
  // One training step, captured after its first call and replayed from then on: the batch in,
  // the summed loss and the hits out (read back in groups, not now).
  const step = new CompiledStep(`train ${model.arch}`, (x: Tensor, y: Tensor) => {
    const packed = tidy(() => {
      const logits = model.forward(x);
      const loss = ops.crossEntropy(logits, y);
      backward(loss);
      const hits = ops.sum(ops.eq(ops.argmax(ops.detach(logits), 1), y));
      return ScalarLog.pack([ops.scale(loss, y.size), hits]);
    });
    // After the scope: forward intermediates nobody read are dropped, not computed before the
    // in-place update of the weights they depend on.
    opt.step();
    opt.zeroGrad();
    return packed;
  }, { key: () => (model.training ? "train" : "eval") });
  let stepsThisCall = 0;
  try {
    while (st.epoch < o.epochs) {
      model.train();
      let t0 = performance.now();
      for await (const { x, y } of loader.batches(st.epoch, st.batch)) {
        opt.lr = schedule(st.step);
        scalars.pushPacked(st.step, ["loss", "hits"], step.run(x, y));
        x.dispose();
        y.dispose();
        st.seen += o.batchSize;
        st.batch++;
        st.step++;
        stepsThisCall++;
        if (scalars.pending >= READ_EVERY) await readScalars();
        progress?.tick(1, st.read ? `loss ${(st.lossSum / st.read).toFixed(3)}` : "");
        if (o.checkpointEvery && st.step % o.checkpointEvery === 0) {
          st.seconds += (performance.now() - t0) / 1000;
          t0 = performance.now();
          await save();
        }
        if (o.stopAfterSteps !== undefined && stepsThisCall >= o.stopAfterSteps) {
          await save();
          return st.history;
        }
      }
      await readScalars();
      const testAccuracy = o.test ? await accuracy(model, o.test, 256, o.testLimit) : null;
      st.history.push({
        epoch: st.epoch,
        step: st.step,
        trainLoss: st.lossSum / Math.max(1, st.seen),
        trainAccuracy: st.correct / Math.max(1, st.seen),
        testAccuracy,
        seconds: st.seconds + (performance.now() - t0) / 1000,
      });
      if (!o.quiet) {
        const h = st.history.at(-1)!;
        console.error(
          `epoch ${h.epoch + 1}/${o.epochs}: loss ${h.trainLoss.toFixed(4)} train acc ${
            (100 * h.trainAccuracy).toFixed(1)
          }%` +
            (testAccuracy !== null ? ` test acc ${(100 * testAccuracy).toFixed(1)}%` : ""),
        );
      }
      st = {
        ...st,
        epoch: st.epoch + 1,
        batch: 0,
        lossSum: 0,
        correct: 0,
        seen: 0,
        read: 0,
        seconds: 0,
      };
      await save();
      if (o.logPath) await writeJsonAtomic(o.logPath, { arch: model.arch, history: st.history });
    }
  } finally {
    step.dispose();
    scalars.dispose();
    progress?.done();
    opt.dispose();
  }
  model.eval();
  return st.history;
}
