// Evaluation layer: sanity checks fire when they should, sharded runs merge into exactly the
// unsharded report, an interrupted run resumes to the same report, and reports are written.

import { assert, gpu, rng } from "./helpers/check.ts";
import { Tensor } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { bpda, composeTarget, type Target } from "../runtime/attacks/mod.ts";
import { type AttackName, resolveParams } from "../runtime/eval/attacks.ts";
import { type Dataset, shardRange } from "../runtime/eval/data.ts";
import { runEvaluation } from "../runtime/eval/runner.ts";
import { mergeReports } from "../runtime/eval/merge.ts";
import {
  type EvalConfig,
  type EvalReport,
  reportMarkdown,
  writeReport,
} from "../runtime/eval/report.ts";
import { threatTargets } from "../runtime/eval/threat.ts";
import { checkCleanConsistency, checkGradients, checkRandomized } from "../runtime/eval/checks.ts";
import { ExampleDraws, Rng } from "../runtime/rng.ts";
import { majorityVote, protocolText } from "../runtime/eval/verdict.ts";
import { rt2 } from "../runtime/transforms.ts";

await gpu();

const SHAPE: [number, number, number] = [3, 5, 4];
const D = 60;

function mlp(seed: number, k = 10): Target {
  const r = rng(seed);
  const w1 = Tensor.fromData(Array.from({ length: 24 * D }, () => (r() - 0.5) * 0.6), [24, D]);
  const w2 = Tensor.fromData(Array.from({ length: k * 24 }, () => r() - 0.5), [k, 24]);
  return {
    name: "mlp",
    numClasses: k,
    randomized: false,
    logits: (x) => ops.linear(ops.tanh(ops.linear(ops.flatten(x), w1)), w2),
  };
}

function dataset(n: number, seed: number, labelsFrom?: Target): Promise<Dataset> | Dataset {
  const r = rng(seed);
  const images = Float32Array.from({ length: n * D }, () => r());
  const labels = Array.from({ length: n }, () => Math.floor(r() * 10));
  if (!labelsFrom) return { images, labels, shape: SHAPE };
  // Mostly the model's own predictions, so that there is something to attack.
  return (async () => {
    const z = await labelsFrom.logits(Tensor.fromData(images, [n, ...SHAPE])).data();
    for (let i = 0; i < n; i++) {
      if (i % 5 === 4) continue;
      let b = 0;
      for (let j = 1; j < 10; j++) if (z[i * 10 + j] > z[i * 10 + b]) b = j;
      labels[i] = b;
    }
    return { images, labels, shape: SHAPE };
  })();
}

function config(attacks: string[], over: Partial<EvalConfig> = {}): EvalConfig {
  return {
    attacks,
    norm: "linf",
    eps: 0.03,
    steps: 4,
    step_size: null,
    restarts: 1,
    eot: 1,
    seed: 7,
    threat_model: "full-pipeline",
    queries: 12,
    batch_size: 3,
    target_randomized: false,
    n_total: 10,
    arch: null,
    weights: null,
    data: null,
    pipeline: null,
    limit: null,
    ...over,
  };
}

function attackList(names: AttackName[], steps = 4, queries = 12) {
  return names.map((name) => ({
    name,
    params: resolveParams(name, { eps: 0.03, steps, queries, seed: 7 }),
  }));
}

const strip = (r: EvalReport) => ({ ...r, timing: undefined, checks: undefined });

