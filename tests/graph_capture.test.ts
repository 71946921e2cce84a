// Graph capture and replay (runtime/graph/capture.ts): a compiled training step gives the same
// bits as eager execution, replays without running the step's JS, and a step whose launches
// depend on host values it does not declare stays eager with the reason named.

import { assert, gpu } from "./helpers/check.ts";
import { engine } from "../runtime/engine.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { backward } from "../runtime/autograd.ts";
import { Adam, SGD } from "../runtime/optim.ts";
import { createModel, type SmallCnn } from "../runtime/models/mod.ts";
import { CompiledStep } from "../runtime/graph/capture.ts";
import { Rng } from "../runtime/rng.ts";

await gpu();

function tiny(): SmallCnn {
  return createModel("smallcnn", { seed: 5, widths: [4, 8, 8, 8] }) as SmallCnn;
}

function batches(n: number, b = 8) {
  const rng = new Rng(11);
  return Array.from({ length: n }, () => {
    const x = rng.uniform([b, 3, 32, 32]);
    const y = ops.floor(rng.uniform([b], 0, 10));
    void x.buffer, y.buffer; // computed now, not inside the first step
    return { x, y };
  });
}

async function bits(ts: Iterable<Tensor>): Promise<number[][]> {
  const out: number[][] = [];
  for (const t of ts) out.push([...new Uint32Array((await t.data()).buffer)]);
  return out;
}

/** Trains `steps` steps with SGD (nesterov, the learning rate changed every step) or Adam and
 * returns the per-step losses, the final weights and the optimizer's step count. */
async function train(kind: "sgd" | "adam", compiled: boolean, steps: number) {
  const model = tiny();
  model.train();
  const params = model.parameters();
  const opt = kind === "sgd"
    ? new SGD(params, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 })
    : new Adam(params, { lr: 1e-3, weightDecay: 1e-4 });
  const body = (x: Tensor, y: Tensor) => {
    const logits = model.forward(x);
    const loss = ops.crossEntropy(logits, y);
    backward(loss);
    opt.step();
    opt.zeroGrad();
    return ops.detach(loss);
  };
  const step = new CompiledStep("test step", body);
  const data = batches(steps);
  const losses: Tensor[] = [];
  const before = { ...engine().counters };
  let replayDispatches = 0;
  for (let i = 0; i < steps; i++) {
    opt.lr = (kind === "sgd" ? 0.05 : 1e-3) * (1 - i / (2 * steps));
    const { x, y } = data[i];
    const d0 = engine().counters.dispatches;
    const loss = compiled ? step.run(x, y) : tidy(() => body(x, y));
    if (compiled && step.state(x, y) === "replay" && i === steps - 1) {
      replayDispatches = engine().counters.dispatches - d0;
    }
    losses.push(loss);
  }
  const state = step.state(data[0].x, data[0].y);
  const stats = step.stats(data[0].x, data[0].y);
  const out = {
    losses: await bits(losses),
    weights: await bits(params),
    stepCount: opt.stepCount,
    state,
    stats,
    replayDispatches,
    dispatches: engine().counters.dispatches - before.dispatches,
    mirrorCopies: engine().counters.mirrorCopies - before.mirrorCopies,
  };
  for (const t of losses) t.dispose();
  for (const { x, y } of data) {
    x.dispose();
    y.dispose();
  }
  step.dispose();
  opt.dispose();
  model.dispose();
  return out;
}

