import { assert, gpu } from "./helpers/check.ts";
import { parseSpec, SpecError } from "../dsl/spec.ts";
import {
  classifierOf,
  defenseBytesPerImage,
  defenseTarget,
  explainDefense,
  explainText,
} from "../dsl/compile.ts";
import { blockMask, rt2 } from "../runtime/transforms.ts";
import { andRobust, attackEot } from "../dsl/evaluate.ts";
import { PRESETS, resolveSpecInput } from "../dsl/presets.ts";
import { stageKey, stageTerms } from "../dsl/run.ts";
import { setConvStorage } from "../runtime/ops/precision.ts";
import { hashJson } from "../runtime/io/hash.ts";
import { neverActive } from "../runtime/train/purifier.ts";
import { type Classifier, createModel, type SmallCnn } from "../runtime/models/mod.ts";
import { ExampleDraws, Rng } from "../runtime/rng.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";

await gpu();

function errorOf(spec: unknown): string {
  try {
    parseSpec(spec);
  } catch (e) {
    assert.ok(e instanceof SpecError, `expected SpecError, got ${e}`);
    return e.message;
  }
  assert.fail("spec was accepted");
}

Deno.test("spec errors name the field path, the expectation and the value", () => {
  const base = { name: "t", classifier: { arch: "smallcnn" } };
  assert.match(
    errorOf({ ...base, transform: [{ kind: "rt1" }, { kind: "rt2", missingRate: 1.5 }] }),
    /transform\[1\]\.missingRate: expected a number in \[0,1\), got 1\.5/,
  );
  assert.match(
    errorOf({ ...base, transform: [{ kind: "blur" }] }),
    /transform\[0\]\.kind: expected kind to be one of "rt1", "rt2", "rt3", "noise", "custom", got "blur"/,
  );
  assert.match(
    errorOf({ ...base, classifier: { arch: "vgg" } }),
    /classifier\.arch: expected one of "smallcnn", "resnet18", "wrn28_10", got "vgg"/,
  );
  assert.match(
    errorOf({ ...base, purifier: { kind: "deepfill", width: 2.5 } }),
    /purifier\.width: expected a positive integer, got 2\.5/,
  );
  assert.match(
    errorOf({ ...base, transform: [{ kind: "rt1", blockSize: 5 }] }),
    /transform\[0\]\.blockSize: expected a divisor of the image size 32, got 5/,
  );
  assert.match(
    errorOf({ ...base, transform: [{ kind: "rt3" }] }),
    /transform\[0\]\.kind: "rt3" .* needs a purifier/,
  );
  assert.match(
    errorOf({ ...base, transform: [{ kind: "rt1", missingrate: 0.3 }] }),
    /transform\[0\]: Unrecognized key: "missingrate"/,
  );
  assert.match(errorOf({ name: "t" }), /classifier: .*got nothing/);
  // Several problems are reported together.
  const many = errorOf({ ...base, seed: -1, transform: [{ kind: "rt2", sigma: -0.1 }] });
  assert.match(many, /seed/);
  assert.match(many, /transform\[0\]\.sigma: expected a number >= 0, got -0\.1/);
});

Deno.test("spec defaults follow AToP (missing rate 0.25, sigma 0.25, FGSM 8/255)", () => {
  const s = parseSpec({
    name: "d",
    classifier: { arch: "resnet18" },
    transform: [{ kind: "rt2" }],
  });
  const t = s.transform[0];
  assert.equal(t.kind, "rt2");
  if (t.kind === "rt2") {
    assert.equal(t.missingRate, 0.25);
    assert.equal(t.sigma, 0.25);
  }
  assert.equal(s.trainAttack.kind, "fgsm");
  assert.equal(s.trainAttack.eps, 8 / 255);
  assert.deepEqual(s.loss.map((l) => l.term), ["gan", "l1-coarse", "l1-fine", "ce"]);
});

