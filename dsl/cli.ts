// The command line shared by pipeline files: `deno task run pipelines/X.ts [options]`.
// Options: --preset quick|standard|paper, --data DIR, --test-file FILE, --out DIR, --seed N,
// --adapter auto|cpu|gpu, --threat classifier-only|full-pipeline|both, --explain.

import { parseArgs } from "node:util";
import { join } from "node:path";
import { initEngine } from "../runtime/engine.ts";
import { Rng } from "../runtime/rng.ts";
import { Purifier } from "../runtime/models/mod.ts";
import { parseSpec, type PipelineDraft } from "./spec.ts";
import { type PresetName, PRESETS, resolveSpecInput } from "./presets.ts";
import { explainReplay, explainReplayText } from "./explain_graph.ts";
import {
  classifierOf,
  explainDefense,
  explainSteps,
  explainStepsText,
  explainText,
  purifierOptions,
} from "./compile.ts";
import { runPipeline } from "./run.ts";
import { pipelineMarkdown } from "./evaluate.ts";
import { writeManifest } from "./manifest.ts";
import { EMBEDDED_CIFAR10, fullDataset, locateCifar } from "../runtime/data/mod.ts";
import { adapterFlag, enumFlag, intFlag } from "../runtime/cli/flags.ts";

const THREATS = ["classifier-only", "full-pipeline", "both"] as const;

const USAGE = `usage: deno task run pipelines/<name>.ts [--preset quick|standard|paper]
  [--data DIR] [--test-file FILE] [--out DIR] [--seed N] [--adapter auto|cpu|gpu]
  [--threat classifier-only|full-pipeline|both] [--explain]
  --data defaults to the CIFAR-10 subset in data/cifar10/ for --preset quick and standard,
  and to the full dataset in the cache directory ($ATOP_CACHE, else ~/.cache/atop-gpu;
  downloaded and MD5-checked on first use) for --preset paper or CIFAR-100.`;

/** The data a run reads when --data is not given: the subset shipped in the repository for
 * the subset-sized presets (quick, standard) on CIFAR-10, else the full dataset from the cache. */
export async function defaultData(preset: PresetName, dataset: "cifar10" | "cifar100") {
  return shippedData(preset, dataset) ?? await fullDataset(dataset);
}

/** The shipped subset when it is the default, else null (the full dataset is). */
function shippedData(preset: PresetName, dataset: "cifar10" | "cifar100"): string | null {
  return preset !== "paper" && dataset === "cifar10" ? EMBEDDED_CIFAR10 : null;
}

export async function pipelineMain(
  file: string,
  base: PipelineDraft,
  args: string[],
): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      preset: { type: "string", default: "quick" },
      data: { type: "string" },
      "test-file": { type: "string" },
      out: { type: "string" },
      seed: { type: "string" },
      adapter: { type: "string", default: "auto" },
      threat: { type: "string" },
      explain: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const preset = enumFlag("--preset", v.preset, Object.keys(PRESETS) as PresetName[])!;
  const adapter = adapterFlag(v.adapter);
  const threat = enumFlag("--threat", v.threat, THREATS) ?? "both";
  const seed = intFlag("--seed", v.seed, { min: 0 });
  const raw = resolveSpecInput(base, preset, seed);
  // Validate before touching the GPU.
  const spec = parseSpec(raw);
  await initEngine(adapter);
  if (v.explain) {
    // The data is located (not read) so a missing folder shows up here too.
    const local = v.data ?? shippedData(preset, spec.dataset);
    if (local) {
      for (const split of ["train", "test"] as const) await locateCifar(local, split, spec.dataset);
    }
    console.log(
      `data: ${local ?? `the full ${spec.dataset} in the cache (fetched on the first real run)`}`,
    );
    const classifier = classifierOf(spec);
    const purifier = spec.purifier.kind === "deepfill" ? new Purifier(purifierOptions(spec)) : null;
    classifier.eval();
    purifier?.eval();
    const batch = spec.finetuning.batchSize;
    const rows = explainDefense({
      spec,
      modules: { classifier, purifier },
      variant: { transform: true, purifier: true },
      rng: new Rng(spec.seed),
    }, batch);
    console.log(explainText(spec, rows, batch));
    const parts = {
      spec,
      modules: { classifier, purifier },
      variant: { transform: true, purifier: true },
      rng: new Rng(spec.seed),
    };
    console.log(explainStepsText(explainSteps(parts, batch, spec.evaluation.eotDraws)));
    console.log(explainReplayText(await explainReplay(parts, batch, spec.evaluation.eotDraws)));
    return 0;
  }
  const data = v.data ?? await defaultData(preset, spec.dataset);
  console.error(`[data] ${data}`);
  const out = v.out ?? join("out", spec.name);
  const started = new Date().toISOString();
  const t0 = performance.now();
  const result = await runPipeline({ spec, data, testFile: v["test-file"] ?? null, out, threat });
  console.log(pipelineMarkdown(result.report));
  const manifest = await writeManifest({
    file,
    preset,
    args,
    spec,
    raw,
    out,
    data,
    testFile: v["test-file"] ?? null,
    threat,
    started,
    seconds: (performance.now() - t0) / 1000,
    result,
  });
  console.error(`report: ${join(result.stages.eval.dir, "report.md")}\nmanifest: ${manifest}`);
  return 0;
}

/** Entry point helper for pipeline files. */
export async function runAsMain(file: string, base: PipelineDraft): Promise<void> {
  try {
    Deno.exit(await pipelineMain(file, base, Deno.args));
  } catch (e) {
    console.error(`${file}: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
