// Broadcasting elementwise arithmetic, unary activations, clamp/sign/where, with gradients.

import { gradOps, record } from "../autograd.ts";
import { keep, type Shape, Tensor } from "../tensor.ts";
import { broadcastShapes, broadcastStrides, launch1d, pad6, sameShape, words } from "./util.ts";
import { sumTo } from "./reduce.ts";

const BIN = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  maximum: 4,
  minimum: 5,
  pow: 6,
  gt: 7,
  lt: 8,
  ge: 9,
  le: 10,
  eq: 11,
} as const;
type BinOp = keyof typeof BIN;

export type TensorLike = Tensor | number;

// Scalars become cached, kept 0-d tensors: an upload forces a submit, so uploading the same
// constant every step would break command batching.
const constants = new Map<number, Tensor>();
export function constant(v: number): Tensor {
  const key = Object.is(v, -0) ? 0 : v;
  let t = constants.get(key);
  if (!t || t.disposed) {
    if (constants.size >= 1024) {
      const [k0, t0] = constants.entries().next().value!;
      constants.delete(k0);
      t0.dispose();
    }
    t = keep(Tensor.scalar(key));
    constants.set(key, t);
  }
  return t;
}

function asTensor(x: TensorLike): Tensor {
  return typeof x === "number" ? constant(x) : x;
}

/** Raw kernel launch, no autograd. */
function binaryRaw(op: BinOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(shape);
  const n = out.size;
  const fast = sameShape(a.shape, b.shape);
  launch1d(
    "binary",
    n,
    [a.buffer, b.buffer, out.buffer],
    words(
      n,
      shape.length,
      pad6(shape, 1),
      broadcastStrides(a.shape, shape),
      broadcastStrides(b.shape, shape),
    ),
    { OP: BIN[op], BCAST: fast ? 0 : 1 },
  );
  return out;
}

function binary(op: BinOp, x: TensorLike, y: TensorLike): Tensor {
  // Scalar operands of the common ops run as one affine kernel (no broadcast indexing).
  if (typeof y === "number" && typeof x !== "number") {
    if (op === "add") return affine(x, 1, y);
    if (op === "sub") return affine(x, 1, -y);
    if (op === "mul") return affine(x, y, 0);
    if (op === "div") return affine(x, 1 / y, 0);
  } else if (typeof x === "number" && typeof y !== "number") {
    if (op === "add") return affine(y, 1, x);
    if (op === "sub") return affine(y, -1, x);
    if (op === "mul") return affine(y, x, 0);
  }
  const a = asTensor(x);
  const b = asTensor(y);
  const out = binaryRaw(op, a, b);
  return record(out, op, [a, b], (gy, needs) => {
    const ga = needs[0] ? gradA(op, a, b, out, gy) : null;
    const gb = needs[1] ? gradB(op, a, b, out, gy) : null;
    return [ga && reduceTo(ga, a.shape), gb && reduceTo(gb, b.shape)];
  });
}

function reduceTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const r = sumTo(g, shape);
  g.dispose();
  return r;
}

function gradA(op: BinOp, a: Tensor, b: Tensor, _out: Tensor, gy: Tensor): Tensor | null {
  switch (op) {
    case "add":
    case "sub":
      return gy.view(gy.shape);
    case "mul":
      return binaryRaw("mul", gy, b);
    case "div":
      return binaryRaw("div", gy, b);
    case "maximum":
      return binaryRaw("mul", gy, binaryRaw("ge", a, b));
    case "minimum":
      return binaryRaw("mul", gy, binaryRaw("le", a, b));
    case "pow": // b * a^(b-1)
      return binaryRaw(
        "mul",
        gy,
        binaryRaw("mul", b, binaryRaw("pow", a, binaryRaw("sub", b, constant(1)))),
      );
    default:
      return null; // comparisons are piecewise constant
  }
}

