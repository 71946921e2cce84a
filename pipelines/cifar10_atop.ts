// AToP on CIFAR-10 (Lin et al., ICLR 2024): RT2 (Gaussian noise 0.25 + 25% block masking)
// -> DeepFill-style purifier -> classifier, the purifier pre-trained for inpainting and then
// fine-tuned with L = L_gan + a (L1 coarse + L1 fine) + lambda CE on FGSM examples. The loss
// weights come from the preset (dsl/presets.ts): AToP's for `paper`, a weak GAN term in
// fine-tuning only for `quick`.
//   deno task run pipelines/cifar10_atop.ts --preset quick

import type { PipelineDraft } from "../dsl/spec.ts";
import { runAsMain } from "../dsl/cli.ts";
import { pipelineDefense } from "../dsl/defense.ts";

export const spec: PipelineDraft = {
  name: "cifar10_atop",
  dataset: "cifar10",
  transform: [{ kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 4 }],
  trainAttack: { kind: "fgsm", norm: "linf", eps: 8 / 255 },
};

// `deno task attack --pipeline THIS_FILE [--run OUT] [--defense atop]` attacks a finished run.
export default pipelineDefense(spec);

if (import.meta.main) await runAsMain("pipelines/cifar10_atop.ts", spec);
