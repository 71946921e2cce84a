// Issue 12's end-to-end workload: the quick pipeline as it was at 67d94fe (the baseline of the
// wall-clock bars), spelled out in full so that today's tree runs the same schedule, model sizes
// and attacks (the quick preset has since grown: a 64x64 purifier, clean accuracy on 512 images).
// Every field is set here, so run it under --preset paper (whose fields it all overrides) with
// the shipped subset:
//   deno task run tests/bench/quick_67d94fe.ts --preset paper --data data/cifar10 --out DIR
// and the old tree with `deno task run pipelines/cifar10_atop.ts --preset quick`. The
// AutoAttack-rand benchmark (bench.ts) attacks its defense.

import type { PipelineDraft } from "../../dsl/spec.ts";
import { runAsMain } from "../../dsl/cli.ts";

export const spec: PipelineDraft = {
  name: "cifar10_atop_quick_67d94fe",
  dataset: "cifar10",
  transform: [{ kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 4 }],
  trainAttack: { kind: "fgsm", norm: "linf", eps: 8 / 255 },
  classifier: { arch: "smallcnn" },
  purifier: {
    kind: "deepfill",
    width: 8,
    dilations: [2, 4],
    discWidth: 8,
    discLayers: 3,
    prefill: "pushpull",
  },
  loss: [
    { term: "gan", weight: 0.01, after: 100 },
    { term: "l1-coarse", weight: 1, after: 0 },
    { term: "l1-fine", weight: 1, after: 0 },
    { term: "ce", weight: 0.1, after: 10 },
  ],
  classifierTraining: { epochs: 3, batchSize: 64, lr: 0.05 },
  pretraining: { epochs: 1, batchSize: 16, lr: 2e-3 },
  finetuning: { epochs: 1, batchSize: 16, lr: 1e-3, limit: 1024 },
  evaluation: {
    limit: 48,
    eotDraws: 2,
    threat: "both",
    attacks: [
      { attack: "pgd", norm: "linf", eps: 8 / 255, steps: 10 },
      { attack: "pgd", norm: "l2", eps: 0.5, steps: 10 },
      { attack: "autoattack", norm: "linf", eps: 8 / 255, steps: 10, eot: 2, queries: 500 },
      { attack: "stadv", norm: "linf", eps: 0, steps: 10 },
    ],
  },
};

if (import.meta.main) await runAsMain("tests/bench/quick_67d94fe.ts", spec);