for (const kind of ["sgd", "adam"] as const) {
  Deno.test(`a compiled ${kind} training step replays with the bits of eager execution`, async () => {
    const steps = 7;
    const eager = await train(kind, false, steps);
    const compiled = await train(kind, true, steps);
    assert.equal(compiled.state, "replay", "the step was not captured");
    assert.deepEqual(compiled.losses, eager.losses, "losses differ");
    assert.deepEqual(compiled.weights, eager.weights, "weights differ");
    assert.equal(
      compiled.stepCount,
      eager.stepCount,
      "the optimizer's step count was not replayed",
    );
    const s = compiled.stats!;
    assert.ok(s.dispatches > 10 && s.refreshed > 0 && s.hooks === 1, JSON.stringify(s));
    assert.ok(s.peakBytes > 0 && s.peakBytes <= s.bytes, JSON.stringify(s));
    // A replay launches what an eager step does (plus nothing).
    assert.equal(compiled.replayDispatches, s.dispatches);
  });
}

Deno.test("conv variants reading mirror textures replay with the bits of the buffer variants", async () => {
  const { forceVariant } = await import("../runtime/tune/tuner.ts");
  const families = ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"];
  const force = (v: string | null) => families.forEach((f) => forceVariant(f, v));
  const steps = 5;
  try {
    force("tile16");
    const buffers = await train("sgd", false, steps);
    force("tex:tile16");
    const eager = await train("sgd", false, steps);
    const compiled = await train("sgd", true, steps);
    assert.equal(compiled.state, "replay", "the step was not captured");
    for (const r of [eager, compiled]) {
      assert.deepEqual(r.losses, buffers.losses, "losses differ from the buffer variants'");
      assert.deepEqual(r.weights, buffers.weights, "weights differ from the buffer variants'");
    }
    // Each texture variant launch is preceded by the copies of its operands into their mirrors,
    // copy commands that the replays repeat, not launches.
    assert.equal(buffers.mirrorCopies, 0);
    assert.ok(compiled.mirrorCopies >= 2 * steps, `${compiled.mirrorCopies} mirror copies`);
    assert.equal(compiled.dispatches, buffers.dispatches);
  } finally {
    force(null);
  }
});

Deno.test("a step that bakes a host value into a launch or an upload stays eager, naming it", () => {
  let counter = 0;
  const x = new Rng(3).uniform([4, 4]);
  // A host counter folded into a fused kernel's scalar: a launch word that moves every call.
  const shifting = new CompiledStep("shifting", (a: Tensor) => ops.add(a, counter++), {
    warn: false,
  });
  for (let i = 0; i < 4; i++) shifting.run(x).dispose();
  assert.equal(shifting.state(x), "eager");
  assert.match(shifting.reason(x)!, /launch \d+ \(fused:\w+\): parameter word \d+ changed/);
  // A scalar made from a host counter is an upload whose values move every call.
  const counting = new CompiledStep(
    "counting",
    (a: Tensor) => ops.mul(a, Tensor.scalar(counter++)),
    { warn: false },
  );
  for (let i = 0; i < 4; i++) counting.run(x).dispose();
  assert.equal(counting.state(x), "eager");
  assert.match(counting.reason(x)!, /upload \d+ uploaded other values/);
  // A constant is fine: the step replays and computes the same values.
  const constant = new CompiledStep("constant", (a: Tensor) => ops.mul(a, Tensor.scalar(3)), {
    warn: false,
  });
  for (let i = 0; i < 3; i++) constant.run(x).dispose();
  assert.equal(constant.state(x), "replay");
  shifting.dispose();
  counting.dispose();
  constant.dispose();
  x.dispose();
});

Deno.test("a compiled step drawing from a sequential Rng replays its counter: eager's bits", async () => {
  const run = async (compiled: boolean) => {
    const rng = new Rng(3);
    const x = new Rng(9).uniform([4, 8]);
    const body = (a: Tensor) => ops.add(a, ops.mul(rng.normal([4, 8]), rng.uniform([4, 8])));
    const step = new CompiledStep("drawing", body);
    const outs: number[][] = [];
    for (let i = 0; i < 6; i++) {
      const r = compiled ? step.run(x) : tidy(() => body(x));
      outs.push([...new Uint32Array((await r.data()).buffer)]);
      r.dispose();
    }
    const state = step.state(x);
    const after = [...new Uint32Array((await rng.uniform([3]).data()).buffer)];
    step.dispose();
    x.dispose();
    return { outs, state, after, rngState: rng.getState() };
  };
  const eager = await run(false);
  const compiled = await run(true);
  assert.equal(compiled.state, "replay");
  assert.deepEqual(compiled.outs, eager.outs);
  assert.deepEqual(compiled.rngState, eager.rngState, "the generator's counter did not advance");
  assert.deepEqual(compiled.after, eager.after);
  assert.ok(new Set(eager.outs.map((o) => o.join())).size === 6, "draws repeat");
});

