import { assert, gpu } from "./helpers/check.ts";
import { smallTraining } from "./helpers/small_training.ts";
import { createModel, PatchDiscriminator, Purifier } from "../runtime/models/mod.ts";
import { engine } from "../runtime/engine.ts";
import { liveTensors, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { backward, grad } from "../runtime/autograd.ts";
import { Rng } from "../runtime/rng.ts";
import { rt2 } from "../runtime/transforms.ts";

await gpu();

function batch(seed: number, n: number) {
  const r = new Rng(seed);
  return { x: r.uniform([n, 3, 32, 32]), y: ops.floor(r.uniform([n], 0, 10)) };
}

Deno.test("1,000 training steps keep GPU memory flat (live buffers, bytes, tensors)", async () => {
  const { step, dispose } = smallTraining();
  // Warm up the pool and the optimizer state; resident memory is measured in a process of its
  // own (the next test).
  for (let i = 0; i < 100; i++) await step();
  const before = { ...engine().pool.stats(), tensors: liveTensors() };
  let last = 0;
  for (let i = 0; i < 1000; i++) last = await step();
  const after = { ...engine().pool.stats(), tensors: liveTensors() };
  assert.ok(Number.isFinite(last));
  assert.equal(after.liveBuffers, before.liveBuffers, "live buffers grew");
  assert.equal(after.liveBytes, before.liveBytes, "live bytes grew");
  assert.equal(after.tensors, before.tensors, "live tensors grew");
  assert.ok(
    after.allocations - before.allocations <= 4,
    `pool kept allocating: ${after.allocations - before.allocations}`,
  );
  dispose();
});

Deno.test("training steps keep resident memory flat (measured in a process of its own)", async () => {
  // Resident memory (0.1 MB a step was reported; bind groups left to the collector once cost
  // ~0.1 MB a step). Allocators grow in jumps of tens of MB: a leak grows in every window, a jump
  // in one, so the quietest of three windows of 1,000 steps must stay under 15 MB.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./helpers/rss_steps.ts", import.meta.url).pathname, "3", "1000"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));
  const { growth } = JSON.parse(text.trim().split("\n").at(-1)!) as { growth: number[] };
  assert.ok(
    Math.min(...growth) < 15 * 1048576,
    `RSS grew ${growth.map((g) => (g / 1048576).toFixed(1)).join(", ")} MB over three ` +
      `windows of 1,000 steps`,
  );
});

async function runOnce() {
  return await tidyAsync(async () => {
    const clf = createModel("resnet18", { seed: 7 });
    const g = new Purifier({ width: 4, dilations: [2], seed: 7 });
    const d = new PatchDiscriminator({ width: 4, layers: 3, seed: 7 });
    const { x, y } = batch(3, 2);
    x.requiresGrad = true;
    const { image, mask } = rt2(new Rng(11), x, { sigma: 0.25, missingRate: 0.25, blockSize: 4 });
    const out = g.run(image, mask);
    const loss = ops.add(
      ops.crossEntropy(clf.forward(out.fine), y),
      ops.hingeGanLossG(d.score(out.fine, mask)),
    );
    const [gx] = grad(loss, [x]);
    backward(loss);
    const gw = clf.parameters()[0].grad!;
    const res = {
      logits: await clf.forward(out.fine).data(),
      gx: await gx.data(),
      gw: await gw.data(),
      bn: await clf.namedBuffers()[0][1].data(),
    };
    clf.dispose();
    g.dispose();
    d.dispose();
    return res;
  });
}

Deno.test("same seed, same adapter: bit-identical outputs and gradients (ResNet-18 + purifier + critic)", async () => {
  const a = await runOnce(), b = await runOnce();
  for (const k of ["logits", "gx", "gw", "bn"] as const) {
    assert.ok(a[k].some((v) => v !== 0), `${k} is all zeros`);
    assert.deepEqual(b[k], a[k], `${k} differs between two runs`);
  }
});

const MB = 1024 * 1024;

Deno.test("1,000 attack iterations keep memory flat: pool bounded, RSS flat (Square, shrinking rows)", async () => {
  const { square } = await import("../runtime/attacks/square.ts");
  const { classifierTarget } = await import("../runtime/attacks/target.ts");
  const m = createModel("smallcnn", { seed: 2, widths: [4, 4, 8, 8] });
  const target = classifierTarget(m, { name: "smallcnn" });
  const x = new Rng(21).uniform([8, 3, 32, 32]);
  // Labels the model mostly gets right, so examples are fooled one by one and the rows that
  // are still attacked shrink (each count a new buffer size).
  const p = await ops.argmax(m.forward(x), 1).data();
  const labels = Array.from(p, (v) => v);
  const run = async () => {
    const r = await square({ target, x, labels }, { eps: 0.05, queries: 500, seed: 3 });
    r.xAdv.dispose();
    await engine().sync();
    return { ...engine().pool.stats(), rss: Deno.memoryUsage().rss };
  };
  const first = await run(); // 500 iterations: the pool reaches its working set
  const second = await run(); // 500 more
  assert.equal(second.liveBytes, first.liveBytes, "live GPU bytes grew");
  assert.ok(second.freeBytes <= second.freeCapBytes, "free list above its cap");
  assert.ok(
    second.rss - first.rss < 64 * MB,
    `RSS grew ${((second.rss - first.rss) / MB).toFixed(1)} MB over 500 attack iterations`,
  );
  x.dispose();
  m.dispose();
});

Deno.test("the whole classifier trainer, evaluation included, keeps memory flat run to run", async () => {
  const { trainClassifier } = await import("../runtime/train/classifier.ts");
  const { readCifar } = await import("../runtime/data/mod.ts");
  const data = new URL("../data/cifar10/", import.meta.url).pathname;
  const train = await readCifar(data, { split: "train" });
  const test = await readCifar(data, { split: "test" });
  const run = async () => {
    const model = createModel("smallcnn", { seed: 4, widths: [4, 4, 8, 8] });
    const log = await trainClassifier({
      model: model as never,
      train,
      test,
      epochs: 3,
      batchSize: 32,
      lr: 0.05,
      trainLimit: 128,
      testLimit: 128,
      quiet: true,
    });
    model.dispose();
    await engine().sync();
    return { log, ...engine().pool.stats(), tensors: liveTensors(), rss: Deno.memoryUsage().rss };
  };
  const first = await run();
  const second = await run();
  assert.equal(first.log.length, 3);
  assert.ok(first.log.every((e) => e.testAccuracy !== null), "each epoch evaluates");
  assert.equal(second.liveBytes, first.liveBytes, "live GPU bytes grew");
  assert.equal(second.tensors, first.tensors, "live tensors grew");
  assert.ok(
    second.rss - first.rss < 64 * MB,
    `RSS grew ${((second.rss - first.rss) / MB).toFixed(1)} MB over a second training run`,
  );
});

Deno.test("no attack leaks tensors: every attack twice on a small CNN leaves the count unchanged", async () => {
  const { runAttack, resolveParams } = await import("../runtime/eval/attacks.ts");
  const { classifierTarget } = await import("../runtime/attacks/target.ts");
  const m = createModel("smallcnn", { seed: 5, widths: [4, 4, 8, 8] });
  const target = classifierTarget(m, { name: "smallcnn" });
  const x = new Rng(22).uniform([3, 3, 32, 32]);
  const p = await ops.argmax(m.forward(x), 1).data();
  const labels = Array.from(p, (v) => v);
  const names = [
    "fgsm",
    "pgd",
    "apgd-ce",
    "apgd-t",
    "fab-t",
    "square",
    "stadv",
    "autoattack",
    "autoattack-plus",
  ] as const;
  for (const name of names) {
    const params = resolveParams(name, { eps: 0.03, steps: 2, queries: 4, seed: 1 });
    const once = async () => {
      const r = await runAttack(name, params, { target, x, labels });
      r.xAdv.dispose();
      await engine().sync();
      return liveTensors();
    };
    // The first two calls fill the packed-weight cache of the frozen model (ops/conv.ts).
    await once();
    const a = await once();
    const b = await once();
    assert.equal(b, a, `${name} leaks ${b - a} tensors per call`);
  }
  x.dispose();
  m.dispose();
});
