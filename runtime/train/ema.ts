// An exponential moving average of a network's weights (the generator's, for evaluation: GAN
// weights at a high learning rate jitter from step to step; their average is a smoother
// inpainter). Checkpointed as an optimizer, so a resumed run keeps its average.

import { keep, Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import type { OptimizerLike } from "./checkpoint.ts";

export class WeightAverage implements OptimizerLike {
  readonly #avg: Tensor[];
  constructor(readonly params: Tensor[], readonly decay: number) {
    if (!(decay > 0 && decay < 1)) {
      throw new Error(`ema: expected a decay in (0, 1), got ${decay}`);
    }
    this.#avg = params.map((p) => {
      const a = keep(Tensor.empty(p.shape));
      ops.assign(a, p);
      return a;
    });
  }
  /** avg = decay * avg + (1 - decay) * weights, after each optimizer step. */
  update(): void {
    tidy(() =>
      this.params.forEach((p, i) => {
        const a = this.#avg[i];
        ops.assign(a, ops.add(ops.scale(a, this.decay), ops.scale(p, 1 - this.decay)));
      })
    );
  }
  /** Exchanges the weights and their average (twice is the identity). */
  swap(): void {
    tidy(() =>
      this.params.forEach((p, i) => {
        const t = ops.clone(p);
        ops.assign(p, this.#avg[i]);
        ops.assign(this.#avg[i], t);
      })
    );
  }
  stateTensors(): Map<string, Tensor> {
    return new Map(this.#avg.map((a, i) => {
      const c = Tensor.empty(a.shape);
      ops.assign(c, a);
      return [`${i}.avg`, c];
    }));
  }
  loadState(map: Map<string, Tensor>): Promise<void> {
    this.#avg.forEach((a, i) => {
      const t = map.get(`${i}.avg`);
      if (!t) throw new Error(`ema.loadState: missing "${i}.avg"`);
      ops.assign(a, t);
    });
    return Promise.resolve();
  }
  dispose(): void {
    for (const a of this.#avg) a.dispose();
  }
}
