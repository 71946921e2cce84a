import { assert, checkOp, gpu, input, randArray, randInt, rng } from "./helpers/check.ts";
import {
  flowWarpRef,
  gridSampleRef,
  upsampleBilinearRef,
  upsampleNearestRef,
} from "./ref/sample.ts";
import { flowWarp, gridSample } from "../runtime/ops/sample.ts";
import { upsampleBilinear, upsampleNearest } from "../runtime/ops/upsample.ts";
import { grad } from "../runtime/autograd.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import { engine } from "../runtime/engine.ts";
import * as ops from "../runtime/ops/mod.ts";

await gpu();

Deno.test("gridSample matches the float64 reference, forward and both gradients", async () => {
  const r = rng(11);
  for (const alignCorners of [false, true]) {
    for (const padding of ["zeros", "border"] as const) {
      for (let k = 0; k < 2; k++) {
        // Batch 1 once per setting; non-square in and out; the grid reaches past [-1, 1].
        const d = {
          N: k === 0 ? 1 : 2,
          C: randInt(r, 1, 3),
          H: randInt(r, 3, 6),
          W: randInt(r, 4, 7),
        };
        const Ho = randInt(r, 2, 5), Wo = randInt(r, 3, 6);
        await checkOp(
          `gridSample align=${alignCorners} ${padding} [${d.N},${d.C},${d.H},${d.W}]->${Ho}x${Wo}`,
          ([x, g]) => gridSample(x, g, { alignCorners, padding }),
          gridSampleRef(d, Ho, Wo, alignCorners, padding),
          [input([d.N, d.C, d.H, d.W], r), input([d.N, Ho, Wo, 2], r, -1.2, 1.2)],
          { maxCoords: 40 },
        );
      }
    }
  }
});

Deno.test("flowWarp matches the float64 reference, forward and gradients to x and flow", async () => {
  const r = rng(12);
  for (const [N, C, H, W] of [[1, 3, 5, 7], [2, 2, 6, 4]]) {
    const d = { N, C, H, W };
    await checkOp(
      `flowWarp [${N},${C},${H},${W}]`,
      ([x, f]) => flowWarp(x, f),
      flowWarpRef(d),
      [input([N, C, H, W], r), input([N, 2, H, W], r, -1.7, 1.7)],
      { maxCoords: 40 },
    );
  }
});

Deno.test("upsampleNearest matches the reference; gradient sums each block", async () => {
  const r = rng(13);
  for (const [shape, s] of [[[1, 2, 3, 5], 2], [[2, 1, 4, 3], 3], [[1, 3, 2, 3], 1]] as const) {
    const d = { N: shape[0], C: shape[1], H: shape[2], W: shape[3] };
    await checkOp(
      `upsampleNearest [${shape}] x${s}`,
      ([x]) => upsampleNearest(x, s),
      upsampleNearestRef(d, s),
      [input([...shape], r)],
    );
  }
});

Deno.test("upsampleBilinear matches the reference for scales, sizes and both alignCorners", async () => {
  const r = rng(14);
  const cases: { shape: number[]; scale?: number; size?: [number, number] }[] = [
    { shape: [1, 2, 3, 5], scale: 2 },
    { shape: [2, 1, 4, 3], scale: 1.5 },
    { shape: [1, 1, 5, 7], scale: 0.6 },
    { shape: [1, 2, 3, 4], size: [7, 5] },
    { shape: [2, 1, 6, 7], size: [4, 3] },
    { shape: [1, 1, 1, 4], size: [3, 1] },
  ];
  for (const c of cases) {
    for (const alignCorners of [false, true]) {
      const [N, C, H, W] = c.shape;
      const [Ho, Wo] = c.size ?? [Math.floor(H * c.scale!), Math.floor(W * c.scale!)];
      await checkOp(
        `upsampleBilinear [${c.shape}] ${c.scale ? `scale ${c.scale}` : `size ${c.size}`} ` +
          `align=${alignCorners}`,
        ([x]) => upsampleBilinear(x, { scale: c.scale, size: c.size, alignCorners }),
        upsampleBilinearRef({ N, C, H, W }, Ho, Wo, alignCorners, c.scale),
        [input(c.shape, r)],
      );
    }
  }
});

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