function gradB(op: BinOp, a: Tensor, b: Tensor, out: Tensor, gy: Tensor): Tensor | null {
  switch (op) {
    case "add":
      return gy.view(gy.shape);
    case "sub":
      return unaryRaw("affine", gy, -1, 0);
    case "mul":
      return binaryRaw("mul", gy, a);
    case "div": // -a / b^2
      return binaryRaw("mul", gy, binaryRaw("div", unaryRaw("affine", out, -1, 0), b));
    case "maximum":
      return binaryRaw("mul", gy, binaryRaw("lt", a, b));
    case "minimum":
      return binaryRaw("mul", gy, binaryRaw("gt", a, b));
    case "pow": // log(a) * a^b
      return binaryRaw("mul", gy, binaryRaw("mul", out, unaryRaw("log", a)));
    default:
      return null;
  }
}

export const add = (a: TensorLike, b: TensorLike) => binary("add", a, b);
export const sub = (a: TensorLike, b: TensorLike) => binary("sub", a, b);
export const mul = (a: TensorLike, b: TensorLike) => binary("mul", a, b);
export const div = (a: TensorLike, b: TensorLike) => binary("div", a, b);
export const maximum = (a: TensorLike, b: TensorLike) => binary("maximum", a, b);
export const minimum = (a: TensorLike, b: TensorLike) => binary("minimum", a, b);
export const pow = (a: TensorLike, b: TensorLike) => binary("pow", a, b);
/** Comparisons return 1/0 float tensors and carry no gradient. */
export const gt = (a: TensorLike, b: TensorLike) => binaryRaw("gt", asTensor(a), asTensor(b));
export const lt = (a: TensorLike, b: TensorLike) => binaryRaw("lt", asTensor(a), asTensor(b));
export const ge = (a: TensorLike, b: TensorLike) => binaryRaw("ge", asTensor(a), asTensor(b));
export const le = (a: TensorLike, b: TensorLike) => binaryRaw("le", asTensor(a), asTensor(b));
export const eq = (a: TensorLike, b: TensorLike) => binaryRaw("eq", asTensor(a), asTensor(b));

const UN = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  abs: 4,
  relu: 5,
  leakyRelu: 6,
  elu: 7,
  sigmoid: 8,
  tanh: 9,
  sign: 10,
  clamp: 11,
  affine: 12,
  square: 13,
  reciprocal: 14,
  powScalar: 15,
  step: 16,
  floor: 17,
} as const;
type UnOp = keyof typeof UN;

function unaryRaw(op: UnOp, x: Tensor, a = 0, b = 0): Tensor {
  const out = Tensor.empty(x.shape);
  launch1d("unary", x.size, [x.buffer, out.buffer], words(x.size, { f: a }, { f: b }), {
    OP: UN[op],
  });
  return out;
}

function unary(op: UnOp, x: Tensor, a = 0, b = 0): Tensor {
  const out = unaryRaw(op, x, a, b);
  return record(out, op, [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    launch1d(
      "unary_grad",
      x.size,
      [x.buffer, gy.buffer, gx.buffer],
      words(x.size, { f: a }, { f: b }),
      { OP: UN[op] },
    );
    return [gx];
  });
}

