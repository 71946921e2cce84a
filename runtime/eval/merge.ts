// Combines shard reports into the report of the whole evaluation. The shards must come from
// the same settings and together cover every shard exactly once; accuracies and derived
// checks are recomputed from the examples, so the result equals an unsharded run.

import { isDerivedCheck } from "./checks.ts";
import { buildReport, type EvalReport } from "./report.ts";

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stable(o[k])}`).join(",")
    }}`;
  }
  return JSON.stringify(v);
}

export function mergeReports(reports: EvalReport[], opts: { allowPartial?: boolean } = {}) {
  if (reports.length === 0) throw new Error("merge: no reports given");
  for (const [i, r] of reports.entries()) {
    if (r.format !== "atop-eval/1") {
      throw new Error(`merge: report ${i} is not an atop-eval/1 report`);
    }
  }
  const config = reports[0].config;
  const key = stable(config);
  reports.forEach((r, i) => {
    if (stable(r.config) !== key) {
      const diff = Object.keys(config).filter((k) =>
        stable((config as unknown as Record<string, unknown>)[k]) !==
          stable((r.config as unknown as Record<string, unknown>)[k])
      );
      throw new Error(`merge: report ${i} was made with different settings (${diff.join(", ")})`);
    }
  });
  const count = reports[0].shard?.count ?? 1;
  const seen = new Set<number>();
  for (const r of reports) {
    const s = r.shard ?? { index: 0, count: 1 };
    if (s.count !== count) throw new Error(`merge: shard counts differ (${count} vs ${s.count})`);
    if (seen.has(s.index)) throw new Error(`merge: shard ${s.index}/${count} given twice`);
    seen.add(s.index);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length && !opts.allowPartial) {
    throw new Error(`merge: missing shard(s) ${missing.map((i) => `${i}/${count}`).join(", ")}`);
  }
  const examples = reports.flatMap((r) => r.examples);
  const seconds = reports.reduce((s, r) => s + (r.timing?.seconds ?? 0), 0);
  return buildReport(
    config,
    missing.length ? { index: -1, count } : null,
    examples,
    reports.flatMap((r) => r.checks.filter((c) => !isDerivedCheck(c.id))),
    { seconds, images_per_second: seconds > 0 ? examples.length / seconds : 0 },
  );
}
