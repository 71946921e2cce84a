import { assert, gpu } from "./helpers/check.ts";
import { PatchDiscriminator, Purifier } from "../runtime/models/mod.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { backward, grad } from "../runtime/autograd.ts";
import { Adam } from "../runtime/optim.ts";
import { Rng } from "../runtime/rng.ts";
import { blockMask, rt1 } from "../runtime/transforms.ts";
import { upsampleBilinearRef } from "./ref/sample.ts";

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

Deno.test("push-pull fill: known pixels exact, constants recovered, holes between neighbours", async () => {
  const { pushPullFill } = await import("../runtime/models/prefill.ts");
  await tidyAsync(async () => {
    const h = 8, w = 8;
    const mask = new Float32Array(h * w);
    for (const [y, x] of [[0, 0], [3, 3], [3, 4], [4, 3], [4, 4], [7, 7]]) mask[y * w + x] = 1;
    const m = Tensor.fromData(mask, [1, 1, h, w]);
    // A constant image stays constant in the holes, with or without the smoothing sweeps.
    for (const sweeps of [0, 8]) {
      const c = await pushPullFill(
        Tensor.fromData(new Array(h * w).fill(0.3), [1, 1, h, w]),
        m,
        sweeps,
      ).data();
      assert.ok(c.every((v) => Math.abs(v - 0.3) < 1e-6), `constant: ${Math.min(...c)}`);
    }
    // A ramp: known pixels come back exactly, holes land within their neighbours' range.
    const ramp = Array.from({ length: h * w }, (_, i) => (i % w) / (w - 1));
    const f = await pushPullFill(
      Tensor.fromData(ramp.map((v, i) => (mask[i] ? 0 : v)), [1, 1, h, w]),
      m,
      8,
    ).data();
    for (let i = 0; i < h * w; i++) {
      if (!mask[i]) assert.ok(Math.abs(f[i] - ramp[i]) < 1e-6, `known pixel ${i} changed`);
      else assert.ok(f[i] >= -1e-6 && f[i] <= 1 + 1e-6, `hole ${i}: ${f[i]}`);
    }
    // The centre holes (columns 3 and 4 of a ramp) are filled near their column values.
    assert.ok(Math.abs(f[3 * w + 3] - ramp[3 * w + 3]) < 0.15, `${f[3 * w + 3]}`);
  });
});

Deno.test("purifier with push-pull prefill starts as the classical fill; gradients reach x", async () => {
  await tidyAsync(async () => {
    const { pushPullFill } = await import("../runtime/models/prefill.ts");
    const p = new Purifier({ width: 4, dilations: [2], seed: 3, prefill: "pushpull" });
    const r = new Rng(8);
    const x = r.uniform([2, 3, 16, 16]);
    const mask = ops.floor(ops.add(r.uniform([2, 1, 16, 16]), 0.3)); // ~30% holes
    const out = p.run(x, mask);
    const xin = ops.mul(ops.affine(x, 2, -1), ops.sub(1, mask));
    const { PREFILL_SWEEPS } = await import("../runtime/models/purifier.ts");
    const want = await ops.affine(pushPullFill(xin, mask, PREFILL_SWEEPS), 0.5, 0.5).data();
    const got = await out.fine.data();
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `at ${i}`);
    const xs = ops.detach(x);
    xs.requiresGrad = true;
    const [g] = grad(ops.sum(p.run(xs, mask).fine), [xs]);
    assert.ok((await g.data()).some((v) => v !== 0), "no gradient to the input");
    p.dispose();
  });
});

/** Push-pull with `sweeps` at full resolution and `levelSweeps` at every coarser pull level,
 * in float64 from the description in runtime/models/prefill.ts (one channel, one image). */
