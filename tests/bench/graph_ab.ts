// Compiled against eager, interleaved in one process (the host is noisy): the purifier
// pre-training step of bench.ts and the ResNet-18 train step, each run as a CompiledStep and
// eagerly, in alternating blocks; prints medians. `deno run -A tests/bench/graph_ab.ts [rounds]`
import { initEngine } from "../../runtime/engine.ts";
import { keep, Tensor, tidy } from "../../runtime/tensor.ts";
import * as ops from "../../runtime/ops/mod.ts";
import { backward } from "../../runtime/autograd.ts";
import { Adam, SGD } from "../../runtime/optim.ts";
import { createModel, PatchDiscriminator, Purifier } from "../../runtime/models/mod.ts";
import { criticThenGeneratorLoss } from "../../runtime/train/purifier.ts";
import { rt1 } from "../../runtime/transforms.ts";
import { Rng } from "../../runtime/rng.ts";
import { CompiledStep } from "../../runtime/graph/capture.ts";

const eng = await initEngine();
const rounds = Number(Deno.args[0] ?? 6);
const block = Number(Deno.args[1] ?? 4);
const only = Deno.args[2];

function pretrain(batch: number) {
  const G = new Purifier({ width: 8, dilations: [2, 4], seed: 1, prefill: "pushpull" });
  const D = new PatchDiscriminator({ width: 8, layers: 3, seed: 1 });
  G.train();
  D.train();
  const optG = new Adam(G.parameters(), { lr: 1e-3, betas: [0.5, 0.999] });
  const optD = new Adam(D.parameters(), { lr: 1e-3, betas: [0.5, 0.999] });
  const dParams = D.parameters();
  const x = keep(new Rng(9).uniform([batch, 3, 32, 32]));
  const rng = new Rng(1, 2);
  const body = (x: Tensor) => {
    const { image, mask } = rt1(rng, x, { missingRate: 0.25, blockSize: 4 });
    const { dLoss, total } = criticThenGeneratorLoss(
      { G, D, optD, dParams },
      { image, mask, real: x },
      (out) => ({
        total: ops.add(
          ops.add(ops.l1Loss(out.coarse, x), ops.l1Loss(out.fine, x)),
          ops.scale(ops.hingeGanLossG(D.score(out.fine, mask)), 0.01),
        ),
      }),
    );
    optG.step();
    optG.zeroGrad();
    return [dLoss, total!];
  };
  return { name: "purifier w8 pretrain step b16", body, inputs: [x], work: batch };
}

function resnet(batch: number, arch = "resnet18") {
  const model = createModel(arch, { seed: 1 });
  model.train();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = keep(new Rng(5).uniform([batch, 3, 32, 32]));
  const y = keep(ops.floor(new Rng(6).uniform([batch], 0, 10)));
  const body = (x: Tensor, y: Tensor) => {
    const l = tidy(() => {
      const l = ops.crossEntropy(model.forward(x), y);
      backward(l);
      return l;
    });
    opt.step();
    opt.zeroGrad();
    return [l];
  };
  return { name: `${arch} train step b${batch}`, body, inputs: [x, y], work: batch };
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
for (
  const w of [pretrain(16), resnet(32, "smallcnn"), resnet(32)].filter((w) =>
    !only || w.name.startsWith(only)
  )
) {
  const body = w.body as (...t: Tensor[]) => Tensor[];
  const step = new CompiledStep(w.name, body);
  // Warm-up and capture (eager runs share the model: it trains on in both modes).
  for (let i = 0; i < 4; i++) for (const t of step.run(...w.inputs)) t.dispose();
  const ms = {
    compiled: [] as number[],
    eager: [] as number[],
    jsC: [] as number[],
    jsE: [] as number[],
  };
  for (let r = 0; r < rounds; r++) {
    for (const mode of ["compiled", "eager"] as const) {
      for (let i = 0; i < block; i++) {
        await eng.sync();
        const t0 = performance.now();
        const outs = mode === "compiled" ? step.run(...w.inputs) : tidy(() => body(...w.inputs));
        const t1 = performance.now();
        await outs[0].data();
        const t2 = performance.now();
        for (const t of outs) t.dispose();
        ms[mode].push(t2 - t0);
        (mode === "compiled" ? ms.jsC : ms.jsE).push(t1 - t0);
      }
    }
  }
  const c = median(ms.compiled), e = median(ms.eager);
  const min = (a: number[]) => Math.min(...a);
  console.log(
    `  min compiled ${min(ms.compiled).toFixed(1)} ms, eager ${min(ms.eager).toFixed(1)} ms`,
  );
  console.log(
    `${w.name}: compiled ${c.toFixed(1)} ms (${(w.work / c * 1000).toFixed(2)} img/s, host ` +
      `${median(ms.jsC).toFixed(2)} ms), eager ${e.toFixed(1)} ms (${
        (w.work / e * 1000).toFixed(2)
      } ` +
      `img/s, host ${median(ms.jsE).toFixed(2)} ms), ratio ${(e / c).toFixed(3)}; ` +
      `graph ${JSON.stringify(step.stats(...w.inputs))}`,
  );
  step.dispose();
}
