// AToP on CIFAR-100: the CIFAR-10 recipe with 100 classes.
//   deno task run pipelines/cifar100_atop.ts --preset quick --data DIR_WITH_cifar-100-binary

import type { PipelineDraft } from "../dsl/spec.ts";
import { runAsMain } from "../dsl/cli.ts";
import { pipelineDefense } from "../dsl/defense.ts";
import { spec as cifar10 } from "./cifar10_atop.ts";

export const spec: PipelineDraft = {
  ...cifar10,
  name: "cifar100_atop",
  dataset: "cifar100",
  classifier: { arch: "resnet18", numClasses: 100 },
};

// `deno task attack --pipeline THIS_FILE [--run OUT] [--defense atop]` attacks a finished run.
export default pipelineDefense(spec);

if (import.meta.main) await runAsMain("pipelines/cifar100_atop.ts", spec);
