// The small training loop of the memory tests (determinism_memory.test.ts and rss_steps.ts): a
// tiny CNN, SGD with momentum, one batch of 4 images, the loss read back every step.
import { createModel } from "../../runtime/models/mod.ts";
import { tidyAsync } from "../../runtime/tensor.ts";
import * as ops from "../../runtime/ops/mod.ts";
import { backward } from "../../runtime/autograd.ts";
import { SGD } from "../../runtime/optim.ts";
import { Rng } from "../../runtime/rng.ts";

export function smallTraining() {
  const m = createModel("smallcnn", { seed: 1, widths: [4, 4, 8, 8] } as never);
  const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const r = new Rng(1);
  const x = r.uniform([4, 3, 32, 32]), y = ops.floor(r.uniform([4], 0, 10));
  const step = () =>
    tidyAsync(async () => {
      const loss = ops.crossEntropy(m.forward(x), y);
      backward(loss);
      opt.step();
      opt.zeroGrad();
      return await loss.item();
    });
  const dispose = () => {
    opt.dispose();
    x.dispose();
    y.dispose();
    m.dispose();
  };
  return { step, dispose };
}
