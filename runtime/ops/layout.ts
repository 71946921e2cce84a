// Data-movement ops: concat, slice, pad2d, permute, gather (row-wise pick), sortDesc. The first
// four are one strided-window copy kernel (shaders/layout.wgsl) with different index maps;
// their gradients are the same kernel with the map inverted.

import { record } from "../autograd.ts";
import { type Shape, Tensor } from "../tensor.ts";
import { engine } from "../engine.ts";
import { launch1d, MAX_DIMS, normAxis, pad6, stridesOf, words } from "./util.ts";

/** One strided window copy: for every coordinate c of `index` (the iteration shape), reads
 * x at c - lo (strides xs, base xb) when inside `src`, else writes `value`; writes y at c
 * (strides ys, base yb). */
interface Window {
  index: Shape;
  lo?: number[];
  src?: Shape;
  xs: number[];
  ys: number[];
  xb?: number;
  yb?: number;
  value?: number;
}

function copyWindow(x: Tensor, y: Tensor, w: Window): void {
  const n = w.index.reduce((p, d) => p * d, 1);
  if (w.index.length > MAX_DIMS) {
    throw new Error(
      `layout: tensors of more than ${MAX_DIMS} dims are unsupported, got [${w.index}]`,
    );
  }
  launch1d(
    "layout",
    n,
    [x.buffer, y.buffer],
    words(
      n,
      w.index.length,
      w.xb ?? 0,
      w.yb ?? 0,
      { f: w.value ?? 0 },
      pad6([...w.index], 1),
      pad6(w.lo ?? []),
      pad6([...(w.src ?? w.index)], 1),
      pad6(w.xs),
      pad6(w.ys),
    ),
  );
}

/** y = x padded by [before, after] zeros (or `value`) on each axis. */
function padRaw(x: Tensor, before: number[], after: number[], value: number): Tensor {
  const shape = x.shape.map((d, i) => d + before[i] + after[i]);
  const y = Tensor.empty(shape);
  copyWindow(x, y, {
    index: shape,
    lo: before,
    src: x.shape,
    xs: stridesOf(x.shape),
    ys: stridesOf(shape),
    value,
  });
  return y;
}

/** The block of x starting at `start` with shape `shape` (a copy). */
function cropRaw(x: Tensor, start: number[], shape: number[]): Tensor {
  const y = Tensor.empty(shape);
  const xs = stridesOf(x.shape);
  copyWindow(x, y, {
    index: shape,
    xs,
    ys: stridesOf(shape),
    xb: start.reduce((p, s, i) => p + s * xs[i], 0),
  });
  return y;
}

/** Concatenates tensors along `axis`; all other dims must agree. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) {
    throw new Error("concat: expected a non-empty array of tensors");
  }
  const ref = xs[0];
  const a = normAxis("concat", axis, ref.ndim);
  for (const [k, t] of xs.entries()) {
    if (t.ndim !== ref.ndim || t.shape.some((d, i) => i !== a && d !== ref.shape[i])) {
      throw new Error(
        `concat: tensor ${k} has shape [${t.shape}], incompatible with [${ref.shape}] ` +
          `(all dims except axis ${a} must match)`,
      );
    }
  }
  const shape = [...ref.shape];
  shape[a] = xs.reduce((p, t) => p + t.shape[a], 0);
  const y = Tensor.empty(shape);
  const ys = stridesOf(shape);
  const offsets: number[] = [];
  let off = 0;
  for (const t of xs) {
    offsets.push(off);
    copyWindow(t, y, { index: t.shape, xs: stridesOf(t.shape), ys, yb: off * ys[a] });
    off += t.shape[a];
  }
  return record(y, "concat", xs, (gy, needs) =>
    xs.map((t, k) => {
      if (!needs[k]) return null;
      const start = shape.map((_, i) => (i === a ? offsets[k] : 0));
      return cropRaw(gy, start, [...t.shape]);
    }));
}

/** x[..., start:end, ...] along `axis` (0 <= start <= end <= size; negative start/end count
 * from the end like Python). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis("slice", axis, x.ndim);
  const d = x.shape[a];
  const s = start < 0 ? start + d : start;
  const e = end < 0 ? end + d : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > d || s > e) {
    throw new Error(
      `slice: range [${start}, ${end}) is not within axis ${a} of size ${d} (shape [${x.shape}])`,
    );
  }
  const shape = x.shape.map((v, i) => (i === a ? e - s : v));
  const begin = x.shape.map((_, i) => (i === a ? s : 0));
  const y = cropRaw(x, begin, shape);
  return record(y, "slice", [x], (gy) => {
    const after = x.shape.map((_, i) => (i === a ? d - e : 0));
    return [padRaw(gy, begin, after, 0)];
  });
}

/** Pads the last two axes (H, W) of a >= 2-d tensor by [left, right, top, bottom] with a
 * constant value. */
export function pad2d(
  x: Tensor,
  pads: readonly [number, number, number, number] | readonly number[],
  value = 0,
): Tensor {
  if (x.ndim < 2) {
    throw new Error(`pad2d: input must have at least 2 dims (…,H,W), got [${x.shape}]`);
  }
  if (
    !Array.isArray(pads) || pads.length !== 4 || pads.some((v) => !Number.isInteger(v) || v < 0)
  ) {
    throw new Error(
      `pad2d: pads must be [left, right, top, bottom], non-negative integers, got [${pads}]`,
    );
  }
  const [left, right, top, bottom] = pads;
  const lead = x.ndim - 2;
  const before = [...new Array(lead).fill(0), top, left];
  const after = [...new Array(lead).fill(0), bottom, right];
  const y = padRaw(x, before, after, value);
  return record(y, "pad2d", [x], (gy) => [cropRaw(gy, before, [...x.shape])]);
}

