// Training batches: a seeded permutation per epoch, and CIFAR augmentation (zero-pad, random
// crop back to size, horizontal flip with p = 0.5) done on the CPU on the raw pixels before
// upload. Every random choice is a pure function of (seed, epoch, position in the epoch), so
// a run resumed at batch b sees exactly the batches it would have seen uninterrupted.

import { Tensor } from "../tensor.ts";
import { type ImageSet, imageToFloat } from "./cifar.ts";

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit key from integers (each up to 2^53): order-sensitive hash of all words. */
export function streamKey(...words: number[]): number {
  let h = 0x243f6a88;
  for (const w of words) {
    const lo = w >>> 0, hi = Math.floor(w / 4294967296) >>> 0;
    h = fmix32((h ^ lo) + 0x9e3779b9);
    h = fmix32((h ^ hi) + 0x7f4a7c15);
  }
  return h;
}

/** SplitMix-style generator over 32-bit words: a Weyl counter fed through fmix32. */
export class SplitMix32 {
  #s: number;
  constructor(key: number) {
    this.#s = key >>> 0;
  }
  next(): number {
    this.#s = (this.#s + 0x9e3779b9) >>> 0;
    return fmix32(this.#s ^ (this.#s >>> 15) ^ 0x5bd1e995);
  }
  /** Uniform integer in [0, n), unbiased (rejection). */
  below(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n <= 4294967296)) throw new Error(`below: bad n ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const v = this.next();
      if (v < limit) return v % n;
    }
  }
}

const PERMUTATION = 1, AUGMENT = 2;

/** Fisher-Yates shuffle of 0..n-1 keyed by (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const r = new SplitMix32(streamKey(seed, epoch, PERMUTATION));
  for (let i = n - 1; i > 0; i--) {
    const j = r.below(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export interface AugmentOptions {
  /** Zero padding on each side before a random crop back to the original size (CIFAR: 4). */
  crop?: number;
  /** Mirror left-right with probability 0.5. */
  flip?: boolean;
}

/** One example's augmentation: the crop window's top-left corner in the padded image
 * (0..2*pad each; pad, pad is the identity) and whether it is mirrored. */
export interface AugmentParams {
  top: number;
  left: number;
  flip: boolean;
}

/** Pad with zeros, crop the window at (top, left) of the padded image, then mirror: one CHW
 * image of floats from `src` into `dst` (same shape). */
export function cropFlip(
  src: Float32Array,
  dst: Float32Array,
  shape: readonly [number, number, number],
  pad: number,
  p: AugmentParams,
): void {
  const [c, h, w] = shape;
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const sy = y + p.top - pad;
      const rowOk = sy >= 0 && sy < h;
      for (let x = 0; x < w; x++) {
        const sx = (p.flip ? w - 1 - x : x) + p.left - pad;
        dst[(ch * h + y) * w + x] = rowOk && sx >= 0 && sx < w ? src[(ch * h + sy) * w + sx] : 0;
      }
    }
  }
}

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle every epoch (default false: dataset order). */
  shuffle?: boolean;
  seed?: number;
  augment?: AugmentOptions | null;
  /** Drop the last, smaller batch (default false). */
  dropLast?: boolean;
  /** Use only the first `limit` examples. */
  limit?: number;
}

export interface Batch {
  x: Tensor;
  y: Tensor;
  /** y on the CPU (attacks take labels as numbers: no readback). */
  labels: number[];
  indices: number[];
}

export class DataLoader {
  readonly n: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly #ds: ImageSet;
  readonly #o: LoaderOptions;
  #cached: { epoch: number; order: Int32Array } | null = null;

  constructor(ds: ImageSet, o: LoaderOptions) {
    if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) {
      throw new Error(`DataLoader: batchSize must be an integer >= 1, got ${o.batchSize}`);
    }
    const seed = o.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new Error(`DataLoader: seed must be a non-negative integer, got ${seed}`);
    }
    const pad = o.augment?.crop ?? 0;
    if (!(Number.isInteger(pad) && pad >= 0)) {
      throw new Error(`DataLoader: augment.crop must be a padding in pixels (>= 0), got ${pad}`);
    }
    const [c, h, w] = ds.shape;
    if (ds.images.length !== ds.labels.length * c * h * w) {
      throw new Error(
        `DataLoader: ${ds.images.length} pixel values for ${ds.labels.length} labels of ` +
          `shape [${ds.shape}]`,
      );
    }
    if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) {
      throw new Error(`DataLoader: limit must be an integer >= 1, got ${o.limit}`);
    }
    this.n = Math.min(ds.labels.length, o.limit ?? Infinity);
    if (this.n === 0) throw new Error(`DataLoader: the dataset is empty`);
    if (o.dropLast && this.n < o.batchSize) {
      throw new Error(
        `DataLoader: batchSize ${o.batchSize} is larger than the ${this.n} examples with ` +
          `dropLast (lower batchSize or use more data)`,
      );
    }
    this.#ds = ds;
    this.#o = o;
    this.batchSize = o.batchSize;
    this.seed = seed;
  }

  numBatches(): number {
    const b = this.batchSize;
    return this.#o.dropLast ? Math.floor(this.n / b) : Math.ceil(this.n / b);
  }

  /** The example order of an epoch (identity without shuffle). */
  order(epoch: number): Int32Array {
    if (!(Number.isSafeInteger(epoch) && epoch >= 0)) {
      throw new Error(`DataLoader: epoch must be a non-negative integer, got ${epoch}`);
    }
    if (this.#cached?.epoch !== epoch) {
      const order = this.#o.shuffle
        ? epochPermutation(this.n, this.seed, epoch)
        : Int32Array.from({ length: this.n }, (_, i) => i);
      this.#cached = { epoch, order };
    }
    return this.#cached.order;
  }

  /** Example indices of batch `b` of an epoch. */
  batchIndices(epoch: number, b: number): number[] {
    if (!(Number.isInteger(b) && b >= 0 && b < this.numBatches())) {
      throw new Error(`DataLoader: batch ${b} out of range (0..${this.numBatches() - 1})`);
    }
    const start = b * this.batchSize;
    return [...this.order(epoch).subarray(start, Math.min(this.n, start + this.batchSize))];
  }

  /** The augmentation of the example at `position` in the epoch's order (null if none). */
  augmentParams(epoch: number, position: number): AugmentParams | null {
    const a = this.#o.augment;
    const pad = a?.crop ?? 0;
    if (!a || (!pad && !a.flip)) return null;
    const r = new SplitMix32(streamKey(this.seed, epoch, AUGMENT, position));
    const top = pad ? r.below(2 * pad + 1) : 0;
    const left = pad ? r.below(2 * pad + 1) : 0;
    const flip = !!a.flip && (r.next() & 1) === 1;
    return { top, left, flip };
  }

  /** Batch `b` of an epoch on the CPU: x [B,C,H,W] floats in [0,1], y [B] labels. */
  batchArrays(epoch: number, b: number): { x: Float32Array; y: Float32Array; indices: number[] } {
    const indices = this.batchIndices(epoch, b);
    const shape = this.#ds.shape;
    const d = shape[0] * shape[1] * shape[2];
    const x = new Float32Array(indices.length * d);
    const y = new Float32Array(indices.length);
    const tmp = new Float32Array(d);
    const pad = this.#o.augment?.crop ?? 0;
    indices.forEach((ex, j) => {
      y[j] = this.#ds.labels[ex];
      const dst = x.subarray(j * d, (j + 1) * d);
      const p = this.augmentParams(epoch, b * this.batchSize + j);
      if (!p) {
        imageToFloat(this.#ds, ex, dst);
        return;
      }
      imageToFloat(this.#ds, ex, tmp);
      cropFlip(tmp, dst, shape, pad, p);
    });
    return { x, y, indices };
  }

  /** Uploaded batches of an epoch from `startBatch` on (resuming mid-epoch). The caller owns
   * (and disposes) each batch's tensors. */
  async *batches(epoch: number, startBatch = 0): AsyncGenerator<Batch> {
    const nb = this.numBatches();
    if (!(Number.isInteger(startBatch) && startBatch >= 0 && startBatch <= nb)) {
      throw new Error(`DataLoader: startBatch ${startBatch} out of range (0..${nb})`);
    }
    for (let b = startBatch; b < nb; b++) {
      const { x, y, indices } = this.batchArrays(epoch, b);
      yield {
        x: Tensor.fromData(x, [indices.length, ...this.#ds.shape]),
        y: Tensor.fromData(y, [indices.length]),
        labels: Array.from(y),
        indices,
      };
    }
  }
}
