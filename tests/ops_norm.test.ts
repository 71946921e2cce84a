import {
  assert,
  assertClose,
  checkOp,
  gpu,
  input,
  randArray,
  randInt,
  rng,
} from "./helpers/check.ts";
import { batchNormEvalRef, normRef } from "./ref/norm.ts";
import * as ops from "../runtime/ops/mod.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";

await gpu();

Deno.test("batchNorm training matches float64 reference (with and without affine), gradients", async () => {
  const r = rng(31);
  for (let t = 0; t < 5; t++) {
    const N = randInt(r, 1, 4), C = randInt(r, 1, 5), H = randInt(r, 1, 5), W = randInt(r, 2, 6);
    const affine = t % 2 === 0;
    const inputs = [input([N, C, H, W], r, -2, 3)];
    if (affine) inputs.push(input([C], r, 0.5, 1.5), input([C], r));
    await checkOp(
      `batchNorm train [${N},${C},${H},${W}] affine=${affine}`,
      ([x, w, b]) => ops.batchNorm(x, w ?? null, b ?? null, null, null, { training: true }),
      normRef(N, C, H * W, false, 1e-5, affine),
      inputs,
      { h: 1e-4 },
    );
  }
  // 2-d input [N, C] (batch norm after a linear layer).
  await checkOp(
    "batchNorm [7,3]",
    ([x, w, b]) => ops.batchNorm(x, w, b, null, null, { training: true }),
    normRef(7, 3, 1, false, 1e-5, true),
    [
      input([7, 3], r),
      input([3], r),
      input([3], r),
    ],
    { h: 1e-4 },
  );
});

Deno.test("batchNorm running statistics follow PyTorch (momentum, unbiased variance)", async () => {
  const r = rng(32);
  const [N, C, S] = [3, 4, 5];
  const x = randArray(N * C * S, r, -1, 2);
  const rm0 = randArray(C, r), rv0 = randArray(C, r, 0.5, 2);
  await tidyAsync(async () => {
    const rm = Tensor.fromData(Float32Array.from(rm0), [C]);
    const rv = Tensor.fromData(Float32Array.from(rv0), [C]);
    ops.batchNorm(Tensor.fromData(Float32Array.from(x), [N, C, S]), null, null, rm, rv, {
      training: true,
      momentum: 0.3,
    });
    const wantM: number[] = [], wantV: number[] = [];
    for (let c = 0; c < C; c++) {
      const vals: number[] = [];
      for (let n = 0; n < N; n++) {
        for (let s = 0; s < S; s++) vals.push(Math.fround(x[(n * C + c) * S + s]));
      }
      const m = vals.reduce((a, b) => a + b) / vals.length;
      const v = vals.reduce((a, b) => a + (b - m) ** 2, 0) / (vals.length - 1);
      wantM.push(0.7 * Math.fround(rm0[c]) + 0.3 * m);
      wantV.push(0.7 * Math.fround(rv0[c]) + 0.3 * v);
    }
    assertClose(await rm.data(), wantM, 1e-5, "running mean");
    assertClose(await rv.data(), wantV, 1e-5, "running var");
  });
});

Deno.test("batchNorm eval mode uses running statistics, gradients to x, weight, bias", async () => {
  const r = rng(33);
  const [N, C, H, W] = [2, 3, 3, 5];
  const rm = randArray(C, r), rv = randArray(C, r, 0.5, 2);
  const rmT = Float64Array.from(Float32Array.from(rm)),
    rvT = Float64Array.from(Float32Array.from(rv));
  await tidyAsync(async () => {
    const rmG = Tensor.fromData(Float32Array.from(rm), [C]);
    const rvG = Tensor.fromData(Float32Array.from(rv), [C]);
    await checkOp(
      "batchNorm eval",
      ([x, w, b]) => ops.batchNorm(x, w, b, rmG, rvG, { training: false }),
      batchNormEvalRef(C, H * W, rmT, rvT, 1e-5),
      [
        input([N, C, H, W], r),
        input([C], r),
        input([C], r),
      ],
    );
    assertClose(await rmG.data(), rmT, 0, "eval must not touch running mean");
  });
});

Deno.test("instanceNorm matches float64 reference, gradients", async () => {
  const r = rng(34);
  for (const affine of [true, false]) {
    const N = randInt(r, 1, 3), C = randInt(r, 1, 4), H = randInt(r, 2, 5), W = randInt(r, 1, 6);
    const inputs = [input([N, C, H, W], r, -1, 2)];
    if (affine) inputs.push(input([C], r, 0.5, 1.5), input([C], r));
    await checkOp(
      `instanceNorm [${N},${C},${H},${W}] affine=${affine}`,
      ([x, w, b]) => ops.instanceNorm(x, w, b),
      normRef(N, C, H * W, true, 1e-5, affine),
      inputs,
      { h: 1e-4 },
    );
  }
});

Deno.test("norm shape errors are clear", () => {
  const x = Tensor.fromData(new Float32Array(24).fill(0.5), [2, 3, 4]);
  const w = Tensor.fromData(new Float32Array(2).fill(1), [2]);
  assert.throws(
    () => ops.batchNorm(x, w, w, null, null, { training: true }),
    /batchNorm: weight has shape \[2\], expected \[3\]/,
  );
  assert.throws(
    () => ops.batchNorm(x, null, null, null, null, { training: false }),
    /eval mode needs runningMean/,
  );
  x.dispose();
  w.dispose();
});

Deno.test("norm statistics are the 256-lane tree's float32 sums, bit for bit (CPU adapter)", async () => {
  const { engine } = await import("../runtime/engine.ts");
  const { groupStats } = await import("../runtime/ops/norm.ts");
  if (!engine().adapter.isFallbackAdapter) return; // a GPU's division may round otherwise
  const f = Math.fround;
  // Lane l adds elements l, l + 256, ... in order; lane l + s goes into lane l for s = 128..1.
  const laneSum = (vals: number[]) => {
    const part = new Array(256).fill(0);
    vals.forEach((v, k) => part[k % 256] = f(part[k % 256] + v));
    for (let s = 128; s > 0; s >>= 1) {
      for (let l = 0; l < s; l++) part[l] = f(part[l] + part[l + s]);
    }
    return part[0];
  };
  const r = rng(77);
  for (const [N, C, S] of [[3, 2, 37], [4, 3, 300], [1, 1, 1], [2, 2, 257]]) {
    const data = randArray(N * C * S, r, -2, 3);
    const x = Tensor.fromData(data, [N, C, S]);
    const { mean, variance } = groupStats(x, { N, C, S, WC: C });
    const [gm, gv] = [await mean.data(), await variance.data()];
    const xs = Float32Array.from(data);
    for (let c = 0; c < C; c++) {
      const vals: number[] = [];
      for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) vals.push(xs[(n * C + c) * S + s]);
      const m = f(N * S);
      const mu = f(laneSum(vals) / m);
      const va = f(laneSum(vals.map((v) => f(f(v - mu) * f(v - mu)))) / m);
      assert.equal(gm[c], mu, `mean [${N},${C},${S}] channel ${c}`);
      assert.equal(gv[c], va, `variance [${N},${C},${S}] channel ${c}`);
    }
    [x, mean, variance].forEach((t) => t.dispose());
  }
});
