// Push-pull hole filling (Gortler et al. 1996, "The Lumigraph"): a classical, linear and
// differentiable inpainting. Push: sum-pool the known pixels and their count 2x2 at a time
// down to 1x1. Pull: from the coarsest level up, each level keeps its own mean where it has
// known pixels and blends in the upsampled coarser fill where it has few or none. Known
// pixels of the full-resolution image come back exactly. The purifier starts its coarse stage
// from this fill, so before any training it already matches a classical baseline.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";

/** x [N,C,H,W], mask [N,1,H,W] (1 = hole; H, W powers of two times a common size). Returns x
 * with its holes filled; where an image has no known pixel at all the fill is 0. `sweeps`
 * Jacobi sweeps smooth the full-resolution fill; `levelSweeps` more at every coarser level of
 * the pull (a multigrid smoother: the holes of an upsampled image are wider in pixels, and
 * smoothing where they are narrow converges in few sweeps; measured in docs/DSL.md). */
export function pushPullFill(x: Tensor, mask: Tensor, sweeps = 0, levelSweeps = 0): Tensor {
  const known = ops.sub(1, mask);
  const sums: Tensor[] = [ops.mul(x, known)];
  const counts: Tensor[] = [known];
  while (sums[sums.length - 1].shape[2] > 1 && sums[sums.length - 1].shape[3] > 1) {
    const s = sums[sums.length - 1], c = counts[counts.length - 1];
    if (s.shape[2] % 2 || s.shape[3] % 2) break;
    // avgPool x4 = sum-pool over each 2x2 block.
    sums.push(ops.scale(ops.avgPool2d(s, { kernel: [2, 2] }), 4));
    counts.push(ops.scale(ops.avgPool2d(c, { kernel: [2, 2] }), 4));
  }
  const mean = (l: number) => ops.div(sums[l], ops.maximum(counts[l], 1e-6));
  let fill = mean(sums.length - 1);
  for (let l = sums.length - 2; l >= 0; l--) {
    const [h, w] = [sums[l].shape[2], sums[l].shape[3]];
    const up = ops.upsampleBilinear(fill, { size: [h, w] });
    // alpha = how much this level knows: 1 with one known pixel or more (exact at level 0).
    const alpha = ops.clamp(counts[l], 0, 1);
    fill = ops.add(ops.mul(alpha, mean(l)), ops.mul(ops.sub(1, alpha), up));
    // At coarse levels a pixel is known where its block has a known pixel (alpha = 1).
    if (l > 0 && levelSweeps > 0) fill = diffuse(fill, alpha, ops.sub(1, alpha), levelSweeps);
  }
  return sweeps > 0 ? diffuse(fill, known, mask, sweeps) : fill;
}

/** Jacobi sweeps of the 4-neighbour mean on the holes (known pixels fixed; neighbours
 * outside the image do not count): push-pull gets the low frequencies, a few sweeps smooth
 * the blocky rest (a two-grid classical fill). */
function diffuse(fill: Tensor, known: Tensor, mask: Tensor, sweeps: number): Tensor {
  const neighbours = ops.neighbourSum4;
  // How many of a pixel's 4 neighbours lie inside the image (2 at corners, 3 on edges).
  const count = neighbours(ops.onesLike(ops.slice(fill, 1, 0, 1)));
  const fixed = ops.mul(fill, known);
  let f = fill;
  for (let i = 0; i < sweeps; i++) f = ops.add(fixed, ops.mul(mask, ops.div(neighbours(f), count)));
  return f;
}
