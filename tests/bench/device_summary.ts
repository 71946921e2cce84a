// The GPU bars of issues 12 and 13 from one device call's files (tests/bench/device_check.sh):
// our bench JSON beside the PyTorch twin's, as a Markdown table of ratios and shares of the
// card's fp32 peak, each row against its bar.
//   deno run -A tests/bench/device_summary.ts BENCH_JSON [TORCH_JSON] [BENCH_LOG]
// BENCH_LOG (the bench's printed lines) stands in for the JSON's results when the bench was
// stopped for time before writing it.

/** Dense fp32 (non-tensor-core) peaks in GFLOP/s, from the vendors' data sheets. */
export const FP32_PEAK_GFLOPS: [RegExp, number][] = [
  [/H200/, 66_900],
  [/H100.*PCIe/, 51_200],
  [/H100/, 66_900], // SXM
  [/A100/, 19_500],
];

export function fp32Peak(adapter: string): number | null {
  for (const [re, peak] of FP32_PEAK_GFLOPS) if (re.test(adapter)) return peak;
  return null;
}

interface Row {
  name: string;
  ours: number | null;
  torch: number | null;
  measure: string;
  bar: string;
  pass: boolean | null;
}

export function summarize(
  adapter: string,
  ours: Record<string, number>,
  torch: Record<string, number>,
): Row[] {
  const peak = fp32Peak(adapter);
  const rows: Row[] = [];
  const share = (name: string, bar: number) => {
    const v = ours[name] ?? null;
    const s = v !== null && peak ? v / peak : null;
    rows.push({
      name,
      ours: v,
      torch: torch[name] ?? null,
      measure: s === null ? "-" : `${(100 * s).toFixed(1)}% of fp32 peak`,
      bar: `>= ${100 * bar}% of peak`,
      pass: s === null ? null : s >= bar,
    });
  };
  const ratio = (name: string, bar: number | null) => {
    const v = ours[name] ?? null;
    const t = torch[name] ?? null;
    const r = v !== null && t ? v / t : null;
    rows.push({
      name,
      ours: v,
      torch: t,
      measure: r === null ? "-" : `${r.toFixed(2)}x PyTorch`,
      bar: bar === null ? "-" : `>= ${bar}x`,
      pass: bar === null || r === null ? null : r >= bar,
    });
  };
  const count = (name: string, max: number) => {
    const v = ours[name] ?? null;
    rows.push({
      name,
      ours: v,
      torch: null,
      measure: v === null ? "-" : String(v),
      bar: `<= ${max}`,
      pass: v === null ? null : v <= max,
    });
  };
  share("matmul_4096_gflops", 0.25);
  share("conv3x3_c64_fwd_bwd_gflops", 0.3);
  ratio("matmul_1024_gflops", null);
  ratio("resnet18_train_step_images_per_s", null);
  ratio("pgd10_resnet18_images_per_s", null);
  ratio("resnet18_b128_train_step_images_per_s", 0.5);
  ratio("pgd10_resnet18_b128_images_per_s", 0.5);
  for (
    const n of [
      "purifier_w8_pretrain_step_images_per_s",
      "autoattack_rand_eot20_quick_defense_images_per_s",
    ]
  ) {
    ratio(n, null);
  }
  count("resnet18_train_step_submits", 1);
  count("resnet18_train_step_readbacks", 0);
  count("resnet18_train_step_dispatches", 240);
  count("pgd10_resnet18_submits", 2);
  count("pgd10_resnet18_readbacks", 1);
  count("apgd_ce100_resnet18_readbacks", 10);
  return rows;
}

export function markdown(adapter: string, rows: Row[]): string {
  const fmt = (v: number | null) => v === null ? "-" : String(Number(v.toPrecision(4)));
  const lines = [
    `Adapter: ${adapter}; fp32 peak ${fp32Peak(adapter) ?? "unknown"} GFLOP/s`,
    "",
    "| benchmark | atop-gpu | PyTorch | measure | bar | met |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const met = r.pass === null ? "-" : r.pass ? "yes" : "no";
    lines.push(
      `| ${r.name} | ${fmt(r.ours)} | ${fmt(r.torch)} | ${r.measure} | ${r.bar} | ${met} |`,
    );
  }
  return lines.join("\n");
}

/** Results from the bench's printed lines ("name: value unit  notes"). */
export function resultsFromLog(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^([a-z0-9_]+): ([0-9.]+) /gm)) out[m[1]] = Number(m[2]);
  return out;
}

async function readJson(path: string | undefined): Promise<Record<string, unknown>> {
  if (!path) return {};
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return {};
  }
}

if (import.meta.main) {
  const [benchPath, torchPath, logPath] = Deno.args;
  if (!benchPath) {
    console.error("usage: deno run -A tests/bench/device_summary.ts BENCH_JSON [TORCH_JSON]");
    Deno.exit(2);
  }
  const bench = await readJson(benchPath) as {
    adapter?: { description?: string };
    results?: { name: string; value: number }[];
  };
  const torch = await readJson(torchPath) as Record<string, number>;
  let ours: Record<string, number> = Object.fromEntries(
    (bench.results ?? []).map((r) => [r.name, r.value]),
  );
  let adapter = bench.adapter?.description ?? "unknown adapter";
  if (!bench.results && logPath) {
    const text = await Deno.readTextFile(logPath).catch(() => "");
    ours = resultsFromLog(text);
    adapter = /^adapter: (.*?) \(/m.exec(text)?.[1] ?? adapter;
  }
  console.log(markdown(adapter, summarize(adapter, ours, torch)));
}
