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
import {
  ARCHS,
  type Classifier,
  createModel,
  PatchDiscriminator,
  Purifier,
} from "../models/mod.ts";
import { atopTerms, inpaintingGrid, trainPurifier } from "../train/purifier.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";
import { rt2 } from "../transforms.ts";
import { CIFAR_NAMES, type CifarDataset, cifarFiles, ensureCifar, readCifar } from "../data/mod.ts";
import { refuseOutputDir } from "../io/guard.ts";
import { acquireRunLock, cleanStaleTemps } from "../io/runlock.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { accuracy, trainClassifier } from "../train/classifier.ts";
import { adapterFlag, enumFlag, intFlag, numberFlag, refuseUnused, requireFlags } from "./flags.ts";

const USAGE =
  `usage: deno task train --arch smallcnn|resnet18|wrn28_10|deepfill --data DIR|FILE --out DIR
  [--width W (deepfill)]
  [--test FILE] [--epochs N] [--batch-size B] [--lr LR] [--optimizer sgd|adam] [--seed N]
  [--limit N] [--no-augment] [--adapter auto|cpu|gpu] [--dataset cifar10|cifar100] [--download]`;

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
      adapter: { type: "string" },
      dataset: { type: "string" },
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
  requireFlags(v, ["arch", "out"], USAGE);
  if (!v.data && !v.download) {
    throw new Error(`give --data DIR (or --download to fetch the dataset)\n${USAGE}`);
  }
  const arch = enumFlag("--arch", v.arch, [...ARCHS, "deepfill"] as const)!;
  if (arch === "deepfill") refuseUnused(v, ["optimizer", "no-augment"], "to train a classifier");
  else refuseUnused(v, ["width"], "with --arch deepfill");
  // Without --dataset the record size tells CIFAR-10 from CIFAR-100.
  const dataset = enumFlag("--dataset", v.dataset, CIFAR_NAMES);
  const optimizer = enumFlag("--optimizer", v.optimizer, ["sgd", "adam"] as const) ?? "sgd";
  const epochs = intFlag("--epochs", v.epochs, { min: 1 }) ?? 10;
  const batchSize = intFlag("--batch-size", v["batch-size"], { min: 1 });
  const lr = numberFlag("--lr", v.lr, { min: 0, minExclusive: true });
  const seed = intFlag("--seed", v.seed, { min: 0 }) ?? 0;
  const limit = intFlag("--limit", v.limit, { min: 1 });
  const width = intFlag("--width", v.width, { min: 1 }) ?? 16;
  const adapter = adapterFlag(v.adapter);
  const dataPath = v.data ?? await ensureCifar(dataset ?? "cifar10");
  const arg = (flag: string) => (path: string) => ({ flag, path });
  const inputs = [
    ...(await cifarFiles(dataPath, v.test ? ["train"] : ["train", "test"], dataset)).map(
      arg("--data"),
    ),
    ...(v.test ? await cifarFiles(v.test, ["test"], dataset) : []).map(arg("--test")),
  ];
  await refuseOutputDir({ flag: "--out", path: v.out! }, inputs);
  // One run per --out at a time (the lock names the pid); temp files of killed runs go.
  await acquireRunLock(join(v.out!, ".lock"), `--out ${v.out}`);
  await cleanStaleTemps(v.out!, 1);
  await initEngine(adapter);
  const train = await readCifar(dataPath, { dataset, split: "train" });
  const test = await readCifar(v.test ?? dataPath, { dataset: train.dataset, split: "test" });
  if (arch === "deepfill") {
    return await pretrain({
      train,
      test,
      out: v.out!,
      epochs,
      batchSize: batchSize ?? 32,
      lr: lr ?? 2e-4,
      seed,
      limit,
      width,
    });
  }
  const model = createModel(arch, { numClasses: train.numClasses, seed }) as Classifier;
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
    batchSize: batchSize ?? 128,
    lr: lr ?? (optimizer === "adam" ? 1e-3 : 0.1),
    optimizer,
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
  const terms = atopTerms(1, 0, 0).filter((t) => t.term !== "ce");
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
    settings: { width: o.width },
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
