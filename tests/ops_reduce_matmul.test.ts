import { assert, assertClose, checkOp, gpu, input, randInt, rng } from "./helpers/check.ts";
import { matmulRef, reduceRef } from "./ref/basic.ts";
import * as ops from "../runtime/ops/mod.ts";
import { forceMatmulVariant, type MatmulVariant } from "../runtime/ops/matmul.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import { engine } from "../runtime/engine.ts";

await gpu();

Deno.test("sum/mean/max/min over axis sets match reference with gradients", async () => {
  const r = rng(11);
  const shape = [3, 4, 5, 2];
  const axesList = [[0], [1, 3], [0, 2], [3], [0, 1, 2, 3]];
  for (const axes of axesList) {
    await checkOp(
      `sum ${axes}`,
      ([x]) => ops.sum(x, axes),
      reduceRef(shape, axes, (a, v) => a + v, 0),
      [input(shape, r)],
    );
    await checkOp(
      `mean ${axes} keepdim`,
      ([x]) => ops.mean(x, axes, true),
      reduceRef(shape, axes, (a, v) => a + v, 0, (a, n) => a / n),
      [input(shape, r)],
    );
    await checkOp(
      `max ${axes}`,
      ([x]) => ops.max(x, axes),
      reduceRef(shape, axes, Math.max, -Infinity),
      [input(shape, r)],
    );
    await checkOp(
      `min ${axes}`,
      ([x]) => ops.min(x, axes),
      reduceRef(shape, axes, Math.min, Infinity),
      [input(shape, r)],
    );
  }
});

Deno.test("long reductions split into chunks match float64 and are bit-identical on rerun", async () => {
  const r = rng(13);
  // [3, 9000, 2]: reducing axis 1 (9000, strided) or everything (54000) takes the split path
  // on every adapter; axis 2 (length 2) does not.
  const shape = [3, 9000, 2];
  const n = 3 * 9000 * 2;
  const data = Float32Array.from({ length: n }, () => r() * 2 - 1);
  const cases: [
    string,
    (x: Tensor) => Tensor,
    number[],
    (a: number, v: number) => number,
    number,
  ][] = [
    ["sum", (x) => ops.sum(x, [1]), [1], (a, v) => a + v, 0],
    ["max", (x) => ops.max(x, [1]), [1], Math.max, -Infinity],
    ["min", (x) => ops.min(x, [0, 1]), [0, 1], Math.min, Infinity],
    ["sum all", (x) => ops.sum(x), [0, 1, 2], (a, v) => a + v, 0],
  ];
  assert.ok(ops.chunksFor("sum", 6, 9000) > 1, "the test must exercise the split path");
  assert.equal(ops.chunksFor("argmax", 1, 1e6), 1);
  await tidyAsync(async () => {
    const x = Tensor.fromData(data, shape);
    for (const [name, fn, axes, fold, init] of cases) {
      const want = reduceRef(shape, axes, fold, init)([Float64Array.from(data)]);
      const got = await fn(x).data();
      assertClose(got, want, 1e-4, name); // float32 sums of thousands of terms
      assert.deepEqual([...(await fn(x).data())], [...got], `${name}: rerun differs`);
    }
    const mean = await ops.mean(x).data();
    assertClose(mean, [data.reduce((a, v) => a + v, 0) / n], 1e-4, "mean all");
    const l2 = await ops.normL2PerExample(Tensor.fromData(data, [2, 27000])).data();
    const want = [0, 1].map((i) =>
      Math.sqrt(data.slice(i * 27000, (i + 1) * 27000).reduce((a, v) => a + v * v, 0))
    );
    assertClose(l2, want, 1e-5, "normL2PerExample (sumsq split)");
  });
});

Deno.test("per-example reductions give the same bits whatever the batch size", async () => {
  // 12,288 values per example (a 64x64 RGB image) take the chunked path on every adapter; the
  // split must not depend on how many examples are reduced together.
  const r = rng(16);
  const d = 12288;
  const rows = Array.from({ length: 20 }, () => Float32Array.from({ length: d }, () => r() - 0.5));
  const perRow = async (k: number) => {
    const x = Tensor.fromData(Float32Array.from(rows.slice(0, k).flatMap((v) => [...v])), [k, d]);
    const out = {
      sum: [...(await ops.sum(x, [1]).data())],
      l2: [...(await ops.normL2PerExample(x).data())],
      max: [...(await ops.normLinfPerExample(x).data())],
    };
    x.dispose();
    return out;
  };
  assert.ok(ops.chunksFor("sum", 1, d) > 1, "the test must exercise the split path");
  const all = await perRow(20);
  for (const k of [1, 3, 17]) {
    const some = await perRow(k);
    for (const key of ["sum", "l2", "max"] as const) {
      assert.deepEqual(some[key], all[key].slice(0, k), `${key}: batch ${k} vs 20`);
    }
  }
});

