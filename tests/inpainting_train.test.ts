// The purifier trainer's per-epoch hook (where the pipeline logs inpainting metrics) and the
// inpainting PNG grid with its baseline rows. Tiny purifiers, a few CIFAR images.

import { assert, gpu } from "./helpers/check.ts";
import { PatchDiscriminator, Purifier } from "../runtime/models/mod.ts";
import { readCifar, toTensorBatch } from "../runtime/data/mod.ts";
import { Rng } from "../runtime/rng.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { inpaintingGrid, trainPurifier } from "../runtime/train/purifier.ts";
import { blurDiffusionFill, diffusionFill } from "../runtime/metrics/fill.ts";
import { purifierImages } from "../runtime/eval/inpainting.ts";
import { gridPixels } from "../runtime/io/png.ts";
import { rt2 } from "../runtime/transforms.ts";
import { atopLoss } from "../dsl/spec.ts";

await gpu();
const DATA = new URL("../data/cifar10/", import.meta.url).pathname;
const train = await readCifar(DATA, { split: "train" });
const test = await readCifar(DATA, { split: "test" });
const transform = (rng: Rng, x: Tensor) =>
  rt2(rng, x, { sigma: 0.25, missingRate: 0.25, blockSize: 4 });

async function weights(m: Purifier): Promise<number[][]> {
  return await Promise.all([...m.stateDict().values()].map(async (t) => [...await t.data()]));
}

