// Shape ops that need no data movement (reshape/flatten share the buffer).

import { record } from "../autograd.ts";
import { type Shape, shapeSize, type Tensor } from "../tensor.ts";

/** Same data, new shape; one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = shapeSize(s.filter((_, i) => i !== neg));
    if (rest === 0 || x.size % rest !== 0) {
      throw new Error(`reshape: cannot infer -1 reshaping [${x.shape}] to [${shape}]`);
    }
    s[neg] = x.size / rest;
  }
  if (shapeSize(s) !== x.size) {
    throw new Error(`reshape: [${x.shape}] has ${x.size} values, [${shape}] needs ${shapeSize(s)}`);
  }
  return record(x.view(s), "reshape", [x], (gy) => [gy.view(x.shape)]);
}

/** [N, ...] -> [N, prod(...)] */
export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.shape[0], -1]);
}
