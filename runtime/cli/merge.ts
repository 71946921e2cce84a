// deno task merge --out OUT.json SHARD_0.json SHARD_1.json ...: combines shard reports of
// `deno task attack --shard i/n` into the report of the whole evaluation (JSON + Markdown).

import { parseArgs } from "node:util";
import { mergeReports } from "../eval/merge.ts";
import { type EvalReport, reportMarkdown, writeReport } from "../eval/report.ts";

const USAGE = `usage: deno task merge --out OUT.json SHARD.json... [--allow-partial]
  SHARD.json may also be a directory: every *.json report in it is merged.`;

async function collect(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const st = await Deno.stat(p).catch(() => null);
    if (!st) throw new Error(`${p}: no such file or directory`);
    if (st.isDirectory) {
      for await (const e of Deno.readDir(p)) {
        if (e.isFile && e.name.endsWith(".json")) files.push(`${p}/${e.name}`);
      }
    } else files.push(p);
  }
  return files.sort();
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
  const files = (await collect(positionals)).filter((f) => f !== values.out);
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