Deno.test("block masks are drawn per example and per call, at the missing rate", async () => {
  await tidyAsync(async () => {
    const rng = new Rng(5);
    const a = await blockMask(rng, 16, 32, 32, 4, 0.25).data();
    const b = await blockMask(rng, 16, 32, 32, 4, 0.25).data();
    const per = 32 * 32;
    const ex = (m: Float32Array, i: number) => m.slice(i * per, (i + 1) * per).join("");
    assert.notEqual(ex(a, 0), ex(a, 1), "two examples share a mask");
    assert.notEqual(ex(a, 0), ex(b, 0), "two calls share a mask");
    // Whole 4x4 blocks: every pixel equals its block's top-left pixel.
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) assert.equal(a[y * 32 + x], a[(y & ~3) * 32 + (x & ~3)]);
    }
    const rate = a.reduce((s, v) => s + v, 0) / a.length;
    assert.ok(Math.abs(rate - 0.25) < 0.05, `missing rate ${rate}`);
    // Same seed, same masks.
    const c = await blockMask(new Rng(5), 16, 32, 32, 4, 0.25).data();
    assert.deepEqual(c, a);
  });
});

Deno.test("RT2 adds noise of the given sigma then masks; holes are zero", async () => {
  await tidyAsync(async () => {
    const x = Tensor.fromData(new Float32Array(4 * 3 * 32 * 32).fill(0.5), [4, 3, 32, 32]);
    const { image, mask } = rt2(new Rng(9), x, { sigma: 0.1, missingRate: 0.25, blockSize: 4 });
    const im = await image.data(), m = await mask.data();
    let s = 0, s2 = 0, n = 0;
    for (let i = 0; i < im.length; i++) {
      const px = i % 1024, ex = Math.floor(i / 3072);
      if (m[ex * 1024 + px] === 1) assert.equal(im[i], 0);
      else {
        s += im[i] - 0.5;
        s2 += (im[i] - 0.5) ** 2;
        n++;
      }
    }
    const std = Math.sqrt(s2 / n - (s / n) ** 2);
    assert.ok(Math.abs(std - 0.1) < 0.01, `noise std ${std}`);
  });
});

Deno.test("DSL defenses draw RT2 per (example, call): the same example gets the same draw in any batch", async () => {
  const spec = parseSpec({
    name: "keyed",
    classifier: { arch: "smallcnn" },
    transform: [{ kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 4 }],
    purifier: { kind: "none" },
  });
  const classifier = createModel("smallcnn", { seed: 3 }) as Classifier;
  try {
    await tidyAsync(async () => {
      const target = defenseTarget({
        spec,
        modules: { classifier, purifier: null },
        variant: { transform: true, purifier: false },
        rng: new Rng(1),
        draws: new ExampleDraws(spec.seed, 0xe7a1),
      });
      assert.ok(target.randomized);
      const per = 3 * 32 * 32;
      const images = Float32Array.from({ length: 4 * per }, (_, i) => ((i * 7919) % 255) / 255);
      const batch = (ix: number[]) => {
        const v = new Float32Array(ix.length * per);
        ix.forEach((e, j) => v.set(images.subarray(e * per, (e + 1) * per), j * per));
        return Tensor.fromData(v, [ix.length, 3, 32, 32]);
      };
      // Examples 10..13 in one batch of 4, twice (two calls: two different draws).
      const rows4 = [10, 11, 12, 13];
      const a1 = await target.logits(batch([0, 1, 2, 3]), rows4).data();
      const a2 = await target.logits(batch([0, 1, 2, 3]), rows4).data();
      assert.notDeepEqual(a1, a2, "a second call must draw fresh randomness");
      // After a reset, the same examples in batches of 1 and 2, in another order.
      target.resetDraws!(rows4);
      const b13 = await target.logits(batch([3]), [13]).data();
      const b10_12 = await target.logits(batch([0, 2]), [10, 12]).data();
      const b11 = await target.logits(batch([1]), [11]).data();
      const k = 10;
      assert.deepEqual(b13, a1.slice(3 * k, 4 * k));
      assert.deepEqual(b10_12.slice(0, k), a1.slice(0, k));
      assert.deepEqual(b10_12.slice(k), a1.slice(2 * k, 3 * k));
      assert.deepEqual(b11, a1.slice(k, 2 * k));
      // Each example's second call is its second draw, whatever batch it is in.
      const c = await target.logits(batch([1, 0]), [11, 10]).data();
      assert.deepEqual(c.slice(0, k), a2.slice(k, 2 * k));
      assert.deepEqual(c.slice(k), a2.slice(0, k));
    });
  } finally {
    classifier.dispose();
  }
});

