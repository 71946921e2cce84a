import { assert, assertClose, gpu, randArray, rng } from "./helpers/check.ts";
import {
  bernoulliCpu,
  normalCpu,
  philox4x32,
  philoxWords,
  Rng,
  rngKey,
  RowRng,
  rowWordsCpu,
  uniformCpu,
  type Word4,
} from "../runtime/rng.ts";
import { Adam, AdamW, SGD } from "../runtime/optim.ts";
import { cosineLR, stepLR, warmup } from "../runtime/schedule.ts";
import { keep, liveTensors, Tensor, tidy, tidyAsync } from "../runtime/tensor.ts";
import { backward } from "../runtime/autograd.ts";
import { engine } from "../runtime/engine.ts";
import * as ops from "../runtime/ops/mod.ts";

await gpu();

const hex = (w: ArrayLike<number>) => Array.from(w, (x) => x.toString(16).padStart(8, "0"));

Deno.test("philox4x32-10 matches the Random123 known-answer vectors", () => {
  const cases: [Word4, [number, number], string[]][] = [
    [[0, 0, 0, 0], [0, 0], ["6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8"]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      ["408f276d", "41c83b0e", "a20bc7c6", "6d5451fd"],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      ["d16cfe09", "94fdcceb", "5001e420", "24126ea1"],
    ],
  ];
  for (const [ctr, key, want] of cases) assert.deepEqual(hex(philox4x32(ctr, key)), want);
});

Deno.test("GPU uniform and bernoulli are bit-identical to the CPU mirror; normal within 1e-5", async () => {
  await tidyAsync(async () => {
    const g = new Rng(1234, 7);
    for (const shape of [[1], [3], [5, 7], [2, 3, 11], [1001]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      for (const [lo, hi] of [[0, 1], [-0.3, 1.7], [2.5, 2.75]]) {
        const s = g.getState();
        const got = await g.uniform(shape, lo, hi).data();
        const want = uniformCpu(s, n, lo, hi);
        if (lo === 0 && hi === 1) assert.deepEqual(got, want, `uniform [${shape}]`);
        else {
          // lo + (hi - lo) u: a shader compiler may fuse the multiply-add, so allow 1 ulp.
          for (let i = 0; i < n; i++) {
            const ulp = 2 ** (Math.floor(Math.log2(Math.abs(want[i]) || 1)) - 23);
            assert.ok(
              Math.abs(got[i] - want[i]) <= ulp,
              `uniform [${shape}] in [${lo}, ${hi}) [${i}]: got ${got[i]}, want ${want[i]}`,
            );
          }
        }
        assert.equal(g.getState().offset, s.offset + Math.ceil(n / 4), "offset advance");
      }
      for (const p of [0, 0.3, 0.9, 1]) {
        const s = g.getState();
        const got = await g.bernoulli(shape, p).data();
        assert.deepEqual(got, bernoulliCpu(s, n, p), `bernoulli [${shape}] p=${p}`);
      }
      const s = g.getState();
      const got = await g.normal(shape, 0.25, 1.5).data();
      const want = normalCpu(s, n, 0.25, 1.5);
      for (let i = 0; i < n; i++) {
        assert.ok(
          Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])),
          `normal [${shape}] [${i}]: got ${got[i]}, want ${want[i]}`,
        );
      }
    }
  });
});

