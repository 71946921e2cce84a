// Elementwise fusion (runtime/graph/fuse.ts): fused kernels equal one-kernel-per-op execution,
// unread values never run, in-place writes see the values eager execution would, pending conv
// inputs packed directly equal packing the computed tensor, and the multi-tensor optimizer
// equals one dispatch per parameter.

import { assert, gpu, rng } from "./helpers/check.ts";
import { engine } from "../runtime/engine.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import { grad } from "../runtime/autograd.ts";
import * as ops from "../runtime/ops/mod.ts";
import { fusionStats, setFusion, setVectorize } from "../runtime/graph/fuse.ts";
import { createModel } from "../runtime/models/mod.ts";
import { Adam, SGD } from "../runtime/optim.ts";
import { partition, setGroupCap } from "../runtime/optim_kernel.ts";

await gpu();

function rand(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.fromData(Array.from({ length: n }, () => lo + (hi - lo) * r()), shape);
}

/** Max |a - b| / max(1, |b|) over two arrays. */
function maxRel(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return m;
}

async function step(fused: boolean) {
  const prev = setFusion(fused);
  try {
    const eng = engine();
    await eng.sync();
    const d0 = eng.counters.dispatches;
    const model = createModel("smallcnn", { seed: 3 });
    model.train();
    const x = rand([4, 3, 32, 32], 1, 0, 1);
    x.requiresGrad = true;
    const y = Tensor.fromData([0, 3, 5, 9], [4]);
    const out = tidy(() => {
      const logits = model.forward(x);
      const loss = ops.crossEntropy(logits, y);
      const gx = grad(loss, [x])[0];
      return { logits: ops.detach(logits), gx };
    });
    const values = { logits: await out.logits.data(), gx: await out.gx.data() };
    const dispatches = eng.counters.dispatches - d0;
    for (const t of [x, y, out.logits, out.gx]) t.dispose();
    model.dispose();
    return { values, dispatches };
  } finally {
    setFusion(prev);
  }
}

Deno.test("fused execution matches one kernel per op, with fewer dispatches, run to run exact", async () => {
  const eager = await step(false);
  const fused = await step(true);
  const again = await step(true);
  if (engine().adapter.isFallbackAdapter) {
    // The CPU adapter evaluates the same f32 operations in the same order: identical bits.
    assert.deepEqual(fused.values.logits, eager.values.logits);
    assert.deepEqual(fused.values.gx, eager.values.gx);
  } else {
    // A GPU compiler may contract a*b+c into one fma inside a fused kernel.
    assert.ok(maxRel(fused.values.logits, eager.values.logits) < 1e-5);
    assert.ok(maxRel(fused.values.gx, eager.values.gx) < 1e-4);
  }
  assert.deepEqual(again.values.logits, fused.values.logits, "fused run to run: bit-identical");
  assert.deepEqual(again.values.gx, fused.values.gx);
  assert.ok(
    fused.dispatches < eager.dispatches,
    `fused ${fused.dispatches} dispatches vs eager ${eager.dispatches}`,
  );
});

Deno.test("a chain is one kernel; an unread value never runs", async () => {
  const eng = engine();
  const x = rand([3, 5, 7], 2);
  const b = rand([5, 1], 3);
  await eng.sync();
  const d0 = eng.counters.dispatches;
  const s0 = fusionStats();
  // relu((x * 2 + b) - x^2), broadcasting b, then clamped: 6 ops.
  const y = tidy(() =>
    ops.clamp(ops.relu(ops.sub(ops.add(ops.mul(x, 2), b), ops.square(x))), 0, 0.5)
  );
  const unread = tidy(() => ops.exp(ops.mul(x, 3)));
  assert.equal(eng.counters.dispatches - d0, 0, "nothing runs before a read");
  const got = await y.data();
  assert.equal(eng.counters.dispatches - d0, 1, "one kernel for the chain");
  unread.dispose();
  assert.equal(eng.counters.dispatches - d0, 1, "the disposed value never ran");
  assert.ok(fusionStats().dropped - s0.dropped >= 2);
  const xs = await x.data(), bs = await b.data();
  for (let i = 0; i < 3 * 5 * 7; i++) {
    const c = Math.floor(i / 7) % 5;
    const want = Math.min(0.5, Math.max(0, xs[i] * 2 + bs[c] - xs[i] * xs[i]));
    assert.ok(Math.abs(got[i] - want) < 1e-6, `element ${i}: ${got[i]} vs ${want}`);
  }
  for (const t of [x, b, y]) t.dispose();
});

