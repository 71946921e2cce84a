import { assert, gpu } from "./helpers/check.ts";
import { createModel, PatchDiscriminator, Purifier, type SmallCnn } from "../runtime/models/mod.ts";
import { trainClassifier } from "../runtime/train/classifier.ts";
import { trainPurifier } from "../runtime/train/purifier.ts";
import { readCifar } from "../runtime/data/mod.ts";
import { rt2 } from "../runtime/transforms.ts";
import { atopLoss } from "../dsl/spec.ts";

await gpu();
const DATA = new URL("../data/cifar10/", import.meta.url).pathname;
const train = await readCifar(DATA, { split: "train" });

async function weights(m: { stateDict(): Map<string, { data(): Promise<Float32Array> }> }) {
  const out: Record<string, number[]> = {};
  for (const [k, t] of m.stateDict()) out[k] = [...await t.data()];
  return out;
}

function tiny(): SmallCnn {
  return createModel("smallcnn", { seed: 5, widths: [4, 8, 8, 8] }) as SmallCnn;
}

Deno.test("classifier training killed mid-epoch and resumed equals the straight run", async () => {
  const dir = await Deno.makeTempDir();
  const common = {
    train,
    epochs: 2,
    batchSize: 16,
    lr: 0.05,
    seed: 3,
    trainLimit: 96,
    quiet: true,
  };
  const a = tiny();
  const straight = await trainClassifier({ ...common, model: a });
  const b = tiny();
  const ckpt = `${dir}/ckpt.safetensors`;
  // Killed after 4 steps (mid-epoch 0), then after 5 more (mid-epoch 1), then finished.
  await trainClassifier({ ...common, model: b, checkpoint: ckpt, stopAfterSteps: 4 });
  b.dispose();
  const c = tiny();
  await trainClassifier({ ...common, model: c, checkpoint: ckpt, stopAfterSteps: 5 });
  c.dispose();
  const d = tiny();
  const resumed = await trainClassifier({ ...common, model: d, checkpoint: ckpt });
  assert.deepEqual(await weights(d), await weights(a), "weights differ after resume");
  assert.deepEqual(resumed.map((h) => h.trainLoss), straight.map((h) => h.trainLoss));
  a.dispose();
  d.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("purifier pre-training and AToP fine-tuning run, resume exactly, and log every term", async () => {
  const dir = await Deno.makeTempDir();
  const clf = tiny();
  const mk = () => ({
    g: new Purifier({ width: 4, dilations: [2], seed: 1 }),
    d: new PatchDiscriminator({ width: 4, layers: 3, seed: 1 }),
  });
  const transform = (rng: Parameters<typeof rt2>[0], x: Parameters<typeof rt2>[1]) =>
    rt2(rng, x, { sigma: 0.25, missingRate: 0.25, blockSize: 4 });
  const common = {
    train,
    transform,
    terms: atopLoss(1, 0.1, 1),
    epochs: 1,
    batchSize: 4,
    lr: 1e-3,
    classifier: clf,
    attack: { kind: "fgsm" as const, norm: "linf" as const, eps: 8 / 255, steps: 1 },
    seed: 2,
    trainLimit: 12,
    quiet: true,
  };
  const a = mk();
  const logA = await trainPurifier({ ...common, purifier: a.g, discriminator: a.d });
  assert.equal(logA.length, 3);
  assert.ok(
    logA[0].terms.ce === undefined && logA[1].terms.ce !== undefined,
    "CE must switch on after the warm-up",
  );
  for (const e of logA) {
    for (const v of [e.d, e.g, ...Object.values(e.terms)]) assert.ok(Number.isFinite(v));
  }
  const b = mk();
  await trainPurifier({
    ...common,
    purifier: b.g,
    discriminator: b.d,
    checkpoint: `${dir}/p.safetensors`,
    stopAfterSteps: 2,
  });
  const c = mk();
  const logC = await trainPurifier({
    ...common,
    purifier: c.g,
    discriminator: c.d,
    checkpoint: `${dir}/p.safetensors`,
  });
  assert.deepEqual(await weights(c.g), await weights(a.g));
  assert.deepEqual(logC, logA);
  for (const m of [a, b, c]) {
    m.g.dispose();
    m.d.dispose();
  }
  clf.dispose();
  await Deno.remove(dir, { recursive: true });
});