Deno.test("explain traces stages, shapes and FLOPs without running kernels", () => {
  const spec = parseSpec({
    name: "explain",
    classifier: { arch: "smallcnn" },
    transform: [{ kind: "rt1" }],
  });
  const classifier = createModel("smallcnn", { seed: 1 }) as Classifier;
  try {
    const rows = explainDefense({
      spec,
      modules: { classifier, purifier: null },
      variant: { transform: true, purifier: true },
      rng: new Rng(1),
    }, 8);
    assert.deepEqual(rows.map((r) => r.stage), ["transform[0]:rt1", "classifier:smallcnn"]);
    assert.deepEqual(rows[0].shape, [8, 3, 32, 32]);
    assert.deepEqual(rows[1].shape, [8, 10]);
    // smallcnn convs: 3->16 (32x32), 16->32, 32->64, 64->128 (stride 2 each), 3x3.
    const conv = 2 * 8 * 9 * (3 * 16 * 1024 + 16 * 32 * 256 + 32 * 64 * 64 + 64 * 128 * 16);
    const linear = 2 * 8 * 128 * 10;
    assert.equal(rows[1].flops, conv + linear);
    assert.equal(rows[1].kernels["conv2d_fwd"], 4);
    const text = explainText(spec, rows, 8);
    assert.match(text, /\| classifier:smallcnn \| .*conv2d_fwd x4.* \| \[8,10\] \|/);
  } finally {
    classifier.dispose();
  }
});

Deno.test("--pipeline defenses: bad --defense and a missing run directory fail clearly", async () => {
  const { loadPipelineRun } = await import("../dsl/defense.ts");
  const { spec } = await import("../pipelines/ci_tiny.ts");
  await assert.rejects(
    loadPipelineRun(spec, { defense: "jpeg" }),
    /--defense: expected one of none, rt-only, purifier, atop, got "jpeg"/,
  );
  await assert.rejects(
    loadPipelineRun(spec, { run: "/nonexistent/run" }),
    /--run \/nonexistent\/run: no manifest.json there/,
  );
});

Deno.test("report: the per-defense worst case ANDs examples across attacks and threat models", () => {
  let acc = andRobust(undefined, [true, true, false, true]);
  assert.deepEqual(acc, [true, true, false, true]);
  acc = andRobust(acc, [true, false, true, true]);
  assert.deepEqual(acc, [true, false, false, true]);
  assert.throws(() => andRobust(acc, [true]), /4 vs 1 examples/);
});

Deno.test("evaluation EOT: every attack on a randomized defense gets the spec's eotDraws", () => {
  const spec = parseSpec({ name: "eot", ...PRESETS.paper });
  // The paper preset's AutoAttack has no eot of its own (the default 1): under a randomized
  // defense it runs as autoattack-rand with evaluation.eotDraws = 20 draws, not 1.
  const aa = spec.evaluation.attacks.find((a) => a.attack === "autoattack")!;
  assert.equal(aa.eot, 1);
  assert.equal(attackEot(spec, aa, true), 20);
  assert.equal(attackEot(spec, { eot: 40 }, true), 40);
  assert.equal(attackEot(spec, aa, false), 1);
});

Deno.test("training transforms the chain it is evaluated behind: custom stages and noise alone", async () => {
  const { trainingTransform } = await import("../dsl/run.ts");
  const spec = parseSpec({
    name: "t",
    classifier: { arch: "smallcnn" },
    purifier: { kind: "none" },
    transform: [
      { kind: "custom", name: "invert", apply: (x: Tensor) => ops.sub(1, x) },
      { kind: "noise", sigma: 0.1 },
    ],
  });
  const x = new Rng(3).uniform([2, 3, 8, 8]);
  const got = trainingTransform(spec)(new Rng(5, 1), x);
  // The custom stage runs (the old training path dropped it), then noise without masking.
  const noise = new Rng(5, 1).normal([2, 3, 8, 8], 0, 0.1);
  const want = ops.clamp(ops.add(ops.sub(1, x), noise), 0, 1);
  assert.deepEqual(await got.image.data(), await want.data());
  assert.ok((await got.mask.data()).every((v) => v === 0), "noise leaves no holes");
  for (const t of [x, got.image, got.mask, noise, want]) t.dispose();
});

/** A classifier-only spec for the noise-share tests, with `extra` fields. */
function noiseSpec(extra: Record<string, unknown> = {}) {
  return parseSpec({
    name: "t",
    classifier: { arch: "smallcnn" },
    purifier: { kind: "none" },
    ...extra,
  });
}

const RT2_SMALL = { kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 2 } as const;

/** Per example of x [n,3,8,8]: does the transformed image equal x with its holes zeroed (no
 * noise reached it)? */
