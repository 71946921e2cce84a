// Fixed stencils on image planes: the 4-neighbour sum (the Jacobi step of diffusion fills),
// one kernel instead of a pad and four shifted slices.

import { record } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, words } from "./util.ts";

function neighbourSumRaw(x: Tensor): Tensor {
  const [, , H, W] = x.shape;
  const y = Tensor.empty(x.shape);
  launch1d("stencil", x.size, [x.buffer, y.buffer], words(x.size, H, W));
  return y;
}

/** y[n,c,h,w] = x[h-1,w] + x[h+1,w] + x[h,w-1] + x[h,w+1] for x [N,C,H,W], neighbours outside
 * the image counting 0. Self-adjoint: the gradient is the same sum of the output gradient. */
export function neighbourSum4(x: Tensor): Tensor {
  if (x.ndim !== 4) throw new Error(`neighbourSum4: x must be NCHW, got shape [${x.shape}]`);
  return record(neighbourSumRaw(x), "neighbourSum4", [x], (gy) => [neighbourSumRaw(gy)]);
}
