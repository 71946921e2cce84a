// Broadcasting elementwise arithmetic, unary activations, clamp/sign/where, with gradients.

import { gradOps, record } from "../autograd.ts";
import { keep, type Shape, Tensor } from "../tensor.ts";
import { broadcastShapes, sameShape } from "./util.ts";
import { elementwise } from "../graph/fuse.ts";
import { type BinaryName, template, type UnaryName } from "./table.ts";
import { binaryRaw, expandRaw, type TensorLike, unaryRaw, whereRaw } from "./pointwise.ts";
import { sumTo } from "./reduce.ts";

export { binaryRaw, expandRaw, safeDiv, sqrtRaw, unaryRaw } from "./pointwise.ts";
export type { TensorLike } from "./pointwise.ts";

type BinOp = BinaryName;

// Scalar tensors for the non-elementwise ops that want one (elementwise ops take numbers as
// kernel parameters); cached so the same constant is not uploaded every step.
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
  const out = binaryRaw(op, x, y);
  return record(out, op, [a, b], (gy, needs) => {
    // Both inputs of a sum take gy itself: compute it once rather than as two pending copies.
    if ((op === "add" || op === "sub") && needs[0] && needs[1]) void gy.buffer;
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

/** gy for an input whose gradient is gy: a view when gy is computed (free), else a pending copy
 * (so that an unread gradient expression is not computed just to be viewed). */
function passThrough(gy: Tensor): Tensor {
  return gy.pending ? unaryRaw("copy", gy) : gy.view(gy.shape);
}

function gradA(op: BinOp, a: Tensor, b: Tensor, _out: Tensor, gy: Tensor): Tensor | null {
  switch (op) {
    case "add":
    case "sub":
      return passThrough(gy);
    case "mul":
      return binaryRaw("mul", gy, b);
    case "div":
      return binaryRaw("div", gy, b);
    case "maximum":
      return binaryRaw("mul", gy, binaryRaw("ge", a, b));
    case "minimum":
      return binaryRaw("mul", gy, binaryRaw("le", a, b));
    case "pow": // b * a^(b-1)
      return binaryRaw("mul", gy, binaryRaw("mul", b, binaryRaw("pow", a, binaryRaw("sub", b, 1))));
    default:
      return null; // comparisons are piecewise constant
  }
}

function gradB(op: BinOp, a: Tensor, b: Tensor, out: Tensor, gy: Tensor): Tensor | null {
  switch (op) {
    case "add":
      return passThrough(gy);
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
export const gt = (a: TensorLike, b: TensorLike) => binaryRaw("gt", asTensor(a), b);
export const lt = (a: TensorLike, b: TensorLike) => binaryRaw("lt", asTensor(a), b);
export const ge = (a: TensorLike, b: TensorLike) => binaryRaw("ge", asTensor(a), b);
export const le = (a: TensorLike, b: TensorLike) => binaryRaw("le", asTensor(a), b);
export const eq = (a: TensorLike, b: TensorLike) => binaryRaw("eq", asTensor(a), b);

type UnOp = UnaryName;

/** The op with its gradient gy * f'(x), both generated from the op table. */
function unary(op: UnOp, x: Tensor, a = 0, b = 0): Tensor {
  const out = unaryRaw(op, x, a, b);
  return record(out, op, [x], (gy) => [
    elementwise(`d:${op}`, [x, gy], [a, b].slice(0, template(op).scalars), x.shape),
  ]);
}

export const neg = (x: Tensor) => unary("neg", x);
export const exp = (x: Tensor) => unary("exp", x);
export const log = (x: Tensor) => unary("log", x);
export const sqrt = (x: Tensor) => unary("sqrt", x);
/** 1 / sqrt(x). */
export const rsqrt = (x: Tensor) => unary("rsqrt", x);
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
  return record(out, "where", [ta, tb], (gy, needs) => [
    needs[0] ? reduceTo(whereRaw(cond, gy, 0, shape), ta.shape) : null,
    needs[1] ? reduceTo(whereRaw(cond, 0, gy, shape), tb.shape) : null,
  ]);
}

export function full(shape: Shape, value: number): Tensor {
  return elementwise("copy", [value], [], shape);
}
export const zeros = (shape: Shape) => full(shape, 0);
export const ones = (shape: Shape) => full(shape, 1);
export const zerosLike = (t: Tensor) => full(t.shape, 0);
export const onesLike = (t: Tensor) => full(t.shape, 1);

/** A copy that is detached from the graph. */
export function detach(x: Tensor): Tensor {
  return unaryRaw("copy", x);
}

/** Identity forward with an identity backward (a fresh tensor, e.g. to start a graph). */
export function clone(x: Tensor): Tensor {
  return unary("copy", x);
}

/** Broadcasts x to `shape` (a copy); the gradient sums back. */
export function expand(x: Tensor, shape: Shape): Tensor {
  return record(expandRaw(x, shape), "expand", [x], (gy) => [sumTo(gy, x.shape)]);
}

gradOps.add = (a, b) => binaryRaw("add", a, b);
gradOps.onesLike = onesLike;
gradOps.zerosLike = zerosLike;
