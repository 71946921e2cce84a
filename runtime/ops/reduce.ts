// Reductions over axes (sum, mean, max, min, argmax), broadcasting back (expand), and the
// per-example norms attacks need. Deterministic: fixed-order serial sums, long ones split into
// a fixed number of chunks (see shaders/reduce.wgsl).

import { record } from "../autograd.ts";
import { type Shape, Tensor } from "../tensor.ts";
import { engine } from "../engine.ts";
import { launch1d, normAxis, pad6, stridesOf, words } from "./util.ts";
import { binaryRaw, expandRaw, safeDiv, sqrtRaw } from "./pointwise.ts";

const OPS = { sum: 0, max: 1, min: 2, argmax: 3, sumsq: 4, maxabs: 5 } as const;
export type RedOp = keyof typeof OPS;

export type Axes = number | number[] | undefined;

function resolveAxes(op: string, x: Tensor, axes: Axes): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = (typeof axes === "number" ? [axes] : axes).map((a) => normAxis(op, a, x.ndim));
  if (new Set(list).size !== list.length) throw new Error(`${op}: repeated axis in [${axes}]`);
  return list.sort((a, b) => a - b);
}

function keptShape(x: Tensor, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reduceRaw(op: RedOp, x: Tensor, axes: number[], scale = 1): Tensor {
  const st = stridesOf(x.shape);
  const kshape: number[] = [],
    kstride: number[] = [],
    rshape: number[] = [],
    rstride: number[] = [];
  x.shape.forEach((d, i) => {
    if (axes.includes(i)) {
      rshape.push(d);
      rstride.push(st[i]);
    } else {
      kshape.push(d);
      kstride.push(st[i]);
    }
  });
  const out = Tensor.empty(keptShape(x, axes));
  let nRed = 1;
  for (const d of rshape) nRed *= d;
  if (rshape.length === 0) {
    rshape.push(1);
    rstride.push(0);
  }
  if (nRed === 0) throw new Error(`${op}: cannot reduce over an empty axis of [${x.shape}]`);
  const nChunks = chunksFor(op, out.size, nRed);
  const chunk = Math.ceil(nRed / nChunks);
  const launch = (dst: Tensor, s: number) =>
    launch1d(
      "reduce",
      out.size * nChunks,
      [x.buffer, dst.buffer],
      words(
        out.size,
        nRed,
        kshape.length,
        rshape.length,
        { f: s },
        pad6(kshape, 1),
        pad6(kstride),
        pad6(rshape, 1),
        pad6(rstride),
        nChunks,
        chunk,
      ),
      { OP: OPS[op] },
    );
  if (nChunks === 1) {
    launch(out, scale);
    return out;
  }
  // Partials [nOut, nChunks], then the partials reduced in order (scale applied once, there).
  const partial = Tensor.empty([out.size, nChunks]);
  launch(partial, 1);
  const second: RedOp = op === "sum" || op === "sumsq" ? "sum" : op === "min" ? "min" : "max";
  const r = reduceRaw(second, partial, [1], scale);
  partial.dispose();
  const v = r.view(out.shape);
  r.dispose();
  out.dispose();
  return v;
}

/** How many chunks to split each output's reduced range into: from the range's length alone,
 * never from the number of outputs, so that a per-example value (a norm, a loss) sums in the
 * same order whatever the batch size. Ranges under two chunks run serially, one thread per
 * output; argmax always does (its partials would need their indices). */
export function chunksFor(op: RedOp, _nOut: number, nRed: number): number {
  if (op === "argmax") return 1;
  const sw = engine().adapter.isFallbackAdapter;
  // CPU adapter: a few long chunks (threads are SIMD lanes of 2 cores); GPUs: short ones.
  const minChunk = sw ? 4096 : 256;
  const maxChunks = sw ? 16 : 4096;
  if (nRed < 2 * minChunk) return 1;
  const n = Math.min(Math.ceil(nRed / minChunk), maxChunks);
  return Math.ceil(nRed / Math.ceil(nRed / n));
}

function finish(t: Tensor, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  if (keepdim) return t;
  const shape = x.shape.filter((_, i) => !axes.includes(i));
  const v = t.view(shape);
  // The view shares storage; the autograd node lives on the keepdim tensor, so re-record.
  return record(v, "squeeze", [t], (gy) => [gy.view(t.shape)]);
}

export function sum(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = resolveAxes("sum", x, axes);
  const out = record(reduceRaw("sum", x, ax), "sum", [x], (gy) => [expandRaw(gy, x.shape)]);
  return finish(out, x, ax, keepdim);
}

export function mean(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = resolveAxes("mean", x, axes);
  const n = ax.reduce((p, a) => p * x.shape[a], 1);
  const out = record(reduceRaw("sum", x, ax, 1 / n), "mean", [x], (gy) => {
    const g = expandRaw(gy, x.shape);
    const r = binaryRaw("mul", g, 1 / n);
    return [r];
  });
  return finish(out, x, ax, keepdim);
}

function extremum(op: "max" | "min", x: Tensor, axes: Axes, keepdim: boolean): Tensor {
  const ax = resolveAxes(op, x, axes);
  const r = reduceRaw(op, x, ax);
  // Ties share the gradient unnormalized (each tied entry gets gy), like torch.amax's mask.
  const out = record(
    r,
    op,
    [x],
    (gy) => [binaryRaw("mul", expandRaw(gy, x.shape), binaryRaw("eq", x, r))],
  );
  return finish(out, x, ax, keepdim);
}
export const max = (x: Tensor, axes?: Axes, keepdim = false) => extremum("max", x, axes, keepdim);
export const min = (x: Tensor, axes?: Axes, keepdim = false) => extremum("min", x, axes, keepdim);

/** Index of the first maximum along one axis, as float values; no gradient. */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  const a = normAxis("argmax", axis, x.ndim);
  const r = reduceRaw("argmax", x, [a]);
  if (keepdim) return r;
  const v = r.view(x.shape.filter((_, i) => i !== a));
  r.dispose();
  return v;
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const lead = g.ndim - shape.length;
  if (lead < 0) throw new Error(`sumTo: cannot reduce [${g.shape}] to larger [${shape}]`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    const j = i - lead;
    if (j < 0 || (shape[j] === 1 && d !== 1)) axes.push(i);
    else if (shape[j] !== d) {
      throw new Error(`sumTo: [${g.shape}] does not broadcast from [${shape}]`);
    }
  });
  if (axes.length === 0) return g.view(shape);
  const r = reduceRaw("sum", g, axes);
  const v = r.view(shape);
  r.dispose();
  return v;
}

/** Per-example L2 norm over all but the first axis: shape [N]. Differentiable. */
export function normL2PerExample(x: Tensor): Tensor {
  const axes = x.shape.map((_, i) => i).slice(1);
  const ss = reduceRaw("sumsq", x, axes);
  const n = ss.view([x.shape[0]]);
  ss.dispose();
  const out = record(sqrtRaw(n), "normL2", [x], (gy) => {
    const g = expandRaw(gy.view([x.shape[0], ...x.shape.slice(1).map(() => 1)]), x.shape);
    // d||x||/dx = x / ||x||; zero where the norm is zero.
    const nb = expandRaw(out.view([x.shape[0], ...x.shape.slice(1).map(() => 1)]), x.shape);
    return [binaryRaw("mul", g, safeDiv(x, nb))];
  });
  return out;
}

/** Per-example Linf norm: shape [N]; no gradient (used for checks and projections). */
export function normLinfPerExample(x: Tensor): Tensor {
  const axes = x.shape.map((_, i) => i).slice(1);
  const r = reduceRaw("maxabs", x, axes);
  const v = r.view([x.shape[0]]);
  r.dispose();
  return v;
}