Deno.test("a step reading a tensor it did not make and disposes stays eager", () => {
  const rng = new Rng(4);
  const x = rng.uniform([4, 4]);
  const outside = Array.from({ length: 4 }, () => rng.uniform([4, 4]));
  for (const t of outside) void t.buffer;
  let k = 0;
  const step = new CompiledStep("stale", (a: Tensor) => {
    const r = ops.exp(ops.add(a, outside[k]));
    void r.buffer;
    outside[k++].dispose();
    return r;
  }, { warn: false });
  for (let i = 0; i < 3; i++) step.run(x).dispose();
  assert.equal(step.state(x), "eager");
  assert.match(step.reason(x)!, /reads a buffer the step did not write first/);
  step.dispose();
  for (const t of outside) t.dispose();
  x.dispose();
});

Deno.test("freeing a buffer the graph names invalidates it; the next call captures again", async () => {
  const rng = new Rng(5);
  const x = rng.uniform([8, 8]);
  let w = rng.uniform([8, 8]);
  const step = new CompiledStep("uses w", (a: Tensor) => ops.mul(ops.add(a, w), 2), {
    warn: false,
  });
  for (let i = 0; i < 3; i++) step.run(x).dispose();
  assert.equal(step.state(x), "replay");
  const want = await tidy(() => ops.mul(ops.add(x, w), 2)).data();
  const got = step.run(x);
  assert.deepEqual(await got.data(), want);
  got.dispose();
  w.dispose();
  w = rng.uniform([8, 8]);
  assert.equal(step.state(x), "capturing");
  const want2 = await tidy(() => ops.mul(ops.add(x, w), 2)).data();
  for (let i = 0; i < 3; i++) {
    const r = step.run(x);
    assert.deepEqual(await r.data(), want2, `call ${i} after the invalidation`);
    r.dispose();
  }
  assert.equal(step.state(x), "replay");
  step.dispose();
  w.dispose();
  x.dispose();
});

Deno.test("purifier training compiled and eager: the same weights, logs and generator state", async () => {
  const { trainPurifier } = await import("../runtime/train/purifier.ts");
  const { PatchDiscriminator, Purifier } = await import("../runtime/models/mod.ts");
  const { readCifar } = await import("../runtime/data/mod.ts");
  const { rt2 } = await import("../runtime/transforms.ts");
  const { atopLoss } = await import("../dsl/spec.ts");
  const { graphCounters, setGraphs } = await import("../runtime/graph/capture.ts");
  const train = await readCifar(new URL("../data/cifar10/", import.meta.url).pathname, {
    split: "train",
  });
  const clf = tiny();
  const run = async (graphs: boolean) => {
    const prev = setGraphs(graphs);
    const g = new Purifier({ width: 4, dilations: [2], seed: 1 });
    const d = new PatchDiscriminator({ width: 4, layers: 3, seed: 1 });
    const before = { ...graphCounters };
    try {
      const log = await trainPurifier({
        purifier: g,
        discriminator: d,
        train,
        transform: (rng, x) => rt2(rng, x, { sigma: 0.25, missingRate: 0.25, blockSize: 4 }),
        // CE from step 3 on, and a second CE entry from step 6: the key (the active entries)
        // changes twice, the step is captured again each time.
        terms: [...atopLoss(1, 0.1, 3), { term: "ce", weight: 0.05, after: 6 }],
        epochs: 1,
        batchSize: 4,
        lr: 1e-3,
        classifier: clf,
        attack: { kind: "fgsm", norm: "linf", eps: 8 / 255, steps: 1 },
        seed: 2,
        trainLimit: 40,
        ema: 0.9,
        quiet: true,
      });
      const replayed = graphCounters.replayed - before.replayed;
      return { log, w: await bits([...g.parameters(), ...d.parameters()]), replayed };
    } finally {
      setGraphs(prev);
      g.dispose();
      d.dispose();
    }
  };
  const eager = await run(false);
  const compiled = await run(true);
  assert.equal(eager.replayed, 0);
  // 10 steps: 0-2, 3-5 and 6-9 each start eager with 2 recordings; only step 9 replays (a key
  // of term names alone would have replayed steps 6-9 with the single CE weight).
  assert.equal(compiled.replayed, 1);
  assert.deepEqual(compiled.log, eager.log);
  assert.deepEqual(compiled.w, eager.w);
  clf.dispose();
});

