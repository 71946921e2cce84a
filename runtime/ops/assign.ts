// In-place writes into existing tensors (running statistics, power-iteration vectors,
// optimizer state): the destination keeps its identity so references stay valid.

import type { Tensor } from "../tensor.ts";
import { launch1d, sameShape, words } from "./util.ts";

/** Copies src's values into dst (same shape); not differentiable. */
export function assign(dst: Tensor, src: Tensor): void {
  if (!sameShape(dst.shape, src.shape)) {
    throw new Error(`assign: destination [${dst.shape}] and source [${src.shape}] differ in shape`);
  }
  if (dst.buffer === src.buffer) return;
  launch1d("copy", dst.size, [src.buffer, dst.buffer], words(dst.size));
}
