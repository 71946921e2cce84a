// Per-example randomness: every draw an attack makes for example `index` comes from a stream
// keyed by (seed, index, stream path), so an example's attack does not depend on which other
// examples share its batch or shard. Counter-based (a hash of key and position), computed on
// the CPU because attacks consume these numbers on the CPU or upload them once.

import { Tensor } from "../tensor.ts";

/** Stream ids, one per use, so different attacks/restarts never share random numbers. */
export const STREAM = {
  pgd: 1,
  apgd: 2,
  fab: 3,
  square: 4,
  stadv: 5,
  fgsm: 6,
} as const;

/** murmur3's 32-bit finalizer: a bijective avalanche mix. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function combine(h: number, v: number): number {
  return fmix((h ^ fmix((v >>> 0) + 0x9e3779b9)) + Math.imul(h, 5) + 0xe6546b64);
}

/** The 64-bit stream key of (seed, index, path) as two 32-bit words. */
export function streamKey(seed: number, index: number, path: number[]): [number, number] {
  let a = fmix(seed >>> 0 ^ 0x243f6a88), b = fmix((seed / 4294967296) >>> 0 ^ 0x85a308d3);
  for (const v of [index, ...path]) {
    a = combine(a, v);
    b = combine(b, v ^ 0x5bd1e995);
  }
  return [a, b];
}

/** 32 random bits at position i of the stream with key (a, b). */
function bits(a: number, b: number, i: number): number {
  return fmix(combine(combine(a, i), b ^ Math.imul(i, 0x27d4eb2f)));
}

/** n uniform numbers in [lo, hi) for one example. */
export function exampleUniform(
  seed: number,
  index: number,
  path: number[],
  n: number,
  lo = 0,
  hi = 1,
): Float32Array {
  const [a, b] = streamKey(seed, index, path);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // 24 bits so the float32 value is exact and strictly below 1.
    const u = (bits(a, b, i) >>> 8) / 16777216;
    out[i] = lo + (hi - lo) * u;
  }
  return out;
}

/** n standard normal numbers for one example (Box-Muller on two uniforms each). */
export function exampleNormal(seed: number, index: number, path: number[], n: number) {
  const u = exampleUniform(seed, index, path, 2 * n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = 1 - u[2 * i]; // in (0, 1]
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u[2 * i + 1]);
  }
  return out;
}

/** A [N, ...shape] tensor whose row i is drawn from example indices[i]'s stream. */
export function stackedRandom(
  kind: "uniform" | "normal",
  seed: number,
  indices: number[],
  path: number[],
  shape: readonly number[],
  lo = 0,
  hi = 1,
): Tensor {
  const d = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(indices.length * d);
  for (let i = 0; i < indices.length; i++) {
    const v = kind === "uniform"
      ? exampleUniform(seed, indices[i], path, d, lo, hi)
      : exampleNormal(seed, indices[i], path, d);
    out.set(v, i * d);
  }
  return Tensor.fromData(out, [indices.length, ...shape]);
}
