// deno task repro MANIFEST [--tolerance T] [--out DIR]
// Reruns the pipeline a manifest records (same file, same options, a fresh output directory so
// no cached stage is reused) and compares every metric. On the same adapter the numbers must be
// identical; across adapters they may differ by the stated tolerance (default: 0.05 absolute,
// i.e. 5 points of accuracy, or two examples of the evaluation set if that is more: kernels
// round differently, attacks amplify the differences, and on 16 images one flip is 6.25 points).

import { parseArgs } from "node:util";
import { join } from "node:path";
import { numberFlag } from "./flags.ts";
import { refuseOutputDir } from "../io/guard.ts";

interface ManifestLike {
  format: string;
  pipeline_file: string;
  args: string[];
  adapter: { device?: string; description?: string; backend?: string } | null;
  metrics: Record<string, number>;
  /** Absent in manifests from before ATOP_F16 existed: float32. */
  conv_storage?: "f32" | "f16";
  weights?: Record<string, string>;
  spec?: { evaluation?: { limit?: number } };
}

export interface ReproDiff {
  metric: string;
  recorded: number | null;
  rerun: number | null;
}

/** Metrics that differ: beyond `tol` (0 = exact), or present on one side only. */
export function compareMetrics(
  a: Record<string, number>,
  b: Record<string, number>,
  tol: number,
): ReproDiff[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const out: ReproDiff[] = [];
  for (const k of keys) {
    const x = a[k] ?? null, y = b[k] ?? null;
    if (x === null || y === null || Math.abs(x - y) > tol) {
      out.push({ metric: k, recorded: x, rerun: y });
    }
  }
  return out;
}

/** The environment of the rerun: the recorded conv operand storage (ATOP_F16), whatever the
 * caller's shell has. */
export function rerunEnv(m: { conv_storage?: "f32" | "f16" }): Record<string, string> {
  return { ATOP_F16: m.conv_storage === "f16" ? "1" : "0" };
}

/** The recorded command line with --out pointing at `out`. */
export function rerunArgs(args: string[], out: string): string[] {
  const res: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out") {
      i++;
      continue;
    }
    if (args[i].startsWith("--out=")) continue;
    res.push(args[i]);
  }
  return [...res, "--out", out];
}

export async function main(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: {
      tolerance: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (v.help || positionals.length !== 1) {
    console.log("usage: deno task repro MANIFEST [--tolerance T] [--out DIR]");
    return v.help ? 0 : 2;
  }
  const path = positionals[0];
  // Checked before the rerun, which can take minutes.
  const tolerance = numberFlag("--tolerance", v.tolerance, { min: 0 });
  let m: ManifestLike;
  try {
    m = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read the manifest (${e instanceof Error ? e.message : e})`);
  }
  if (m.format !== "atop-manifest/1") {
    throw new Error(`${path}: not an atop manifest (format ${m.format})`);
  }
  // The rerun writes its own manifest.json and stages into --out.
  if (v.out) {
    await refuseOutputDir({ flag: "--out", path: v.out }, [
      { flag: "MANIFEST", path },
      { flag: "the manifest's pipeline_file", path: m.pipeline_file },
    ]);
  }
  const out = v.out ?? await Deno.makeTempDir({ prefix: "atop-repro-" });
  const args = rerunArgs(m.args, out);
  const env = rerunEnv(m);
  console.error(`repro: ATOP_F16=${env.ATOP_F16} deno run -A ${m.pipeline_file} ${args.join(" ")}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", m.pipeline_file, ...args],
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const status = await child.status;
  if (!status.success) throw new Error(`the rerun failed with exit code ${status.code}`);
  const again: ManifestLike = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
  // The backend counts too: wgpu's GL and Vulkan paths report the same device and description.
  // Manifests from before the backend was recorded were made on Vulkan (GL is refused).
  const sameAdapter = JSON.stringify(again.adapter?.device) === JSON.stringify(m.adapter?.device) &&
    JSON.stringify(again.adapter?.description) === JSON.stringify(m.adapter?.description) &&
    (again.adapter?.backend ?? "vulkan") === (m.adapter?.backend ?? "vulkan");
  const tol = tolerance ?? (sameAdapter ? 0 : crossAdapterTolerance(m.spec?.evaluation?.limit));
  const diffs = compareMetrics(m.metrics, again.metrics, tol);
  const n = Object.keys(m.metrics).length;
  console.log(
    `repro: ${
      sameAdapter ? "same adapter, exact comparison" : `different adapter, tolerance ${tol}`
    }`,
  );
  // On the same adapter the trained weights must be bit-identical too.
  const weightDiffs = sameAdapter && tolerance === undefined
    ? Object.keys({ ...m.weights, ...again.weights }).filter((k) =>
      m.weights?.[k] !== again.weights?.[k]
    )
    : [];
  for (const k of weightDiffs) {
    console.log(`repro: weights ${k} differ (sha256 ${m.weights?.[k]} vs ${again.weights?.[k]})`);
  }
  if (diffs.length === 0 && weightDiffs.length === 0) {
    console.log(
      `repro: all ${n} metrics match${
        sameAdapter ? " and every weight file is bit-identical" : ""
      }`,
    );
    return 0;
  }
  if (diffs.length === 0) return 1;
  console.log(`repro: ${diffs.length} of ${n} metrics differ:`);
  console.log("| metric | recorded | rerun |\n|---|---|---|");
  for (const d of diffs) {
    console.log(`| ${d.metric} | ${d.recorded ?? "missing"} | ${d.rerun ?? "missing"} |`);
  }
  return 1;
}

/** Default tolerance across adapters: 5 points, or two flipped examples on a small set. */
export function crossAdapterTolerance(evalExamples: number | undefined): number {
  return evalExamples && evalExamples > 0 ? Math.max(0.05, 2 / evalExamples) : 0.05;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`repro: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