async function noiseFreeExamples(x: Tensor, t: { image: Tensor; mask: Tensor }) {
  const [xs, img, mask] = [await x.data(), await t.image.data(), await t.mask.data()];
  const d = 3 * 64;
  return Array.from({ length: x.shape[0] }, (_, i) => {
    for (let j = 0; j < d; j++) {
      if (img[i * d + j] !== Math.fround(xs[i * d + j] * (1 - mask[i * 64 + (j % 64)]))) {
        return false;
      }
    }
    return true;
  });
}

Deno.test("noiseScaleShare: a share of training examples gets RT2's noise scaled by a uniform factor", async () => {
  const { trainingTransform } = await import("../dsl/run.ts");
  const { rt1 } = await import("../runtime/transforms.ts");
  const spec = noiseSpec({ transform: [RT2_SMALL] });
  const n = 32, share = 0.5;
  const x = new Rng(3).uniform([n, 3, 8, 8]);
  const got = trainingTransform(spec, { noiseScaleShare: share })(new Rng(5, 1), x);
  // The same draw built by hand: the noise, then one uniform per example (factor u / share
  // below the share, else 1), then RT1's mask.
  const r = new Rng(5, 1);
  const noise = r.normal([n, 3, 8, 8], 0, 0.25);
  const u = r.uniform([n, 1, 1, 1]);
  const us = await u.data();
  const factor = ops.minimum(ops.scale(u, 1 / share), 1);
  const want = rt1(r, ops.clamp(ops.add(x, ops.mul(noise, factor)), 0, 1), {
    missingRate: 0.25,
    blockSize: 2,
  });
  assert.deepEqual(await got.image.data(), await want.image.data());
  assert.deepEqual(await got.mask.data(), await want.mask.data());
  const scaled = [...us].filter((v) => v < share).length;
  assert.ok(scaled > 8 && scaled < 24, `about half the examples scaled, got ${scaled} of ${n}`);
  assert.throws(
    () => noiseSpec({ pretraining: { noiseFreeShare: 0.2, noiseScaleShare: 0.5 } }),
    /pretraining.noiseScaleShare: give noiseFreeShare or noiseScaleShare, not both/,
  );
  assert.throws(
    () => noiseSpec({ classifierTraining: { noiseScaleShare: 0.5 } }),
    /classifierTraining.noiseScaleShare: the noise shares are for the purifier stages/,
  );
  for (const t of [x, got.image, got.mask, noise, u, factor, want.image, want.mask]) t.dispose();
});

Deno.test("noiseFreeShare: some training examples skip RT2's noise, drawn per example", async () => {
  const { trainingTransform } = await import("../dsl/run.ts");
  const { noisyImage, rt1 } = await import("../runtime/transforms.ts");
  const spec = noiseSpec({ transform: [RT2_SMALL] });
  const n = 16;
  const x = new Rng(3).uniform([n, 3, 8, 8]);
  // Without a share the draw is RT2's as it was defined before the share (noise, then RT1's
  // mask), bit for bit: earlier runs keep their numbers.
  const plain = trainingTransform(spec, {})(new Rng(5, 1), x);
  const r0 = new Rng(5, 1);
  const direct = rt1(r0, noisyImage(r0, x, 0.25).image, { missingRate: 0.25, blockSize: 2 });
  assert.deepEqual(await plain.image.data(), await direct.image.data());
  const cleanRows = async (share: number) => {
    const t = trainingTransform(spec, { noiseFreeShare: share })(new Rng(5, 1), x);
    const clean = await noiseFreeExamples(x, t);
    t.image.dispose();
    t.mask.dispose();
    return clean;
  };
  const half = await cleanRows(0.5);
  const k = half.filter(Boolean).length;
  assert.ok(k > 2 && k < n - 2, `about half the examples are noise-free, got ${k} of ${n}`);
  assert.ok((await cleanRows(1)).every(Boolean), "share 1: every example noise-free");
  assert.ok((await cleanRows(0)).every((c) => !c), "share 0: every example noisy");
  // One draw per example for the whole chain: with two noisy steps, still about half the
  // examples are clean (a draw per step would leave a quarter).
  const chain = noiseSpec({ transform: [{ kind: "noise", sigma: 0.1 }, RT2_SMALL] });
  const m = 64, xm = new Rng(4).uniform([m, 3, 8, 8]);
  const t2 = trainingTransform(chain, { noiseFreeShare: 0.5 })(new Rng(6, 1), xm);
  const clean2 = (await noiseFreeExamples(xm, t2)).filter(Boolean).length;
  assert.ok(clean2 > 24 && clean2 < 40, `two noisy steps: about half clean, got ${clean2} of ${m}`);
  for (const t of [xm, t2.image, t2.mask]) t.dispose();
  assert.throws(
    () => noiseSpec({ classifierTraining: { noiseFreeShare: 0.5 } }),
    /classifierTraining.noiseFreeShare: the noise shares are for the purifier stages/,
  );
  for (const t of [x, plain.image, plain.mask, direct.image, direct.mask]) t.dispose();
});

