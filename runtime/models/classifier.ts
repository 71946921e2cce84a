// What every classifier exposes: [0,1] pixels in, logits out; optional per-channel
// normalization inside the model so attacks always work in pixel space.

import { keep, Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { Module } from "../nn/mod.ts";

export interface ClassifierOptions {
  numClasses?: number;
  seed?: number;
  /** Per-channel mean/std applied inside forward(); off (null) by default. */
  normalize?: { mean: [number, number, number]; std: [number, number, number] } | null;
}

export abstract class Classifier extends Module {
  abstract readonly arch: string;
  /** Channels of its widest activation at the input's resolution: with the input size, the
   * largest tensor one image makes (what bounds a stacked batch under a binding limit). */
  abstract readonly stemChannels: number;
  readonly numClasses: number;
  #norm: { mean: Tensor; invStd: Tensor } | null = null;

  constructor(o: ClassifierOptions) {
    super();
    this.numClasses = o.numClasses ?? 10;
    if (!Number.isInteger(this.numClasses) || this.numClasses < 2) {
      throw new Error(`numClasses must be an integer >= 2, got ${o.numClasses}`);
    }
    if (o.normalize) {
      this.#norm = {
        mean: keep(Tensor.fromData(o.normalize.mean, [1, 3, 1, 1])),
        invStd: keep(Tensor.fromData(o.normalize.std.map((s) => 1 / s), [1, 3, 1, 1])),
      };
    }
  }

  protected abstract logits(x: Tensor): Tensor;

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== 3) {
      throw new Error(`${this.arch}: input must be [N,3,H,W] pixels in [0,1], got [${x.shape}]`);
    }
    const h = this.#norm ? ops.mul(ops.sub(x, this.#norm.mean), this.#norm.invStd) : x;
    return this.logits(h);
  }
}