Deno.test("argmax, per-example norms", async () => {
  const r = rng(12);
  await tidyAsync(async () => {
    const data = Float32Array.from({ length: 6 * 10 }, () => r() * 2 - 1);
    const am = await ops.argmax(Tensor.fromData(data, [6, 10]), 1).data();
    for (let i = 0; i < 6; i++) {
      const row = [...data.slice(i * 10, i * 10 + 10)];
      assert.equal(am[i], row.indexOf(Math.max(...row)));
    }
    const x = Tensor.fromData(data, [6, 2, 5]);
    const linf = await ops.normLinfPerExample(x).data();
    for (let i = 0; i < 6; i++) {
      assertClose(
        [linf[i]],
        [Math.max(...[...data.slice(i * 10, i * 10 + 10)].map(Math.abs))],
        1e-6,
        "linf",
      );
    }
  });
  await checkOp("normL2PerExample", ([x]) => ops.normL2PerExample(x), ([x]) => {
    const out = new Float64Array(4);
    for (let i = 0; i < 4; i++) {
      let s = 0;
      for (let j = 0; j < 15; j++) s += x[i * 15 + j] ** 2;
      out[i] = Math.sqrt(s);
    }
    return out;
  }, [input([4, 3, 5], r)]);
});

Deno.test("matmul (batched, transposed, odd sizes) and linear match reference", async () => {
  const r = rng(13);
  for (let t = 0; t < 4; t++) {
    const M = randInt(r, 1, 13), K = randInt(r, 1, 17), N = randInt(r, 1, 11);
    await checkOp(`matmul ${M}x${K}x${N}`, ([a, b]) => ops.matmul(a, b), matmulRef(M, K, N), [
      input([M, K], r),
      input([K, N], r),
    ]);
  }
  await checkOp("batched matmul", ([a, b]) => ops.matmul(a, b), matmulRef(5, 7, 6, 3), [
    input([3, 5, 7], r),
    input([3, 7, 6], r),
  ]);
  await checkOp("batched @ shared", ([a, b]) => ops.matmul(a, b), matmulRef(5, 7, 6, 3), [
    input([3, 5, 7], r),
    input([7, 6], r),
  ]);
  // linear: x [N,in] @ W^T + b
  const Nn = 5, I = 9, O = 7;
  await checkOp("linear", ([x, w, b]) => ops.linear(x, w, b), ([x, w, b]) => {
    const y = new Float64Array(Nn * O);
    for (let n = 0; n < Nn; n++) {
      for (let o = 0; o < O; o++) {
        let s = b[o];
        for (let i = 0; i < I; i++) s += x[n * I + i] * w[o * I + i];
        y[n * O + o] = s;
      }
    }
    return y;
  }, [input([Nn, I], r), input([O, I], r), input([O], r)]);
});

Deno.test("shape mismatches fail with clear messages", async () => {
  await tidyAsync(async () => {
    const a = ops.zeros([2, 3]);
    const b = ops.zeros([4, 5]);
    assert.throws(() => ops.add(a, b), /add: shapes \[2,3\] and \[4,5\] cannot be broadcast/);
    assert.throws(() => ops.matmul(a, b), /matmul: inner dimensions differ/);
    assert.throws(() => ops.reshape(a, [4, 2]), /reshape: \[2,3\] has 6 values/);
    assert.throws(() => ops.sum(a, 5), /sum: axis 5 is out of range/);
    assert.throws(
      () => Tensor.fromData([1, 2, 3], [2, 2]),
      /data has 3 values but shape \[2,2\] needs 4/,
    );
    await Promise.resolve();
  });
});

Deno.test("matmul on 4-aligned shapes (vec4 packing fast path)", async () => {
  const r = rng(14);
  await checkOp("matmul 16x32x24", ([a, b]) => ops.matmul(a, b), matmulRef(16, 32, 24), [
    input([16, 32], r),
    input([32, 24], r),
  ]);
  await checkOp("batched matmul 2x8x12x16", ([a, b]) => ops.matmul(a, b), matmulRef(8, 12, 16, 2), [
    input([2, 8, 12], r),
    input([2, 12, 16], r),
  ]);
});

Deno.test("every matmul variant (tile4, tile16, workgroup-tiled) matches reference", async () => {
  // Each variant on this adapter whatever it would pick: shapes past one 64x64 workgroup
  // block, K not a multiple of the tiled kernel's 16-float slab, a shared operand, and the
  // gradients (transposed products through the packs).
  const r = rng(15);
  for (const v of ["tile4", "tile16", "tiled"] as MatmulVariant[]) {
    // Fresh buffers per variant: a recycled one could hold the previous variant's product.
    await engine().sync();
    engine().pool.trim();
    forceMatmulVariant(v);
    try {
      await checkOp(`${v} matmul 70x37x66`, ([a, b]) => ops.matmul(a, b), matmulRef(70, 37, 66), [
        input([70, 37], r),
        input([37, 66], r),
      ]);
      await checkOp(`${v} matmul 3x20x8`, ([a, b]) => ops.matmul(a, b), matmulRef(3, 20, 8), [
        input([3, 20], r),
        input([20, 8], r),
      ]);
      // Thin products (a power iteration's row and column): blocks numbered flat over more
      // than one 64-thread workgroup along one side only.
      await checkOp(`${v} row 1x30x1100`, ([a, b]) => ops.matmul(a, b), matmulRef(1, 30, 1100), [
        input([1, 30], r),
        input([30, 1100], r),
      ]);
      await checkOp(`${v} column 1100x21x1`, ([a, b]) => ops.matmul(a, b), matmulRef(1100, 21, 1), [
        input([1100, 21], r),
        input([21, 1], r),
      ]);
      await checkOp(
        `${v} batched @ shared 2x65x24x17`,
        ([a, b]) => ops.matmul(a, b),
        matmulRef(65, 24, 17, 2),
        [input([2, 65, 24], r), input([24, 17], r)],
      );
    } finally {
      forceMatmulVariant(null);
    }
  }
});