Deno.test("shards merge into exactly the unsharded report", async () => {
  const target = mlp(1);
  const data = await dataset(10, 2, target);
  const names: AttackName[] = ["pgd", "apgd-ce", "square"];
  const cfg = config(names);
  const base = {
    config: cfg,
    attacks: attackList(names),
    data,
    targets: threatTargets("full-pipeline", target),
  };
  const all = await runEvaluation({
    ...base,
    indices: Array.from({ length: 10 }, (_, i) => i),
    shard: null,
  });
  assert.ok(all);
  const shards: EvalReport[] = [];
  for (let s = 0; s < 3; s++) {
    const [a, b] = shardRange(10, s, 3);
    const r = await runEvaluation({
      ...base,
      indices: Array.from({ length: b - a }, (_, i) => a + i),
      shard: { index: s, count: 3 },
    });
    shards.push(r!);
  }
  const merged = mergeReports([shards[2], shards[0], shards[1]]);
  assert.deepEqual(strip(merged), strip(all!));
  assert.deepEqual(
    merged.checks.map((c) => [c.id, c.level]),
    all!.checks.map((c) => [c.id, c.level]),
  );
  // Something was actually attacked, and the worst case is <= every single attack.
  assert.ok(all!.robust_accuracy < all!.clean_accuracy, "no example was fooled");
  for (const v of Object.values(all!.per_attack)) assert.ok(all!.robust_accuracy <= v);
  assert.throws(() => mergeReports([shards[0], shards[1]]), /missing shard\(s\) 2\/3/);
  assert.throws(() => mergeReports([shards[0], shards[0], shards[1]]), /given twice/);
  const other = { ...shards[2], config: { ...shards[2].config, eps: 0.1 } };
  assert.throws(() => mergeReports([shards[0], shards[1], other]), /different settings \(eps\)/);
});

Deno.test("an interrupted evaluation resumes to the straight-run report", async () => {
  const target = mlp(3);
  const data = await dataset(10, 4, target);
  const names: AttackName[] = ["apgd-ce", "square"];
  const opts = {
    config: config(names),
    attacks: attackList(names),
    data,
    indices: Array.from({ length: 10 }, (_, i) => 9 - i), // any order
    shard: null,
    targets: threatTargets("full-pipeline", target),
  };
  const straight = await runEvaluation(opts);
  const dir = await Deno.makeTempDir();
  const statePath = `${dir}/state.jsonl`;
  assert.equal(await runEvaluation({ ...opts, statePath, stopAfterBatches: 2 }), null);
  // A crash in the middle of an append leaves a torn line; it must be ignored.
  await Deno.writeTextFile(statePath, '{"kind":"batch","batch":3,"exa', { append: true });
  let batches = 0;
  const resumed = await runEvaluation({
    ...opts,
    statePath,
    log: (m) => {
      if (/^batch \d+\/\d+ done/.test(m)) batches++;
    },
  });
  assert.equal(batches, 2, "should run only the 2 remaining batches");
  assert.deepEqual(strip(resumed!), strip(straight!));
  // A state file from other settings is refused.
  await assert.rejects(
    () => runEvaluation({ ...opts, config: config(names, { eps: 0.05 }), statePath }),
    /different evaluation/,
  );
  await Deno.remove(dir, { recursive: true });
});

/** RT2 (noise 0.25, 1x1 blocks missing at 0.25) in front of the MLP, with draws keyed by
 * (example, call) as the DSL's defenses; a call without rows would use the sequential Rng. */
function rt2Defense(seed: number): Target {
  const draws = new ExampleDraws(seed, 0xe7a1);
  const fallback = new Rng(seed, 1);
  const o = { sigma: 0.25, missingRate: 0.25, blockSize: 1 };
  return composeTarget(
    {
      name: "rt2",
      randomized: true,
      apply: (x, rows) => rt2(rows ? draws.next(rows) : fallback, x, o).image,
      resetDraws: (rows, scope) => draws.reset(rows, scope),
    },
    mlp(11),
  );
}

