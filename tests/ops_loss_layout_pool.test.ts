import { assert, assertClose, checkOp, gpu, input, randInt, rng } from "./helpers/check.ts";
import {
  concatRef,
  crossEntropyRef,
  gatherRef,
  globalAvgPoolRef,
  hingeDRef,
  hingeGRef,
  l1Ref,
  marginFamilyRef,
  mseRef,
  pad2dRef,
  permuteRef,
  pool2dRef,
  type PoolRefGeometry,
  type RefReduction,
  sliceRef,
  softmaxRef,
  sortDescRef,
} from "./ref/nn_basic.ts";
import { avgPool2d, globalAvgPool, maxPool2d } from "../runtime/ops/pool.ts";
import { concat, gather, pad2d, permute, slice, sortDesc } from "../runtime/ops/layout.ts";
import {
  crossEntropy,
  dlrLoss,
  dlrTargetedLoss,
  hingeGanLossD,
  hingeGanLossG,
  l1Loss,
  logSoftmax,
  marginLoss,
  mseLoss,
  oneHot,
  softmax,
} from "../runtime/ops/loss.ts";
import * as attackLosses from "../runtime/attacks/losses.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import { backward } from "../runtime/autograd.ts";
import * as ops from "../runtime/ops/mod.ts";

await gpu();

const shapeOf = (r: () => number, nd: number, lo = 1, hi = 5) =>
  Array.from({ length: nd }, () => randInt(r, lo, hi));

/** Shuffled distinct values spaced `gap` apart, so finite differences never cross a tie. */
function distinct(n: number, r: () => number, gap = 0.05): Float64Array {
  const v = Float64Array.from({ length: n }, (_, i) => (i - n / 2) * gap + 0.013);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j], v[i]];
  }
  return v;
}

function throwsWith(fn: () => unknown, re: RegExp): void {
  tidy(() => {
    assert.throws(fn, re);
  });
}

// ---------------------------------------------------------------- layout

Deno.test("concat along every axis, 1-3 inputs, with gradients", async () => {
  const r = rng(101);
  for (let t = 0; t < 6; t++) {
    const nd = randInt(r, 1, 4);
    const axis = randInt(r, 0, nd - 1);
    const base = shapeOf(r, nd);
    const shapes = Array.from(
      { length: randInt(r, 1, 3) },
      () => base.map((d, i) => (i === axis ? randInt(r, 1, 4) : d)),
    );
    await checkOp(
      `concat ${JSON.stringify(shapes)} axis ${axis}`,
      (xs) => concat(xs, t % 2 ? axis - nd : axis),
      concatRef(shapes, axis),
      shapes.map((s) => input(s, r)),
    );
  }
});

Deno.test("slice (negative bounds too) and pad2d with gradients", async () => {
  const r = rng(102);
  for (let t = 0; t < 5; t++) {
    const nd = randInt(r, 1, 4);
    const shape = shapeOf(r, nd, 1, 6);
    const axis = randInt(r, 0, nd - 1);
    const s = randInt(r, 0, shape[axis] - 1), e = randInt(r, s + 1, shape[axis]);
    const negEnd = t === 2 && e < shape[axis];
    await checkOp(
      `slice [${shape}] axis ${axis} ${s}:${e}`,
      ([x]) => slice(x, axis, s, negEnd ? e - shape[axis] : e),
      sliceRef(shape, axis, s, e),
      [input(shape, r)],
    );
  }
  for (let t = 0; t < 5; t++) {
    const shape = shapeOf(r, randInt(r, 2, 4), 1, 5);
    const pads = [randInt(r, 0, 2), randInt(r, 0, 3), randInt(r, 0, 2), randInt(r, 0, 1)];
    const value = t === 3 ? -0.75 : 0;
    await checkOp(
      `pad2d [${shape}] ${pads} value ${value}`,
      ([x]) => pad2d(x, pads, value),
      pad2dRef(shape, pads, value),
      [input(shape, r)],
    );
  }
});