function near(got: number[], want: number[], tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

Deno.test("known answers: identity grid, zero flow, integer flow shift, PyTorch examples", async () => {
  await tidyAsync(async () => {
    const [N, C, H, W] = [2, 3, 5, 7];
    const r = rng(15);
    const xv = Array.from({ length: N * C * H * W }, () => r() * 2 - 1);
    const x = Tensor.fromData(xv, [N, C, H, W]);
    // Identity grid: linspace(-1, 1) along each axis with alignCorners hits pixel centres.
    const g: number[] = [];
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) g.push(-1 + 2 * j / (W - 1), -1 + 2 * i / (H - 1));
      }
    }
    const grid = Tensor.fromData(g, [N, H, W, 2]);
    near(await values(gridSample(x, grid, { alignCorners: true })), xv, 1e-6, "identity grid");
    near(
      await values(gridSample(x, grid, { alignCorners: true, padding: "border" })),
      xv,
      1e-6,
      "identity grid, border",
    );
    assert.deepEqual(
      await values(flowWarp(x, ops.zeros([N, 2, H, W]))),
      Array.from(Float32Array.from(xv)),
      "zero flow",
    );

    // Flow (dx, dy) = (1, -2): output (i, j) reads x at (i-2, j+1), zero outside.
    const flow = Tensor.fromData(
      Array.from({ length: N * 2 * H * W }, (_, k) => (Math.floor(k / (H * W)) % 2 === 0 ? 1 : -2)),
      [N, 2, H, W],
    );
    const want: number[] = [];
    const x32 = Float32Array.from(xv);
    for (let p = 0; p < N * C; p++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          const si = i - 2, sj = j + 1;
          want.push(si >= 0 && sj < W ? x32[(p * H + si) * W + sj] : 0);
        }
      }
    }
    assert.deepEqual(await values(flowWarp(x, flow)), want, "integer flow shift");

    // Small examples whose PyTorch results are known by hand.
    const img = Tensor.fromData([1, 2, 3, 4], [1, 1, 2, 2]);
    const pts = Tensor.fromData([0, 0, -1, -1, 1, 1, 0.5, -1], [1, 1, 4, 2]);
    near(await values(gridSample(img, pts)), [2.5, 0.25, 1, 1], 1e-6, "grid zeros");
    near(
      await values(gridSample(img, pts, { padding: "border" })),
      [2.5, 1, 4, 2],
      1e-6,
      "grid border",
    );
    near(
      await values(gridSample(img, pts, { alignCorners: true })),
      [2.5, 1, 4, 1.75],
      1e-6,
      "grid align",
    );
    near(
      await values(upsampleBilinear(img, { scale: 2 })),
      [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4],
      1e-6,
      "bilinear x2",
    );
    near(
      await values(upsampleBilinear(img, { size: [3, 3], alignCorners: true })),
      [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4],
      1e-6,
      "bilinear align 3x3",
    );
    near(
      await values(upsampleNearest(img, 2)),
      [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4],
      0,
      "nearest x2",
    );
  });
});

Deno.test("gradients are bit-identical run to run", async () => {
  await tidyAsync(async () => {
    const r = rng(16);
    const [N, C, H, W] = [2, 3, 8, 9];
    const x = Tensor.fromData(Array.from({ length: N * C * H * W }, () => r()), [N, C, H, W]);
    const grid = Tensor.fromData(Array.from({ length: N * 6 * 5 * 2 }, () => r() * 2.4 - 1.2), [
      N,
      6,
      5,
      2,
    ]);
    const flow = Tensor.fromData(Array.from({ length: N * 2 * H * W }, () => r() * 4 - 2), [
      N,
      2,
      H,
      W,
    ]);
    x.requiresGrad = grid.requiresGrad = flow.requiresGrad = true;
    const run = async () => {
      const [gx, gg] = grad(ops.sum(ops.square(gridSample(x, grid))), [x, grid]);
      const [fx, ff] = grad(ops.sum(ops.square(flowWarp(x, flow))), [x, flow]);
      const [ux] = grad(ops.sum(ops.square(upsampleBilinear(x, { scale: 1.7 }))), [x]);
      return await Promise.all([gx, gg, fx, ff, ux].map((t) => t.data()));
    };
    const a = await run();
    const b = await run();
    for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i], `gradient ${i} differs`);
  });
});