Deno.test("randomized RT2 defense: shards, batch size and resume give bit-identical reports", async () => {
  const data = await dataset(16, 12, mlp(11));
  const names: AttackName[] = ["pgd", "apgd-ce"];
  // Restarts too: a later PGD restart runs only on the rows still robust.
  const attacks = names.map((name) => ({
    name,
    params: resolveParams(name, { eps: 0.03, steps: 3, eot: 2, seed: 7, restarts: 2 }),
  }));
  const all16 = Array.from({ length: 16 }, (_, i) => i);
  const run = (o: {
    batch: number;
    indices?: number[];
    shard?: EvalReport["shard"];
    statePath?: string;
    stopAfterBatches?: number;
    target?: Target;
  }) =>
    runEvaluation({
      config: config(names, { batch_size: o.batch, eot: 2, n_total: 16, target_randomized: true }),
      attacks,
      data,
      indices: o.indices ?? all16,
      shard: o.shard ?? null,
      // A fresh defense object each run: nothing may carry over between runs.
      targets: threatTargets("full-pipeline", mlp(11), o.target ?? rt2Defense(5)),
      statePath: o.statePath,
      stopAfterBatches: o.stopAfterBatches,
    });
  const perExample = (r: EvalReport | null) => JSON.stringify(r!.examples);
  const straight = await run({ batch: 8 });
  assert.ok(straight);
  // The defense really is random (two draws differ) and something was attacked.
  assert.ok(straight.robust_accuracy < straight.clean_accuracy, "no example was fooled");
  // Batch 16 (one batch) equals batch 8 (two batches).
  assert.equal(perExample(await run({ batch: 16 })), perExample(straight));
  // Examples in another order, in batches of 5, give each example the same result.
  const shuffled = await run({ batch: 5, indices: [...all16].reverse() });
  const byIndex = new Map(shuffled!.examples.map((e) => [e.index, JSON.stringify(e)]));
  for (const e of straight.examples) assert.equal(byIndex.get(e.index), JSON.stringify(e));
  // Shards 2/2 merged equal the unsharded run.
  const shards: EvalReport[] = [];
  for (let sh = 0; sh < 2; sh++) {
    const [a, b] = shardRange(16, sh, 2);
    shards.push(
      (await run({
        batch: 8,
        indices: Array.from({ length: b - a }, (_, i) => a + i),
        shard: { index: sh, count: 2 },
      }))!,
    );
  }
  const merged = mergeReports([shards[1], shards[0]]);
  assert.deepEqual(strip(merged), strip(straight));
  // Killed after one batch and resumed with a fresh process state equals the straight run.
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/state.jsonl`;
    assert.equal(await run({ batch: 8, statePath, stopAfterBatches: 1 }), null);
    const resumed = await run({ batch: 8, statePath });
    assert.deepEqual(strip(resumed!), strip(straight));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Without per-example keys (the old sequential stream) the batch size changes the numbers,
  // which is what this test guards against.
  const seqDefense = (): Target => {
    const inner = rt2Defense(5);
    return { ...inner, logits: (x) => inner.logits(x), resetDraws: undefined };
  };
  // An attack's numbers do not depend on the other attacks of the list: each draws the
  // defense's randomness in a scope of its own.
  const alone = await runEvaluation({
    config: config(["apgd-ce"], { batch_size: 8, eot: 2, n_total: 16, target_randomized: true }),
    attacks: attacks.filter((a) => a.name === "apgd-ce"),
    data,
    indices: all16,
    shard: null,
    targets: threatTargets("full-pipeline", mlp(11), rt2Defense(5)),
  });
  assert.deepEqual(
    alone!.examples.map((e) => e.attacks["apgd-ce"]),
    straight.examples.map((e) => e.attacks["apgd-ce"]),
  );
  const seq8 = await run({ batch: 8, target: seqDefense() });
  const seq16 = await run({ batch: 16, target: seqDefense() });
  assert.notEqual(perExample(seq8), perExample(seq16));
});

/** The MLP, except that each call on an example, with probability `p` (keyed by example and
 * call), pushes the logits to class 9: a randomized defense that often errs on clean images. */
function flakyTarget(seed: number, p: number): Target {
  const inner = mlp(11);
  const draws = new ExampleDraws(seed, 3);
  const bump = Tensor.fromData([0, 0, 0, 0, 0, 0, 0, 0, 0, 50], [1, 10]);
  return {
    name: "flaky",
    numClasses: 10,
    randomized: true,
    logits: (x, rows) => {
      const n = x.shape[0];
      const u = draws.next(rows ?? Array.from({ length: n }, (_, i) => i)).uniform([n, 1]);
      const flip = ops.sub(1, ops.clamp(ops.scale(ops.sub(u, p), 1e9), 0, 1)); // 1 where u < p
      return ops.add(inner.logits(x), ops.mul(flip, bump));
    },
    resetDraws: (rows, scope) => draws.reset(rows, scope),
  };
}

/** Examples whose label is not 9 (so that a flip to 9 is an error). */
async function notNine(n: number, seed: number): Promise<Dataset> {
  const d = await dataset(3 * n, seed, mlp(11));
  const keep = Array.from(d.labels).flatMap((l, i) => (l !== 9 ? [i] : [])).slice(0, n);
  const images = new Float32Array(n * D);
  keep.forEach((i, j) => images.set(d.images.subarray(i * D, (i + 1) * D), j * D));
  return { images, labels: keep.map((i) => d.labels[i]), shape: SHAPE };
}

Deno.test("protocol: every example correct under the clean verdict is attacked by every attack", async () => {
  const data = await notNine(12, 21);
  const names: AttackName[] = ["apgd-ce", "square", "fab-t"];
  const r = await runEvaluation({
    config: config(names, { n_total: 12, batch_size: 12, eot: 1, target_randomized: true }),
    attacks: names.map((name) => ({
      name,
      params: resolveParams(name, { eps: 0.03, steps: 3, queries: 5, seed: 7 }),
    })),
    data,
    indices: Array.from({ length: 12 }, (_, i) => i),
    shard: null,
    targets: threatTargets("full-pipeline", mlp(11), flakyTarget(4, 0.5)),
  });
  const correct = r!.examples.filter((e) => e.clean_pred === e.label);
  assert.ok(correct.length >= 3 && correct.length <= 10, `${correct.length} clean-correct`);
  for (const e of correct) {
    // Each attack ran on it: losses (APGD), queries beyond the clean check (Square), and a
    // perturbation where the attack moved it.
    assert.ok(e.attacks["apgd-ce"].loss_start !== undefined, `apgd-ce skipped example ${e.index}`);
    assert.ok(e.attacks["apgd-ce"].perturbation_norm > 0, `apgd-ce left ${e.index} clean`);
    assert.ok((e.attacks.square.queries ?? 0) > 1, `square skipped example ${e.index}`);
  }
  // Examples wrong under the clean verdict are not robust and were not attacked.
  for (const e of r!.examples.filter((e) => e.clean_pred !== e.label)) {
    assert.equal(e.robust, false);
    assert.equal(e.attacks["apgd-ce"].loss_start, undefined);
    assert.equal(e.attacks["apgd-ce"].perturbation_norm, 0);
  }
});

Deno.test("protocol: AutoAttack's verdict is its cascade's own verification, never a re-draw", async () => {
  const data = await notNine(12, 23);
  for (
    const [name, extra] of [
      ["autoattack-rand", {}],
      ["autoattack-plus", {}],
      ["autoattack", { components: ["apgd-ce", "square"] }],
    ] as const
  ) {
    const r = await runEvaluation({
      config: config([name], { n_total: 12, batch_size: 12, eot: 2, target_randomized: true }),
      attacks: [{
        name,
        params: resolveParams(name, {
          eps: 0.03,
          steps: 2,
          eot: 2,
          seed: 7,
          queries: 3,
          ...extra,
          components: "components" in extra ? [...extra.components] : undefined,
        }),
      }],
      data,
      indices: Array.from({ length: 12 }, (_, i) => i),
      shard: null,
      targets: threatTargets("full-pipeline", mlp(11), flakyTarget(8, 0.4)),
    });
    let fooled = 0;
    for (const e of r!.examples.filter((e) => e.clean_pred === e.label)) {
      const a = e.attacks[name];
      const stages = Object.values(a.stages!);
      // Robust in the report exactly when the cascade's last stage kept it robust.
      assert.equal(a.robust, stages[stages.length - 1], `${name} example ${e.index}`);
      assert.equal(a.robust, a.adv_pred === e.label);
      if (!a.robust) fooled++;
    }
    assert.ok(fooled > 0, `${name}: the flaky defense should be fooled somewhere`);
    // Every example lists the same stages, attacked or not.
    const stageSets = new Set(r!.examples.map((e) => Object.keys(e.attacks[name].stages!).join()));
    assert.equal(stageSets.size, 1, [...stageSets].join(" / "));
  }
  // The restarts the versions run are the ones recorded.
  assert.equal(resolveParams("autoattack-plus", {}).restarts, 5);
  assert.equal(resolveParams("autoattack", {}).restarts, 1);
  assert.equal(resolveParams("autoattack", { components: ["apgd-ce"] }).restarts, 5);
  assert.equal(resolveParams("autoattack-rand", { restarts: 3 }).restarts, 1);
});

Deno.test("protocol: a majority vote over K draws keeps a no-op attack from lowering accuracy", async () => {
  const n = 80;
  const data = await notNine(n, 22);
  const noop = [{ name: "pgd" as AttackName, params: resolveParams("pgd", { eps: 0, steps: 0 }) }];
  const run = (votes: number) =>
    runEvaluation({
      config: config(["pgd"], { n_total: n, batch_size: 40, eps: 0, steps: 0, votes }),
      attacks: noop,
      data,
      indices: Array.from({ length: n }, (_, i) => i),
      shard: null,
      targets: threatTargets("full-pipeline", mlp(11), flakyTarget(6, 0.3)),
    });
  const one = (await run(1))!, many = (await run(15))!;
  // One draw per verdict: the adversarial (the clean image itself) is a second, independent
  // draw, so "robust" needs two lucky draws and the attack that does nothing "works".
  assert.ok(
    one.robust_accuracy < one.clean_accuracy - 0.05,
    JSON.stringify([one.robust_accuracy, one.clean_accuracy]),
  );
  // Fifteen-draw majorities agree with each other almost always.
  assert.ok(
    many.robust_accuracy >= many.clean_accuracy - 0.05,
    JSON.stringify([many.robust_accuracy, many.clean_accuracy]),
  );
  assert.ok(many.clean_accuracy > one.clean_accuracy, "the vote should beat a single 70% draw");
  assert.equal(many.config.votes, 15);
  // Votes: most frequent class; a tie goes to the larger summed logits, then the lower index.
  const z = (v: number[]) => Float32Array.from(v);
  assert.deepEqual(majorityVote([z([1, 0, 0]), z([0, 2, 0]), z([0, 3, 0])], 1, 3), [1]);
  assert.deepEqual(majorityVote([z([5, 0, 0]), z([0, 2, 0])], 1, 3), [0]);
  assert.deepEqual(majorityVote([z([1, 0]), z([0, 1])], 1, 2), [0]);
  assert.match(protocolText(15), /majority vote over 15 draws/);
  assert.match(protocolText(1), /single draw \(K = 1\)/);
});

Deno.test("sanity checks: randomized without EOT, zero gradients, loss never increased", async () => {
  const clf = mlp(5);
  const r = rng(6);
  const x = Tensor.fromData(Array.from({ length: 4 * D }, () => r()), [4, ...SHAPE]);
  // Randomized defense: fresh noise per call.
  let seed = 1;
  const noisy: Target = composeTarget({
    name: "noise",
    randomized: true,
    apply: (t) => {
      const rr = rng(seed++);
      const n = Tensor.fromData(Array.from({ length: t.size }, () => (rr() - 0.5) * 0.1), t.shape);
      return ops.add(t, n);
    },
  }, clf);
  assert.equal((await checkRandomized(noisy, x, 1)).level, "warning");
  assert.equal((await checkRandomized(noisy, x, 20)).level, "ok");
  assert.equal((await checkRandomized(clf, x, 1)).level, "ok");
  // Undeclared randomness is detected from the outputs.
  const sneaky: Target = { ...noisy, randomized: false };
  assert.equal((await checkRandomized(sneaky, x, 1)).level, "warning");

  // A quantizer without BPDA has zero gradients; with BPDA it does not.
  const quant = (t: Tensor) => ops.scale(ops.add(ops.step(t, 0.33), ops.step(t, 0.66)), 0.5);
  const masked = composeTarget({ name: "quant", apply: quant }, clf);
  const fixed = composeTarget(bpda(quant, undefined, { name: "quant-bpda" }), clf);
  assert.equal((await checkGradients(masked, x, [0, 1, 2, 3])).level, "warning");
  assert.equal((await checkGradients(fixed, x, [0, 1, 2, 3])).level, "ok");

  // Through the runner: the masked pipeline triggers gradient and loss warnings.
  const data = await dataset(6, 7, masked);
  const names: AttackName[] = ["pgd"];
  const run = async (t: Target) =>
    (await runEvaluation({
      config: config(names, { batch_size: 6, n_total: 6 }),
      attacks: attackList(names, 3),
      data,
      indices: [0, 1, 2, 3, 4, 5],
      shard: null,
      targets: threatTargets("full-pipeline", t),
    }))!;
  const bad = await run(masked);
  const level = (rep: EvalReport, id: string) => rep.checks.find((c) => c.id === id)?.level;
  assert.equal(level(bad, "gradients"), "warning");
  assert.equal(level(bad, "loss-increase:pgd"), "warning");
  const good = await run(fixed);
  assert.equal(level(good, "gradients"), "ok");
  assert.equal(level(good, "loss-increase:pgd"), "ok");

  // The attack's forward differs from the evaluated one: flagged in full-pipeline.
  const shifted = composeTarget({ name: "shift", apply: (t) => ops.add(t, 0.3) }, clf);
  const mismatch = (await runEvaluation({
    config: config(names, { batch_size: 6, n_total: 6 }),
    attacks: attackList(names, 2),
    data,
    indices: [0, 1, 2, 3, 4, 5],
    shard: null,
    targets: { attack: shifted, evaluate: clf },
  }))!;
  assert.equal(level(mismatch, "clean-consistency"), "warning");
});

Deno.test("reports: JSON + Markdown written atomically, PNG grid", async () => {
  const target = mlp(8);
  const data = await dataset(4, 9, target);
  const dir = await Deno.makeTempDir();
  const names: AttackName[] = ["fgsm", "pgd"];
  const rep = (await runEvaluation({
    config: config(names, { batch_size: 4, n_total: 4 }),
    attacks: attackList(names),
    data,
    indices: [0, 1, 2, 3],
    shard: null,
    targets: { ...threatTargets("full-pipeline", target), purify: (x) => ops.scale(x, 0.5) },
    gridPath: `${dir}/grid.png`,
    gridCount: 3,
  }))!;
  await writeReport(`${dir}/out.json`, rep);
  const back = JSON.parse(await Deno.readTextFile(`${dir}/out.json`));
  assert.equal(back.n, 4);
  for (const e of back.examples) {
    for (const k of ["index", "label", "clean_pred", "adv_pred", "perturbation_norm"]) {
      assert.ok(k in e, `example field ${k}`);
    }
    assert.ok(e.perturbation_norm <= 0.03 + 1e-6);
  }
  const md = await Deno.readTextFile(`${dir}/out.md`);
  assert.match(md, /\| pgd \| \d+\.\d\d% \[\d+\.\d\d, \d+\.\d\d\] \|/);
  assert.match(md, /worst case/);
  assert.equal(md, reportMarkdown(rep));
  const png = await Deno.readFile(`${dir}/grid.png`);
  assert.deepEqual([...png.subarray(1, 4)], [80, 78, 71]); // "PNG"
  const dv = new DataView(png.buffer, png.byteOffset);
  // 3 columns of width 4 and 3 rows of height 5 with 2-pixel gaps, upscaled 3x.
  assert.equal(dv.getUint32(16), 3 * (3 * 4 + 2 * 2));
  assert.equal(dv.getUint32(20), 3 * (3 * 5 + 2 * 2));
  const left = [...(await Array.fromAsync(Deno.readDir(dir)))].map((e) => e.name).sort();
  assert.deepEqual(left, ["grid.png", "out.json", "out.md"], "temp files left behind");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("reports: 95% Wilson intervals beside every accuracy, per-class accuracy, the protocol", async () => {
  const { wilson, pctWithInterval } = await import("../runtime/eval/stats.ts");
  const close = (a: [number, number], b: [number, number]) =>
    assert.ok(Math.abs(a[0] - b[0]) < 1e-4 && Math.abs(a[1] - b[1]) < 1e-4, `${a} vs ${b}`);
  // Reference values (Wilson 1927; as statsmodels' proportion_confint(method="wilson")).
  close(wilson(0, 10), [0, 0.27753]);
  close(wilson(5, 10), [0.23659, 0.76341]);
  close(wilson(26, 48), [0.40291, 0.67425]);
  close(wilson(48, 48), [0.92590, 1]);
  assert.equal(pctWithInterval(0.5, 10), "50.0% [23.7, 76.3]");
  assert.throws(() => wilson(3, 2), /0 <= k <= n/);
  const target = mlp(1);
  const data = await dataset(10, 2, target);
  const r = (await runEvaluation({
    config: config(["pgd"]),
    attacks: attackList(["pgd"]),
    data,
    indices: Array.from({ length: 10 }, (_, i) => i),
    shard: null,
    targets: threatTargets("full-pipeline", target),
  }))!;
  const k = r.examples.filter((e) => e.robust).length;
  assert.deepEqual(r.intervals.robust, wilson(k, 10));
  assert.deepEqual(r.intervals.per_attack.pgd, wilson(k, 10));
  const classes = Object.values(r.per_class);
  assert.equal(classes.reduce((a, c) => a + c.n, 0), 10);
  const weighted = classes.reduce((a, c) => a + c.n * c.clean_accuracy, 0) / 10;
  assert.ok(Math.abs(weighted - r.clean_accuracy) < 1e-12);
  assert.match(r.protocol, /every example correct under it is attacked by every attack/);
  const md = reportMarkdown(r);
  assert.match(md, /\| clean \| \d+\.\d\d% \[\d+\.\d\d, \d+\.\d\d\] \|/);
  assert.match(md, /Protocol: one clean verdict per example/);
  assert.match(md, /verdict draws \(majority vote, K\) \| 1 \|/);
});

Deno.test("adversarials outside eps, outside [0,1] or with NaN fail the evaluation loudly", async () => {
  const { assertValidAdversarials } = await import("../runtime/eval/adversarial.ts");
  const x = Float32Array.from([0.5, 0.5, 0.2, 0.9]);
  const ok = Float32Array.from([0.53, 0.47, 0.23, 0.87]);
  assertValidAdversarials("pgd", ok, x, 2, { norm: "linf", eps: 0.03 }, [4, 7]);
  assertValidAdversarials("stadv", ok, x, 2, null, [4, 7]);
  const far = Float32Array.from([0.5, 0.5, 0.3, 0.9]);
  assert.throws(
    () => assertValidAdversarials("pgd", far, x, 2, { norm: "linf", eps: 0.03 }, [4, 7]),
    /^Error: pgd: the adversarial of example 7 is at linf distance 0\.1\d* > eps 0\.03/,
  );
  assert.throws(
    () => assertValidAdversarials("pgd", far, x, 2, { norm: "l2", eps: 0.05 }, [4, 7]),
    /example 7 is at l2 distance/,
  );
  const box = Float32Array.from([0.5, 1.01, 0.2, 0.9]);
  assert.throws(
    () => assertValidAdversarials("stadv", box, x, 2, null, [4, 7]),
    /example 4 leaves the image box/,
  );
  const nan = Float32Array.from([0.5, 0.5, NaN, 0.9]);
  assert.throws(
    () => assertValidAdversarials("square", nan, x, 2, { norm: "linf", eps: 1 }, [4, 7]),
    /example 7 has a non-finite pixel/,
  );
});

Deno.test("sanity checks: a DLR loss with zero gradients is flagged for the attacks that use it", async () => {
  // z = [u(x), u(x)/2, 0, 0] with u > 0 and label 0 (correct, so attacked): DLR =
  // -(u - u/2) / (u - 0) = -1/2 whatever x is, while the cross-entropy has a gradient.
  const w = Tensor.fromData(Array.from({ length: D }, (_, j) => (j % 7) / 70), [1, D]);
  const target: Target = {
    name: "flat-dlr",
    numClasses: 4,
    randomized: false,
    logits: (x) => {
      const u = ops.add(ops.linear(ops.flatten(x), w), 1);
      return ops.concat([u, ops.scale(u, 0.5), ops.zeros([x.shape[0], 2])], 1);
    },
  };
  const data = await dataset(4, 31);
  const labeled = { ...data, labels: [0, 0, 0, 0] };
  const names: AttackName[] = ["apgd-dlr"];
  const r = await runEvaluation({
    config: config(names, { n_total: 4, batch_size: 4 }),
    attacks: attackList(names),
    data: labeled,
    indices: [0, 1, 2, 3],
    shard: null,
    targets: threatTargets("full-pipeline", target),
  });
  const byId = Object.fromEntries(r!.checks.map((c) => [c.id, c]));
  assert.equal(byId["gradients"].level, "ok");
  assert.equal(byId["gradients-dlr"].level, "warning");
  assert.match(byId["gradients-dlr"].message, /DLR loss \(used by apgd-dlr\)/);
  // Rows the clean verdict gets wrong are not attacked, so they are not checked: a label that
  // is the third-largest logit makes the DLR loss constant there (a false alarm before).
  const wrong = await runEvaluation({
    config: config(names, { n_total: 4, batch_size: 4 }),
    attacks: attackList(names),
    data: { ...data, labels: [2, 2, 2, 2] },
    indices: [0, 1, 2, 3],
    shard: null,
    targets: threatTargets("full-pipeline", target),
  });
  assert.ok(!wrong!.checks.some((c) => c.id === "gradients-dlr" && c.level === "warning"));
});

Deno.test("sanity checks: the randomized check names each attack that runs without EOT", async () => {
  const data = await notNine(6, 24);
  const attacks = [
    { name: "pgd" as AttackName, params: resolveParams("pgd", { eps: 0.03, steps: 1, eot: 2 }) },
    { name: "apgd-ce" as AttackName, params: resolveParams("apgd-ce", { eps: 0.03, steps: 1 }) },
    { name: "square" as AttackName, params: resolveParams("square", { eps: 0.03, queries: 2 }) },
  ];
  const r = await runEvaluation({
    config: config(attacks.map((a) => a.name), { n_total: 6, batch_size: 6 }),
    attacks,
    data,
    indices: Array.from({ length: 6 }, (_, i) => i),
    shard: null,
    targets: threatTargets("full-pipeline", mlp(11), flakyTarget(9, 0.3)),
  });
  const c = r!.checks.find((c) => c.id === "randomized")!;
  // One attack with EOT no longer hides the one without it; Square needs none.
  assert.equal(c.level, "warning");
  assert.match(c.message, /without EOT by apgd-ce:/);
  assert.doesNotMatch(c.message, /pgd,|square/);
});

Deno.test("clean-consistency: two draws of a randomized defense differ by draw noise, a mismatch does not", () => {
  // n examples, the first `rep` right under the verdict, the first `att` under the attack's pass.
  const examples = (n: number, rep: number, att: number) =>
    Array.from({ length: n }, (_, i) => ({
      index: i,
      label: 1,
      clean_pred: i < rep ? 1 : 0,
      attack_clean_pred: i < att ? 1 : 0,
    })) as unknown as Parameters<typeof checkCleanConsistency>[1];
  const full = config(["pgd"], { threat_model: "full-pipeline" });
  const level = (n: number, rep: number, att: number, randomized: boolean) =>
    checkCleanConsistency(full, examples(n, rep, att), randomized).level;
  // The standard run's AToP defense on 32 images: 14 and 24 correct on two draws (62 and 70 of
  // 128 on the same defense): within the noise of a difference of two draws.
  assert.equal(level(32, 14, 24, true), "info");
  // Far apart, or any difference on a deterministic target: a mismatch.
  assert.equal(level(32, 4, 28, true), "warning");
  assert.equal(level(128, 30, 90, true), "warning");
  assert.equal(level(32, 14, 15, false), "warning");
  assert.equal(level(32, 14, 14, true), "ok");
});