Deno.test("permute up to 6-d with gradients", async () => {
  const r = rng(103);
  for (const nd of [2, 3, 4, 5, 6]) {
    const shape = shapeOf(r, nd, 1, nd > 4 ? 3 : 5);
    const dims = [...Array(nd).keys()];
    for (let i = nd - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [dims[i], dims[j]] = [dims[j], dims[i]];
    }
    await checkOp(
      `permute [${shape}] -> [${dims}]`,
      ([x]) => permute(x, dims),
      permuteRef(shape, dims),
      [
        input(shape, r),
      ],
    );
  }
});

Deno.test("gather picks one entry per row; gradient scatters into zeros", async () => {
  const r = rng(104);
  for (const [n, k] of [[1, 5], [4, 3], [7, 11]]) {
    const idx = Array.from({ length: n }, () => randInt(r, 0, k - 1));
    await checkOp(
      `gather [${n},${k}]`,
      ([x]) => gather(x, Tensor.fromData(idx, [n])),
      gatherRef(n, k, idx),
      [input([n, k], r)],
    );
  }
  // Out-of-range and fractional indices give NaN instead of reading a neighbour row.
  const y = await tidy(() => gather(ops.ones([3, 4]), Tensor.fromData([4, -1, 1.5], [3]))).data();
  assert.ok(y.every(Number.isNaN), `gather with bad indices: expected NaN, got ${y}`);
});

Deno.test("sortDesc along any axis; gradient follows each value to its origin", async () => {
  const r = rng(105);
  const cases: [number[], number][] = [[[1, 7], -1], [[4, 9], 1], [[3, 5, 2], 1], [[6, 2, 3], 0], [[
    13,
  ], 0]];
  for (const [shape, axis] of cases) {
    const n = shape.reduce((p, d) => p * d, 1);
    await checkOp(
      `sortDesc [${shape}] axis ${axis}`,
      ([x]) => sortDesc(x, axis),
      sortDescRef(shape, axis < 0 ? axis + shape.length : axis),
      [{ shape, data: distinct(n, r) }],
    );
  }
  // Ties keep index order, so the gradient of slot k goes to the k-th tied element.
  const [vals, g] = tidy(() => {
    const x = Tensor.fromData([1, 3, 1, 3, 2], [1, 5]);
    x.requiresGrad = true;
    const y = sortDesc(x);
    backward(ops.sum(ops.mul(y, Tensor.fromData([10, 20, 30, 40, 50], [1, 5]))));
    return [y, x.grad!];
  });
  assert.deepEqual([...await vals.data()], [3, 3, 2, 1, 1]);
  assert.deepEqual([...await g.data()], [40, 10, 50, 20, 30]);
  // Rows of length 1000 (the documented upper size) sort correctly.
  const big = distinct(1000, r, 0.001);
  const got = await tidy(() => sortDesc(Tensor.fromData(Float32Array.from(big), [1, 1000]))).data();
  assertClose(
    got,
    Float64Array.from(Float32Array.from(big)).sort().reverse(),
    0,
    "sortDesc K=1000",
  );
});

Deno.test("layout ops reject bad arguments with messages naming the op", () => {
  throwsWith(
    () => concat([ops.ones([2, 3]), ops.ones([3, 3])], 1),
    /concat: tensor 1 has shape \[3,3\]/,
  );
  throwsWith(() => concat([], 0), /concat: expected a non-empty array/);
  throwsWith(() => concat([ops.ones([2, 3])], 2), /concat: axis 2 is out of range/);
  throwsWith(
    () => slice(ops.ones([2, 3]), 1, 2, 5),
    /slice: range \[2, 5\) is not within axis 1 of size 3/,
  );
  throwsWith(
    () => pad2d(ops.ones([2, 3]), [1, -1, 0, 0]),
    /pad2d: pads must be \[left, right, top, bottom\], non-negative/,
  );
  throwsWith(() => pad2d(ops.ones([3]), [1, 1, 0, 0]), /pad2d: input must have at least 2 dims/);
  throwsWith(
    () => permute(ops.ones([2, 3, 4]), [0, 0, 1]),
    /permute: dims \[0,0,1\] must be a permutation of 0..2/,
  );
  throwsWith(
    () => gather(ops.ones([2, 3]), ops.ones([3])),
    /gather: idx .*expected shape \[2\], got \[3\]/,
  );
  throwsWith(() => gather(ops.ones([6]), ops.ones([6])), /gather: expected x of shape \[N,K\]/);
  throwsWith(() => sortDesc(ops.ones([2, 3]), 2), /sortDesc: axis 2 is out of range/);
});

