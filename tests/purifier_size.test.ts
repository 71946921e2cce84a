// purifierSize: the random transform and the purifier at an upsampled resolution, bilinear up
// and area down around them (dsl/compile.ts preprocess, runtime/transforms.ts), in training
// (runtime/train/purifier.ts scale) and in the inpainting tables (scored at the classifier's
// resolution).

import { assert, checkOp, gpu, input, rng } from "./helpers/check.ts";
import { upsampleBilinearRef } from "./ref/sample.ts";
import { parseSpec, purifierScale, SpecError } from "../dsl/spec.ts";
import { preprocess, transformSteps } from "../dsl/compile.ts";
import { drawCase, evaluateInpainting } from "../dsl/inpainting_eval.ts";
import { areaDownsample } from "../runtime/eval/inpainting.ts";
import {
  type Classifier,
  createModel,
  PatchDiscriminator,
  Purifier,
} from "../runtime/models/mod.ts";
import { gatherBatch, readCifar } from "../runtime/data/mod.ts";
import { Rng } from "../runtime/rng.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { toClassifierSize, toPurifierSize } from "../runtime/transforms.ts";
import { trainPurifier } from "../runtime/train/purifier.ts";
import { trainingTransform } from "../dsl/run.ts";
import { resolveSpecInput } from "../dsl/presets.ts";
import { defaultData } from "../dsl/cli.ts";
import { EMBEDDED_CIFAR10 } from "../runtime/data/mod.ts";

await gpu();
const DATA = new URL("../data/cifar10/", import.meta.url).pathname;
const test = await readCifar(DATA, { split: "test" });
const train = await readCifar(DATA, { split: "train" });

const base = {
  name: "sized",
  classifier: { arch: "smallcnn" as const },
  transform: [{ kind: "rt1" as const, missingRate: 0.25, blockSize: 4 }],
};

Deno.test("purifierSize: a multiple of imageSize up to 16x; the error names the field", () => {
  assert.equal(purifierScale(parseSpec({ ...base, purifierSize: 64 })), 2);
  assert.equal(purifierScale(parseSpec(base)), 1);
  for (const bad of [48, 16, 1024]) {
    assert.throws(
      () => parseSpec({ ...base, purifierSize: bad }),
      (e: unknown) =>
        e instanceof SpecError &&
        /purifierSize: expected imageSize \(32\) times an integer from 1 to 16, got/.test(
          e.message,
        ),
    );
  }
});

Deno.test("area downsampling: the CPU reference agrees with the GPU's toClassifierSize", async () => {
  const r = rng(11);
  const shape = [2, 3, 16, 16] as const;
  const x = Float32Array.from({ length: 2 * 3 * 256 }, () => r());
  const want = areaDownsample(x, [...shape], 4);
  const got = await tidyAsync(async () =>
    await toClassifierSize(Tensor.fromData(x, [...shape]), 4).data()
  );
  assert.equal(got.length, 2 * 3 * 16);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `at ${i}: ${v} vs ${want[i]}`));
  // Each output is the mean of its 4x4 block (first block of the first plane, by hand).
  let s = 0;
  for (let y = 0; y < 4; y++) for (let c = 0; c < 4; c++) s += x[y * 16 + c];
  assert.ok(Math.abs(want[0] - s / 16) < 1e-6);
});

Deno.test("purifierSize: masks keep their blocks in classifier pixels, drawn as at 32x32", async () => {
  await tidyAsync(async () => {
    const x = new Rng(2).uniform([3, 3, 32, 32]);
    const at32 = transformSteps(parseSpec(base), new Rng(9, 4), null)[0].run({
      image: x,
      mask: ops.zeros([3, 1, 32, 32]),
    });
    const big = toPurifierSize(x, 64);
    const at64 = transformSteps(parseSpec({ ...base, purifierSize: 64 }), new Rng(9, 4), null)[0]
      .run({ image: big, mask: ops.zeros([3, 1, 64, 64]) });
    assert.deepEqual(at64.mask.shape, [3, 1, 64, 64]);
    // The same Bernoulli draw per block: the 64x64 mask is the 32x32 one with 8-px blocks.
    const m32 = await at32.mask.data(), m64 = await at64.mask.data();
    assert.deepEqual([...areaDownsample(m64, [3, 1, 64, 64], 2)], [...m32]);
    assert.ok(m32.some((v) => v === 1) && m32.some((v) => v === 0));
  });
});

Deno.test("purifierSize: the defense is area-down(RT1(bilinear-up(x))) and differentiable (float64 reference, finite differences)", async () => {
  const spec = parseSpec({ ...base, purifierSize: 64 });
  const classifier = createModel("smallcnn", { seed: 1 }) as Classifier;
  const n = 1, d = { N: n, C: 3, H: 32, W: 32 };
  // The mask the defense will draw (the same Rng stream, read once up front).
  const mask = await tidyAsync(async () => {
    const s = transformSteps(spec, new Rng(5, 2), null)[0].run({
      image: ops.zeros([n, 3, 64, 64]),
      mask: ops.zeros([n, 1, 64, 64]),
    });
    return Float64Array.from(await s.mask.data());
  });
  const ref = ([x]: Float64Array[]) => {
    const up = upsampleBilinearRef(d, 64, 64, false)([x]);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 64 * 64; p++) up[c * 4096 + p] *= 1 - mask[p];
    }
    return areaDownsample(up, [n, 3, 64, 64], 2);
  };
  const r = rng(3);
  try {
    await checkOp(
      "purifierSize preprocess",
      ([x]) =>
        preprocess({
          spec,
          modules: { classifier, purifier: null },
          variant: { transform: true, purifier: false },
          rng: new Rng(5, 2),
        }, x),
      ref,
      [input([n, 3, 32, 32], r, 0, 1)],
      { fwdTol: 1e-5 },
    );
  } finally {
    classifier.dispose();
  }
});

