// deno task train --arch smallcnn|resnet18|wrn28_10|deepfill --data DIR|FILE [--test FILE] --out DIR
//   [--epochs N] [--batch-size B] [--lr LR] [--optimizer sgd|adam] [--seed N] [--limit N]
//   [--no-augment] [--adapter auto|cpu|gpu] [--download cifar10|cifar100]
// Trains a classifier with checkpoints (rerun the same command to resume) and writes
// OUT/<arch>.safetensors plus OUT/log.json. `--arch deepfill [--width W]` pre-trains the
// inpainting purifier instead (RT2 masks + noise, hinge GAN + L1) and also writes
// OUT/inpainting.png (rows: original, transformed, coarse, refined).

import { parseArgs } from "node:util";
import { join } from "node:path";
import { initEngine } from "../engine.ts";
import { type Classifier, createModel, PatchDiscriminator, Purifier } from "../models/mod.ts";
import { inpaintingGrid, trainPurifier } from "../train/purifier.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";
import { rt2 } from "../../dsl/transforms.ts";
import { atopLoss } from "../../dsl/spec.ts";
import { type CifarDataset, type CifarName, ensureCifar, readCifar } from "../data/mod.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { accuracy, trainClassifier } from "../train/classifier.ts";

const USAGE =
  `usage: deno task train --arch smallcnn|resnet18|wrn28_10|deepfill --data DIR|FILE --out DIR
  [--width W (deepfill)]
  [--test FILE] [--epochs N] [--batch-size B] [--lr LR] [--optimizer sgd|adam] [--seed N]
  [--limit N] [--no-augment] [--adapter auto|cpu|gpu] [--dataset cifar10|cifar100] [--download]`;

function num(flag: string, s: string | undefined, dflt: number, int = false, min = 0): number {
  if (s === undefined) return dflt;
  const v = Number(s);
  if (!Number.isFinite(v) || v < min || (int && !Number.isInteger(v))) {
    throw new Error(`--${flag}: expected ${int ? "an integer" : "a number"} >= ${min}, got "${s}"`);
  }
  return v;
}

export async function main(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      arch: { type: "string" },
      data: { type: "string" },
      test: { type: "string" },
      out: { type: "string" },
      epochs: { type: "string" },
      "batch-size": { type: "string" },
      lr: { type: "string" },
      optimizer: { type: "string" },
      seed: { type: "string" },
      limit: { type: "string" },
      "no-augment": { type: "boolean", default: false },
      adapter: { type: "string", default: "auto" },
      dataset: { type: "string", default: "cifar10" },
      download: { type: "boolean", default: false },
      width: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  for (const f of ["arch", "out"] as const) {
    if (!v[f]) throw new Error(`--${f} is required\n${USAGE}`);
  }
  if (!v.data && !v.download) {
    throw new Error(`give --data DIR (or --download to fetch the dataset)\n${USAGE}`);
  }
  const dataset = v.dataset as CifarName;
  if (dataset !== "cifar10" && dataset !== "cifar100") {
    throw new Error(`--dataset: expected cifar10 or cifar100, got "${v.dataset}"`);
  }
  if (v.optimizer && v.optimizer !== "sgd" && v.optimizer !== "adam") {
    throw new Error(`--optimizer: expected sgd or adam, got "${v.optimizer}"`);
  }
  const epochs = num("epochs", v.epochs, 10, true, 1);
  const batchSize = num("batch-size", v["batch-size"], 128, true, 1);
  const lr = num("lr", v.lr, v.optimizer === "adam" ? 1e-3 : 0.1);
  const seed = num("seed", v.seed, 0, true);
  const limit = v.limit ? num("limit", v.limit, 0, true, 1) : undefined;
  await initEngine(v.adapter as "auto" | "cpu" | "gpu");
  const dataPath = v.data ?? await ensureCifar(dataset);
  const train = await readCifar(dataPath, { dataset, split: "train" });
  const test = await readCifar(v.test ?? dataPath, { dataset, split: "test" });
  if (v.arch === "deepfill") {
    return await pretrain({
      train,
      test,
      out: v.out!,
      epochs,
      batchSize: v["batch-size"] ? batchSize : 32,
      lr: v.lr ? lr : 2e-4,
      seed,
      limit,
      width: num("width", v.width, 16, true, 1),
    });
  }
  const model = createModel(v.arch!, { numClasses: train.numClasses, seed }) as Classifier;
  await Deno.mkdir(v.out!, { recursive: true });
  console.error(
    `training ${v.arch} (${model.numParameters().toLocaleString()} parameters) on ${train.n} images, testing on ${test.n}`,
  );
  const t0 = performance.now();
  const history = await trainClassifier({
    model,
    train,
    test,
    epochs,
    batchSize,
    lr,
    optimizer: (v.optimizer ?? "sgd") as "sgd" | "adam",
    seed,
    augment: !v["no-augment"],
    trainLimit: limit,
    checkpoint: join(v.out!, "checkpoint.safetensors"),
    checkpointEvery: 20,
    logPath: join(v.out!, "log.json"),
  });
  const acc = await accuracy(model, test);
  const weights = join(v.out!, `${v.arch}.safetensors`);
  await writeSafetensors(weights, model.stateDict(), { arch: v.arch!, test_accuracy: String(acc) });
  console.log(
    JSON.stringify({
      arch: v.arch,
      test_accuracy: acc,
      epochs: history.length,
      seconds: (performance.now() - t0) / 1000,
      weights,
    }),
  );
  return 0;
}

async function pretrain(o: {
  train: CifarDataset;
  test: CifarDataset;
  out: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  limit?: number;
  width: number;
}): Promise<number> {
  const purifier = new Purifier({ width: o.width, seed: o.seed });
  const discriminator = new PatchDiscriminator({ width: o.width, seed: o.seed });
  await Deno.mkdir(o.out, { recursive: true });
  const transform = (rng: Rng, x: Tensor) =>
    rt2(rng, x, { sigma: 0.25, missingRate: 0.25, blockSize: 4 });
  const terms = atopLoss(1, 0, 0).filter((t) => t.term !== "ce");
  const t0 = performance.now();
  const log = await trainPurifier({
    purifier,
    discriminator,
    train: o.train,
    transform,
    terms,
    epochs: o.epochs,
    batchSize: o.batchSize,
    lr: o.lr,
    seed: o.seed,
    trainLimit: o.limit,
    checkpoint: join(o.out, "checkpoint.safetensors"),
    checkpointEvery: 20,
    logPath: join(o.out, "log.json"),
    label: "pretrain deepfill",
  });
  await writeSafetensors(join(o.out, "purifier.safetensors"), purifier.stateDict(), {
    arch: "deepfill",
    width: String(o.width),
  });
  await writeSafetensors(join(o.out, "discriminator.safetensors"), discriminator.stateDict(), {});
  await writeFileAtomic(
    join(o.out, "inpainting.png"),
    await inpaintingGrid(purifier, o.test, transform, 8, o.seed),
  );
  const last = log.at(-1);
  console.log(
    JSON.stringify({
      arch: "deepfill",
      width: o.width,
      steps: log.length,
      last,
      seconds: (performance.now() - t0) / 1000,
    }),
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`train: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