Deno.test("RowRng: each row is keyed by (example, call, draw), bit-identical to the CPU mirror", async () => {
  await tidyAsync(async () => {
    const unit = (w: number) => (w >>> 8) * 2 ** -24;
    const rows = [{ index: 5, call: 0 }, { index: 2, call: 3 }, { index: 40000, call: 17 }];
    for (const rowShape of [[1], [3], [3, 5, 4], [1, 8, 8]]) {
      const rowLen = rowShape.reduce((a, b) => a * b, 1);
      const g = new RowRng(99, 0xe7a1, rows);
      const u = await g.uniform([rows.length, ...rowShape]).data();
      const b = await g.bernoulli([rows.length, ...rowShape], 0.3).data();
      const z = await g.normal([rows.length, ...rowShape], 0, 0.25).data();
      assert.equal(g.tag, 3);
      rows.forEach((r, i) => {
        const w0 = rowWordsCpu(99, 0xe7a1, r, 0, rowLen);
        const w1 = rowWordsCpu(99, 0xe7a1, r, 1, rowLen);
        for (let j = 0; j < rowLen; j++) {
          assert.equal(u[i * rowLen + j], unit(w0[j]), `uniform row ${i} [${j}]`);
          assert.equal(b[i * rowLen + j], unit(w1[j]) < Math.fround(0.3) ? 1 : 0, `bernoulli`);
        }
        // Normal: Box-Muller on word pairs of tag 2, as the sequential mirror.
        const w2 = rowWordsCpu(99, 0xe7a1, r, 2, Math.ceil(rowLen / 4) * 4);
        for (let j = 0; j < rowLen; j++) {
          const pair = j >> 1;
          const u1 = ((w2[2 * pair] >>> 8) + 1) * 2 ** -24, u2 = unit(w2[2 * pair + 1]);
          const rr = Math.sqrt(-2 * Math.log(u1));
          const want = 0.25 *
            (j % 2 === 0 ? rr * Math.cos(2 * Math.PI * u2) : rr * Math.sin(2 * Math.PI * u2));
          assert.ok(Math.abs(z[i * rowLen + j] - want) <= 1e-5 * Math.max(1, Math.abs(want)));
        }
      });
    }
    // A row's numbers do not depend on the rows around it, its position or the batch size.
    const alone = await new RowRng(99, 0xe7a1, [rows[1]]).normal([1, 3, 5, 4], 0, 1).data();
    const inBatch = await new RowRng(99, 0xe7a1, [rows[2], rows[0], rows[1]]).normal([3, 3, 5, 4])
      .data();
    assert.deepEqual(alone, inBatch.subarray(120, 180));
    // Other calls, examples, streams and seeds give other numbers.
    const base = await new RowRng(99, 0xe7a1, [rows[1]]).uniform([1, 64]).data();
    for (
      const [seed, stream, row] of [
        [99, 0xe7a1, { index: 2, call: 4 }],
        [99, 0xe7a1, { index: 3, call: 3 }],
        [99, 0xe7a2, rows[1]],
        [98, 0xe7a1, rows[1]],
      ] as const
    ) {
      const other = await new RowRng(seed, stream, [row]).uniform([1, 64]).data();
      assert.ok(other.some((v, j) => v !== base[j]), `${seed}/${stream}/${JSON.stringify(row)}`);
    }
    assert.throws(() => new RowRng(1, 0, [{ index: -1, call: 0 }]), /row index must be an integer/);
    assert.throws(
      () => new RowRng(1, 0, rows).uniform([2, 4]),
      /first dimension must be the batch/,
    );
  });
});

Deno.test("the 64-bit counter carries into its high word on the GPU", async () => {
  await tidyAsync(async () => {
    const g = new Rng(99, 1);
    g.setState({ seed: 99, stream: 1, offset: 2 ** 32 - 3 });
    const s = g.getState();
    const got = await g.uniform([37]).data();
    assert.deepEqual(got, uniformCpu(s, 37));
    // Blocks 3.. of this draw lie past the carry: counter [0, 1, 0, 0] is block 3.
    const words = philoxWords(s, 37);
    assert.deepEqual(Array.from(words.subarray(12, 16)), philox4x32([0, 1, 0, 0], rngKey(99, 1)));
  });
});

