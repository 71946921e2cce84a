// The random transforms of AToP as defense stages (runtime: the DSL, the trainers and the CLIs
// all use them). Every call draws fresh randomness for every
// example (the reference code drew one mask per batch), from a counter-based Rng, so a run is
// reproducible from its seed. Masks are 1 on the holes.

import { Tensor } from "./tensor.ts";
import * as ops from "./ops/mod.ts";
import type { RandomSource as Rng } from "./rng.ts";
import { keep } from "./tensor.ts";

/** An image stage that also exposes the hole mask it used and the noise it added (the
 * purifier needs both). */
export interface MaskedImage {
  image: Tensor;
  mask: Tensor;
  /** Each example's noise sigma [N,1,1,1] (pixel units); absent when no noise was added. */
  noise?: Tensor;
}

/** The noise level after two independent noises: sigmas add in quadrature. */
export function combineNoise(a?: Tensor, b?: Tensor): Tensor | undefined {
  if (!a || !b) return a ?? b;
  return ops.sqrt(ops.add(ops.square(a), ops.square(b)));
}

const expanders = new Map<string, Tensor>();
/** [size, size/b] 0/1 matrix E with E[i, j] = 1 when i / b == j: E m E^T repeats blocks. */
function expander(size: number, b: number): Tensor {
  const key = `${size}/${b}`;
  let e = expanders.get(key);
  if (!e || e.disposed) {
    const n = size / b;
    const v = new Float32Array(size * n);
    for (let i = 0; i < size; i++) v[i * n + Math.floor(i / b)] = 1;
    e = keep(Tensor.fromData(v, [size, n]));
    expanders.set(key, e);
  }
  return e;
}

/** Per-example block mask [N,1,H,W]: each b x b block is a hole with probability `rate`. */
export function blockMask(
  rng: Rng,
  n: number,
  h: number,
  w: number,
  b: number,
  rate: number,
): Tensor {
  if (h % b || w % b) {
    throw new Error(`blockMask: block size ${b} must divide the image size ${h}x${w}`);
  }
  const blocks = rng.bernoulli([n, h / b, w / b], rate);
  const rows = ops.matmulRaw(expander(h, b), blocks); // [N, H, W/b]
  const full = ops.matmulRaw(rows, expander(w, b), false, true); // [N, H, W]
  blocks.dispose();
  rows.dispose();
  return full.view([n, 1, h, w]);
}

export interface MaskOptions {
  missingRate: number;
  blockSize: number;
}

/** Mask options for images at `f` times the resolution (purifierSize): blocks keep their size in
 * the classifier's pixels. */
export function blocksAt<T extends MaskOptions>(o: T, f: number): T {
  return f === 1 ? o : { ...o, blockSize: o.blockSize * f };
}

/** RT1: zero random blocks. */
export function rt1(rng: Rng, x: Tensor, o: MaskOptions): MaskedImage {
  const [n, , h, w] = x.shape;
  const mask = blockMask(rng, n, h, w, o.blockSize, o.missingRate);
  return { image: ops.mul(x, ops.sub(1, mask)), mask };
}

/** How much of the noise each example of a batch gets: a factor per example, shape [N,1,1,1]
 * (1: all of it, 0: none). */
export type NoiseGate = (rng: Rng, n: number) => Tensor;

/** Gaussian noise (sigma in pixel units), clipped to [0,1]; with a gate, each example's noise
 * times its factor (the gate is drawn after the noise). Also each example's noise sigma
 * [N,1,1,1] (sigma times its gate factor), absent when sigma is 0. */
export function noisyImage(
  rng: Rng,
  x: Tensor,
  sigma: number,
  gate?: NoiseGate,
): { image: Tensor; noise?: Tensor } {
  if (sigma === 0) return { image: x };
  const n = x.shape[0];
  const noise = rng.normal(x.shape, 0, sigma);
  const factor = gate ? gate(rng, n) : null;
  return {
    image: ops.clamp(ops.add(x, factor ? ops.mul(noise, factor) : noise), 0, 1),
    noise: factor ? ops.scale(factor, sigma) : ops.full([n, 1, 1, 1], sigma),
  };
}