for (
  const which of [
    "pgd",
    "apgd-ce",
    "apgd-dlr-l2",
    "stadv",
    "square-linf",
    "square-l2",
  ] as const
) {
  Deno.test(`${which} with EOT on a randomized defense: compiled iterations give eager's bits and draws`, async () => {
    const { pgd } = await import("../runtime/attacks/pgd.ts");
    const { apgd } = await import("../runtime/attacks/apgd.ts");
    const { stadv } = await import("../runtime/attacks/stadv.ts");
    const { square } = await import("../runtime/attacks/square.ts");
    const { classifierTarget, replaySafe } = await import("../runtime/attacks/target.ts");
    const { rt2 } = await import("../runtime/transforms.ts");
    const { ExampleDraws } = await import("../runtime/rng.ts");
    const { graphCounters, setGraphs } = await import("../runtime/graph/capture.ts");
    const model = tiny();
    model.eval();
    const clf = classifierTarget(model);
    const b = 6;
    const x = new Rng(21).uniform([b, 3, 32, 32]);
    // Square stops at a row's first fooling query: its rows get their own predictions under a
    // mild transform (the last row a wrong label, retired at the first checkpoint: the batch
    // shrinks), so that most of the 40 iterations run.
    const mild = which.startsWith("square");
    const z = await tidy(() => clf.logits(x)).data();
    const labels = mild
      ? Array.from({ length: b }, (_, i) => {
        let best = 0;
        for (let k = 1; k < 10; k++) if (z[i * 10 + k] > z[i * 10 + best]) best = k;
        return i === b - 1 ? (best + 1) % 10 : best;
      })
      : [0, 1, 2, 3, 4, 5];
    const run = async (graphs: boolean) => {
      const prev = setGraphs(graphs);
      const draws = new ExampleDraws(7, 3);
      const seq = new Rng(8, 1);
      // Declared replay-safe: its randomness comes from ExampleDraws and Rng, which replay.
      const target = replaySafe({
        name: "rt2 -> smallcnn",
        numClasses: 10,
        randomized: true,
        // Keyed draws with rows, the sequential generator without (both replay).
        logits: (xi: Tensor, rows?: readonly number[]) =>
          clf.logits(
            rt2((rows ? draws.next(rows) : seq) as Rng, xi, {
              sigma: mild ? 0.01 : 0.1,
              missingRate: mild ? 0.02 : 0.25,
              blockSize: 4,
            }).image,
          ),
      });
      const before = graphCounters.replayed;
      try {
        const input = { target, x, labels, indices: [10, 11, 12, 13, 14, 15], attackAll: true };
        const r = which === "pgd"
          ? await pgd(input, { steps: 6, eot: 3, restarts: 2 })
          : which === "apgd-ce"
          ? await apgd(input, { steps: 8, eot: 2, loss: "ce" })
          : which === "apgd-dlr-l2"
          ? await apgd(input, { steps: 7, eot: 2, loss: "dlr", norm: "l2", eps: 0.5 })
          : which === "stadv"
          ? await stadv(input, { steps: 7, eot: 2 })
          : which === "square-linf"
          ? await square(input, { queries: 40, eps: 1 / 255 })
          : await square(input, { queries: 40, norm: "l2", eps: 0.1 });
        const xAdv = [...new Uint32Array((await r.xAdv.data()).buffer)];
        r.xAdv.dispose();
        // The draws' counters moved on as in eager execution: the next call draws the same.
        const next = draws.next([10, 12]).uniform([2, 4]);
        const after = [...new Uint32Array((await next.data()).buffer)];
        next.dispose();
        return { xAdv, r: { ...r, xAdv: null }, after, replayed: graphCounters.replayed - before };
      } finally {
        setGraphs(prev);
      }
    };
    const eager = await run(false);
    const compiled = await run(true);
    assert.equal(eager.replayed, 0);
    assert.ok(compiled.replayed >= 3, `replayed ${compiled.replayed} iterations`);
    assert.deepEqual(compiled.xAdv, eager.xAdv);
    assert.deepEqual(compiled.r, eager.r);
    assert.deepEqual(compiled.after, eager.after);
    x.dispose();
    model.dispose();
  });
}