Deno.test("same seed reproduces; streams, forks and consecutive draws differ", async () => {
  await tidyAsync(async () => {
    const a = await new Rng(5).uniform([257]).data();
    const b = await new Rng(5).uniform([257]).data();
    assert.deepEqual(a, b);
    const g = new Rng(5);
    g.uniform([257]);
    const next = await g.uniform([257]).data();
    const others = [
      await new Rng(6).uniform([257]).data(),
      await new Rng(5, 1).uniform([257]).data(),
      await new Rng(5 + 2 ** 32).uniform([257]).data(),
      await new Rng(5).fork(0).uniform([257]).data(),
      await new Rng(5).fork(1).uniform([257]).data(),
      await new Rng(5, 1).fork(0).uniform([257]).data(),
      next,
    ];
    const all = [a, ...others];
    for (let i = 0; i < all.length; i++) {
      for (let j = i + 1; j < all.length; j++) {
        let same = 0;
        for (let k = 0; k < 257; k++) if (all[i][k] === all[j][k]) same++;
        assert.ok(same < 5, `draws ${i} and ${j} share ${same} of 257 values`);
      }
    }
    // A fork is a pure function of (seed, stream, i), independent of the parent's counter.
    const p = new Rng(5);
    p.uniform([100]);
    assert.deepEqual(
      await p.fork(3).uniform([9]).data(),
      await new Rng(5).fork(3).uniform([9]).data(),
    );
    // Forks of one parent never share a key.
    const keys = new Set<number>();
    for (let i = 0; i < 20000; i++) keys.add(rngKey(5, new Rng(5).fork(i).getState().stream)[1]);
    assert.equal(keys.size, 20000);
  });
});

function moments(x: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0, ss = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  const mean = s / x.length;
  for (let i = 0; i < x.length; i++) ss += (x[i] - mean) ** 2;
  return { mean, variance: ss / (x.length - 1) };
}

Deno.test("uniform, normal and bernoulli statistics on 1e5 samples", async () => {
  await tidyAsync(async () => {
    const n = 100_000;
    const g = new Rng(2024);
    const u = await g.uniform([n]).data();
    assert.ok(u.every((v) => v >= 0 && v < 1), "uniform outside [0, 1)");
    const mu = moments(u);
    assert.ok(Math.abs(mu.mean - 0.5) < 0.005, `uniform mean ${mu.mean}`);
    assert.ok(Math.abs(mu.variance - 1 / 12) < 0.002, `uniform variance ${mu.variance}`);
    const u2 = await g.uniform([n], -2, 6).data();
    assert.ok(u2.every((v) => v >= -2 && v < 6));
    assert.ok(Math.abs(moments(u2).mean - 2) < 0.04);

    const z = await g.normal([n], 1, 2).data();
    const mz = moments(z);
    assert.ok(Math.abs(mz.mean - 1) < 0.03, `normal mean ${mz.mean}`);
    assert.ok(Math.abs(Math.sqrt(mz.variance) - 2) < 0.03, `normal std ${Math.sqrt(mz.variance)}`);
    let tail = 0;
    for (const v of z) if (Math.abs(v - 1) > 2 * 1.96) tail++;
    assert.ok(Math.abs(tail / n - 0.05) < 0.005, `normal 1.96-sigma tail rate ${tail / n}`);

    for (const p of [0.05, 0.3, 0.5]) {
      const b = await g.bernoulli([n], p).data();
      assert.ok(b.every((v) => v === 0 || v === 1));
      const rate = b.reduce((a, v) => a + v, 0) / n;
      assert.ok(Math.abs(rate - p) < 5 * Math.sqrt(p * (1 - p) / n), `bernoulli p=${p}: ${rate}`);
    }
  });
});

Deno.test("getState/setState reproduces the continuation", async () => {
  await tidyAsync(async () => {
    const g = new Rng(77, 3);
    g.uniform([10]);
    const saved = g.getState();
    const a = [
      await g.uniform([13]).data(),
      await g.normal([6]).data(),
      await g.bernoulli([9], 0.4).data(),
    ];
    const h = new Rng(0);
    h.setState(saved);
    const b = [
      await h.uniform([13]).data(),
      await h.normal([6]).data(),
      await h.bernoulli([9], 0.4).data(),
    ];
    assert.deepEqual(a, b);
    assert.deepEqual(h.getState(), g.getState());
    assert.throws(() => h.setState({ seed: 1, stream: -1, offset: 0 }), /stream/);
    assert.throws(() => g.bernoulli([2], 1.5), /p must be in \[0, 1\]/);
    assert.throws(() => g.uniform([2], 1, 0), /lo <= hi/);
    assert.throws(() => g.fork(-1), /fork/);
  });
});

// ---------------------------------------------------------------- optimizers

type Cfg =
  | {
    kind: "sgd";
    lr: number;
    momentum?: number;
    nesterov?: boolean;
    weightDecay?: number;
    dampening?: number;
  }
  | {
    kind: "adam" | "adamw";
    lr: number;
    betas: [number, number];
    eps: number;
    weightDecay: number;
  };

