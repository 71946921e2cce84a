// RSS growth of a small training loop in a process of its own (determinism_memory.test.ts): under
// `deno test` the resident set grows by 30-55 MB per 1,000 steps at this tree and at cc4fba5
// alike, in a plain process by 0-2 MB with one allocator jump of ~28 MB, so a leak is measured
// here. Prints one JSON line: the growth in bytes of each window of `steps` steps.
import { initEngine } from "../../runtime/engine.ts";
import { smallTraining } from "./small_training.ts";

const [windows, steps] = [Number(Deno.args[0] ?? 3), Number(Deno.args[1] ?? 1000)];
await initEngine();
const { step } = smallTraining();
for (let i = 0; i < steps; i++) await step();
const growth: number[] = [];
for (let w = 0; w < windows; w++) {
  const r0 = Deno.memoryUsage().rss;
  for (let i = 0; i < steps; i++) await step();
  growth.push(Deno.memoryUsage().rss - r0);
}
console.log(JSON.stringify({ growth }));