Deno.test("explain replays the attack gradient and the purifier update as captured graphs", async () => {
  const { explainReplay, explainReplayText } = await import("../dsl/explain_graph.ts");
  const { purifierOptions } = await import("../dsl/compile.ts");
  const { Purifier } = await import("../runtime/models/mod.ts");
  const { spec: tiny } = await import("../pipelines/ci_tiny.ts");
  const spec = parseSpec(tiny);
  const classifier = createModel("smallcnn", { seed: 1 }) as Classifier;
  const purifier = new Purifier(purifierOptions(spec));
  classifier.eval();
  purifier.eval();
  try {
    const steps = await explainReplay(
      {
        spec,
        modules: { classifier, purifier },
        variant: { transform: true, purifier: true },
        rng: new Rng(1),
      },
      4,
      2,
    );
    assert.equal(steps.length, 2);
    for (const s of steps) {
      // One command buffer per step, nothing read back; the graph owns its temporaries.
      assert.equal(s.mode, "replay", `${s.step}: ${s.mode}`);
      assert.equal(s.submits, 1, s.step);
      assert.equal(s.readbacks, 0, s.step);
      assert.ok(s.graph && s.graph.buffers > 0 && s.graph.peakBytes <= s.graph.bytes, s.step);
      assert.equal(s.dispatches, s.graph!.dispatches, `${s.step}: a replay launches the graph`);
    }
    assert.match(
      explainReplayText(steps),
      /\| purifier update \(batch 4\) \| replay \| \d+ \| 1 \| 0 \|/,
    );
  } finally {
    classifier.dispose();
    purifier.dispose();
  }
});

Deno.test("loss stages: each purifier stage trains with the terms that name it; CE needs fine-tuning", () => {
  const base = { name: "t", classifier: { arch: "smallcnn" } };
  const spec = parseSpec({
    ...base,
    loss: [
      { term: "gan", weight: 0.01, stages: ["finetuning"] },
      { term: "l1-fine", weight: 2, holes: 6 },
      { term: "mse-fine", weight: 1, stages: ["pretraining"] },
      { term: "ce", weight: 0.1, after: 10 },
    ],
  });
  assert.deepEqual(stageTerms(spec.loss, "pretraining"), [
    { term: "l1-fine", weight: 2, after: 0, holes: 6 },
    { term: "mse-fine", weight: 1, after: 0 },
  ]);
  assert.deepEqual(stageTerms(spec.loss, "finetuning").map((t) => t.term), [
    "gan",
    "l1-fine",
    "ce",
  ]);
  // Without `stages` the terms (and so the stage keys of earlier runs) are unchanged.
  const plain = parseSpec({ ...base, loss: [{ term: "l1-fine", weight: 1 }] });
  assert.deepEqual(stageTerms(plain.loss, "finetuning"), plain.loss);
  assert.match(
    errorOf({ ...base, loss: [{ term: "ce", weight: 0.1, stages: ["pretraining"] }] }),
    /loss\[0\]\.stages: "ce" .* fine-tuning only, got \[pretraining\]: add "finetuning"/,
  );
  assert.match(
    errorOf({ ...base, loss: [{ term: "gan", weight: 1, stages: [] }] }),
    /loss\[0\]\.stages: expected at least one stage/,
  );
  assert.match(
    errorOf({ ...base, loss: [{ term: "gan", weight: 1, stages: ["training"] }] }),
    /loss\[0\]\.stages\[0\]: expected "pretraining" or "finetuning"/,
  );
  // A warm-up longer than the stage is reported, by term.
  const lines = neverActive(stageTerms(PRESETS.quick.loss as typeof spec.loss, "finetuning"), 8);
  assert.deepEqual(lines.length, 1);
  assert.match(
    lines[0],
    /\[purifier\] loss term "ce" is on from step 10, but this stage has 8 steps/,
  );
  assert.deepEqual(neverActive(stageTerms(spec.loss, "finetuning"), 64), []);
});

