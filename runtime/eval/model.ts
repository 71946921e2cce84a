// Loading what the attack CLI evaluates: a classifier from --arch/--weights, and a defense
// module from --pipeline (see DefenseModule in threat.ts).

import { classifierTarget, type Target } from "../attacks/target.ts";
import type { DefenseModule } from "./threat.ts";
import type { CpuTensor } from "../io/safetensors.ts";

function fileUrl(path: string): string {
  return new URL(path, `file://${Deno.cwd()}/`).href;
}

/** Builds `arch` (runtime/models) with `numClasses` and loads its weights (a safetensors
 * path, or tensors already read), in eval mode. */
export async function loadClassifier(
  arch: string,
  weights: string | Map<string, CpuTensor> | null,
  numClasses = 10,
): Promise<Target> {
  // Resolved at run time: the model zoo and the checkpoint reader live in other modules.
  const models = await import(new URL("../models/mod.ts", import.meta.url).href).catch((e) => {
    throw new Error(`--arch ${arch}: cannot load runtime/models (${e.message})`);
  });
  let state: Map<string, CpuTensor> | null = null;
  if (typeof weights === "string") {
    const io = await import(new URL("../io/safetensors.ts", import.meta.url).href);
    state = await io.readSafetensors(weights);
  } else state = weights;
  // A widened small CNN's widths come from its weights.
  const widths = state ? models.widthsInWeights(arch, state) : undefined;
  const model = models.createModel(arch, { numClasses, widths });
  if (state) model.loadStateDict(state, { strict: true });
  return classifierTarget(model, { name: arch, numClasses: model.numClasses });
}

/** Options a pipeline module's default export receives (DSL pipelines: dsl/defense.ts). */
export interface DefenseLoadOptions {
  run?: string | null;
  defense?: string | null;
}

/** Imports a pipeline module: its default export is a DefenseModule, or a function (possibly
 * async) that returns one given the CLI's classifier (null without --arch) and options. */
export async function loadDefense(
  path: string,
  classifier: Target | null,
  opts: DefenseLoadOptions = {},
): Promise<DefenseModule> {
  let mod: { default?: unknown };
  try {
    mod = await import(fileUrl(path));
  } catch (e) {
    throw new Error(`--pipeline ${path}: cannot import (${e instanceof Error ? e.message : e})`);
  }
  let d = mod.default;
  if (typeof d === "function") {
    d = await (d as (c: Target | null, o: DefenseLoadOptions) => unknown)(classifier, opts);
  }
  if (!d || typeof (d as DefenseModule).buildTarget !== "function") {
    throw new Error(
      `--pipeline ${path}: the default export must provide buildTarget(): Promise<Target> ` +
        `(or be a function returning such an object)`,
    );
  }
  return d as DefenseModule;
}