// ---------------------------------------------------------------- losses

const labelsFor = (r: () => number, n: number, k: number) =>
  Array.from({ length: n }, () => randInt(r, 0, k - 1));

/** Logit rows whose entries are spread apart (no near-ties for the sort-based losses). */
function spreadRows(n: number, k: number, r: () => number): Float64Array {
  const z = new Float64Array(n * k);
  for (let i = 0; i < n; i++) z.set(distinct(k, r, 0.4).map((v) => v + 0.05 * r()), i * k);
  return z;
}

Deno.test("logSoftmax and softmax over rows (large logits too), with gradients", async () => {
  const r = rng(201);
  const cases: [number[], number][] = [[[1, 7], 3], [[5, 3], 3], [[3, 2, 6], 3], [[4, 9], 40], [[
    2,
    1,
  ], 3]];
  for (const [shape, scale] of cases) {
    const k = shape[shape.length - 1];
    await checkOp(`logSoftmax [${shape}] x${scale}`, ([x]) => logSoftmax(x), softmaxRef(k, true), [
      input(shape, r, -scale, scale),
    ]);
    await checkOp(`softmax [${shape}] x${scale}`, ([x]) => softmax(x), softmaxRef(k, false), [
      input(shape, r, -scale, scale),
    ]);
  }
});

Deno.test("crossEntropy with mean/sum/none reductions matches float64, with gradients", async () => {
  const r = rng(202);
  const cases: [number, number, RefReduction][] = [[1, 5, "mean"], [6, 3, "sum"], [7, 10, "none"], [
    3,
    2,
    "mean",
  ], [9, 13, "mean"]];
  for (const [n, k, reduction] of cases) {
    const labels = labelsFor(r, n, k);
    await checkOp(
      `crossEntropy [${n},${k}] ${reduction}`,
      ([z]) => crossEntropy(z, Tensor.fromData(labels, [n]), { reduction }),
      crossEntropyRef(k, labels, reduction),
      [input([n, k], r, -4, 4)],
    );
  }
  // Default reduction is the mean; a bad label gives NaN for its row only.
  const [mean, rows] = tidy(() => {
    const z = Tensor.fromData([1, 2, 3, 0.5, 0.25, 2], [2, 3]);
    return [
      crossEntropy(z, Tensor.fromData([2, 0], [2])),
      crossEntropy(z, Tensor.fromData([1, 3], [2]), { reduction: "none" }),
    ];
  });
  const want = crossEntropyRef(3, [2, 0], "mean")([Float64Array.of(1, 2, 3, 0.5, 0.25, 2)]);
  assertClose(await mean.data(), want, 1e-5, "crossEntropy default mean");
  const got = await rows.data();
  assert.ok(Number.isFinite(got[0]) && Number.isNaN(got[1]), `crossEntropy bad label: got ${got}`);
});