function pushPullRef(x: number[], hole: number[], n: number, sweeps: number, levelSweeps: number) {
  const sums: number[][] = [x.map((v, i) => v * (1 - hole[i]))], counts = [hole.map((m) => 1 - m)];
  const sizes = [n];
  while (sizes[sizes.length - 1] > 1) {
    const s = sizes[sizes.length - 1], h = s / 2;
    const pool = (a: number[]) =>
      Array.from({ length: h * h }, (_, i) => {
        const y = 2 * Math.floor(i / h), c = 2 * (i % h);
        return a[y * s + c] + a[y * s + c + 1] + a[(y + 1) * s + c] + a[(y + 1) * s + c + 1];
      });
    sums.push(pool(sums[sums.length - 1]));
    counts.push(pool(counts[counts.length - 1]));
    sizes.push(h);
  }
  const diffuse = (f: number[], known: number[], s: number, k: number) => {
    let cur = f;
    for (let it = 0; it < k; it++) {
      cur = cur.map((v, p) => {
        if (known[p] === 1) return v;
        const y = Math.floor(p / s), c = p % s;
        let t = 0, m = 0;
        for (const [dy, dx] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
          const yy = y + dy, xx = c + dx;
          if (yy < 0 || yy >= s || xx < 0 || xx >= s) continue;
          t += cur[yy * s + xx];
          m++;
        }
        return known[p] * v + (1 - known[p]) * t / m;
      });
    }
    return cur;
  };
  const L = sizes.length - 1;
  let fill = sums[L].map((v, i) => v / Math.max(counts[L][i], 1e-6));
  for (let l = L - 1; l >= 0; l--) {
    const s = sizes[l];
    const up = upsampleBilinearRef({ N: 1, C: 1, H: s / 2, W: s / 2 }, s, s, false)([
      Float64Array.from(fill),
    ]);
    const alpha = counts[l].map((c) => Math.min(Math.max(c, 0), 1));
    fill = alpha.map((a, i) => a * sums[l][i] / Math.max(counts[l][i], 1e-6) + (1 - a) * up[i]);
    if (l > 0 && levelSweeps > 0) fill = diffuse(fill, alpha, s, levelSweeps);
  }
  return sweeps > 0 ? diffuse(fill, counts[0], n, sweeps) : fill;
}

Deno.test("push-pull fill with and without level smoothing matches a float64 reference", async () => {
  const { pushPullFill } = await import("../runtime/models/prefill.ts");
  const n = 16, r = new Rng(21);
  await tidyAsync(async () => {
    const x = await r.uniform([1, 1, n, n]).data();
    // Pixel holes and 4x4 block holes: the coarse levels have unknown pixels to smooth.
    const hole = await ops.maximum(
      ops.floor(ops.add(r.uniform([1, 1, n, n]), 0.2)),
      blockMask(r, 1, n, n, 4, 0.4),
    ).data();
    for (const [sweeps, levels] of [[0, 0], [8, 0], [3, 8]]) {
      const got = await pushPullFill(
        Tensor.fromData(x, [1, 1, n, n]),
        Tensor.fromData(hole, [1, 1, n, n]),
        sweeps,
        levels,
      ).data();
      const want = pushPullRef([...x], [...hole], n, sweeps, levels);
      got.forEach((v, i) =>
        assert.ok(
          Math.abs(v - want[i]) < 1e-5,
          `sweeps ${sweeps}/${levels} at ${i}: ${v} vs ${want[i]}`,
        )
      );
    }
  });
});

Deno.test("purifier with multigrid prefill starts as push-pull with level sweeps", async () => {
  await tidyAsync(async () => {
    const { pushPullFill } = await import("../runtime/models/prefill.ts");
    const { PREFILL_SWEEPS, PREFILL_LEVEL_SWEEPS } = await import("../runtime/models/purifier.ts");
    const p = new Purifier({ width: 4, dilations: [2], seed: 3, prefill: "multigrid" });
    const r = new Rng(9);
    const x = r.uniform([2, 3, 16, 16]);
    const mask = blockMask(r, 2, 16, 16, 4, 0.4);
    const xin = ops.mul(ops.affine(x, 2, -1), ops.sub(1, mask));
    const fill = pushPullFill(xin, mask, PREFILL_SWEEPS, PREFILL_LEVEL_SWEEPS);
    const want = await ops.affine(fill, 0.5, 0.5).data();
    const plain = await ops.affine(pushPullFill(xin, mask, PREFILL_SWEEPS), 0.5, 0.5).data();
    const got = await p.run(x, mask).fine.data();
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `at ${i}`);
    assert.ok(want.some((v, i) => Math.abs(v - plain[i]) > 1e-3), "level sweeps change the fill");
    p.dispose();
  });
});