Deno.test("defense bytes per image bound stacked EOT passes by the purifier's size and width", () => {
  const base = { name: "t", transform: [{ kind: "rt2" }] };
  const q = parseSpec(resolveSpecInput(base, "quick"));
  const r18 = parseSpec(resolveSpecInput({ ...base, classifier: { arch: "resnet18" } }, "quick"));
  const s = parseSpec(
    resolveSpecInput({ ...base, purifier: { kind: "deepfill", width: 16 } }, "standard"),
  );
  const bytes = (spec: typeof q, withPurifier: boolean) => {
    const clf = classifierOf(spec);
    try {
      return defenseBytesPerImage(spec, withPurifier, clf);
    } finally {
      clf.dispose();
    }
  };
  // Gated layers stack feature and gate channels: 2 x width floats a pixel at 64x64.
  assert.equal(bytes(q, true), 4 * 2 * 8 * 64 * 64);
  assert.equal(bytes(s, true), 4 * 2 * 16 * 64 * 64);
  // Without the purifier: the classifier's widest activation at 32x32, read off the model
  // (ResNet-18's 64-channel stem; the transformed image and mask at 64x64 for the small CNN).
  assert.equal(bytes(r18, false), 4 * 64 * 32 * 32);
  assert.equal(bytes(q, false), 4 * 4 * 64 * 64);
  const wide = { ...base, classifier: { arch: "smallcnn", widths: [96, 8, 8, 8] } };
  const w = parseSpec(resolveSpecInput(wide, "quick"));
  assert.equal(bytes(w, false), 4 * 96 * 32 * 32);
  // Attention at 128x128: a 1024 x 1024 score matrix per image.
  const a = parseSpec(
    resolveSpecInput({
      ...base,
      purifierSize: 128,
      purifier: { kind: "deepfill", width: 8, attention: true },
    }, "quick"),
  );
  assert.equal(bytes(a, true), 4 * 1024 * 1024);
});

Deno.test("classifier.widths sizes the small CNN and is refused elsewhere", async () => {
  const base = { name: "t", transform: [{ kind: "rt2" }] };
  // Absent, the field stays out of the parsed spec, so cached classifier stages keep their keys.
  assert.equal("widths" in parseSpec(resolveSpecInput(base, "quick")).classifier, false);
  const spec = parseSpec(
    resolveSpecInput(
      { ...base, classifier: { arch: "smallcnn", widths: [24, 48, 96, 192] } },
      "quick",
    ),
  );
  const m = classifierOf(spec) as SmallCnn;
  assert.deepEqual(m.convs.map((c) => c.weight.shape[0]), [24, 48, 96, 192]);
  assert.equal(m.stemChannels, 24);
  await tidyAsync(async () => {
    const logits = m.forward(
      Tensor.fromData(new Float32Array(2 * 3 * 32 * 32).fill(0.5), [2, 3, 32, 32]),
    );
    assert.deepEqual(logits.shape, [2, 10]);
    assert.ok((await logits.data()).every(Number.isFinite));
  });
  m.dispose();
  const refused = (over: unknown, field: string) => {
    assert.throws(
      () => parseSpec(resolveSpecInput({ ...base, classifier: over }, "quick")),
      (e: unknown) =>
        e instanceof SpecError && e.issues.length === 1 && e.issues[0].startsWith(field),
    );
  };
  refused({ arch: "resnet18", widths: [16, 32, 64, 128] }, "classifier.widths: only the smallcnn");
  refused({ arch: "smallcnn", widths: [16, 32, 64] }, "classifier.widths");
  refused({ arch: "smallcnn", widths: [16, 32, 0, 128] }, "classifier.widths[2]");
});

Deno.test("stage keys: unchanged under float32 conv operands, their own under ATOP_F16=1", async () => {
  const deps = { spec: { seed: 3 }, data: "abc" };
  try {
    setConvStorage("f32");
    const k32 = await stageKey(deps);
    assert.equal(k32, (await hashJson(deps)).slice(0, 12), "a default run's keys moved");
    setConvStorage("f16");
    const k16 = await stageKey(deps);
    assert.notEqual(k16, k32, "a half-float run would reuse float32 stages");
    assert.equal(await stageKey(deps), k16);
  } finally {
    setConvStorage(undefined);
  }
});