Deno.test("oneHot rows", async () => {
  const y = tidy(() => oneHot(Tensor.fromData([2, 0, 3], [3]), 4));
  assert.deepEqual(y.shape, [3, 4]);
  assert.deepEqual([...await y.data()], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
});

Deno.test("l1Loss, mseLoss and hinge GAN losses match float64, with gradients", async () => {
  const r = rng(203);
  for (const reduction of ["mean", "sum", "none"] as const) {
    const shape = [randInt(r, 1, 3), randInt(r, 2, 5), randInt(r, 1, 4)];
    const a = input(shape, r);
    // Keep |a - b| >= 0.1 so finite differences never straddle the kink of |.|.
    const b = { shape, data: a.data.map((v) => v + (r() < 0.5 ? -1 : 1) * (0.1 + r())) };
    await checkOp(
      `l1Loss [${shape}] ${reduction}`,
      ([x, y]) => l1Loss(x, y, reduction),
      l1Ref(reduction),
      [a, b],
    );
    await checkOp(
      `mseLoss [${shape}] ${reduction}`,
      ([x, y]) => mseLoss(x, y, reduction),
      mseRef(reduction),
      [
        input(shape, r),
        input(shape, r),
      ],
    );
  }
  // Logits kept away from the hinge kinks at real = 1 and fake = -1.
  const awayFrom = (v: number, kink: number) => Math.abs(v - kink) < 0.05 ? v + 0.1 : v;
  const real = input([5, 1], r, -3, 3), fake = input([3, 2, 2], r, -3, 3);
  real.data = real.data.map((v) => awayFrom(v, 1));
  fake.data = fake.data.map((v) => awayFrom(v, -1));
  await checkOp("hingeGanLossD", ([x, y]) => hingeGanLossD(x, y), hingeDRef, [real, fake]);
  await checkOp("hingeGanLossG", ([x]) => hingeGanLossG(x), hingeGRef, [fake]);
});

Deno.test("dlrLoss, dlrTargetedLoss, marginLoss per example match float64, with gradients", async () => {
  const r = rng(204);
  for (const [n, k] of [[1, 4], [7, 5], [5, 10], [3, 3]]) {
    const labels = labelsFor(r, n, k);
    // Make row 0's label the top class so the "max over others" takes the second largest.
    const z = spreadRows(n, k, r);
    let top = 0;
    for (let i = 1; i < k; i++) if (z[i] > z[top]) top = i;
    labels[0] = top;
    const lab = () => Tensor.fromData(labels, [n]);
    await checkOp(
      `dlrLoss [${n},${k}]`,
      ([x]) => dlrLoss(x, lab()),
      marginFamilyRef("dlr", k, labels),
      [
        { shape: [n, k], data: z },
      ],
    );
    await checkOp(
      `marginLoss [${n},${k}]`,
      ([x]) => marginLoss(x, lab()),
      marginFamilyRef("margin", k, labels),
      [
        { shape: [n, k], data: z },
      ],
    );
    if (k >= 4) {
      const targets = labels.map((y) => (y + randInt(r, 1, k - 1)) % k);
      targets[n - 1] = labels[n - 1]; // y == t: zero loss and zero gradient
      await checkOp(
        `dlrTargetedLoss [${n},${k}]`,
        ([x]) => dlrTargetedLoss(x, lab(), Tensor.fromData(targets, [n])),
        marginFamilyRef("dlrTargeted", k, labels, targets),
        [{ shape: [n, k], data: z }],
      );
    }
  }
});

Deno.test("runtime losses agree with the composite attack losses", async () => {
  const r = rng(205);
  const n = 6, k = 7;
  const z = spreadRows(n, k, r);
  const labels = labelsFor(r, n, k), targets = labels.map((y) => (y + 1) % k);
  const pairs = tidy(() => {
    const zt = Tensor.fromData(Float32Array.from(z), [n, k]);
    const y = Tensor.fromData(labels, [n]), t = Tensor.fromData(targets, [n]);
    return [
      [crossEntropy(zt, y, { reduction: "none" }), attackLosses.ceLoss(zt, y)],
      [dlrLoss(zt, y), attackLosses.dlrLoss(zt, y)],
      [dlrTargetedLoss(zt, y, t), attackLosses.dlrTargetedLoss(zt, y, t)],
      [marginLoss(zt, y), attackLosses.marginLoss(zt, y)],
    ];
  });
  for (const [i, [a, b]] of pairs.entries()) {
    assertClose(await a.data(), await b.data(), 1e-5, `loss pair ${i}`);
  }
});

Deno.test("losses reject bad arguments with messages naming the op", () => {
  const z = () => ops.ones([2, 5]);
  throwsWith(
    () => crossEntropy(ops.ones([2, 5, 1]), ops.ones([2])),
    /crossEntropy: logits must be \[N,K\], got \[2,5,1\]/,
  );
  throwsWith(
    () => crossEntropy(z(), ops.ones([3])),
    /crossEntropy: labels .*expected shape \[2\], got \[3\]/,
  );
  throwsWith(
    () => crossEntropy(z(), ops.ones([2]), { reduction: "avg" as never }),
    /crossEntropy: reduction must be 'mean', 'sum' or 'none'/,
  );
  throwsWith(() => logSoftmax(Tensor.scalar(1)), /logSoftmax: expected at least a 1-d tensor/);
  throwsWith(
    () => oneHot(ops.ones([2]), 0),
    /oneHot: number of classes K must be a positive integer/,
  );
  throwsWith(
    () => l1Loss(ops.ones([2, 3]), ops.ones([3, 2])),
    /l1Loss: input \[2,3\] and target \[3,2\] must have the same shape/,
  );
  throwsWith(
    () => mseLoss(ops.ones([2]), ops.ones([2]), "max" as never),
    /mseLoss: reduction must be/,
  );
  throwsWith(() => dlrLoss(ops.ones([2, 2]), ops.ones([2])), /dlrLoss: needs at least 3 classes/);
  throwsWith(
    () => dlrTargetedLoss(ops.ones([2, 3]), ops.ones([2]), ops.ones([2])),
    /dlrTargetedLoss: needs at least 4 classes/,
  );
  throwsWith(
    () => dlrTargetedLoss(z(), ops.ones([2]), ops.ones([1])),
    /dlrTargetedLoss: targets .*expected shape \[2\]/,
  );
  throwsWith(
    () => marginLoss(ops.ones([2, 1]), ops.ones([2])),
    /marginLoss: needs at least 2 classes/,
  );
  throwsWith(() => hingeGanLossG(ops.ones([0])), /hingeGanLossG: logits must be non-empty/);
});

// ---------------------------------------------------------------- pooling

function randomPool(r: () => number): PoolRefGeometry {
  const kernel: [number, number] = [randInt(r, 1, 3), randInt(r, 1, 4)];
  const stride: [number, number] = [randInt(r, 1, 3), randInt(r, 1, 2)];
  const padding: [number, number] = [randInt(r, 0, kernel[0] >> 1), randInt(r, 0, kernel[1] >> 1)];
  const H = randInt(r, kernel[0], 8), W = randInt(r, kernel[1], 7);
  return { N: randInt(r, 1, 2), C: randInt(r, 1, 3), H, W, kernel, stride, padding };
}

const poolOpts = (g: PoolRefGeometry, t: number) =>
  t % 3 === 0 && g.kernel[0] === g.kernel[1] && g.stride[0] === g.stride[1] &&
    g.padding[0] === g.padding[1]
    ? { kernel: g.kernel[0], stride: g.stride[0], padding: g.padding[0] } // number form
    : { kernel: g.kernel, stride: g.stride, padding: g.padding };

Deno.test("maxPool2d and avgPool2d (stride, padding, non-square) match float64, with gradients", async () => {
  const r = rng(301);
  for (let t = 0; t < 10; t++) {
    const g = randomPool(r);
    const shape = [g.N, g.C, g.H, g.W];
    const n = shape.reduce((p, d) => p * d, 1);
    const o = poolOpts(g, t);
    await checkOp(`maxPool2d ${JSON.stringify(g)}`, ([x]) => maxPool2d(x, o), pool2dRef(g, "max"), [
      { shape, data: distinct(n, r, 0.02) },
    ]);
    await checkOp(`avgPool2d ${JSON.stringify(g)}`, ([x]) => avgPool2d(x, o), pool2dRef(g, "avg"), [
      input(shape, r),
    ]);
  }
  // Default stride = kernel (PyTorch), on a batch-1 non-square map.
  const g: PoolRefGeometry = {
    N: 1,
    C: 2,
    H: 7,
    W: 5,
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
  };
  await checkOp(
    "maxPool2d default stride",
    ([x]) => maxPool2d(x, { kernel: 2 }),
    pool2dRef(g, "max"),
    [
      { shape: [1, 2, 7, 5], data: distinct(70, r, 0.02) },
    ],
  );
  await checkOp(
    "avgPool2d default stride",
    ([x]) => avgPool2d(x, { kernel: [2, 2] }),
    pool2dRef(g, "avg"),
    [
      input([1, 2, 7, 5], r),
    ],
  );
});

Deno.test("maxPool2d routes a tie's gradient to the first maximum in scan order", async () => {
  // Overlapping 2x2 windows, stride 1, all values equal: each window's first element wins.
  const [y, g] = tidy(() => {
    const x = ops.ones([1, 1, 3, 3]);
    x.requiresGrad = true;
    const out = maxPool2d(x, { kernel: 2, stride: 1 });
    backward(ops.sum(ops.mul(out, Tensor.fromData([1, 2, 3, 4], [1, 1, 2, 2]))));
    return [out, x.grad!];
  });
  assert.deepEqual([...await y.data()], [1, 1, 1, 1]);
  assert.deepEqual([...await g.data()], [1, 2, 0, 3, 4, 0, 0, 0, 0]);
  // Padding acts as -inf: an all-negative input keeps negative maxima at the border.
  const b = await tidy(() =>
    maxPool2d(ops.full([1, 1, 2, 2], -5), { kernel: 3, stride: 1, padding: 1 })
  ).data();
  assert.deepEqual([...b], [-5, -5, -5, -5]);
});

Deno.test("globalAvgPool -> [N,C], with gradients", async () => {
  const r = rng(302);
  for (const shape of [[1, 3, 5, 4], [2, 1, 1, 7], [3, 2, 6]]) {
    const [n, c] = shape;
    const s = shape.slice(2).reduce((p, d) => p * d, 1);
    await checkOp(
      `globalAvgPool [${shape}]`,
      ([x]) => {
        const y = globalAvgPool(x);
        assert.deepEqual(y.shape, [n, c]);
        return y;
      },
      globalAvgPoolRef(n, c, s),
      [input(shape, r)],
    );
  }
});

Deno.test("pooling rejects bad arguments with messages naming the op", () => {
  const x = () => ops.ones([1, 2, 5, 4]);
  throwsWith(
    () => maxPool2d(ops.ones([2, 5, 4]), { kernel: 2 }),
    /maxPool2d: expected a 4-d NCHW tensor, got shape \[2,5,4\]/,
  );
  throwsWith(() => maxPool2d(x(), { kernel: 0 }), /maxPool2d: kernel must be an integer >= 1/);
  throwsWith(
    () => avgPool2d(x(), { kernel: [2, 2], stride: [1] as never }),
    /avgPool2d: stride must be an integer >= 1 or a pair/,
  );
  throwsWith(
    () => avgPool2d(x(), { kernel: 2, padding: -1 }),
    /avgPool2d: padding must be an integer >= 0/,
  );
  throwsWith(
    () => maxPool2d(x(), { kernel: 3, padding: 2 }),
    /maxPool2d: padding \[2,2\] must be at most half the kernel/,
  );
  throwsWith(
    () => maxPool2d(x(), { kernel: [6, 2] }),
    /maxPool2d: kernel \[6,2\] with padding \[0,0\] does not fit input \[1,2,5,4\]/,
  );
  throwsWith(() => maxPool2d(x(), undefined as never), /maxPool2d: options.kernel is required/);
  throwsWith(() => globalAvgPool(ops.ones([2, 3])), /globalAvgPool: expected \[N,C,H,W\]/);
});

Deno.test("forward and gradients are bit-identical run to run", async () => {
  const r = rng(401);
  const x = Float32Array.from(distinct(2 * 3 * 9 * 8, r, 0.01));
  const labels = labelsFor(r, 6, 72 / 6);
  const run = () =>
    tidy(() => {
      const t = Tensor.fromData(x, [2, 3, 9, 8]);
      t.requiresGrad = true;
      const z = ops.reshape(maxPool2d(pad2d(t, [1, 0, 2, 1]), { kernel: [3, 2], stride: [2, 1] }), [
        6,
        -1,
      ]);
      const loss = ops.add(
        crossEntropy(z, Tensor.fromData(labels, [6])),
        ops.mean(
          ops.add(dlrLoss(logSoftmax(z), Tensor.fromData(labels, [6])), ops.sum(sortDesc(z, 0))),
        ),
      );
      backward(loss);
      return [loss, t.grad!];
    });
  const [a, b] = [run(), run()];
  for (let i = 0; i < 2; i++) {
    const [u, v] = [await a[i].data(), await b[i].data()];
    assert.ok(u.some((e) => e !== 0), "gradient should not be all zeros");
    assert.deepEqual(
      new Uint32Array(u.buffer),
      new Uint32Array(v.buffer),
      `output ${i} differs between runs`,
    );
  }
});
