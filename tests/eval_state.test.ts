// The evaluation runner's state file and its per-batch checks (issue 11, items 4 and 5).

import { assert, gpu, rng } from "./helpers/check.ts";
import { Tensor } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import type { Target } from "../runtime/attacks/mod.ts";
import { resolveParams } from "../runtime/eval/attacks.ts";
import type { Dataset } from "../runtime/eval/data.ts";
import { runEvaluation } from "../runtime/eval/runner.ts";
import type { EvalConfig } from "../runtime/eval/report.ts";
import { threatTargets } from "../runtime/eval/threat.ts";

await gpu();

const SHAPE: [number, number, number] = [3, 2, 2];

function linear(seed: number): Target {
  const r = rng(seed);
  const w = Tensor.fromData(Array.from({ length: 10 * 12 }, () => r() - 0.5), [10, 12]);
  return {
    name: "linear",
    numClasses: 10,
    randomized: false,
    logits: (x) => ops.linear(ops.flatten(x), w),
  };
}

function options(target: Target, n = 4) {
  const r = rng(2);
  const data: Dataset = {
    images: Float32Array.from({ length: n * 12 }, () => r()),
    labels: Array.from({ length: n }, (_, i) => i % 10),
    shape: SHAPE,
  };
  const config: EvalConfig = {
    attacks: ["pgd"],
    norm: "linf",
    eps: 0.03,
    steps: 1,
    step_size: null,
    restarts: 1,
    eot: 1,
    seed: 0,
    threat_model: "full-pipeline",
    queries: null,
    batch_size: 2,
    target_randomized: false,
    n_total: n,
    arch: null,
    weights: null,
    data: null,
    pipeline: null,
    limit: null,
  };
  return {
    config,
    attacks: [{ name: "pgd" as const, params: resolveParams("pgd", { eps: 0.03, steps: 1 }) }],
    data,
    indices: Array.from({ length: n }, (_, i) => i),
    shard: null,
    targets: threatTargets("full-pipeline", target),
  };
}

Deno.test("runner: a state file with only the header of another run does not block a rerun", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/r.state.jsonl`;
    // What a run that failed before its first batch leaves behind (e.g. a bad --eps).
    await Deno.writeTextFile(statePath, JSON.stringify({ kind: "header", key: "other" }) + "\n");
    const report = await runEvaluation({ ...options(linear(1)), statePath });
    assert.equal(report!.n, 4);
    // Once a batch is saved, other settings are still refused.
    const o = options(linear(1));
    await assert.rejects(
      runEvaluation({ ...o, config: { ...o.config, eps: 0.05 }, statePath }),
      /belongs to a different evaluation/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runner: NaN logits fail the batch, naming the target, the batch and the example", async () => {
  const nan: Target = {
    name: "broken",
    numClasses: 10,
    randomized: false,
    logits: (x) => ops.scale(linear(1).logits(x), NaN),
  };
  await assert.rejects(
    runEvaluation(options(nan)),
    /^Error: broken, batch 0, clean images: the logits of example 0 are NaN \(class 0; 20 non-finite logits in the batch\)/,
  );
});

Deno.test("runner: a state line that is valid JSON but lacks a field is refused, naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/s.jsonl`;
    const base = { ...options(linear(5)), statePath };
    assert.equal(await runEvaluation({ ...base, stopAfterBatches: 1 }), null);
    const lines = (await Deno.readTextFile(statePath)).trim().split("\n");
    const batch = JSON.parse(lines[1]);
    const edit = async (mutate: (b: Record<string, unknown>) => void) => {
      const b = structuredClone(batch);
      mutate(b);
      await Deno.writeTextFile(statePath, `${lines[0]}\n${JSON.stringify(b)}\n`);
    };
    await edit((b) => delete b.examples);
    await assert.rejects(
      () => runEvaluation(base),
      /^Error: state file .*s\.jsonl line 2: examples: .*delete it/,
    );
    await edit((b) => delete (b.examples as { robust?: boolean }[])[0].robust);
    await assert.rejects(() => runEvaluation(base), /line 2: examples\.0\.robust: /);
    await edit((b) => (b.examples as { index: number }[])[0].index = 3);
    await assert.rejects(() => runEvaluation(base), /line 2: batch 0 holds examples \[3,/);
    await edit((b) => delete (b.examples as { attacks: Record<string, unknown> }[])[1].attacks.pgd);
    await assert.rejects(() => runEvaluation(base), /example 1 has no result for attack pgd/);
    await edit((b) => (b.batch = 9));
    await assert.rejects(() => runEvaluation(base), /line 2: no batch number in \[0, 2\)/);
    // The untouched line resumes.
    await edit(() => {});
    const r = await runEvaluation(base);
    assert.equal(r!.examples.length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
