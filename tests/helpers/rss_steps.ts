// RSS growth of a small training loop in a process of its own (determinism_memory.test.ts): under
// `deno test` the resident set grows by 30-55 MB per 1,000 steps at this tree and at cc4fba5
// alike, in a plain process by 0-2 MB with one allocator jump of ~28 MB, so a leak is measured
// here. Prints one JSON line: the growth in bytes of each window of `steps` steps.
import { initEngine } from "../../runtime/engine.ts";
import { createModel } from "../../runtime/models/mod.ts";
import { tidyAsync } from "../../runtime/tensor.ts";
import * as ops from "../../runtime/ops/mod.ts";
import { backward } from "../../runtime/autograd.ts";
import { SGD } from "../../runtime/optim.ts";
import { Rng } from "../../runtime/rng.ts";

const [windows, steps] = [Number(Deno.args[0] ?? 3), Number(Deno.args[1] ?? 1000)];
await initEngine();
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
for (let i = 0; i < steps; i++) await step();
const growth: number[] = [];
for (let w = 0; w < windows; w++) {
  const r0 = Deno.memoryUsage().rss;
  for (let i = 0; i < steps; i++) await step();
  growth.push(Deno.memoryUsage().rss - r0);
}
console.log(JSON.stringify({ growth }));