Deno.test("purifier with harmonic prefill starts as the SOR-solved push-pull fill, refined = coarse", async () => {
  await tidyAsync(async () => {
    const { pushPullFill } = await import("../runtime/models/prefill.ts");
    const { PREFILL_SOR_ITERATIONS, PREFILL_SOR_OMEGA } = await import(
      "../runtime/models/purifier.ts"
    );
    const p = new Purifier({ width: 4, dilations: [2], seed: 3, prefill: "harmonic" });
    const r = new Rng(10);
    const x = r.uniform([2, 3, 16, 16]);
    const mask = blockMask(r, 2, 16, 16, 4, 0.4);
    const xin = ops.mul(ops.affine(x, 2, -1), ops.sub(1, mask));
    const fill = ops.harmonicFill(pushPullFill(xin, mask), mask, {
      iterations: PREFILL_SOR_ITERATIONS,
      omega: PREFILL_SOR_OMEGA,
    });
    // Over-relaxation can overshoot [-1, 1]; the coarse stage clamps its output.
    const want = await ops.affine(ops.clamp(fill, -1, 1), 0.5, 0.5).data();
    const plain = await ops.affine(pushPullFill(xin, mask), 0.5, 0.5).data();
    const out = p.run(x, mask);
    const [coarse, fine] = [await out.coarse.data(), await out.fine.data()];
    for (let i = 0; i < fine.length; i++) {
      assert.ok(Math.abs(coarse[i] - want[i]) < 1e-5, `coarse at ${i}`);
      assert.equal(fine[i], coarse[i], `fine at ${i}`);
    }
    assert.ok(want.some((v, i) => Math.abs(v - plain[i]) > 1e-3), "SOR changes the fill");
    p.dispose();
  });
});

Deno.test("gatedGain scales the feature weights only, and keeps gradients at one scale through a stage", async () => {
  const norms = async (gain: number) =>
    await tidyAsync(async () => {
      const p = new Purifier({ width: 4, dilations: [2, 4], seed: 5, gatedGain: gain });
      const r = new Rng(6);
      const x = r.uniform([2, 3, 16, 16]);
      const mask = blockMask(r, 2, 16, 16, 4, 0.25);
      // Zeroed holes: the coarse stage is not residual, so gradients reach it at once.
      backward(ops.l1Loss(p.run(x, mask).coarse, x));
      const grad = async (name: string) => {
        const t = new Map(p.namedParameters()).get(name)!;
        return Math.sqrt(await ops.sum(ops.mul(t.grad!, t.grad!)).item());
      };
      const first = await grad("coarse.enc0.conv.weight");
      const last = await grad("coarse.dec3.conv.weight");
      const sd = p.stateDict();
      const w = {
        conv: await sd.get("coarse.enc3.conv.weight")!.data(),
        gate: await sd.get("coarse.enc3.mask_conv.weight")!.data(),
      };
      p.dispose();
      return { ratio: last / first, w };
    });
  const one = await norms(1), four = await norms(4);
  four.w.conv.forEach((v, i) => assert.equal(v, Math.fround(4 * one.w.conv[i])));
  assert.deepEqual(four.w.gate, one.w.gate);
  // PyTorch's default init shrinks the gradient ~1000x over the 11 gated layers of this stage.
  assert.ok(one.ratio > 1000, `gain 1: last/first layer gradient ${one.ratio}`);
  assert.ok(four.ratio < 30, `gain 4: last/first layer gradient ${four.ratio}`);
});

Deno.test("detachCoarse: in training the refined output's loss reaches the refine stage only; in eval mode, and without it, the coarse stage too", async () => {
  const norms = async (detach: boolean, training: boolean) =>
    await tidyAsync(async () => {
      const p = new Purifier({ width: 4, dilations: [2], seed: 3, detachCoarse: detach });
      if (!training) p.eval();
      const r = new Rng(4);
      const x = r.uniform([2, 3, 16, 16]);
      const mask = blockMask(r, 2, 16, 16, 4, 0.25);
      const named = new Map(p.namedParameters());
      const out = p.run(x, mask);
      const fine = await out.fine.data();
      const gs = grad(ops.l1Loss(out.fine, x), [
        named.get("coarse.enc0.conv.weight")!,
        named.get("refine.out.weight")!,
      ]);
      const n = await Promise.all(gs.map((g) => ops.sum(ops.mul(g, g)).item()));
      p.dispose();
      return { fine, coarse: n[0], refine: n[1] };
    });
  const joint = await norms(false, true);
  const detached = await norms(true, true);
  const evalMode = await norms(true, false);
  // The forward is the same; only the gradient path differs.
  assert.deepEqual(detached.fine, joint.fine);
  assert.deepEqual(evalMode.fine, joint.fine);
  assert.equal(detached.coarse, 0);
  assert.ok(
    joint.coarse > 0 && evalMode.coarse > 0,
    `coarse grads ${joint.coarse}, ${evalMode.coarse}`,
  );
  assert.equal(evalMode.coarse, joint.coarse);
  for (const r of [joint, detached, evalMode]) assert.ok(r.refine > 0);
});
