// A custom defense: bit-depth reduction (non-differentiable, attacked with BPDA) in front of
// RT1 masking and the purifier, trained with an extra MSE term and a PGD training attack.
//   deno task run pipelines/custom_defense.ts --preset quick

import type { Tensor } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import type { PipelineDraft } from "../dsl/spec.ts";
import { runAsMain } from "../dsl/cli.ts";
import { pipelineDefense } from "../dsl/defense.ts";

/** Quantizes pixels to 3 bits: round(x * 7) / 7 (piecewise constant: zero gradient). */
function quantize3(x: Tensor): Tensor {
  return ops.scale(ops.floor(ops.affine(x, 7, 0.5)), 1 / 7);
}

export const spec: PipelineDraft = {
  name: "custom_defense",
  transform: [
    { kind: "custom", name: "quantize3", apply: quantize3, bpda: "identity" },
    { kind: "rt1", missingRate: 0.25, blockSize: 4 },
  ],
  loss: [
    { term: "gan", weight: 1 },
    { term: "l1-coarse", weight: 1 },
    { term: "l1-fine", weight: 1 },
    { term: "mse-fine", weight: 2 },
    { term: "ce", weight: 0.2, after: 5 },
  ],
  trainAttack: { kind: "pgd", norm: "linf", eps: 8 / 255, steps: 3, stepSize: 3 / 255 },
};

// `deno task attack --pipeline THIS_FILE [--run OUT] [--defense atop]` attacks a finished run.
export default pipelineDefense(spec);

if (import.meta.main) await runAsMain("pipelines/custom_defense.ts", spec);