interface RefState {
  p: Float64Array;
  s1: Float64Array | null;
  s2: Float64Array | null;
  t: number;
}

/** PyTorch's update rules in float64. */
function refStep(cfg: Cfg, st: RefState, g: Float64Array): void {
  const n = st.p.length;
  st.t++;
  if (cfg.kind === "sgd") {
    const { lr, momentum = 0, nesterov = false, weightDecay = 0, dampening = 0 } = cfg;
    const first = st.s1 === null;
    if (momentum !== 0 && first) st.s1 = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let d = g[i] + weightDecay * st.p[i];
      if (momentum !== 0) {
        const buf = first ? d : momentum * st.s1![i] + (1 - dampening) * d;
        st.s1![i] = buf;
        d = nesterov ? d + momentum * buf : buf;
      }
      st.p[i] -= lr * d;
    }
    return;
  }
  const { lr, betas: [b1, b2], eps, weightDecay } = cfg;
  st.s1 ??= new Float64Array(n);
  st.s2 ??= new Float64Array(n);
  const bc1 = 1 - b1 ** st.t, bc2 = 1 - b2 ** st.t;
  for (let i = 0; i < n; i++) {
    let d = g[i];
    if (cfg.kind === "adamw") st.p[i] *= 1 - lr * weightDecay;
    else d += weightDecay * st.p[i];
    st.s1[i] = b1 * st.s1[i] + (1 - b1) * d;
    st.s2[i] = b2 * st.s2[i] + (1 - b2) * d * d;
    const denom = Math.sqrt(st.s2[i]) / Math.sqrt(bc2) + eps;
    st.p[i] -= (lr / bc1) * st.s1[i] / denom;
  }
}

function makeOpt(cfg: Cfg, params: Tensor[]) {
  if (cfg.kind === "sgd") return new SGD(params, cfg);
  return cfg.kind === "adam" ? new Adam(params, cfg) : new AdamW(params, cfg);
}

const f32 = (a: Float64Array) => Float64Array.from(Float32Array.from(a));

function setGrad(p: Tensor, g: Float64Array): void {
  p.grad?.dispose();
  p.grad = keep(Tensor.fromData(Float32Array.from(g), p.shape));
}

Deno.test("SGD/Adam/AdamW: 3 steps match a float64 PyTorch reference (rel err <= 1e-5)", async () => {
  const cfgs: Cfg[] = [
    { kind: "sgd", lr: 0.1 },
    { kind: "sgd", lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 },
    { kind: "sgd", lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.05 },
    { kind: "adam", lr: 0.02, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 },
    { kind: "adam", lr: 0.03, betas: [0.8, 0.99], eps: 1e-3, weightDecay: 0.1 },
    { kind: "adamw", lr: 0.02, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 },
    { kind: "adamw", lr: 0.05, betas: [0.5, 0.9], eps: 1e-6, weightDecay: 0.3 },
  ];
  const shapes = [[3, 5], [7], [2, 3, 1], [1]];
  const r = rng(11);
  for (const cfg of cfgs) {
    await tidyAsync(async () => {
      const refs: RefState[] = shapes.map((s) => ({
        p: f32(randArray(s.reduce((a, b) => a * b, 1), r)),
        s1: null,
        s2: null,
        t: 0,
      }));
      const params = shapes.map((s, i) => keep(Tensor.fromData(Float32Array.from(refs[i].p), s)));
      const buffers = params.map((p) => p.buffer);
      const start = refs.map((st) => Float64Array.from(st.p));
      const opt = makeOpt(cfg, params);
      const what = JSON.stringify(cfg);
      for (let step = 0; step < 3; step++) {
        params.forEach((p, i) => {
          // Parameter 3 has no gradient in step 1: it must be skipped (and not counted).
          if (i === 3 && step === 1) {
            p.grad?.dispose();
            p.grad = null;
            return;
          }
          const g = f32(randArray(p.size, r, -2, 2));
          setGrad(p, g);
          refStep(cfg, refs[i], g);
        });
        opt.step();
      }
      assert.equal(opt.stepCount, 3);
      const state = opt.stateTensors();
      for (let i = 0; i < params.length; i++) {
        assert.equal(
          params[i].buffer,
          buffers[i],
          "the update must write into the parameter's storage",
        );
        const got = await params[i].data();
        assertClose(got, refs[i].p, 1e-5, `${what} param ${i}`);
        // The displacement is far smaller than the parameter: check it separately.
        const moved = Float64Array.from(got, (v, k) => v - start[i][k]);
        const want = Float64Array.from(refs[i].p, (v, k) => v - start[i][k]);
        assertClose(moved, want, 1e-4, `${what} param ${i} displacement`);
        const names = cfg.kind === "sgd"
          ? (cfg.momentum ? ["momentum_buffer"] : [])
          : ["exp_avg", "exp_avg_sq"];
        for (const [k, name] of names.entries()) {
          const t = state.get(`${i}.${name}`);
          assert.ok(t, `${what}: state ${i}.${name} missing`);
          const want = (k === 0 ? refs[i].s1 : refs[i].s2)!;
          assertClose(await t.data(), want, 1e-5, `${what} ${i}.${name}`);
        }
        if (cfg.kind !== "sgd") assert.equal(await state.get(`${i}.step`)!.item(), refs[i].t);
      }
      opt.zeroGrad();
      assert.ok(params.every((p) => p.grad === null));
      opt.dispose();
      for (const p of params) p.dispose();
    });
  }
});

