import { assert, gpu } from "./helpers/check.ts";
import { createModel, PatchDiscriminator, Purifier } from "../runtime/models/mod.ts";
import { engine } from "../runtime/engine.ts";
import { liveTensors, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { backward, grad } from "../runtime/autograd.ts";
import { SGD } from "../runtime/optim.ts";
import { Rng } from "../runtime/rng.ts";
import { rt2 } from "../dsl/transforms.ts";

await gpu();

function batch(seed: number, n: number) {
  const r = new Rng(seed);
  return { x: r.uniform([n, 3, 32, 32]), y: ops.floor(r.uniform([n], 0, 10)) };
}

Deno.test("1,000 training steps keep GPU memory flat (live buffers, bytes, tensors)", async () => {
  const m = createModel("smallcnn", { seed: 1, widths: [4, 4, 8, 8] } as never);
  const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const { x, y } = batch(1, 4);
  const step = () =>
    tidyAsync(async () => {
      const loss = ops.crossEntropy(m.forward(x), y);
      backward(loss);
      opt.step();
      opt.zeroGrad();
      return await loss.item();
    });
  for (let i = 0; i < 10; i++) await step(); // warm up the pool and the optimizer state
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
  opt.dispose();
  x.dispose();
  y.dispose();
  m.dispose();
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