Deno.test("a step may return its input or an outside tensor, throw, or run inside another", async () => {
  const rng = new Rng(6);
  const x = rng.uniform([4, 4]);
  const w = rng.uniform([4, 4]);
  // Returning the input and an outside tensor: the caller gets copies, w survives the graph.
  const echo = new CompiledStep("echo", (a: Tensor) => [a, w, ops.add(a, w)]);
  for (let i = 0; i < 4; i++) {
    const [a, b, c] = echo.run(x) as Tensor[];
    assert.deepEqual(await a.data(), await x.data());
    assert.deepEqual(await b.data(), await w.data());
    assert.deepEqual(await c.data(), await tidy(() => ops.add(x, w)).data());
    for (const t of [a, b, c]) t.dispose();
  }
  assert.equal(echo.state(x), "replay");
  echo.dispose();
  assert.ok(!w.disposed && !x.disposed);
  await w.data();
  // An error inside a recording leaves the engine ready for the next step.
  let n = 0;
  const failing = new CompiledStep("failing", (a: Tensor) => {
    if (++n === 2) throw new Error("boom");
    return ops.exp(a);
  });
  failing.run(x).dispose();
  assert.throws(() => failing.run(x), /boom/);
  assert.equal(engine().recording, false);
  for (let i = 0; i < 3; i++) failing.run(x).dispose();
  assert.equal(failing.state(x), "replay");
  // A step run inside another's recording is part of the outer graph.
  const inner = new CompiledStep("inner", (a: Tensor) => ops.mul(a, 2));
  const outer = new CompiledStep("outer", (a: Tensor) => ops.add(inner.run(a), 1));
  for (let i = 0; i < 4; i++) {
    const r = outer.run(x);
    assert.deepEqual(await r.data(), await tidy(() => ops.add(ops.mul(x, 2), 1)).data());
    r.dispose();
  }
  assert.equal(outer.state(x), "replay");
  for (const s of [failing, inner, outer]) s.dispose();
  x.dispose();
  w.dispose();
});