export const neg = (x: Tensor) => unary("neg", x);
export const exp = (x: Tensor) => unary("exp", x);
export const log = (x: Tensor) => unary("log", x);
export const sqrt = (x: Tensor) => unary("sqrt", x);
export const abs = (x: Tensor) => unary("abs", x);
export const relu = (x: Tensor) => unary("relu", x);
export const leakyRelu = (x: Tensor, slope = 0.01) => unary("leakyRelu", x, slope);
export const elu = (x: Tensor, alpha = 1) => unary("elu", x, alpha);
export const sigmoid = (x: Tensor) => unary("sigmoid", x);
export const tanh = (x: Tensor) => unary("tanh", x);
/** sign(x); its gradient is zero (use BPDA/straight-through explicitly if needed). */
export const sign = (x: Tensor) => unary("sign", x);
export const clamp = (x: Tensor, lo: number, hi: number) => {
  if (!(lo <= hi)) throw new Error(`clamp: lower bound ${lo} is above upper bound ${hi}`);
  return unary("clamp", x, lo, hi);
};
/** y = scale * x + shift, one kernel. */
export const affine = (x: Tensor, scale: number, shift = 0) => unary("affine", x, scale, shift);
export const scale = (x: Tensor, s: number) => unary("affine", x, s, 0);
export const square = (x: Tensor) => unary("square", x);
export const reciprocal = (x: Tensor) => unary("reciprocal", x);
export const powScalar = (x: Tensor, p: number) => unary("powScalar", x, p);
/** 1 where x > threshold else 0; no gradient. */
export const step = (x: Tensor, threshold = 0) => unaryRaw("step", x, threshold);
/** Largest integer <= x; no gradient (piecewise constant: wrap it with BPDA to attack it). */
export const floor = (x: Tensor) => unaryRaw("floor", x);

/** cond != 0 ? a : b, broadcasting all three; gradients flow to a and b. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const ta = asTensor(a);
  const tb = asTensor(b);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, ta.shape), tb.shape);
  const out = whereRaw(cond, ta, tb, shape);
  return record(out, "where", [ta, tb], (gy, needs) => {
    const zero = constant(0);
    return [
      needs[0] ? reduceTo(whereRaw(cond, gy, zero, shape), ta.shape) : null,
      needs[1] ? reduceTo(whereRaw(cond, zero, gy, shape), tb.shape) : null,
    ];
  });
}

function whereRaw(cond: Tensor, a: Tensor, b: Tensor, shape: number[]): Tensor {
  const out = Tensor.empty(shape);
  launch1d(
    "where",
    out.size,
    [cond.buffer, a.buffer, b.buffer, out.buffer],
    words(
      out.size,
      shape.length,
      pad6(shape, 1),
      broadcastStrides(cond.shape, shape),
      broadcastStrides(a.shape, shape),
      broadcastStrides(b.shape, shape),
    ),
  );
  return out;
}

export function full(shape: Shape, value: number): Tensor {
  const out = Tensor.empty(shape);
  launch1d("fill", out.size, [out.buffer], words(out.size, { f: value }));
  return out;
}
export const zeros = (shape: Shape) => full(shape, 0);
export const ones = (shape: Shape) => full(shape, 1);
export const zerosLike = (t: Tensor) => full(t.shape, 0);
export const onesLike = (t: Tensor) => full(t.shape, 1);

/** A copy that is detached from the graph. */
export function detach(x: Tensor): Tensor {
  return unaryRaw("affine", x, 1, 0);
}

/** Identity forward with an identity backward (a fresh tensor, e.g. to start a graph). */
export function clone(x: Tensor): Tensor {
  return unary("affine", x, 1, 0);
}

/** Broadcasts x to `shape` (a copy); the gradient sums back. */
export function expandRaw(x: Tensor, shape: Shape): Tensor {
  const s = broadcastShapes("expand", x.shape, shape);
  if (!sameShape(s, shape)) {
    throw new Error(`expand: [${x.shape}] does not broadcast to [${shape}]`);
  }
  return whereRaw(constant(1), x, constant(0), [...shape]);
}

export function expand(x: Tensor, shape: Shape): Tensor {
  return record(expandRaw(x, shape), "expand", [x], (gy) => [sumTo(gy, x.shape)]);
}

export const sqrtRaw = (x: Tensor) => unaryRaw("sqrt", x);

/** a / b, with 0 where b == 0 (no gradient). */
export function safeDiv(a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes("safeDiv", a.shape, b.shape);
  return whereRaw(binaryRaw("eq", b, constant(0)), constant(0), binaryRaw("div", a, b), shape);
}

gradOps.add = (a, b) => binaryRaw("add", a, b);
gradOps.onesLike = onesLike;
gradOps.zerosLike = zerosLike;
