// `--explain`'s measured part: the steps that matter for speed compiled and replayed on the
// adapter, as training and the attacks run them. Each step is called until its captured graph
// replays; the last call's engine counters and the graph's own statistics are reported
// (launches, submits, readbacks and uploads per step; the graph's buffers, bytes and liveness
// peak; the buffers outside it). The traced table (explainSteps) counts kernels without
// running them; this one runs them.

import { type Tensor, tidy } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { engine } from "../runtime/engine.ts";
import { ExampleDraws } from "../runtime/rng.ts";
import { backward } from "../runtime/autograd.ts";
import { eotGradient } from "../runtime/attacks/target.ts";
import { CompiledStep, graphCounters, type GraphStats } from "../runtime/graph/capture.ts";
import { Adam } from "../runtime/optim.ts";
import type { Purifier } from "../runtime/models/mod.ts";
import { noiseSigma } from "./spec.ts";
import { type DefenseParts, defenseTarget } from "./compile.ts";

export interface ReplayExplain {
  step: string;
  /** How the last call ran ("replay", or "eager" with the reason). */
  mode: string;
  dispatches: number;
  submits: number;
  readbacks: number;
  uploads: number;
  graph: GraphStats | null;
}

/** Calls a step until a call replays its graph (at most 5 calls) and measures the last call. */
function measure(name: string, body: (...t: Tensor[]) => Tensor[], inputs: Tensor[]) {
  const eng = engine();
  const step = new CompiledStep(name, body);
  let last = { dispatches: 0, submits: 0, readbacks: 0, uploads: 0 };
  let replayed = false;
  try {
    for (let i = 0; i < 5 && !replayed; i++) {
      eng.flush();
      const c0 = { ...eng.counters };
      const r0 = graphCounters.replayed;
      step.run(...inputs).forEach((t) => t.dispose());
      eng.flush(); // the step's work is one submit
      const c = eng.counters;
      last = {
        dispatches: c.dispatches - c0.dispatches,
        submits: c.submits - c0.submits,
        readbacks: c.readbacks - c0.readbacks,
        uploads: c.uploads - c0.uploads,
      };
      replayed = graphCounters.replayed > r0;
    }
    const state = step.state(...inputs);
    return {
      step: name,
      mode: replayed ? "replay" : `${state} (${step.reason(...inputs) ?? "not replayed"})`,
      ...last,
      graph: step.stats(...inputs),
    };
  } finally {
    step.dispose();
  }
}

/** Runs the attack gradient through the whole defense (EOT draws stacked) and a purifier
 * update as compiled steps, on constant inputs of `batch` images. */
export async function explainReplay(
  p: DefenseParts,
  batch: number,
  eot: number,
): Promise<ReplayExplain[]> {
  const size = p.spec.imageSize;
  const target = defenseTarget({ ...p, draws: new ExampleDraws(p.spec.seed, 0x3e8) });
  const rows = Array.from({ length: batch }, (_, i) => i);
  const x = ops.full([batch, 3, size, size], 0.5);
  const y = ops.zeros([batch]);
  const out: ReplayExplain[] = [];
  try {
    out.push(measure(`attack gradient, EOT ${eot} (batch ${batch})`, (xi, yi) => {
      const r = eotGradient(
        target,
        xi,
        (z) => ops.crossEntropy(z, yi, { reduction: "none" }),
        eot,
        rows,
      );
      return [r.grad, r.loss];
    }, [x, y]));
    const purifier = p.modules.purifier as Purifier | null;
    if (purifier && typeof purifier.run === "function") {
      const opt = new Adam(purifier.parameters(), { lr: 1e-4 });
      purifier.train();
      const mask = ops.zeros([batch, 1, size, size]);
      const sigma = noiseSigma(p.spec);
      const level = sigma > 0 ? ops.full([batch, 1, 1, 1], sigma) : null;
      try {
        out.push(measure(`purifier update (batch ${batch})`, (xi, mi) => {
          const loss = tidy(() => {
            const r = purifier.run(xi, mi, level ?? undefined);
            const l = ops.add(ops.l1Loss(r.coarse, xi), ops.l1Loss(r.fine, xi));
            backward(l);
            return ops.detach(l);
          });
          opt.step();
          opt.zeroGrad();
          return [loss];
        }, [x, mask]));
      } finally {
        purifier.eval();
        opt.dispose();
        mask.dispose();
        level?.dispose();
      }
    }
    await engine().sync();
    return out;
  } finally {
    x.dispose();
    y.dispose();
  }
}

/** The replayed-step table. */
export function explainReplayText(steps: ReplayExplain[]): string {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const lines = [
    "compiled steps as replayed on this adapter (the last of up to 5 calls; graph = the step's " +
    "own buffers, outside = weights and optimizer state it binds):",
    "| step | how it ran | launches | submits | readbacks | uploads | graph buffers | graph bytes | " +
    "liveness peak | outside buffers |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const s of steps) {
    const g = s.graph;
    lines.push(
      `| ${s.step} | ${s.mode} | ${s.dispatches} | ${s.submits} | ${s.readbacks} | ${s.uploads} | ` +
        (g
          ? `${g.buffers} | ${mb(g.bytes)} | ${mb(g.peakBytes)} | ${g.externals} (${
            mb(g.externalBytes)
          }) |`
          : "- | - | - | - |"),
    );
  }
  return lines.join("\n");
}