Deno.test("bad inputs raise errors naming the op and field", () => {
  const x = ops.zeros([1, 2, 3, 4]);
  assert.throws(
    () => gridSample(x, ops.zeros([1, 3, 4, 3])),
    /gridSample: grid must be \[N,Ho,Wo,2\]/,
  );
  assert.throws(() => gridSample(x, ops.zeros([2, 3, 4, 2])), /gridSample: grid batch 2/);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => gridSample(x, ops.zeros([1, 3, 4, 2]), { padding: "reflection" as any }),
    /gridSample: padding must be 'zeros' or 'border'/,
  );
  assert.throws(
    () => gridSample(ops.zeros([2, 3]), ops.zeros([1, 3, 4, 2])),
    /gridSample: x must be/,
  );
  assert.throws(() => flowWarp(x, ops.zeros([1, 2, 4, 3])), /flowWarp: flow must be \[N,2,H,W\]/);
  assert.throws(() => upsampleNearest(x, 1.5), /upsampleNearest: scale must be an integer/);
  assert.throws(() => upsampleBilinear(x, {}), /upsampleBilinear: give exactly one/);
  assert.throws(() => upsampleBilinear(x, { scale: 2, size: [4, 4] }), /exactly one/);
  assert.throws(() => upsampleBilinear(x, { scale: -1 }), /upsampleBilinear: scale must be/);
  assert.throws(() => upsampleBilinear(x, { size: [0, 3] }), /upsampleBilinear: size must be/);
  assert.throws(() => upsampleBilinear(x, { scale: 0.1 }), /empty output/);
  x.dispose();
});

Deno.test("neighbourSum4 matches the float64 reference, forward and gradient", async () => {
  const r = rng(31);
  for (const [N, C, H, W] of [[1, 1, 1, 1], [2, 3, 4, 5], [1, 2, 7, 3]]) {
    await checkOp(
      `neighbourSum4 [${N},${C},${H},${W}]`,
      ([x]) => ops.neighbourSum4(x),
      ([x]) => {
        const y = new Float64Array(x.length);
        const v = (p: number, h: number, w: number) =>
          h < 0 || w < 0 || h >= H || w >= W ? 0 : x[p * H * W + h * W + w];
        for (let p = 0; p < N * C; p++) {
          for (let h = 0; h < H; h++) {
            for (let w = 0; w < W; w++) {
              y[p * H * W + h * W + w] = v(p, h - 1, w) + v(p, h + 1, w) + v(p, h, w - 1) +
                v(p, h, w + 1);
            }
          }
        }
        return y;
      },
      [input([N, C, H, W], r)],
    );
  }
});

/** Float64 red-black SOR, the reference of ops.harmonicFill (mask [N,1,H,W], 1 = hole). */
function harmonicRef(N: number, C: number, H: number, W: number, iters: number, omega: number) {
  return ([x, m]: Float64Array[]) => {
    const f = Float64Array.from(x), hw = H * W;
    for (let p = 0; p < N * C; p++) {
      const b = p * hw, mb = Math.floor(p / C) * hw;
      for (let t = 0; t < 2 * iters; t++) {
        for (let h = 0; h < H; h++) {
          for (let w = 0; w < W; w++) {
            if ((h + w) % 2 !== t % 2 || m[mb + h * W + w] < 0.5) continue;
            let s = 0, c = 0;
            for (const [dh, dw] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
              const hh = h + dh, ww = w + dw;
              if (hh < 0 || ww < 0 || hh >= H || ww >= W) continue;
              s += f[b + hh * W + ww];
              c++;
            }
            if (c > 0) f[b + h * W + w] = (1 - omega) * f[b + h * W + w] + omega * s / c;
          }
        }
      }
    }
    return f;
  };
}

