import { assert, assertClose, checkOp, gpu, input, randInt, rng } from "./helpers/check.ts";
import {
  concatRef,
  gatherRef,
  pad2dRef,
  permuteRef,
  sliceRef,
  sortDescRef,
} from "./ref/nn_basic.ts";
import { concat, gather, pad2d, permute, slice, sortDesc } from "../runtime/ops/layout.ts";
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
    const shapes = Array.from({ length: randInt(r, 1, 3) }, () =>
      base.map((d, i) => (i === axis ? randInt(r, 1, 4) : d)));
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
    await checkOp(`permute [${shape}] -> [${dims}]`, ([x]) => permute(x, dims), permuteRef(shape, dims), [
      input(shape, r),
    ]);
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
  const cases: [number[], number][] = [[[1, 7], -1], [[4, 9], 1], [[3, 5, 2], 1], [[6, 2, 3], 0], [[13], 0]];
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
  assertClose(got, Float64Array.from(Float32Array.from(big)).sort().reverse(), 0, "sortDesc K=1000");
});

Deno.test("layout ops reject bad arguments with messages naming the op", () => {
  throwsWith(() => concat([ops.ones([2, 3]), ops.ones([3, 3])], 1), /concat: tensor 1 has shape \[3,3\]/);
  throwsWith(() => concat([], 0), /concat: expected a non-empty array/);
  throwsWith(() => concat([ops.ones([2, 3])], 2), /concat: axis 2 is out of range/);
  throwsWith(() => slice(ops.ones([2, 3]), 1, 2, 5), /slice: range \[2, 5\) is not within axis 1 of size 3/);
  throwsWith(() => pad2d(ops.ones([2, 3]), [1, -1, 0, 0]), /pad2d: pads must be \[left, right, top, bottom\], non-negative/);
  throwsWith(() => pad2d(ops.ones([3]), [1, 1, 0, 0]), /pad2d: input must have at least 2 dims/);
  throwsWith(() => permute(ops.ones([2, 3, 4]), [0, 0, 1]), /permute: dims \[0,0,1\] must be a permutation of 0..2/);
  throwsWith(() => gather(ops.ones([2, 3]), ops.ones([3])), /gather: idx .*expected shape \[2\], got \[3\]/);
  throwsWith(() => gather(ops.ones([6]), ops.ones([6])), /gather: expected x of shape \[N,K\]/);
  throwsWith(() => sortDesc(ops.ones([2, 3]), 2), /sortDesc: axis 2 is out of range/);
});