Deno.test("in-place writes: pending readers see the values from before the write", async () => {
  const w = rand([64], 4);
  const before = await w.data();
  const pending = ops.mul(w, 2); // reads w, not computed yet
  // An optimizer step writes w in place.
  w.requiresGrad = true;
  w.grad = Tensor.fromData(new Float32Array(64).fill(1), [64]);
  const opt = new SGD([w], { lr: 0.5 });
  opt.step();
  const after = await w.data();
  const got = await pending.data();
  for (let i = 0; i < 64; i++) {
    assert.equal(got[i], before[i] * 2, `element ${i} read the old w`);
    assert.ok(Math.abs(after[i] - (before[i] - 0.5)) < 1e-6);
  }
  // An upload into the buffer the same way.
  const p2 = ops.add(w, 1);
  engine().upload(w.buffer, new Float32Array(64).fill(7));
  const g2 = await p2.data();
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(g2[i] - (after[i] + 1)) < 1e-6);
  opt.zeroGrad();
  for (const t of [w, pending, p2]) t.dispose();
});

Deno.test("a pending conv input packed directly equals packing its computed value", async () => {
  // 9x9 images (81 pixels: one value per thread) and 8x8 (vec4 lanes); per-channel operands
  // (the 2-D packed kernel), per-row and per-image-column ones (the generic packed kernel: not
  // linear along the pixel axis).
  for (
    const [hw, sShape] of [
      [9, [1, 6, 1, 1]],
      [9, [1, 1, 9, 1]],
      [9, [2, 1, 1, 9]],
      [8, [1, 6, 1, 1]],
      [8, [2, 6, 1, 1]],
      [8, [1, 1, 8, 1]],
    ] as const
  ) {
    const x = rand([2, 6, hw, hw], 5);
    const w = rand([5, 6, 3, 3], 6, -0.3, 0.3);
    const s = rand([...sShape], 7);
    const run = async (fused: boolean) => {
      const prev = setFusion(fused);
      try {
        x.requiresGrad = w.requiresGrad = true;
        const out = tidy(() => {
          const y = ops.conv2d(ops.relu(ops.add(ops.mul(x, s), 0.1)), w, null, { padding: 1 });
          const [gx, gw] = grad(ops.sum(ops.mul(y, y)), [x, w]);
          return { y: ops.detach(y), gx, gw };
        });
        const r = { y: await out.y.data(), gx: await out.gx.data(), gw: await out.gw.data() };
        for (const t of Object.values(out)) t.dispose();
        return r;
      } finally {
        setFusion(prev);
      }
    };
    const direct = await run(true), viaBuffer = await run(false);
    assert.deepEqual(direct.y, viaBuffer.y, `forward, scale [${sShape}]`);
    assert.deepEqual(direct.gx, viaBuffer.gx, `input gradient, scale [${sShape}]`);
    assert.deepEqual(direct.gw, viaBuffer.gw, `weight gradient, scale [${sShape}]`);
    for (const t of [s, x, w]) t.dispose();
  }
});

Deno.test("multi-tensor optimizer updates equal one dispatch per parameter", async () => {
  for (
    const make of [
      (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 }),
      (ps: Tensor[]) => new SGD(ps, { lr: 0.1 }),
      (ps: Tensor[]) => new Adam(ps, { lr: 1e-2 }),
    ]
  ) {
    const run = async (cap: number) => {
      const prev = setGroupCap(cap);
      try {
        const sizes = [3, 700, 1, 64, 5000, 9, 128, 33, 2, 1025, 17, 6];
        const ps = sizes.map((n, i) => rand([n], 10 + i));
        const opt = make(ps);
        for (let k = 0; k < 3; k++) {
          ps.forEach((p, i) => {
            p.grad?.dispose();
            p.grad = rand([p.size], 100 * k + i);
          });
          opt.step();
        }
        const out = await Promise.all(ps.map((p) => p.data()));
        opt.zeroGrad();
        opt.dispose();
        ps.forEach((p) => p.dispose());
        return out;
      } finally {
        setGroupCap(prev);
      }
    };
    const single = await run(1);
    const grouped = await run(16);
    grouped.forEach((g, i) => assert.deepEqual(g, single[i], `parameter ${i}`));
  }
});

Deno.test("optimizer groups: as few as the cap allows, split where the grids waste least", () => {
  // Two groups of at most 3: the small parameter alone, not beside two large ones, whose grid
  // it would make it run 100 threads.
  assert.deepEqual(partition([1, 100, 100, 100], 3), [1, 4]);
  // ResNet-18's 62 parameter sizes (ascending), groups of 10: 7 groups, each 1-10 long, every
  // parameter in one, and less idle work than cutting every 10.
  const sizes = [
    10,
    ...Array(10).fill(64),
    ...Array(10).fill(128),
    ...Array(10).fill(256),
    ...Array(10).fill(512),
    1728,
    5120,
    8192,
    32768,
    36864,
    36864,
    36864,
    36864,
    73728,
    131072,
    147456,
    147456,
    147456,
    294912,
    589824,
    589824,
    589824,
    1179648,
    2359296,
    2359296,
    2359296,
  ];
  const ends = partition(sizes, 10);
  assert.equal(ends.length, 7);
  assert.equal(ends[ends.length - 1], sizes.length);
  const idle = (cuts: number[]) => {
    let at = 0, sum = 0;
    for (const e of cuts) {
      for (let i = at; i < e; i++) sum += sizes[e - 1] - sizes[i];
      assert.ok(e - at >= 1 && e - at <= 10, `group ${at}..${e}`);
      at = e;
    }
    return sum;
  };
  const naive = [10, 20, 30, 40, 50, 60, 62];
  assert.ok(idle(ends) < idle(naive) / 2, `${idle(ends)} vs ${idle(naive)}`);
});