function permuteRaw(x: Tensor, dims: number[]): Tensor {
  const shape = dims.map((d) => x.shape[d]);
  const y = Tensor.empty(shape);
  const st = stridesOf(x.shape);
  copyWindow(x, y, { index: shape, xs: dims.map((d) => st[d]), ys: stridesOf(shape) });
  return y;
}

/** Reorders axes: output axis i is input axis dims[i] (like torch.permute). Up to 6-d. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const nd = x.ndim;
  const norm = dims.map((d) => (d < 0 ? d + nd : d));
  const ok = norm.length === nd && norm.every((d) => Number.isInteger(d) && d >= 0 && d < nd) &&
    new Set(norm).size === nd;
  if (!ok) {
    throw new Error(
      `permute: dims [${dims}] must be a permutation of 0..${nd - 1} for shape [${x.shape}]`,
    );
  }
  if (nd > MAX_DIMS) throw new Error(`permute: at most ${MAX_DIMS} dims, got [${x.shape}]`);
  const y = permuteRaw(x, norm);
  const inv = new Array(nd);
  norm.forEach((d, i) => (inv[d] = i));
  return record(y, "permute", [x], (gy) => [permuteRaw(gy, inv)]);
}

function gatherKernel(mode: number, x: Tensor, idx: Tensor, y: Tensor, n: number, k: number) {
  launch1d("gather", n, [x.buffer, idx.buffer, y.buffer], words(n, k), { MODE: mode });
}

function checkRows(op: string, x: Tensor, idx: Tensor, what: string): void {
  if (x.ndim !== 2) throw new Error(`${op}: expected x of shape [N,K], got [${x.shape}]`);
  idx.assertShape([x.shape[0]], `${op}: ${what} (one index per row of x [${x.shape}])`);
}

/** y[n] = x[n, idx[n]] for x [N,K] and float class indices idx [N]. Indices outside [0,K) or
 * non-integer give NaN. The gradient scatters gy back into zeros (no atomics). */
export function gather(x: Tensor, idx: Tensor): Tensor {
  checkRows("gather", x, idx, "idx");
  const [N, K] = x.shape;
  const y = Tensor.empty([N]);
  gatherKernel(0, x, idx, y, N, K);
  return record(y, "gather", [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    gatherKernel(1, gy, idx, gx, N * K, K);
    return [gx];
  });
}

/** Rows of a (first axis) by index, and rows of b after them: row r of the result is a[idx[r]]
 * when idx[r] < a.shape[0], else b[idx[r] - a.shape[0]]. No gradient (attack bookkeeping). */
export function takeRows(a: Tensor, idx: readonly number[], b: Tensor = a): Tensor {
  const nA = a.shape[0], nB = b === a ? 0 : b.shape[0];
  const d = a.size / Math.max(1, nA);
  if (b !== a && b.size / Math.max(1, nB) !== d) {
    throw new Error(`takeRows: rows of [${a.shape}] and [${b.shape}] differ in size`);
  }
  for (const i of idx) {
    if (!Number.isInteger(i) || i < 0 || i >= nA + nB) {
      throw new Error(`takeRows: row index ${i} is outside 0..${nA + nB - 1}`);
    }
  }
  const y = Tensor.empty([idx.length, ...a.shape.slice(1)]);
  if (idx.length === 0 || d === 0) return y;
  const ib = Tensor.empty([idx.length]);
  engine().upload(ib.buffer, Uint32Array.from(idx));
  launch1d(
    "take_rows",
    idx.length * d,
    [a.buffer, b.buffer, ib.buffer, y.buffer],
    words(
      idx.length * d,
      d,
      nA,
    ),
  );
  ib.dispose();
  return y;
}

/** [N,K] float 1/0 rows with a one at column idx[n] (no gradient). Internal helper shared with
 * loss.ts; `oneHot` there validates its arguments. */
export function oneHotRaw(idx: Tensor, K: number): Tensor {
  const N = idx.shape[0];
  const y = Tensor.empty([N, K]);
  gatherKernel(2, idx, idx, y, N * K, K);
  return y;
}

/** Values sorted in descending order along `axis` (NaN first, ties in index order). The
 * gradient of each sorted value flows back to the element it came from. */
export function sortDesc(x: Tensor, axis = -1): Tensor {
  if (x.ndim === 0) throw new Error("sortDesc: cannot sort a 0-d tensor");
  const a = normAxis("sortDesc", axis, x.ndim);
  if (a !== x.ndim - 1) {
    // Move the axis last, sort rows, move it back (both permutes carry gradients).
    const dims = x.shape.map((_, i) => i).filter((i) => i !== a);
    dims.push(a);
    const inv = new Array(x.ndim);
    dims.forEach((d, i) => (inv[d] = i));
    return permute(sortDesc(permute(x, dims), -1), inv);
  }
  const K = x.shape[a];
  const y = Tensor.empty(x.shape);
  const rank = Tensor.empty(x.shape);
  launch1d("sort", x.size, [x.buffer, rank.buffer, y.buffer], words(x.size, K), { MODE: 0 });
  const out = record(y, "sortDesc", [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    launch1d("sort", x.size, [gy.buffer, rank.buffer, gx.buffer], words(x.size, K), { MODE: 1 });
    return [gx];
  });
  // Without a graph the ranks are not needed past the recorded forward dispatch.
  if (!out.gradFn) rank.dispose();
  return out;
}