Deno.test("a step keeps at most 4 graphs: shapes that stop coming give their buffers back", async () => {
  const pool = engine().pool;
  const count = () => pool.stats().claimedBuffers + pool.stats().liveBuffers;
  const base = count();
  const step = new CompiledStep("shrinking", (a: Tensor) => ops.exp(ops.mul(ops.add(a, 1), 2)));
  const sizes = [12, 10, 8, 6, 4, 2];
  for (const n of sizes) {
    const x = new Rng(n).uniform([n, 5]);
    for (let i = 0; i < 4; i++) {
      const r = step.run(x);
      const want = tidy(() => ops.exp(ops.mul(ops.add(x, 1), 2)));
      assert.deepEqual(await r.data(), await want.data());
      r.dispose();
      want.dispose();
    }
    assert.equal(step.state(x), "replay", `batch ${n}`);
    x.dispose();
  }
  const held = count() - base;
  // Each graph owns its input and its output (the expression is one kernel: no temporary).
  assert.equal(held, 4 * 2, `${held} buffers held by graphs`);
  const x12 = new Rng(12).uniform([12, 5]);
  assert.equal(step.state(x12), "capturing", "the oldest shape's graph was not dropped");
  x12.dispose();
  step.dispose();
  assert.equal(count(), base);
});

Deno.test("attack iterations compile only on replay-safe targets; a counting wrapper stays eager", async () => {
  const { pgd } = await import("../runtime/attacks/pgd.ts");
  const { classifierTarget, composeTarget, isReplaySafe } = await import(
    "../runtime/attacks/target.ts"
  );
  const { graphCounters } = await import("../runtime/graph/capture.ts");
  const model = tiny();
  const clf = classifierTarget(model);
  assert.ok(isReplaySafe(clf), "a built-in model's target is replay-safe");
  const inverted = { name: "invert", apply: (x: Tensor) => ops.sub(1, x) };
  assert.ok(!isReplaySafe(composeTarget(inverted, clf)), "an undeclared stage is not");
  assert.ok(isReplaySafe(composeTarget({ ...inverted, replaySafe: true }, clf)));
  let rows = 0;
  const counting = { ...clf, logits: (x: Tensor) => (rows += x.shape[0], clf.logits(x)) };
  assert.ok(!isReplaySafe(counting), "a wrapper that replaces logits is not");
  const x = new Rng(2).uniform([4, 3, 32, 32]);
  const before = graphCounters.replayed;
  const r = await pgd({ target: counting, x, labels: [0, 1, 2, 3] }, { steps: 6 });
  r.xAdv.dispose();
  assert.equal(graphCounters.replayed, before, "iterations on an undeclared target replayed");
  // 6 gradients and the last iterate's forward, 4 rows each: every call's JS ran.
  assert.equal(rows, 7 * 4);
  x.dispose();
  model.dispose();
});

Deno.test("stale host state is detected: a generator made in the step, other rows, input writes, copies", async () => {
  const { ExampleDraws } = await import("../runtime/rng.ts");
  const x = new Rng(3).uniform([4, 8]);
  const runs = (step: CompiledStep<Tensor>, n = 9) => {
    for (let i = 0; i < n; i++) step.run(x).dispose();
    return step.reason(x) ?? "";
  };
  // A generator made inside the step draws at offset 0 every call; a replay would advance the
  // recorded one.
  const fresh = new CompiledStep(
    "fresh rng",
    (a: Tensor) => ops.add(a, new Rng(5).uniform([4, 8])),
    {
      warn: false,
    },
  );
  assert.match(runs(fresh), /host hook \d+ advances another object/);
  // Draws for other rows on each call.
  const draws = new ExampleDraws(1, 2);
  let k = 0;
  const rows = new CompiledStep(
    "other rows",
    (a: Tensor) => ops.add(a, draws.next([k++ % 7, 9, 10, 11]).uniform([4, 8])),
    { warn: false },
  );
  assert.match(runs(rows), /host hook \d+ advances other rows/);
  // The same rows every call replay (their call counts move on).
  const same = new CompiledStep(
    "same rows",
    (a: Tensor) => ops.add(a, draws.next([1, 2, 3, 4]).uniform([4, 8])),
    { warn: false },
  );
  runs(same, 4);
  assert.equal(same.state(x), "replay");
  // Writing an input in place: eager changes the caller's tensor, a replay its own copy.
  const writer = new CompiledStep("writer", (a: Tensor) => {
    ops.assign(a, ops.add(a, 1));
    return ops.exp(a);
  }, { warn: false });
  const y = ops.clone(x);
  for (let i = 0; i < 3; i++) writer.run(y).dispose();
  assert.match(writer.reason(y) ?? "", /writes its input 0 in place/);
  // engine.copy is not replayed.
  const copier = new CompiledStep("copier", (a: Tensor) => {
    const c = Tensor.empty(a.shape);
    engine().copy(a.buffer, c.buffer, a.size * 4);
    return c;
  }, { warn: false });
  assert.match(runs(copier, 3), /engine.copy/);
  // A returned view of an outside tensor comes back as a copy the graph owns, and follows it.
  const w = new Rng(4).uniform([2, 16]);
  const view = new CompiledStep("view", (a: Tensor) => [ops.reshape(w, [32]), ops.exp(a)]);
  for (let i = 0; i < 4; i++) for (const t of view.run(x) as Tensor[]) t.dispose();
  assert.equal(view.state(x), "replay");
  ops.assign(w, ops.add(w, 1));
  const [v] = view.run(x) as Tensor[];
  assert.deepEqual(await v.data(), await w.data());
  v.dispose();
  view.dispose();
  assert.ok(!w.disposed);
  for (const t of [fresh, rows, same, writer, copier]) t.dispose();
  for (const t of [x, y, w]) t.dispose();
});