Deno.test("purifierSize inpainting tables: RT2 noise averages down, holes are scored at 32x32", async () => {
  const settings = {
    rt1: { missingRate: 0.25, blockSize: 4 },
    rt2: { missingRate: 0.25, blockSize: 4, sigma: 0.25 },
  };
  const n = 8;
  const purifier = new Purifier({ width: 4, dilations: [2], seed: 3, prefill: "pushpull" });
  const one = await evaluateInpainting({ settings, test, purifiers: [], seed: 5, n });
  const two = await evaluateInpainting({
    settings,
    test,
    purifiers: [{ label: "purifier", purifier }],
    seed: 5,
    n,
    scale: 2,
  });
  assert.equal(two.scale, 2);
  assert.equal(one.scale, undefined);
  const get = (r: typeof one, t: number, m: string) =>
    r.tables[t].rows.find((x) => x.method === m)!;
  // Diffusion fill of RT2 (noise kept on the known pixels): sigma 0.25 per purifier pixel is
  // about 0.125 per classifier pixel after the 2x2 mean, 6 dB less noise.
  const gain = get(two, 1, "diffusion fill").psnr - get(one, 1, "diffusion fill").psnr;
  assert.ok(gain > 3, `RT2 diffusion fill PSNR gain at 2x: ${gain.toFixed(2)} dB`);
  // The untrained purifier (push-pull prefill, zero corrections) is a classical fill too: at
  // 2x its holes are within 1.5 dB of diffusion fill's.
  const holes = get(two, 0, "purifier coarse").psnr_holes! -
    get(two, 0, "diffusion fill").psnr_holes!;
  assert.ok(Math.abs(holes) < 1.5, `RT1 coarse vs diffusion fill at 2x: ${holes.toFixed(2)} dB`);
  // The holes scored are the 32x32 holes of the same draw.
  const { x } = gatherBatch(test, Array.from({ length: n }, (_, i) => i));
  const c1 = await drawCase("rt1", settings, x, [n, 3, 32, 32], 5);
  const c2 = await drawCase("rt1", settings, x, [n, 3, 32, 32], 5, 2);
  assert.deepEqual(c2.shape, [n, 3, 64, 64]);
  assert.deepEqual([...areaDownsample(c2.mask, [n, 1, 64, 64], 2)], [...c1.mask]);
  purifier.dispose();
});

Deno.test("purifierSize training: the purifier trains at 64x64 with L1 to the upsampled clean image and CE through the downsampling", async () => {
  const spec = parseSpec({
    ...base,
    purifierSize: 64,
    purifier: { kind: "deepfill", width: 4, dilations: [2], discWidth: 4, discLayers: 3 },
    transform: [{ kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 4 }],
  });
  const purifier = new Purifier({ width: 4, dilations: [2], seed: 1 });
  const discriminator = new PatchDiscriminator({ width: 4, layers: 3, seed: 1 });
  const classifier = createModel("smallcnn", { seed: 2 }) as Classifier;
  const before = await Promise.all([...purifier.stateDict().values()].map((t) => t.data()));
  const log = await trainPurifier({
    purifier,
    discriminator,
    train,
    transform: trainingTransform(spec),
    terms: [
      { term: "gan", weight: 1, after: 0 },
      { term: "l1-fine", weight: 1, after: 0 },
      { term: "ce", weight: 0.1, after: 0 },
    ],
    epochs: 1,
    batchSize: 2,
    lr: 1e-3,
    trainLimit: 4,
    classifier,
    attack: { kind: "fgsm", norm: "linf", eps: 8 / 255, steps: 1 },
    scale: 2,
    quiet: true,
  });
  assert.equal(log.length, 2);
  for (const e of log) {
    for (const v of [e.d, e.g, e.terms.ce!, e.terms["l1-fine"]!]) assert.ok(Number.isFinite(v));
  }
  const after = await Promise.all([...purifier.stateDict().values()].map((t) => t.data()));
  assert.ok(after.some((a, i) => a.some((v, j) => v !== before[i][j])), "weights moved");
  for (const m of [purifier, discriminator, classifier]) m.dispose();
});

Deno.test("standard preset: the issue's evaluation (512 images, 20 iterations, EOT 8, AutoAttack), a widened small CNN, purifier at 64x64 on the shipped subset", async () => {
  const spec = parseSpec(resolveSpecInput({ name: "std", transform: base.transform }, "standard"));
  assert.equal(spec.classifier.arch, "smallcnn");
  assert.deepEqual(spec.classifier.widths, [32, 64, 128, 256]);
  const quick = parseSpec(resolveSpecInput({ name: "q", transform: base.transform }, "quick"));
  // Twice quick's pre-training passes, on the same recipe.
  assert.equal(spec.pretraining.epochs, 2 * quick.pretraining.epochs);
  assert.equal(spec.pretraining.lr, quick.pretraining.lr);
  assert.equal(spec.purifierSize, 64);
  assert.equal(spec.evaluation.limit, 512);
  assert.equal(spec.evaluation.eotDraws, 8);
  assert.ok(spec.evaluation.attacks.every((a) => a.steps === 20));
  assert.ok(spec.evaluation.attacks.some((a) => a.attack === "autoattack"));
  assert.equal(await defaultData("standard", "cifar10"), EMBEDDED_CIFAR10);
  assert.throws(() => resolveSpecInput({}, "medium"), /--preset: expected quick, standard, paper/);
});
