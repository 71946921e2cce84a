// A finished pipeline run as an attackable defense: what `deno task attack --pipeline FILE`
// loads. A pipeline file's default export is `pipelineDefense(spec)`; given the run directory
// (the pipeline's --out) it rebuilds the spec exactly as the run did (preset + file + seed from
// the run's manifest), checks the spec hash, and loads the trained stage weights.

import { join } from "node:path";
import type { Target } from "../runtime/attacks/target.ts";
import { classifierTarget } from "../runtime/attacks/target.ts";
import { Purifier } from "../runtime/models/mod.ts";
import { readSafetensors } from "../runtime/io/safetensors.ts";
import { hashJson } from "../runtime/io/hash.ts";
import { ExampleDraws, Rng } from "../runtime/rng.ts";
import type { Tensor } from "../runtime/tensor.ts";
import type { DefenseModule } from "../runtime/eval/threat.ts";
import { parseSpec, type PipelineDraft, type PipelineSpecT } from "./spec.ts";
import { resolveSpecInput } from "./presets.ts";
import {
  classifierOf,
  type DefenseParts,
  defenseTarget,
  preprocess,
  purifierOptions,
} from "./compile.ts";
import { DEFENSE_NAMES, type DefenseName } from "../runtime/eval/threat.ts";
import { checkConvStorage, type RunManifest, stagePath } from "../runtime/eval/run_files.ts";
import { convStorage } from "../runtime/ops/precision.ts";

export { DEFENSE_NAMES } from "../runtime/eval/threat.ts";

export interface PipelineDefenseOptions {
  /** The pipeline run's output directory (default out/<spec name>, the pipeline's default). */
  run?: string | null;
  /** Which of the report's defenses to build (default atop). */
  defense?: string | null;
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

async function loadWeights(
  m: { loadStateDict(s: Map<string, Tensor>, o?: { strict?: boolean }): void },
  path: string,
) {
  const tensors = await readSafetensors(path);
  try {
    m.loadStateDict(tensors, { strict: true });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** The spec, classifier and purifier of a finished run (purifier null for none/rt-only). */
export async function loadPipelineRun(
  base: PipelineDraft,
  o: PipelineDefenseOptions = {},
): Promise<{ spec: PipelineSpecT; defense: DefenseName; parts: DefenseParts }> {
  const defense = (o.defense ?? "atop") as DefenseName;
  if (!DEFENSE_NAMES.includes(defense)) {
    throw new Error(`--defense: expected one of ${DEFENSE_NAMES.join(", ")}, got "${o.defense}"`);
  }
  const run = o.run ?? join("out", base.name ?? "pipeline");
  const manifestPath = join(run, "manifest.json");
  if (!(await exists(manifestPath))) {
    throw new Error(
      `--run ${run}: no manifest.json there. Run the pipeline first ` +
        `(deno task run <pipeline file> --out ${run}) or point --run at its output directory`,
    );
  }
  const m = JSON.parse(await Deno.readTextFile(manifestPath)) as RunManifest;
  checkConvStorage(run, m, convStorage());
  const spec = parseSpec(resolveSpecInput(base, m.preset, m.seed));
  const hash = await hashJson(spec);
  if (hash !== m.spec_hash) {
    throw new Error(
      `--run ${run}: the pipeline file's spec (preset ${m.preset}, seed ${m.seed}) hashes to ` +
        `${hash.slice(0, 12)}, but the run was made from ${m.spec_hash.slice(0, 12)}: the file ` +
        `changed since the run; rerun the pipeline or attack the matching file`,
    );
  }
  const classifier = classifierOf(spec);
  await loadWeights(classifier, await stagePath(run, m, "classifier", "classifier.safetensors"));
  classifier.eval();
  let purifier: Purifier | null = null;
  if (defense === "purifier" || defense === "atop") {
    if (spec.purifier.kind !== "deepfill") {
      throw new Error(`--defense ${defense}: the pipeline "${spec.name}" has no purifier`);
    }
    purifier = new Purifier(purifierOptions(spec));
    const stage = defense === "atop" ? "atop" : "pretrain";
    await loadWeights(purifier, await stagePath(run, m, stage, "purifier.safetensors"));
    purifier.eval();
  }
  if (defense === "rt-only" && spec.transform.length === 0) {
    throw new Error(`--defense rt-only: the pipeline "${spec.name}" has no random transform`);
  }
  const parts: DefenseParts = {
    spec,
    modules: { classifier, purifier },
    variant: { transform: defense !== "none", purifier: purifier !== null },
    // The streams the pipeline's own evaluation uses.
    rng: new Rng(spec.seed, 0xe7a1),
    draws: new ExampleDraws(spec.seed, 0xe7a1),
  };
  return { spec, defense, parts };
}

/** The default export of a pipeline file: `export default pipelineDefense(spec)`. */
export function pipelineDefense(base: PipelineDraft) {
  return async (
    _cliClassifier: Target | null,
    o: PipelineDefenseOptions = {},
  ): Promise<DefenseModule & { spec: PipelineSpecT; defense: DefenseName }> => {
    const { spec, defense, parts } = await loadPipelineRun(base, o);
    const clf = classifierTarget(parts.modules.classifier, { name: spec.classifier.arch });
    return {
      spec,
      defense,
      buildTarget: () => Promise.resolve(defense === "none" ? clf : defenseTarget(parts)),
      buildClassifier: () => Promise.resolve(clf),
      purify: defense === "none" ? undefined : (x: Tensor) => preprocess(parts, x),
    };
  };
}
