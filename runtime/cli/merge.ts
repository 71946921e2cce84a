// deno task merge --out OUT.json SHARD_0.json SHARD_1.json ...: combines shard reports of
// `deno task attack --shard i/n` into the report of the whole evaluation (JSON + Markdown).

import { parseArgs } from "node:util";
import { mergeReports } from "../eval/merge.ts";
import { type EvalReport, markdownPath, reportMarkdown, writeReport } from "../eval/report.ts";
import { isSameFile, refuseOverwrite } from "../io/guard.ts";

const USAGE = `usage: deno task merge --out OUT.json SHARD.json... [--allow-partial]
  SHARD.json may also be a directory: every *.json report in it is merged.`;

/** The report files: each file given, and every *.json in each directory given. */
async function collect(paths: string[]): Promise<{ path: string; inDir: boolean }[]> {
  const files: { path: string; inDir: boolean }[] = [];
  for (const p of paths) {
    const st = await Deno.stat(p).catch(() => null);
    if (!st) throw new Error(`${p}: no such file or directory`);
    if (st.isDirectory) {
      for await (const e of Deno.readDir(p)) {
        if (e.isFile && e.name.endsWith(".json")) {
          files.push({ path: `${p}/${e.name}`, inDir: true });
        }
      }
    } else files.push({ path: p, inDir: false });
  }
  return files.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      out: { type: "string" },
      "allow-partial": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.out || positionals.length === 0) throw new Error(USAGE);
  const found = await collect(positionals);
  await refuseOverwrite(
    [
      { flag: "--out", path: values.out },
      { flag: "--out (its Markdown report)", path: markdownPath(values.out) },
    ],
    found.filter((f) => !f.inDir).map((f) => ({ flag: "SHARD", path: f.path })),
  );
  // A directory of shards may hold the previous merged report: it is not a shard.
  const files: string[] = [];
  for (const f of found) if (!(await isSameFile(f.path, values.out))) files.push(f.path);
  const reports: EvalReport[] = [];
  for (const f of files) {
    try {
      reports.push(JSON.parse(await Deno.readTextFile(f)));
    } catch (e) {
      throw new Error(`${f}: not a readable JSON report (${e instanceof Error ? e.message : e})`);
    }
  }
  const merged = mergeReports(reports, { allowPartial: values["allow-partial"] });
  await writeReport(values.out, merged);
  console.log(reportMarkdown(merged));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`merge: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
