// Paired significance: McNemar's exact test and Newcombe's paired interval against hand sums,
// exact BigInt and float64 references and published values; the report's Significance section.

import assert from "node:assert/strict";
import {
  binomHalfCdf,
  mcnemarExact,
  pairedDifference,
  pairedTable,
} from "../runtime/eval/significance.ts";
import { wilson } from "../runtime/eval/stats.ts";
import {
  compare,
  fromBits,
  significance,
  significanceMarkdown,
  toBits,
} from "../dsl/significance.ts";
import {
  type DefenseRow,
  evaluateDefenses,
  pipelineMarkdown,
  type PipelineReport,
} from "../dsl/evaluate.ts";
import { gpu } from "./helpers/check.ts";
import { engine } from "../runtime/engine.ts";
import { type Classifier, createModel, Purifier } from "../runtime/models/mod.ts";
import { readCifar } from "../runtime/data/mod.ts";
import { parseSpec } from "../dsl/spec.ts";

const close = (a: number, b: number, tol: number, what = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

/** x / 2^e for a positive BigInt x, rounded once (to double precision). */
function bigOverPow2(x: bigint, e: number): number {
  const shift = Math.max(0, x.toString(2).length - 64);
  return (Number(x >> BigInt(shift)) / 2 ** 64) * 2 ** (shift + 64 - e); // mantissa in [0.5, 1)
}

/** Exact two-sided McNemar p from BigInt binomial coefficients. */
function mcnemarBig(b: number, c: number): number {
  const m = b + c, k = Math.min(b, c);
  let coef = 1n, sum = 1n;
  for (let i = 1; i <= k; i++) {
    coef = (coef * BigInt(m - i + 1)) / BigInt(i);
    sum += coef;
  }
  return Math.min(1, bigOverPow2(sum, m - 1));
}

/** The same in float64, summing C(m, i) directly (fits below 2^1024 for m <= 1020). */
function mcnemarDirect(b: number, c: number): number {
  const m = b + c, k = Math.min(b, c);
  let coef = 1, sum = 1;
  for (let i = 1; i <= k; i++) {
    coef = (coef * (m - i + 1)) / i;
    sum += coef;
  }
  return Math.min(1, (2 * sum) / 2 ** m);
}

Deno.test("McNemar exact: hand-computed binomial sums, symmetry, no discordant pairs", () => {
  assert.equal(mcnemarExact(0, 0), 1);
  assert.equal(mcnemarExact(0, 1), 1); // 2 * 1/2
  close(mcnemarExact(0, 5), 2 / 32, 1e-15, "0/5");
  close(mcnemarExact(6, 0), 2 / 64, 1e-15, "6/0");
  close(mcnemarExact(1, 7), (2 * (1 + 8)) / 256, 1e-15, "1/7");
  close(mcnemarExact(2, 10), (2 * (1 + 12 + 66)) / 4096, 1e-15, "2/10");
  assert.equal(mcnemarExact(2, 3), 1); // 2 * (1 + 5 + 10) / 32 = 1
  assert.equal(mcnemarExact(4, 4), 1);
  // Cavo et al. 2012 (Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables,
  // ch. 8): the McNemar exact conditional test gives P = 0.052479.
  close(mcnemarExact(6, 16), 0.052479, 5e-7, "cavo");
  for (const [b, c] of [[3, 9], [0, 12], [17, 40]]) {
    assert.equal(mcnemarExact(b, c), mcnemarExact(c, b));
  }
  assert.throws(() => mcnemarExact(-1, 2), /counts/);
  assert.throws(() => mcnemarExact(1.5, 2), /counts/);
});

Deno.test("McNemar exact: float64 direct sums up to 1,000 pairs, exact BigInt sums up to 10,000", () => {
  for (const [b, c] of [[40, 60], [180, 220], [0, 1000], [499, 501], [300, 700], [450, 520]]) {
    const p = mcnemarExact(b, c), ref = mcnemarDirect(b, c);
    assert.ok(Math.abs(p - ref) <= 1e-12 * ref + 1e-300, `${b}/${c}: ${p} vs ${ref}`);
  }
  for (const [b, c] of [[4900, 5100], [4800, 5200], [1000, 9000], [5000, 5000], [2, 9998]]) {
    const p = mcnemarExact(b, c), ref = mcnemarBig(b, c);
    assert.ok(Math.abs(p - ref) <= 1e-11 * ref, `${b}/${c}: ${p} vs ${ref}`);
  }
  assert.ok(mcnemarExact(4800, 5200) > 0 && mcnemarExact(4800, 5200) < 1e-4);
  assert.equal(mcnemarExact(0, 10000), 0); // 2^-9999 underflows, and nothing is NaN
});

Deno.test("binomial(m, 1/2) cdf: tails, the middle and symmetry", () => {
  assert.equal(binomHalfCdf(-1, 5), 0);
  assert.equal(binomHalfCdf(5, 5), 1);
  close(binomHalfCdf(2, 4), 11 / 16, 1e-15, "2/4");
  close(binomHalfCdf(3, 4), 15 / 16, 1e-15, "3/4");
  close(binomHalfCdf(500, 1000) + binomHalfCdf(499, 1000), 1, 1e-12, "middle");
  // Above the middle by symmetry: summing up from k would overflow at m = 10,000.
  close(binomHalfCdf(5100, 10000), 1 - mcnemarBig(4899, 5101) / 2, 1e-14, "upper");
  assert.equal(binomHalfCdf(9990, 10000), 1);
});

Deno.test("Newcombe paired interval: published values, Wald agreement at large n, symmetry", () => {
  // Cavo et al. 2012, table [[59, 6], [16, 80]]: estimate -0.0621, 95% CI -0.1186 to -0.0046
  // (Newcombe square-and-add, Fagerland, Lydersen & Laake ch. 8).
  const cavo = pairedDifference({ both: 59, onlyA: 6, onlyB: 16, neither: 80 });
  close(cavo.difference, -10 / 161, 1e-15, "cavo d");
  close(cavo.interval[0], -0.1186, 5e-5, "cavo lo");
  close(cavo.interval[1], -0.0046, 5e-5, "cavo hi");
  // Swapping A and B mirrors the interval.
  const swapped = pairedDifference({ both: 59, onlyA: 16, onlyB: 6, neither: 80 });
  close(swapped.interval[0], -cavo.interval[1], 1e-15, "mirror lo");
  close(swapped.interval[1], -cavo.interval[0], 1e-15, "mirror hi");
  // At n = 10,000 it agrees with the paired Wald interval d +- z sqrt((b+c)/n^2 - (b-c)^2/n^3).
  const t = { both: 6000, onlyA: 700, onlyB: 500, neither: 2800 }, n = 10000;
  const d = 200 / n, se = Math.sqrt(1200 / n ** 2 - 200 ** 2 / n ** 3);
  const big = pairedDifference(t);
  close(big.interval[0], d - 1.959964 * se, 3e-4, "wald lo");
  close(big.interval[1], d + 1.959964 * se, 3e-4, "wald hi");
  // With one margin empty (every image right under both) phi is 0: the Wilson widths alone.
  const all = pairedDifference({ both: 20, onlyA: 0, onlyB: 0, neither: 0 });
  const lo = wilson(20, 20)[0];
  assert.deepEqual(all, { difference: 0, interval: [-(1 - lo), 1 - lo] });
  for (
    const tb of [{ both: 0, onlyA: 9, onlyB: 0, neither: 0 }, {
      both: 3,
      onlyA: 0,
      onlyB: 5,
      neither: 1,
    }]
  ) {
    const r = pairedDifference(tb);
    assert.ok(r.interval[0] <= r.difference && r.difference <= r.interval[1], JSON.stringify(r));
    assert.ok(r.interval[0] >= -1 && r.interval[1] <= 1);
  }
});

Deno.test("paired table and bit strings count the same images", () => {
  const a = [true, true, false, false, true], b = [true, false, true, false, false];
  assert.deepEqual(pairedTable(a, b), { both: 1, onlyA: 2, onlyB: 1, neither: 1 });
  assert.equal(toBits(a), "11001");
  assert.deepEqual(fromBits("11001"), a);
  assert.throws(() => pairedTable(a, b.slice(1)), /5 vs 4/);
  const c = compare(
    { threat: "full-pipeline", baseline: "none", metric: "clean" },
    "11001",
    "10100",
  );
  assert.equal(c.atop_accuracy, 0.6);
  assert.equal(c.baseline_accuracy, 0.4);
  assert.deepEqual([c.b, c.c], [2, 1]);
  assert.equal(c.p_value, 1);
  assert.equal(c.significant, false);
});

/** A report row with given verdict strings (accuracies follow from them). */
function row(
  defense: DefenseRow["defense"],
  threat: DefenseRow["threat"],
  clean: string,
  attacks: string[],
): DefenseRow {
  const share = (s: string) => fromBits(s).filter(Boolean).length / s.length;
  const worst = toBits(fromBits(clean).map((_, i) => attacks.every((a) => a[i] === "1")));
  const n = clean.length;
  return {
    defense,
    threat,
    randomized: defense !== "none",
    clean_accuracy: share(clean),
    attacks: attacks.map((v, i) => ({
      attack: i === 0 ? "pgd" : defense === "none" ? "autoattack" : "autoattack-rand",
      norm: "linf",
      eps: 8 / 255,
      steps: 10,
      restarts: 1,
      eot: 2,
      robust_accuracy: share(v),
      interval: wilson(Math.round(share(v) * n), n),
      report: "x.json",
      verdicts: v,
    })),
    worst_case_robust_accuracy: share(worst),
    intervals: { clean: wilson(0, n), worst_case: wilson(0, n) },
    verdicts: { clean, worst_case: worst },
    warnings: [],
  };
}

const rep = (s: string, k: number) => s.repeat(k);

Deno.test("Significance section: AToP vs purifier and vs no defense under both threat models", () => {
  const n = 40;
  // AToP right on 30 clean images and robust on 24; the purifier on 28 and 10; none on 36 and 0.
  const atopClean = rep("1", 30) + rep("0", 10), atopAdv = rep("1", 24) + rep("0", 16);
  const purClean = rep("1", 28) + rep("0", 12), purAdv = rep("1", 10) + rep("0", 30);
  const noneClean = rep("1", 36) + rep("0", 4), noneAdv = rep("0", 40);
  const rows = [
    row("none", "full-pipeline", noneClean, [noneAdv, noneAdv]),
    ...(["classifier-only", "full-pipeline"] as const).flatMap((t) => [
      row("purifier", t, purClean, [purAdv, purAdv]),
      row("atop", t, atopClean, [atopAdv, atopAdv]),
    ]),
  ];
  const s = significance(rows, n);
  assert.deepEqual(s.notes, []);
  assert.equal(s.comparisons.length, 2 * 2 * 4); // threat x baseline x (clean, 2 attacks, worst)
  const get = (t: string, b: string, m: string) =>
    s.comparisons.find((c) => c.threat === t && c.baseline === b && c.metric.startsWith(m))!;
  const worst = get("full-pipeline", "purifier", "worst case");
  assert.deepEqual([worst.b, worst.c], [14, 0]);
  close(worst.p_value, 2 / 2 ** 14, 1e-15, "p");
  assert.equal(worst.significant, true);
  close(worst.difference, 14 / 40, 1e-15, "d");
  const clean = get("classifier-only", "purifier", "clean");
  assert.deepEqual([clean.b, clean.c, clean.p_value, clean.significant], [2, 0, 0.5, false]);
  // No defense's one row is the baseline under both threat models; AutoAttack's name differs.
  const none = get("classifier-only", "none", "clean");
  assert.deepEqual([none.b, none.c], [0, 6]);
  assert.ok(none.difference < 0 && none.interval[1] < 0.0001);
  assert.match(get("full-pipeline", "none", "autoattack").metric, /\(none: autoattack\)/);
  const md = significanceMarkdown(s, n).join("\n");
  assert.match(md, /^## Significance/);
  assert.match(
    md,
    /\| full-pipeline \| purifier \| worst case \| 60\.0% \[[\d.]+, [\d.]+\] \| 25\.0% \[[\d.]+, [\d.]+\] \| \+35\.0 pts \[\+[\d.]+, \+[\d.]+\] \| 14 \/ 0 \| 0\.0001 \| significant at 5% \|/,
  );
  assert.match(
    md,
    /\| classifier-only \| purifier \| clean \| .* \| 2 \/ 0 \| 0\.5000 \| not significant \|/,
  );
  // Only some defenses (the tests' tiny pipelines): skipped with a note.
  const partial = significance(rows.filter((r) => r.defense !== "purifier"), n);
  assert.equal(partial.comparisons.length, 2 * 4);
  assert.equal(partial.notes.length, 2);
  assert.match(
    partial.notes[0],
    /classifier-only: the purifier without fine-tuning is not in this run/,
  );
  const one = significance(rows.filter((r) => r.threat === "full-pipeline"), n);
  assert.deepEqual(one.notes, ["classifier-only: not evaluated in this run."]);
  const noAtop = significance(rows.filter((r) => r.defense !== "atop"), n);
  assert.deepEqual(noAtop, {
    alpha: 0.05,
    comparisons: [],
    notes: ["AToP is not in this run: no comparisons."],
  });
  assert.match(significanceMarkdown(noAtop, n).join("\n"), /- AToP is not in this run/);
  // A report without verdicts (older format) still renders, with a note.
  const old = rows.map((r) => ({ ...r, verdicts: undefined })) as unknown as DefenseRow[];
  assert.match(significance(old, n).notes[0], /per-example verdicts missing/);
});

Deno.test("pipeline report: every accuracy in report.md carries its 95% interval", () => {
  const n = 40;
  const rows = [
    row("none", "full-pipeline", rep("1", 36) + rep("0", 4), [rep("0", 40), rep("0", 40)]),
    row("atop", "full-pipeline", rep("1", 30) + rep("0", 10), [
      rep("1", 24) + rep("0", 16),
      rep("1", 20) + rep("0", 20),
    ]),
  ];
  const report: PipelineReport = {
    format: "atop-pipeline/1",
    pipeline: "t",
    n,
    seed: 0,
    adapter: { backend: "vulkan" } as PipelineReport["adapter"],
    protocol: "p",
    votes: 1,
    rows,
    summary: rows.map((r) => ({
      defense: r.defense,
      threats: [r.threat],
      clean_accuracy: r.clean_accuracy,
      worst_case_robust_accuracy: r.worst_case_robust_accuracy,
      intervals: r.intervals,
    })),
    inpainting: null,
    significance: significance(rows, n),
  };
  const md = pipelineMarkdown(report);
  assert.match(md, /## Significance/);
  const pcts = [...md.matchAll(/\d+\.\d+%( \[\d+\.\d+, \d+\.\d+\])?/g)];
  // Rows: clean, 2 attacks, worst case; summary: clean, worst case; AToP vs none (full-pipeline
  // only, no purifier): 4 lines of two accuracies.
  assert.equal(pcts.length, 2 * 4 + 2 * 2 + 4 * 2);
  assert.deepEqual(pcts.filter((m) => !m[1]).map((m) => m[0]), []);
});

Deno.test("pipeline report: per-example verdicts and the Significance section, end to end", async () => {
  await gpu();
  const test = await readCifar(new URL("../data/cifar10/", import.meta.url).pathname, {
    split: "test",
  });
  const spec = parseSpec({
    name: "significance_report",
    classifier: { arch: "smallcnn" },
    transform: [{ kind: "rt2" }],
    evaluation: {
      limit: 6,
      eotDraws: 1,
      attacks: [{ attack: "pgd", norm: "linf", eps: 8 / 255, steps: 1 }],
      // Past one clean batch (64 images): the attacked 6 come from the runner's batches.
      cleanLimit: 70,
    },
  });
  const classifier = createModel(
    "smallcnn",
    { seed: 1, widths: [4, 8, 8, 8] } as never,
  ) as Classifier;
  const pretrained = new Purifier({ width: 4, dilations: [2], seed: 1 });
  const atop = new Purifier({ width: 4, dilations: [2], seed: 2 });
  const dir = await Deno.makeTempDir();
  try {
    const report = await evaluateDefenses({
      spec,
      classifier,
      pretrained,
      atop,
      test,
      threat: "both",
      dir,
      log: () => {},
      adapter: engine().adapter,
      quiet: true,
    });
    const json = JSON.parse(await Deno.readTextFile(`${dir}/report.json`)) as PipelineReport;
    for (const r of json.rows) {
      const rep = JSON.parse(await Deno.readTextFile(r.attacks[0].report));
      const clean = toBits(rep.examples.map((e: any) => e.clean_pred === e.label));
      assert.equal(r.verdicts.clean, clean, r.defense);
      assert.equal(r.attacks[0].verdicts, toBits(rep.examples.map((e: any) => e.robust)));
      assert.equal(r.verdicts.worst_case, r.attacks[0].verdicts);
      assert.equal(fromBits(r.verdicts.clean).filter(Boolean).length / 6, r.clean_accuracy);
    }
    // 2 threat models x 2 baselines x (clean, pgd, worst case); accuracies match the rows.
    assert.deepEqual(json.significance, JSON.parse(JSON.stringify(report.significance)));
    assert.equal(json.significance.comparisons.length, 12);
    assert.deepEqual(json.significance.notes, []);
    for (const c of json.significance.comparisons) {
      const row = json.rows.find((r) => r.defense === "atop" && r.threat === c.threat)!;
      const want = c.metric === "clean" ? row.clean_accuracy : row.worst_case_robust_accuracy;
      assert.equal(c.atop_accuracy, want, `${c.threat} ${c.metric}`);
      assert.equal(c.p_value, mcnemarExact(c.b, c.c));
    }
    // cleanLimit: every defense on 70 images, by the same rule and draws as the attacked 6.
    for (const sm of json.summary) {
      const c = sm.clean_all!;
      assert.equal(c.n, 70);
      assert.equal(c.verdicts.length, 70);
      const row = json.rows.find((r) => r.defense === sm.defense)!;
      assert.equal(c.verdicts.slice(0, 6), row.verdicts.clean, sm.defense);
      const k = fromBits(c.verdicts).filter(Boolean).length;
      assert.equal(c.accuracy, k / 70);
      assert.deepEqual(c.interval, wilson(k, 70));
    }
    const md = await Deno.readTextFile(`${dir}/report.md`);
    assert.match(md, /## Clean accuracy on 70 test images/);
    assert.match(md, /\| atop \| \d+\.\d% \[[\d.]+, [\d.]+\] \| \d+\.\d% \|/);
    assert.match(md, /## Significance/);
    assert.match(md, /\| classifier-only \| purifier \| clean \|/);
    assert.match(md, /\| full-pipeline \| none \| worst case \|/);
  } finally {
    for (const m of [pretrained, atop, classifier]) m.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
