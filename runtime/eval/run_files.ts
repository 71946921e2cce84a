// The files of a finished pipeline run: its manifest's stage directories and the weights they
// hold (the attack CLI guards them; the DSL loads a run's modules from them).

import { basename, join } from "node:path";
import { filesUnder } from "../io/guard.ts";

export interface RunManifest {
  preset: string;
  seed: number;
  spec_hash: string;
  stages: Record<string, { dir: string; cached: boolean }>;
  /** Absent in manifests from before ATOP_F16 existed: float32. */
  conv_storage?: "f32" | "f16";
}

/** Refuses to evaluate a run under another conv operand storage than it was made with (its
 * weights were trained, and its figures taken, with those roundings). */
export function checkConvStorage(run: string, m: RunManifest, current: "f32" | "f16"): void {
  const made = m.conv_storage ?? "f32";
  if (made === current) return;
  throw new Error(
    `--run ${run}: the run was made with ${made} conv operands and this process uses ${current}; ` +
      `set ATOP_F16=${made === "f16" ? 1 : 0} to attack it`,
  );
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

/** A stage's directory: as recorded, or under `run` if the run directory was moved. */
export async function stagePath(run: string, m: RunManifest, stage: string, file: string) {
  const s = m.stages[stage];
  if (!s) throw new Error(`--run ${run}: the manifest records no "${stage}" stage`);
  // An explicit classifier weights file is recorded as the stage's "dir".
  if (s.dir.endsWith(".safetensors")) return s.dir;
  for (const dir of [s.dir, join(run, basename(s.dir))]) {
    if (await exists(join(dir, file))) return join(dir, file);
  }
  throw new Error(
    `--run ${run}: ${file} of stage "${stage}" not found (looked in ${s.dir} and ` +
      `${join(run, basename(s.dir))}); rerun the pipeline to finish its stages`,
  );
}

/** Every file an attack on the run may read: its manifest and the stage weights, where the
 * manifest records them and under `run` (for the attack CLI's output guard). */
export async function runInputFiles(run: string): Promise<string[]> {
  const files = [join(run, "manifest.json")];
  const dirs = [run];
  try {
    const m = JSON.parse(await Deno.readTextFile(files[0])) as RunManifest;
    for (const s of Object.values(m.stages ?? {})) {
      if (s.dir.endsWith(".safetensors")) files.push(s.dir);
      else dirs.push(s.dir);
    }
  } catch {
    // No readable manifest: loading the run reports that.
  }
  for (const d of dirs) files.push(...await filesUnder(d, (n) => n.endsWith(".safetensors")));
  return files;
}
