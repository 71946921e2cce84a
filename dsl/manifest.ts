// The run manifest: everything needed to rerun a pipeline and check its numbers — the command,
// the validated spec and its hash, seeds, adapter, Deno version, dataset and weight hashes,
// and every metric of the report. `deno task repro MANIFEST` consumes it.

import { join } from "node:path";
import { engine } from "../runtime/engine.ts";
import { convStorage } from "../runtime/ops/precision.ts";
import { hashFile, hashJson } from "../runtime/io/hash.ts";
import { writeJsonAtomic } from "../runtime/io/atomic.ts";
import type { PipelineSpecT } from "./spec.ts";
import type { RunResult } from "./run.ts";
import type { PipelineReport } from "./evaluate.ts";

export interface Manifest {
  format: "atop-manifest/1";
  pipeline_file: string;
  args: string[];
  preset: string;
  spec_hash: string;
  spec: unknown;
  seed: number;
  threat: string;
  adapter: unknown;
  /** Storage of the conv operands: "f16" under ATOP_F16=1 (runtime/ops/precision.ts). */
  conv_storage: "f32" | "f16";
  deno: typeof Deno.version;
  started: string;
  seconds: number;
  data: { dir: string; test_file: string | null; hashes: Record<string, string> };
  weights: Record<string, string>;
  stages: Record<string, { dir: string; cached: boolean }>;
  metrics: Record<string, number>;
}

/** Flattens a pipeline report to `defense/threat/clean_accuracy`, `.../<attack>-<norm>`, ... */
export function reportMetrics(r: PipelineReport): Record<string, number> {
  const m: Record<string, number> = {};
  for (const row of r.rows) {
    const k = `${row.defense}/${row.threat}`;
    m[`${k}/clean_accuracy`] = row.clean_accuracy;
    m[`${k}/worst_case`] = row.worst_case_robust_accuracy;
    for (const a of row.attacks) m[`${k}/${a.attack}-${a.norm}`] = a.robust_accuracy;
  }
  for (const s of r.summary) {
    m[`${s.defense}/worst_case_all`] = s.worst_case_robust_accuracy;
    if (s.clean_all) m[`${s.defense}/clean_accuracy_all`] = s.clean_all.accuracy;
  }
  return m;
}

async function dataHashes(dir: string, testFile: string | null): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const files: string[] = [];
  try {
    const st = await Deno.stat(dir);
    if (st.isFile) files.push(dir);
    else {for await (const e of Deno.readDir(dir)) {
        if (e.isFile && e.name.endsWith(".bin")) files.push(join(dir, e.name));
      }}
  } catch { /* reported by the loader */ }
  if (testFile) files.push(testFile);
  for (const f of files.sort()) out[f] = await hashFile(f);
  return out;
}

export async function writeManifest(o: {
  file: string;
  preset: string;
  args: string[];
  spec: PipelineSpecT;
  raw: unknown;
  out: string;
  data: string;
  testFile: string | null;
  threat: string;
  started: string;
  seconds: number;
  result: RunResult;
}): Promise<string> {
  const weights: Record<string, string> = {};
  for (const [stage, s] of Object.entries(o.result.stages)) {
    for (const name of ["classifier.safetensors", "purifier.safetensors"]) {
      const p = join(s.dir, name);
      if (await Deno.stat(p).then(() => true, () => false)) {
        weights[`${stage}/${name}`] = await hashFile(p);
      }
    }
  }
  const spec = JSON.parse(
    JSON.stringify(
      o.spec,
      (_k, v) => (typeof v === "function" ? `<function ${v.name || "anonymous"}>` : v),
    ),
  );
  const m: Manifest = {
    format: "atop-manifest/1",
    pipeline_file: o.file,
    args: o.args,
    preset: o.preset,
    spec_hash: await hashJson(spec),
    spec,
    seed: o.spec.seed,
    threat: o.threat,
    adapter: engine().adapter,
    conv_storage: convStorage(),
    deno: Deno.version,
    started: o.started,
    seconds: o.seconds,
    data: { dir: o.data, test_file: o.testFile, hashes: await dataHashes(o.data, o.testFile) },
    weights,
    stages: o.result.stages,
    metrics: reportMetrics(o.result.report),
  };
  const path = join(o.out, "manifest.json");
  await writeJsonAtomic(path, m);
  return path;
}