Deno.test("trainPurifier's onEpoch runs after each epoch in eval mode and survives a resume", async () => {
  const dir = await Deno.makeTempDir();
  const mk = () => ({
    purifier: new Purifier({ width: 4, dilations: [2], seed: 1 }),
    discriminator: new PatchDiscriminator({ width: 4, layers: 3, seed: 1 }),
  });
  const common = {
    train,
    transform,
    terms: atopLoss(1, 0, 0).filter((t) => t.term !== "ce"),
    epochs: 2,
    batchSize: 2,
    lr: 1e-3,
    seed: 4,
    trainLimit: 4, // 2 steps per epoch
    quiet: true,
  };
  const calls: string[] = [];
  const hook = (m: Purifier, run: string) => (epoch: number, step: number) => {
    assert.equal(m.training, false, "the hook sees the purifier in eval mode");
    calls.push(`${run}:${epoch}@${step}`);
    return Promise.resolve({ score: 10 * epoch + step });
  };
  const plain = mk();
  await trainPurifier({ ...common, ...plain });
  const a = mk();
  await trainPurifier({
    ...common,
    ...a,
    onEpoch: hook(a.purifier, "a"),
    logPath: `${dir}/a.json`,
  });
  assert.deepEqual(calls, ["a:0@2", "a:1@4"]);
  assert.deepEqual(
    await weights(a.purifier),
    await weights(plain.purifier),
    "hook changed training",
  );
  const logA = JSON.parse(await Deno.readTextFile(`${dir}/a.json`));
  assert.deepEqual(logA.epochs, [{ score: 2, epoch: 0, step: 2 }, {
    score: 14,
    epoch: 1,
    step: 4,
  }]);
  assert.equal(logA.log.length, 4);
  // Killed one step into epoch 1, then resumed: epoch 0's entry comes from the checkpoint.
  const ckpt = `${dir}/b.safetensors`;
  const b = mk();
  await trainPurifier({
    ...common,
    ...b,
    onEpoch: hook(b.purifier, "b"),
    checkpoint: ckpt,
    stopAfterSteps: 3,
  });
  const c = mk();
  await trainPurifier({
    ...common,
    ...c,
    onEpoch: hook(c.purifier, "c"),
    checkpoint: ckpt,
    logPath: `${dir}/c.json`,
  });
  assert.deepEqual(calls.slice(2), ["b:0@2", "c:1@4"]);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/c.json`)), logA);
  for (const m of [plain, a, b, c]) {
    m.purifier.dispose();
    m.discriminator.dispose();
  }
  await Deno.remove(dir, { recursive: true });
});

/** The RGB pixels of a PNG written by runtime/io/png.ts (filter type 0 on every row). */
async function pngPixels(
  png: Uint8Array,
): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  const dv = new DataView(png.buffer, png.byteOffset);
  const width = dv.getUint32(16), height = dv.getUint32(20);
  const idatLen = dv.getUint32(33);
  const idat = png.subarray(41, 41 + idatLen);
  const stream = new Blob([idat as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    rgb.set(raw.subarray(y * (1 + 3 * width) + 1, (y + 1) * (1 + 3 * width)), y * 3 * width);
  }
  return { width, height, rgb };
}

Deno.test("inpainting grid: original, transformed, diffusion, blur + diffusion, coarse, refined", async () => {
  const purifier = new Purifier({ width: 4, dilations: [2], seed: 2 });
  const n = 4, seed = 3;
  const png = await pngPixels(await inpaintingGrid(purifier, test, transform, n, seed));
  // The same draw, rebuilt here.
  const { x } = toTensorBatch(test, [0, 1, 2, 3]);
  const t = transform(new Rng(seed, 0x9a1d), x);
  const clean = await x.data(), image = await t.image.data(), mask = await t.mask.data();
  const shape = [n, 3, 32, 32] as const;
  const out = await purifierImages(purifier, image, mask, shape);
  const want = gridPixels(
    [
      clean,
      image,
      diffusionFill(image, mask, shape),
      blurDiffusionFill(image, mask, shape),
      out.coarse,
      out.fine,
    ],
    [3, 32, 32],
    { scale: 3 },
  );
  assert.equal(png.height, (6 * 34 - 2) * 3, "six rows");
  assert.deepEqual([png.width, png.height], [want.width, want.height]);
  assert.ok(png.rgb.every((v, i) => v === want.rgb[i]), "grid pixels");
  for (const v of [x, t.image, t.mask]) v.dispose();
  purifier.dispose();
});

Deno.test("generator weight average (ema): the purifier ends with decay-weighted past weights, resumes exactly", async () => {
  const dir = await Deno.makeTempDir();
  const d = 0.6;
  const mk = () => ({
    purifier: new Purifier({ width: 4, dilations: [2], seed: 2 }),
    discriminator: new PatchDiscriminator({ width: 4, layers: 3, seed: 2 }),
  });
  const common = {
    train,
    transform,
    terms: atopLoss(1, 0, 0).filter((t) => t.term !== "ce"),
    epochs: 1,
    batchSize: 2,
    lr: 1e-2,
    seed: 6,
    trainLimit: 4, // 2 steps
    quiet: true,
  };
  // The raw trajectory w0 (init), w1, w2: training itself does not depend on the average.
  const init = mk();
  const w0 = await weights(init.purifier);
  const one = mk();
  await trainPurifier({ ...common, ...one, stopAfterSteps: 1 });
  const w1 = await weights(one.purifier);
  const two = mk();
  await trainPurifier({ ...common, ...two });
  const w2 = await weights(two.purifier);
  const avg = mk();
  let seen: number[][] = [];
  await trainPurifier({
    ...common,
    ...avg,
    ema: d,
    onEpoch: async () => {
      seen = await weights(avg.purifier);
      return {};
    },
  });
  const got = await weights(avg.purifier);
  let moved = 0;
  got.forEach((t, i) =>
    t.forEach((v, j) => {
      const want = d * d * w0[i][j] + d * (1 - d) * w1[i][j] + (1 - d) * w2[i][j];
      assert.ok(Math.abs(v - want) <= 1e-6 + 1e-5 * Math.abs(want), `${i}[${j}]: ${v} vs ${want}`);
      if (w2[i][j] !== w0[i][j]) moved++;
    })
  );
  assert.ok(moved > 0, "training moved the weights");
  assert.deepEqual(seen, got, "onEpoch sees the average");
  // Killed after one step and resumed: the average comes back from the checkpoint.
  const ckpt = `${dir}/ema.safetensors`;
  const a = mk();
  await trainPurifier({ ...common, ...a, ema: d, checkpoint: ckpt, stopAfterSteps: 1 });
  const b = mk();
  await trainPurifier({ ...common, ...b, ema: d, checkpoint: ckpt });
  assert.deepEqual(await weights(b.purifier), got);
  for (const m of [init, one, two, avg, a, b]) {
    m.purifier.dispose();
    m.discriminator.dispose();
  }
  await Deno.remove(dir, { recursive: true });
});