Deno.test("backward through fused chains matches finite differences", async () => {
  const x = rand([2, 3, 4], 8);
  x.requiresGrad = true;
  const f = (t: Tensor) =>
    ops.sum(ops.mul(ops.tanh(ops.add(ops.mul(t, 1.5), 0.2)), ops.sigmoid(t)));
  const g = tidy(() => grad(f(x), [x])[0]);
  const gv = await g.data();
  const xv = await x.data();
  const h = 1e-2;
  for (const i of [0, 5, 11, 23]) {
    const at = async (d: number) => {
      const v = Float32Array.from(xv);
      v[i] += d;
      const t = Tensor.fromData(v, x.shape);
      const r = await tidy(() => f(t)).item();
      t.dispose();
      return r;
    };
    const fd = (await at(h) - await at(-h)) / (2 * h);
    assert.ok(Math.abs(fd - gv[i]) < 2e-3, `d/dx[${i}]: ${gv[i]} vs ${fd}`);
  }
  for (const t of [x, g]) t.dispose();
});

Deno.test("packed conv weights are reused while the weight is unchanged, never after a write", async () => {
  const eng = engine();
  const x = rand([2, 4, 6, 6], 20);
  const w = rand([3, 4, 3, 3], 21, -0.3, 0.3);
  const conv = async () => {
    await eng.sync();
    const d0 = eng.counters.dispatches;
    const y = ops.conv2d(x, w, null, { padding: 1 });
    const v = await y.data();
    y.dispose();
    return { v, dispatches: eng.counters.dispatches - d0 };
  };
  const first = await conv();
  await conv(); // second request at the same version: stored
  const third = await conv();
  assert.equal(third.dispatches, first.dispatches - 1, "the weight pack is skipped");
  assert.deepEqual(third.v, first.v);
  // An in-place write (optimizer step) changes the weight: the cache must not serve it.
  w.requiresGrad = true;
  w.grad = rand([3, 4, 3, 3], 22);
  const opt = new SGD([w], { lr: 0.1 });
  opt.step();
  opt.zeroGrad();
  w.requiresGrad = false;
  const after = await conv();
  const prev = setFusion(false);
  const y2 = ops.conv2d(x, ops.clone(w), null, { padding: 1 }); // a fresh buffer: no cache
  setFusion(prev);
  assert.deepEqual(after.v, await y2.data(), "the updated weight is used");
  assert.notDeepEqual(after.v, first.v);
  for (const t of [x, w, y2]) t.dispose();
});

Deno.test("vec4 kernels give the same bits as one value per thread, every op of the table", async () => {
  const x = rand([3, 4, 4, 6], 30, -2, 2);
  const b = rand([1, 4, 1, 1], 31, -1, 1);
  const ops1 = (t: Tensor) => [
    ops.neg(t),
    ops.exp(t),
    ops.log(ops.abs(t)),
    ops.sqrt(ops.abs(t)),
    ops.rsqrt(ops.add(ops.abs(t), 0.1)),
    ops.relu(t),
    ops.leakyRelu(t, 0.2),
    ops.elu(t, 1.1),
    ops.sigmoid(t),
    ops.tanh(t),
    ops.sign(t),
    ops.clamp(t, -0.5, 0.7),
    ops.affine(t, 1.7, -0.3),
    ops.square(t),
    ops.reciprocal(t),
    ops.powScalar(ops.abs(t), 1.5),
    ops.step(t, 0.1),
    ops.floor(t),
    ops.maximum(t, b),
    ops.minimum(t, b),
    ops.div(t, ops.add(ops.abs(b), 0.5)),
    ops.gt(t, b),
    ops.le(t, b),
    ops.eq(ops.floor(t), 0),
    ops.where(ops.gt(t, 0), t, b),
    ops.mul(ops.sub(t, b), 3),
  ];
  const run = async (vec: boolean) => {
    const prev = setVectorize(vec);
    try {
      x.requiresGrad = true;
      const out = tidy(() => {
        const ys = ops1(x);
        const total = ys.reduce(
          (a, y) => ops.add(a, ops.sum(ops.mul(y, y))),
          ops.sum(ops.mul(x, 0)),
        );
        return { ys: ys.map((y) => ops.detach(y)), g: grad(total, [x])[0] };
      });
      const vals = await Promise.all(out.ys.map((y) => y.data()));
      const g = await out.g.data();
      out.ys.forEach((y) => y.dispose());
      out.g.dispose();
      return { vals, g };
    } finally {
      setVectorize(prev);
    }
  };
  const v = await run(true), s1 = await run(false);
  v.vals.forEach((a, i) => assert.deepEqual(a, s1.vals[i], `op ${i}`));
  assert.deepEqual(v.g, s1.g, "gradients");
  x.dispose();
  b.dispose();
});