Deno.test("stateTensors/loadState: a restored optimizer continues identically", async () => {
  for (
    const make of [
      (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true }),
      (ps: Tensor[]) => new Adam(ps, { lr: 0.01, weightDecay: 0.01 }),
      (ps: Tensor[]) => new AdamW(ps, { lr: 0.01 }),
    ]
  ) {
    await tidyAsync(async () => {
      const r = rng(3);
      const init = [randArray(6, r), randArray(5, r)];
      const shapes = [[2, 3], [5]];
      const a = shapes.map((s, i) => keep(Tensor.fromData(Float32Array.from(init[i]), s)));
      const optA = make(a);
      const grads = Array.from(
        { length: 4 },
        () => shapes.map((_, i) => randArray(init[i].length, r)),
      );
      for (let k = 0; k < 2; k++) {
        a.forEach((p, i) => setGrad(p, grads[k][i]));
        optA.step();
      }
      // Checkpoint: parameter values and optimizer state, then continue both.
      const saved = optA.stateTensors();
      const b = await Promise.all(
        a.map(async (p) => keep(Tensor.fromData(await p.data(), p.shape))),
      );
      const optB = make(b);
      await optB.loadState(saved);
      for (const t of saved.values()) t.dispose(); // loadState copied them
      // Adam/AdamW restore their step count from the "<i>.step" entries; SGD state has none.
      assert.equal(optB.stepCount, optB instanceof SGD ? 0 : 2);
      for (let k = 2; k < 4; k++) {
        a.forEach((p, i) => setGrad(p, grads[k][i]));
        b.forEach((p, i) => setGrad(p, grads[k][i]));
        optA.step();
        optB.step();
      }
      for (let i = 0; i < a.length; i++) assert.deepEqual(await b[i].data(), await a[i].data());
      // A fresh optimizer (state not loaded) diverges: the check above can fail.
      const c = await Promise.all(
        init.map((v, i) => keep(Tensor.fromData(Float32Array.from(v), shapes[i]))),
      );
      const optC = make(c);
      for (let k = 0; k < 4; k++) {
        c.forEach((p, i) => setGrad(p, grads[k === 2 ? 3 : k][i]));
        optC.step();
      }
      assert.notDeepEqual(await c[0].data(), await a[0].data());
      await assert.rejects(
        () => optB.loadState(new Map([["9.exp_avg", a[0]]])),
        /unexpected key "9.exp_avg"/,
      );
      for (const o of [optA, optB, optC]) {
        o.zeroGrad();
        o.dispose();
      }
      for (const p of [...a, ...b, ...c]) p.dispose();
    });
  }
});