Deno.test("frozen conv weights rewritten in place between replays: the graph sees the new weights", async () => {
  const { noGrad } = await import("../runtime/autograd.ts");
  const rng = new Rng(12);
  const x = rng.uniform([2, 8, 8, 8]);
  const w = rng.uniform([8, 8, 3, 3], -0.2, 0.2);
  const body = (a: Tensor) => noGrad(() => ops.conv2d(a, w, null, { padding: 1 }));
  const step = new CompiledStep("frozen conv", body);
  // The packed weights are cached from the second call on (a frozen layer), and bound by the
  // graph as a buffer outside it.
  for (let i = 0; i < 5; i++) step.run(x).dispose();
  assert.equal(step.state(x), "replay");
  ops.assign(w, ops.scale(w, -2));
  for (let i = 0; i < 4; i++) {
    const got = step.run(x);
    const want = tidy(() => body(x));
    assert.deepEqual(await got.data(), await want.data(), `call ${i} after the rewrite`);
    got.dispose();
    want.dispose();
  }
  step.dispose();
  for (const t of [x, w]) t.dispose();
});

Deno.test("trainClassifier compiled and eager: the same weights and history", async () => {
  const { trainClassifier } = await import("../runtime/train/classifier.ts");
  const { readCifar } = await import("../runtime/data/mod.ts");
  const { graphCounters, setGraphs } = await import("../runtime/graph/capture.ts");
  const train = await readCifar(new URL("../data/cifar10/", import.meta.url).pathname, {
    split: "train",
  });
  const run = async (graphs: boolean) => {
    const prev = setGraphs(graphs);
    const model = tiny();
    const before = graphCounters.replayed;
    try {
      const history = await trainClassifier({
        model,
        train,
        epochs: 2,
        batchSize: 16,
        lr: 0.05,
        seed: 4,
        trainLimit: 128,
        quiet: true,
      });
      return {
        history: history.map(({ seconds: _, ...h }) => h),
        w: await bits(model.parameters()),
        replayed: graphCounters.replayed - before,
      };
    } finally {
      setGraphs(prev);
      model.dispose();
    }
  };
  const eager = await run(false);
  const compiled = await run(true);
  // 8 steps an epoch, one step object per call: 16 steps, 3 of them eager or recorded.
  assert.equal(compiled.replayed, 13);
  assert.deepEqual(compiled.history, eager.history);
  assert.deepEqual(compiled.w, eager.w);
});