/** How training draws vary the transform's noise per example (Schedule.noiseFreeShare and
 * noiseScaleShare): a share `free` of the examples gets none, or a share `scaled` gets it
 * scaled by a factor drawn uniformly from [0, 1) (noise levels from none to the full sigma). */
export interface NoiseVariation {
  free?: number;
  scaled?: number;
}

/** The gate of one training draw (NoiseVariation), drawn at its first use and shared by every
 * later noisy step of the draw, so an example keeps one noise level through the whole chain.
 * None when neither share is set (nothing drawn). */
export function trainingNoiseGate(v: NoiseVariation): NoiseGate | undefined {
  const free = v.free ?? 0, scaled = v.scaled ?? 0;
  if (free > 0 && scaled > 0) {
    throw new Error("trainingNoiseGate: give a noise-free share or a scaled share, not both");
  }
  if (free === 0 && scaled === 0) return undefined;
  let gate: Tensor | null = null;
  // free: 1 (noisy) where u >= free. scaled: u / scaled below the share, else 1.
  const draw = (u: Tensor) =>
    free > 0 ? ops.floor(ops.add(u, 1 - free)) : ops.minimum(ops.scale(u, 1 / scaled), 1);
  return (rng, n) => {
    gate ??= draw(rng.uniform([n, 1, 1, 1]));
    if (gate.shape[0] !== n) {
      throw new Error(`trainingNoiseGate: drawn for ${gate.shape[0]} examples, asked for ${n}`);
    }
    return gate;
  };
}

/** RT2: noise, then RT1 masking; a gate scales some examples' noise or leaves it out (training
 * only). */
export function rt2(
  rng: Rng,
  x: Tensor,
  o: MaskOptions & { sigma: number },
  gate?: NoiseGate,
): MaskedImage {
  const noisy = noisyImage(rng, x, o.sigma, gate);
  return { ...rt1(rng, noisy.image, o), noise: noisy.noise };
}

/** What RT3 needs from the purifier: inpaint given the hole mask and the noise level. */
export type Inpaint = (x: Tensor, mask: Tensor, noise?: Tensor) => Tensor;

/** RT3: `repeats` rounds of fresh mask (optionally after noise) then purify. `noise`: the level
 * of noise the input already carries (it adds to the first round's). */
export function rt3(
  rng: Rng,
  x: Tensor,
  o: MaskOptions & { sigma: number; repeats: number },
  inpaint: Inpaint,
  noise?: Tensor,
): Tensor {
  let h = x;
  for (let i = 0; i < o.repeats; i++) {
    const m = rt2(rng, h, o);
    h = inpaint(m.image, m.mask, i === 0 ? combineNoise(noise, m.noise) : m.noise);
  }
  return h;
}

/** The purifier's resolution (`purifierSize`, as in the AToP code, which works at 256x256 on
 * CIFAR): images go up by bilinear interpolation before the random transform and come back
 * down by the area average (the mean of each f x f block; at factor 2 this is exactly the
 * half-pixel bilinear resize) before the classifier. Both are linear and differentiable, so the
 * full-pipeline threat model sees through them. Per-pixel noise at f times the resolution
 * averages down to about sigma / f at the classifier's pixels. */
export function toPurifierSize(x: Tensor, size: number): Tensor {
  return x.shape[2] === size && x.shape[3] === size
    ? x
    : ops.upsampleBilinear(x, { size: [size, size] });
}

/** Back to the classifier's `size` (an integer divisor of the purifier's). */
export function toClassifierSize(x: Tensor, size: number): Tensor {
  const f = x.shape[2] / size;
  if (f === 1 && x.shape[3] === size) return x;
  if (!Number.isInteger(f) || x.shape[3] !== x.shape[2]) {
    throw new Error(`toClassifierSize: [${x.shape}] is not a square multiple of ${size}`);
  }
  return ops.avgPool2d(x, { kernel: [f, f] });
}
