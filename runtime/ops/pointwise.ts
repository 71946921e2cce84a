// The elementwise ops without autograd, on the fuser (runtime/graph/fuse.ts): what the
// autograd ops (elementwise.ts) and the backward rules of other ops (reduce.ts, norm.ts) are
// built from. Numbers are kernel parameters, not tensors.

import type { Shape, Tensor } from "../tensor.ts";
import { broadcastShapes, sameShape } from "./util.ts";
import { elementwise } from "../graph/fuse.ts";
import { type BinaryName, template, type UnaryName } from "./table.ts";

export type TensorLike = Tensor | number;

const shapeOf = (x: TensorLike): Shape => (typeof x === "number" ? [] : x.shape);

/** The op on its operands (a pending fused expression, runtime/graph/fuse.ts); no autograd. */
export function binaryRaw(op: BinaryName, a: TensorLike, b: TensorLike): Tensor {
  return elementwise(op, [a, b], [], broadcastShapes(op, shapeOf(a), shapeOf(b)));
}

export function unaryRaw(op: UnaryName, x: Tensor, a = 0, b = 0): Tensor {
  return elementwise(op, [x], [a, b].slice(0, template(op).scalars), x.shape);
}

export function whereRaw(cond: Tensor, a: TensorLike, b: TensorLike, shape: number[]): Tensor {
  return elementwise("where", [cond, a, b], [], shape);
}

export function expandRaw(x: Tensor, shape: Shape): Tensor {
  const s = broadcastShapes("expand", x.shape, shape);
  if (!sameShape(s, shape)) {
    throw new Error(`expand: [${x.shape}] does not broadcast to [${shape}]`);
  }
  return elementwise("copy", [x], [], shape);
}

export const sqrtRaw = (x: Tensor) => unaryRaw("sqrt", x);

/** a / b, with 0 where b == 0 (no gradient). */
export function safeDiv(a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes("safeDiv", a.shape, b.shape);
  return whereRaw(binaryRaw("eq", b, 0), 0, binaryRaw("div", a, b), shape);
}
