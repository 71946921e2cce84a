// Compiled against eager, interleaved in one process (the host is noisy): bench.ts's purifier
// pre-training step and classifier train steps, each run as a CompiledStep and eagerly, in
// alternating blocks of steps; prints medians, minima and host (recording) time.
//   deno run -A tests/bench/graph_ab.ts [rounds=6] [block=4] [name prefix]
import { initEngine } from "../../runtime/engine.ts";
import { type Tensor, tidy } from "../../runtime/tensor.ts";
import { CompiledStep } from "../../runtime/graph/capture.ts";
import { pretrainStepParts, trainStepParts } from "./bench.ts";

const eng = await initEngine();
const rounds = Number(Deno.args[0] ?? 6);
const block = Number(Deno.args[1] ?? 4);
const only = Deno.args[2];

interface Workload {
  name: string;
  body: (...t: Tensor[]) => Tensor[];
  inputs: Tensor[];
  work: number;
  dispose: () => void;
}

const workloads: (() => Workload)[] = [
  () => {
    const p = pretrainStepParts(16);
    return {
      name: "purifier w8 pretrain step b16",
      body: p.body as (...t: Tensor[]) => Tensor[],
      inputs: [p.x],
      work: 16,
      dispose: p.dispose,
    };
  },
  ...(["smallcnn", "resnet18"] as const).map((arch) => () => {
    const p = trainStepParts(arch, 32);
    return {
      name: `${arch} train step b32`,
      body: p.body as (...t: Tensor[]) => Tensor[],
      inputs: p.inputs,
      work: 32,
      dispose: p.dispose,
    };
  }),
];

const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
for (const make of workloads) {
  const w = make();
  if (only && !w.name.startsWith(only)) {
    w.dispose();
    continue;
  }
  const step = new CompiledStep(w.name, w.body);
  // Warm-up and capture (eager runs share the model: it trains on in both modes).
  for (let i = 0; i < 4; i++) for (const t of step.run(...w.inputs)) t.dispose();
  const ms = { compiled: [] as number[], eager: [] as number[] };
  const host = { compiled: [] as number[], eager: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of ["compiled", "eager"] as const) {
      for (let i = 0; i < block; i++) {
        await eng.sync();
        const t0 = performance.now();
        const outs = mode === "compiled" ? step.run(...w.inputs) : tidy(() => w.body(...w.inputs));
        const t1 = performance.now();
        await outs[0].data();
        const t2 = performance.now();
        for (const t of outs) t.dispose();
        ms[mode].push(t2 - t0);
        host[mode].push(t1 - t0);
      }
    }
  }
  const c = median(ms.compiled), e = median(ms.eager);
  const min = (a: number[]) => Math.min(...a);
  console.log(
    `${w.name}: compiled ${c.toFixed(1)} ms (min ${min(ms.compiled).toFixed(1)}, host ` +
      `${median(host.compiled).toFixed(2)} ms), eager ${e.toFixed(1)} ms (min ` +
      `${min(ms.eager).toFixed(1)}, host ${median(host.eager).toFixed(2)} ms), ` +
      `${(w.work / c * 1000).toFixed(2)} vs ${(w.work / e * 1000).toFixed(2)} img/s, ratio ` +
      `${(e / c).toFixed(3)}; graph ${JSON.stringify(step.stats(...w.inputs))}`,
  );
  step.dispose();
  w.dispose();
}