Deno.test("200 training steps keep GPU memory flat", async () => {
  const r = rng(8);
  const w = keep(Tensor.fromData(Float32Array.from(randArray(12, r)), [4, 3]));
  const bias = keep(Tensor.fromData(Float32Array.from(randArray(4, r)), [4]));
  w.requiresGrad = bias.requiresGrad = true;
  const x = keep(Tensor.fromData(Float32Array.from(randArray(15, r)), [5, 3]));
  const opt = new AdamW([w, bias], { lr: 0.01 });
  const gen = new Rng(1);
  const trainStep = () =>
    tidy(() => {
      const noise = gen.normal([5, 4], 0, 0.01);
      const y = ops.add(ops.linear(x, w, bias), noise);
      const loss = ops.mean(ops.square(y));
      backward(loss);
      opt.step();
      opt.zeroGrad();
      return null;
    });
  const loss0 = await tidyAsync(() => ops.mean(ops.square(ops.linear(x, w, bias))).item());
  for (let k = 0; k < 5; k++) trainStep();
  await engine().sync();
  const before = engine().pool.stats();
  const tensorsBefore = liveTensors();
  for (let k = 0; k < 195; k++) trainStep();
  await engine().sync();
  const after = engine().pool.stats();
  assert.equal(after.liveBytes, before.liveBytes, "live bytes grew");
  assert.equal(after.liveBuffers, before.liveBuffers, "live buffers grew");
  assert.equal(liveTensors(), tensorsBefore, "live tensors grew");
  assert.equal(after.allocations, before.allocations, "the pool allocated new buffers");
  const loss1 = await tidyAsync(() => ops.mean(ops.square(ops.linear(x, w, bias))).item());
  assert.ok(loss1 < 0.5 * loss0, `training did not reduce the loss: ${loss0} -> ${loss1}`);
  opt.dispose();
  for (const t of [w, bias, x]) t.dispose();
});

Deno.test("optimizer options are validated with errors naming the field", () => {
  const p = keep(Tensor.fromData([1, 2], [2]));
  assert.throws(() => new SGD([p], {} as never), /learning rate/);
  assert.throws(() => new SGD([p], { lr: -1 }), /SGD: lr/);
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov needs momentum/);
  assert.throws(() => new Adam([p], { betas: [0.9, 1] }), /betas\[1\]/);
  assert.throws(() => new AdamW([], {}), /non-empty/);
  assert.throws(() => new Adam([p, p.view([1, 2])]), /shares storage/);
  const opt = new SGD([p], { lr: 0.1 });
  p.grad = keep(Tensor.fromData([1, 2, 3], [3]));
  assert.throws(
    () => opt.step(),
    /SGD.step: gradient of params\[0\]: expected shape \[2\], got \[3\]/,
  );
  opt.lr = 0.5;
  assert.equal(opt.lr, 0.5);
  assert.throws(() => (opt.lr = NaN), /SGD: lr/);
  opt.zeroGrad();
  p.dispose();
});

Deno.test("schedules give PyTorch's values", () => {
  const close = (a: number, b: number) =>
    assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${a} != ${b}`);
  // StepLR(lr=0.1, step_size=3, gamma=0.5)
  const s = stepLR(0.1, 3, 0.5);
  [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025].forEach((v, i) => close(s(i), v));
  close(stepLR(1, 2)(5), 0.01);
  // CosineAnnealingLR(lr=0.1, T_max=4, eta_min=0.01)
  const c = cosineLR(0.1, 4, 0.01);
  const cw = [0.1, 0.08681980515339464, 0.055, 0.023180194846605363, 0.01, 0.023180194846605363];
  cw.forEach((v, i) => close(c(i), v));
  // SequentialLR([LinearLR(start_factor=1/3, total_iters=3), StepLR(0.1, 2, 0.5)], [3])
  const w = warmup(stepLR(0.1, 2, 0.5), 3);
  const ww = [
    0.1 / 3,
    0.1 * (1 / 3 + (2 / 3) / 3),
    0.1 * (1 / 3 + (2 / 3) * 2 / 3),
    0.1,
    0.1,
    0.05,
    0.05,
  ];
  ww.forEach((v, i) => close(w(i), v));
  close(warmup(c, 0)(2), c(2));
  assert.throws(() => s(-1), /step must be a non-negative integer/);
  assert.throws(() => cosineLR(0.1, 0), /total must be a positive integer/);
});