Deno.test("harmonicFill matches the float64 red-black SOR, forward and gradient, on both paths", async () => {
  const r = rng(32);
  for (const path of ["workgroup", "global"] as const) {
    for (
      const [N, C, H, W, iters, omega] of [[1, 1, 1, 1, 2, 1.5], [2, 3, 5, 6, 3, 1.7], [
        1,
        2,
        9,
        4,
        0,
        1,
      ], [2, 1, 7, 7, 5, 1.0]]
    ) {
      const mask = Float64Array.from({ length: N * H * W }, () => (r() < 0.4 ? 1 : 0));
      await checkOp(
        `harmonicFill ${path} [${N},${C},${H},${W}] ${iters} it omega ${omega}`,
        ([x, m]) => ops.harmonicFill(x, m, { iterations: iters, omega, path }),
        harmonicRef(N, C, H, W, iters, omega),
        [input([N, C, H, W], r), { shape: [N, 1, H, W], data: mask, grad: false }],
        { maxCoords: 60 },
      );
    }
  }
});

Deno.test("harmonicFill: both paths give the same bits; known pixels are untouched", async () => {
  const r = rng(33);
  // 16x16: one pixel a thread; 64x128: 32 pixels a thread, the most a workgroup plane holds
  // (every bit of the per-thread pixel masks in use).
  // 64x128 needs 32 KiB of workgroup memory (WebGPU guarantees 16 KiB): skipped below that.
  const big = engine().device.limits.maxComputeWorkgroupStorageSize >= 64 * 128 * 4;
  for (const [N, C, H, W] of [[2, 3, 16, 16], ...(big ? [[1, 2, 64, 128]] : [])]) {
    const x = Tensor.fromData(Float32Array.from(randArray(N * C * H * W, r)), [N, C, H, W]);
    const maskData = Float32Array.from({ length: N * H * W }, () => (r() < 0.3 ? 1 : 0));
    const m = Tensor.fromData(maskData, [N, 1, H, W]);
    const gy = Tensor.fromData(Float32Array.from(randArray(N * C * H * W, r)), [N, C, H, W]);
    const o = { iterations: 12, omega: 1.8 };
    const out: Float32Array[][] = [];
    for (const path of ["workgroup", "global"] as const) {
      const xv = Tensor.fromData(await x.data(), x.shape);
      xv.requiresGrad = true;
      const y = ops.harmonicFill(xv, m, { ...o, path });
      const [gx] = grad(y, [xv], gy);
      out.push([await y.data(), await gx.data()]);
      for (const t of [xv, y, gx]) t.dispose();
    }
    assert.deepEqual(out[0][0], out[1][0], `forward bits [${N},${C},${H},${W}]`);
    assert.deepEqual(out[0][1], out[1][1], `adjoint bits [${N},${C},${H},${W}]`);
    const xs = await x.data();
    const want = harmonicRef(N, C, H, W, o.iterations, o.omega)([
      Float64Array.from(xs),
      Float64Array.from(maskData),
    ]);
    for (let i = 0; i < xs.length; i++) {
      const p = Math.floor(i / (H * W)), n = Math.floor(p / C);
      if (maskData[n * H * W + (i % (H * W))] < 0.5) assert.equal(out[0][0][i], xs[i]);
      assert.ok(
        Math.abs(out[0][0][i] - want[i]) < 1e-4,
        `pixel ${i}: ${out[0][0][i]} vs ${want[i]}`,
      );
    }
    // The fill is linear in x, so the adjoint passes the dot-product test against the float64
    // forward: <gy, F(x)> = <F'(gy), x>.
    const gys = await gy.data();
    let lhs = 0, rhs = 0, scale = 0;
    for (let i = 0; i < xs.length; i++) {
      lhs += gys[i] * want[i];
      rhs += out[0][1][i] * xs[i];
      scale += Math.abs(gys[i] * want[i]);
    }
    assert.ok(Math.abs(lhs - rhs) < 1e-5 * scale, `dot-product test: ${lhs} vs ${rhs}`);
    for (const t of [x, m, gy]) t.dispose();
  }
  const x = Tensor.fromData(Float32Array.from(randArray(48, r)), [1, 3, 4, 4]);
  const m = Tensor.fromData(new Float32Array(16), [1, 1, 4, 4]);
  assert.throws(
    () => ops.harmonicFill(x, m, { iterations: 1, omega: 2 }),
    /omega must lie in \(0, 2\)/,
  );
  x.dispose();
  m.dispose();
});
