// Side-by-side benchmark of this tree against another checkout (e.g. the previous main), in one
// run and interleaved (old, new, old, new ...) so that the machine's load drifts hit both alike.
// Both trees run THIS tree's tests/bench/bench.ts (copied into the other tree's tests/bench/ as
// bench_compare.ts), so the same benchmark code measures both runtimes.
//   deno run -A tests/bench/compare.ts --old ../old [--only a,b] [--rounds 2] [--json out.json]
// --old-bench REV gives the old tree the benchmark source of a revision of this tree instead, so
// that each tree runs its own trainer's step where today's bench imports helpers the old tree
// lacks (the pre-training step: 1447207's bench runs the generator twice, as that trainer did).

import { parseArgs } from "node:util";
import { writeJsonAtomic } from "../../runtime/io/atomic.ts";

interface Row {
  name: string;
  unit: string;
  old: number[];
  new: number[];
}

async function runOne(
  tree: string,
  name: string,
  quick: boolean,
  tuneCache: string,
): Promise<{ value: number; unit: string }> {
  const json = await Deno.makeTempFile({ suffix: ".json" });
  const bench = tree === "." ? "tests/bench/bench.ts" : "tests/bench/bench_compare.ts";
  const args = ["run", "-A", bench, "--only", name, "--json", json, ...(quick ? ["--quick"] : [])];
  const p = new Deno.Command(Deno.execPath(), {
    args,
    cwd: tree,
    // Each tree its own tuning cache: trees with different cache versions would otherwise drop
    // each other's choices and re-time inside every run.
    env: { ATOP_TUNE_CACHE: tuneCache },
    stdout: "piped",
    stderr: "piped",
  });
  const out = await p.output();
  if (!out.success) {
    throw new Error(
      `${tree}: ${name} failed:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
  }
  const r = JSON.parse(await Deno.readTextFile(json)).results[0];
  await Deno.remove(json);
  return { value: r.value, unit: r.unit };
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      old: { type: "string" },
      only: { type: "string" },
      rounds: { type: "string", default: "2" },
      json: { type: "string" },
      quick: { type: "boolean", default: false },
      "old-bench": { type: "string" },
    },
    strict: true,
  });
  if (!values.old) throw new Error("--old: give the other checkout's directory, e.g. --old ../old");
  const old = values.old;
  // Modules that moved since older trees: point the copy at the old location when needed.
  const moved: Record<string, string> = { "runtime/transforms.ts": "dsl/transforms.ts" };
  let src = await Deno.readTextFile("tests/bench/bench.ts");
  const rev = values["old-bench"];
  if (rev) {
    const shown = await new Deno.Command("git", {
      args: ["show", `${rev}:tests/bench/bench.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!shown.success) {
      throw new Error(
        `--old-bench: no tests/bench/bench.ts at "${rev}"; give a commit of this tree`,
      );
    }
    src = new TextDecoder().decode(shown.stdout);
  }
  for (const [now, before] of Object.entries(moved)) {
    const exists = await Deno.stat(`${old}/${now}`).then(() => true, () => false);
    if (!exists) src = src.replaceAll(`"../../${now}"`, `"../../${before}"`);
  }
  await Deno.writeTextFile(`${old}/tests/bench/bench_compare.ts`, src);
  // The bench's pinned workloads, for trees older than them (an older --old-bench ignores it).
  const workload = "tests/bench/quick_67d94fe.ts";
  if (!(await Deno.stat(`${old}/${workload}`).then(() => true, () => false))) {
    await Deno.copyFile(workload, `${old}/${workload}`);
  }
  const names = (values.only ??
    "matmul_1024_gflops,conv3x3_c64_fwd_bwd_gflops,resnet18_train_step_images_per_s," +
      "pgd10_resnet18_images_per_s,smallcnn_train_step_images_per_s," +
      "purifier_w8_pretrain_step_images_per_s").split(",");
  const rounds = Number(values.rounds);
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1];
  console.log(`cpu: ${cpu}; ${rounds} interleaved rounds; old = ${old}, new = .`);
  const caches = { old: await Deno.makeTempFile({ suffix: ".json" }), new: "" };
  caches.new = await Deno.makeTempFile({ suffix: ".json" });
  for (const c of Object.values(caches)) await Deno.remove(c);
  console.log(`tuning caches: old ${caches.old}, new ${caches.new} (fresh)`);
  const rows: Row[] = [];
  for (const name of names) {
    const row: Row = { name, unit: "", old: [], new: [] };
    for (let r = 0; r < rounds; r++) {
      for (const [tree, into] of [[old, row.old], [".", row.new]] as const) {
        const cache = tree === "." ? caches.new : caches.old;
        const { value, unit } = await runOne(tree, name, values.quick, cache);
        into.push(value);
        row.unit = unit;
        console.log(`  ${name} ${tree === "." ? "new" : "old"}: ${value} ${unit}`);
      }
    }
    rows.push(row);
  }
  const best = (xs: number[], unit: string) =>
    unit.startsWith("per ") ? Math.min(...xs) : Math.max(...xs);
  console.log("\n| benchmark | old | new | new / old |\n|---|---|---|---|");
  for (const r of rows) {
    const o = best(r.old, r.unit), n = best(r.new, r.unit);
    console.log(`| ${r.name} (${r.unit}) | ${o} | ${n} | ${(n / o).toFixed(2)}x |`);
  }
  if (values.json) {
    await writeJsonAtomic(values.json, { cpu, date: new Date().toISOString(), old, rows });
  }
}

if (import.meta.main) await main();
