// A deliberately tiny AToP pipeline (seconds of compute on the CPU adapter) used by CI's
// reproducibility check: `deno task repro pipelines/ci_tiny.manifest.json`. Its numbers say
// nothing about robustness; they only have to come out identical on a rerun.

import type { PipelineDraft } from "../dsl/spec.ts";
import { atopLoss } from "../dsl/spec.ts";
import { runAsMain } from "../dsl/cli.ts";
import { pipelineDefense } from "../dsl/defense.ts";

export const spec: PipelineDraft = {
  name: "ci_tiny",
  transform: [{ kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 4 }],
  classifier: { arch: "smallcnn" },
  purifier: { kind: "deepfill", width: 4, dilations: [2], discWidth: 4, discLayers: 3 },
  loss: atopLoss(1, 0.1, 1),
  classifierTraining: { epochs: 2, batchSize: 32, lr: 0.05, limit: 512 },
  pretraining: { epochs: 1, batchSize: 8, lr: 1e-3, limit: 16 },
  finetuning: { epochs: 1, batchSize: 8, lr: 1e-3, limit: 16 },
  evaluation: {
    limit: 16,
    cleanLimit: 32,
    eotDraws: 2,
    threat: "both",
    attacks: [{ attack: "pgd", norm: "linf", eps: 8 / 255, steps: 2, restarts: 1, eot: 1 }],
  },
};

// `deno task attack --pipeline THIS_FILE [--run OUT] [--defense atop]` attacks a finished run.
export default pipelineDefense(spec);

if (import.meta.main) await runAsMain("pipelines/ci_tiny.ts", spec);
