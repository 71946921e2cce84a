// deno task predict --arch A --weights W.safetensors --data FILE.bin [--limit N] --out OUT.json
// Classifies a CIFAR file with any checkpoint: {"predictions": [...], "logits": [[...], ...],
// "accuracy"}, so a PyTorch-trained model can be checked against its known accuracy.

import { parseArgs } from "node:util";
import { initEngine } from "../engine.ts";
import { noGrad } from "../autograd.ts";
import { tidyAsync } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import {
  ARCHS,
  classesInWeights,
  type Classifier,
  createModel,
  widthsInWeights,
} from "../models/mod.ts";
import { CIFAR_NAMES, cifarFiles, readCifar, toTensorBatch } from "../data/mod.ts";
import { readSafetensorsRaw } from "../io/safetensors.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { refuseOverwrite } from "../io/guard.ts";
import { adapterFlag, enumFlag, intFlag, requireFlags } from "./flags.ts";
import { refuseClassMismatch } from "./classes.ts";
import { checkFiniteLogits } from "../eval/finite.ts";

const USAGE = `usage: deno task predict --arch smallcnn|resnet18|wrn28_10 --weights W.safetensors
  --data FILE.bin|DIR [--limit N] [--batch-size B] [--dataset cifar10|cifar100]
  [--adapter auto|cpu|gpu] --out OUT.json`;

export async function main(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      arch: { type: "string" },
      weights: { type: "string" },
      data: { type: "string" },
      limit: { type: "string" },
      "batch-size": { type: "string", default: "128" },
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
  requireFlags(v, ["arch", "weights", "data", "out"], USAGE);
  const arch = enumFlag("--arch", v.arch, ARCHS)!;
  const limit = intFlag("--limit", v.limit, { min: 1 }) ?? Infinity;
  const bs = intFlag("--batch-size", v["batch-size"], { min: 1 })!;
  const dataset = enumFlag("--dataset", v.dataset, CIFAR_NAMES);
  const adapter = adapterFlag(v.adapter);
  const data = (await cifarFiles(v.data!, ["test"], dataset)).map((path) => ({
    flag: "--data",
    path,
  }));
  await refuseOverwrite([{ flag: "--out", path: v.out! }], [
    { flag: "--weights", path: v.weights! },
    ...data,
  ]);
  // Data and weights are read on the CPU first: a class mismatch fails before the GPU starts.
  const ds = await readCifar(v.data!, { split: "test", dataset });
  const { tensors } = await readSafetensorsRaw(v.weights!);
  const classes = classesInWeights(arch, tensors);
  if (classes !== null) {
    refuseClassMismatch(
      { flag: "--data", path: v.data!, dataset: ds.dataset, classes: ds.numClasses },
      `--weights ${v.weights} (${arch})`,
      classes,
    );
  }
  await initEngine(adapter);
  const widths = widthsInWeights(arch, tensors);
  const model = createModel(arch, { numClasses: ds.numClasses, widths }) as Classifier;
  try {
    model.loadStateDict(tensors, { strict: true });
  } catch (e) {
    throw new Error(`--weights ${v.weights}: ${e instanceof Error ? e.message : e}`);
  }
  model.eval();
  const n = Math.min(ds.n, limit);
  const predictions: number[] = [], logits: number[][] = [];
  for (let i = 0; i < n; i += bs) {
    const idx = Array.from({ length: Math.min(bs, n - i) }, (_, k) => i + k);
    await tidyAsync(async () => {
      const { x } = toTensorBatch(ds, idx);
      const z = noGrad(() => model.forward(x));
      const zs = await z.data(), am = await ops.argmax(z, 1).data();
      const k = z.shape[1];
      checkFiniteLogits(zs, k, `${arch} on images ${i}..${i + idx.length - 1}`, idx);
      idx.forEach((_, j) => {
        predictions.push(am[j]);
        logits.push(Array.from(zs.subarray(j * k, (j + 1) * k)));
      });
    });
  }
  const correct = predictions.filter((p, i) => p === ds.labels[i]).length;
  await writeJsonAtomic(v.out!, {
    arch: v.arch,
    weights: v.weights,
    data: v.data,
    n,
    accuracy: correct / n,
    predictions,
    logits,
  });
  console.log(`${v.arch}: accuracy ${(100 * correct / n).toFixed(2)}% on ${n} images -> ${v.out}`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`predict: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
