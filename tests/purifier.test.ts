import { assert, gpu } from "./helpers/check.ts";
import { PatchDiscriminator, Purifier } from "../runtime/models/mod.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { backward } from "../runtime/autograd.ts";
import { Adam } from "../runtime/optim.ts";
import { Rng } from "../runtime/rng.ts";
import { rt1 } from "../dsl/transforms.ts";

await gpu();

function images(n: number): Tensor {
  // Smooth structured images (gradients and stripes), values in (0,1).
  const v = new Float32Array(n * 3 * 32 * 32);
  for (let i = 0; i < v.length; i++) {
    const x = i % 32,
      y = Math.floor(i / 32) % 32,
      c = Math.floor(i / 1024) % 3,
      e = Math.floor(i / 3072);
    v[i] = 0.5 + 0.4 * Math.sin((x + 2 * y) * 0.2 + c + e);
  }
  return Tensor.fromData(v, [n, 3, 32, 32]);
}

Deno.test("purifier: shapes, [0,1] outputs, critic scores patches; size errors", async () => {
  const g = new Purifier({ width: 4, dilations: [2], seed: 1 });
  const d = new PatchDiscriminator({ width: 4, layers: 3, seed: 1 });
  try {
    await tidyAsync(async () => {
      const x = images(2);
      const { image, mask } = rt1(new Rng(3), x, { missingRate: 0.25, blockSize: 4 });
      const out = g.run(image, mask);
      assert.deepEqual(out.coarse.shape, [2, 3, 32, 32]);
      assert.deepEqual(out.fine.shape, [2, 3, 32, 32]);
      const f = await out.fine.data();
      assert.ok(f.every((v) => v >= 0 && v <= 1), "outputs leave [0,1]");
      const s = d.score(out.fine, mask);
      assert.deepEqual(s.shape, [2, 4 * 4 * 4 * 4]);
      assert.throws(
        () => g.run(ops.zeros([1, 3, 30, 30]), ops.zeros([1, 1, 30, 30])),
        /divisible by 4/,
      );
      assert.ok(
        g.numParameters() > 0 &&
          [...g.stateDict().keys()].some((k) => k.endsWith("mask_conv.weight")),
      );
    });
  } finally {
    g.dispose();
    d.dispose();
  }
});

Deno.test("purifier learns to inpaint a fixed batch (L1 to the clean image falls)", async () => {
  const g = new Purifier({ width: 4, dilations: [2], seed: 2 });
  const opt = new Adam(g.parameters(), { lr: 5e-3 });
  try {
    await tidyAsync(async () => {
      const x = images(4);
      const { image, mask } = rt1(new Rng(4), x, { missingRate: 0.25, blockSize: 4 });
      const losses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const l = await tidyAsync(async () => {
          const o = g.run(image, mask);
          const loss = ops.add(ops.l1Loss(o.coarse, x), ops.l1Loss(o.fine, x));
          backward(loss);
          opt.step();
          opt.zeroGrad();
          return await loss.item();
        });
        losses.push(l);
      }
      assert.ok(
        losses.at(-1)! < 0.7 * losses[0],
        `L1 did not fall enough: ${losses.map((v) => v.toFixed(3))}`,
      );
    });
  } finally {
    opt.dispose();
    g.dispose();
  }
});
