// Push-pull hole filling (Gortler et al. 1996, "The Lumigraph"): a classical, linear and
// differentiable inpainting. Push: sum-pool the known pixels and their count 2x2 at a time
// down to 1x1. Pull: from the coarsest level up, each level keeps its own mean where it has
// known pixels and blends in the upsampled coarser fill where it has few or none. Known
// pixels of the full-resolution image come back exactly. The purifier starts its coarse stage
// from this fill, so before any training it already matches a classical baseline.

import { keep, Tensor } from "../tensor.ts";
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

/** Radius of the blur window: the blur baseline's (runtime/metrics/fill.ts: 2 px at sigma 1,
 * growing with sigma). */
export const denoiseRadius = (sigma: number) => Math.ceil(2 * sigma);

const gaussians = new Map<number, [Tensor, Tensor]>();
/** Unnormalised separable Gaussian taps as conv weights [1,1,K,1] and [1,1,1,K] (the
 * normalised convolution divides by the same weights, so the scale cancels). */
function gaussianTaps(sigma: number): [Tensor, Tensor] {
  let g = gaussians.get(sigma);
  if (!g || g[0].disposed) {
    const r = denoiseRadius(sigma);
    const v = Float32Array.from(
      { length: 2 * r + 1 },
      (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)),
    );
    g = [
      keep(Tensor.fromData(v, [1, 1, v.length, 1])),
      keep(Tensor.fromData(v, [1, 1, 1, v.length])),
    ];
    gaussians.set(sigma, g);
  }
  return g;
}

/** Denoising of the known pixels before the fill, scaled per example by its noise level: the
 * Gaussian blur (sigma in pixels) of the known pixels by normalised convolution (each becomes
 * the weighted mean of the known pixels in its window inside the image, as the blur + diffusion
 * baseline does), blended with the pixel itself by `level` [N,1,1,1] in [0,1]:
 * x + level (blur(x) - x). Level 0 leaves x as it is; level 1 is the baseline's blur. Holes come
 * out 0. x [N,C,H,W] (holes zeroed), mask [N,1,H,W] (1 = hole). Linear in x. */
export function denoiseKnown(x: Tensor, mask: Tensor, level: Tensor, sigma: number): Tensor {
  const [n, c, h, w] = x.shape;
  const [gy, gx] = gaussianTaps(sigma);
  const r = denoiseRadius(sigma);
  const blur = (v: Tensor) =>
    ops.conv2d(ops.conv2d(v, gy, null, { padding: [r, 0] }), gx, null, { padding: [0, r] });
  const known = ops.sub(1, mask);
  const sums = ops.reshape(blur(ops.reshape(ops.mul(x, known), [n * c, 1, h, w])), [n, c, h, w]);
  // The weights are 0 only where no known pixel is in reach, inside a hole (zeroed below).
  const weights = ops.maximum(blur(known), 1e-20);
  const blurred = ops.div(sums, weights);
  return ops.mul(ops.add(x, ops.mul(level, ops.sub(blurred, x))), known);
}
