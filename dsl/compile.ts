// Compiles a validated spec into modules and defense targets: the chain of random transforms,
// the purifier (with its critic for training) and the classifier. `explain` traces one
// forward pass of the defense (kernels are compiled and buffers sized, nothing is executed)
// and reports every stage's kernels, output shape, FLOPs and memory.

import { type Tensor, tidy } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { engine } from "../runtime/engine.ts";
import { ExampleDraws, type RandomSource, type Rng } from "../runtime/rng.ts";
import { backward, noGrad } from "../runtime/autograd.ts";
import {
  bpda,
  classifierTarget,
  eotGradient,
  replaySafe,
  type Target,
} from "../runtime/attacks/target.ts";
import {
  type Classifier,
  createModel,
  type Purifier,
  type PurifierOptions,
} from "../runtime/models/mod.ts";
import { fusionStats } from "../runtime/graph/fuse.ts";
import { Adam } from "../runtime/optim.ts";
import { noiseSigma, type PipelineSpecT, purifierScale, type TransformSpec } from "./spec.ts";
import {
  blocksAt,
  combineNoise,
  type Inpaint,
  type MaskedImage,
  type NoiseVariation,
  noisyImage,
  rt1,
  rt2,
  rt3,
  toClassifierSize,
  toPurifierSize,
  trainingNoiseGate,
} from "../runtime/transforms.ts";

/** The purifier interface the compiler needs (runtime/models/purifier.ts implements it). */
export interface PurifierLike {
  run(x: Tensor, mask: Tensor, noise?: Tensor): { coarse: Tensor; fine: Tensor };
  train(mode?: boolean): unknown;
  eval(): unknown;
}

export interface Modules {
  classifier: Classifier;
  purifier: PurifierLike | null;
}

/** Which parts of the defense are switched on (the report compares these variants). */
export interface Variant {
  transform: boolean;
  purifier: boolean;
}

export interface StageStep {
  name: string;
  run(x: MaskedImage): MaskedImage;
}

/** The transform chain as steps on (image, hole mask). Masks of successive steps combine
 * (a pixel masked by any step is a hole). RT3 contains its own purification; for training
 * (`training`: the purifier being trained learns to fill one round of its masks) it is one
 * RT2 round with RT3's noise and masks. Training and evaluation build their transform here, so
 * the purifier is trained on the chain it is evaluated behind (custom stages included).
 * `noise` (training only) varies the noise per example: one draw per example for the whole
 * chain (trainingNoiseGate), whatever its number of noisy steps, so training steps serve one
 * draw (trainingTransform builds them per call). */
export function transformSteps(
  spec: PipelineSpecT,
  rng: RandomSource,
  inpaint: Inpaint | null,
  opts: { training?: boolean; noise?: NoiseVariation } = {},
): StageStep[] {
  const gate = opts.training ? trainingNoiseGate(opts.noise ?? {}) : undefined;
  // Blocks keep their size in classifier pixels when the chain runs at the purifier's size.
  const f = purifierScale(spec);
  return spec.transform.map((given: TransformSpec, i): StageStep => {
    const t = "blockSize" in given ? blocksAt(given, f) : given;
    const name = `transform[${i}]:${t.kind}`;
    switch (t.kind) {
      case "rt1":
        return { name, run: (s) => combine(s, rt1(rng, s.image, t)) };
      case "rt2":
        return { name, run: (s) => combine(s, rt2(rng, s.image, t, gate)) };
      case "noise":
        return {
          name,
          run: (s) => {
            const r = noisyImage(rng, s.image, t.sigma, gate);
            return { image: r.image, mask: s.mask, noise: combineNoise(s.noise, r.noise) };
          },
        };
      case "rt3": {
        if (opts.training) {
          const o = { sigma: t.sigma, missingRate: t.missingRate, blockSize: t.blockSize };
          return { name, run: (s) => combine(s, rt2(rng, s.image, o, gate)) };
        }
        if (!inpaint) throw new Error(`${name}: rt3 needs a purifier`);
        return {
          name,
          // Purified: no holes and no noise left to report.
          run: (s) => ({
            image: rt3(rng, s.image, t, inpaint, s.noise),
            mask: ops.zerosLike(s.mask),
          }),
        };
      }
      case "custom": {
        const fn = t.apply as (x: Tensor) => Tensor;
        const stage = t.bpda === "exact"
          ? { apply: fn }
          : bpda(fn, t.bpda === "surrogate" ? (t.surrogate as (x: Tensor) => Tensor) : undefined, {
            name: t.name,
          });
        return {
          name: `${name}(${t.name})`,
          run: (s) => ({ ...s, image: stage.apply(s.image) }),
        };
      }
    }
  });
}

function combine(prev: MaskedImage, next: MaskedImage): MaskedImage {
  return {
    image: next.image,
    mask: ops.maximum(prev.mask, next.mask),
    noise: combineNoise(prev.noise, next.noise),
  };
}

/** The purifier's constructor options from a spec with a deepfill purifier (one place for the
 * pipeline, the attack CLI and --explain). prefillBlur is in classifier pixels: at the
 * purifier's size it is purifierScale times wider. */
export function purifierOptions(spec: PipelineSpecT): PurifierOptions {
  const p = spec.purifier;
  if (p.kind !== "deepfill") throw new Error("purifierOptions: the spec has no deepfill purifier");
  return {
    width: p.width,
    dilations: p.dilations,
    seed: spec.seed,
    prefill: p.prefill,
    gatedGain: p.gatedGain,
    detachCoarse: p.detachCoarse,
    attention: p.attention,
    // Nothing to tell without noise in the chain (a preset's prefillBlur under an RT1 chain).
    ...((p.prefillBlur ?? 0) > 0 && noiseSigma(spec) > 0
      ? { denoise: { blur: p.prefillBlur! * purifierScale(spec), reference: noiseSigma(spec) } }
      : {}),
  };
}

/** The spec's classifier, freshly initialised from the spec's seed (weights load over it). */
export function classifierOf(spec: PipelineSpecT): Classifier {
  return createModel(spec.classifier.arch, {
    numClasses: spec.classifier.numClasses,
    seed: spec.seed,
    widths: spec.classifier.widths,
  }) as Classifier;
}

export function buildModules(spec: PipelineSpecT, purifier: PurifierLike | null): Modules {
  return { classifier: classifierOf(spec), purifier };
}

export interface DefenseParts {
  spec: PipelineSpecT;
  modules: Modules;
  variant: Variant;
  /** Draws for calls that do not say which examples they hold (training, grids, explain). */
  rng: Rng;
  /** Draws keyed by (example, call) for calls that do: what evaluations use. */
  draws?: ExampleDraws;
}

/** image [0,1] -> transforms -> purifier -> [0,1] image (the defense's preprocessing); with
 * a purifierSize the transforms and the purifier run at that size, between a bilinear upsampling
 * and an area downsampling. */
export function preprocess(
  p: DefenseParts,
  x: Tensor,
  trace?: (stage: string, out: Tensor) => void,
  rows?: readonly number[],
): Tensor {
  const rng: RandomSource = rows && p.draws ? p.draws.next(rows) : p.rng;
  const { purifier } = p.modules;
  const usePurifier = p.variant.purifier && purifier !== null;
  const inpaint: Inpaint | null = usePurifier
    ? (img, m, noise) => purifier!.run(img, m, noise).fine
    : null;
  const size = x.shape[2], big = p.spec.purifierSize;
  const resample = big !== undefined && big !== size && (p.variant.transform || usePurifier);
  const input = resample ? toPurifierSize(x, big) : x;
  if (resample) trace?.(`resize:${big}x${big}`, input);
  let s: MaskedImage = {
    image: input,
    mask: ops.zeros([x.shape[0], 1, input.shape[2], input.shape[3]]),
  };
  let purified = false;
  if (p.variant.transform) {
    for (const step of transformSteps(p.spec, rng, inpaint)) {
      s = step.run(s);
      trace?.(step.name, s.image);
      if (step.name.endsWith(":rt3")) purified = true;
    }
  }
  if (usePurifier && !purified && inpaint) {
    s = { image: inpaint(s.image, s.mask, s.noise), mask: s.mask };
    trace?.("purifier", s.image);
  }
  if (!resample) return s.image;
  const out = toClassifierSize(s.image, size);
  trace?.(`resize:${size}x${size}`, out);
  return out;
}

/** The largest tensor one image makes through the defense (float32 bytes), which bounds how
 * many images a stacked EOT pass may hold: the classifier's widest activation at the image
 * size (`stemChannels`), and the purifier's gated layers (feature and gate channels stacked,
 * 2 x width) at the purifier's size, or its attention scores ((size/4)^4 per image). */
export function defenseBytesPerImage(
  spec: PipelineSpecT,
  withPurifier: boolean,
  classifier: Pick<Classifier, "stemChannels">,
): number {
  const s = spec.imageSize, big = spec.purifierSize ?? s;
  let floats = classifier.stemChannels * s * s;
  floats = Math.max(floats, 4 * big * big); // the transformed image with its mask
  const p = spec.purifier;
  if (withPurifier && p.kind === "deepfill") {
    floats = Math.max(floats, 2 * p.width * big * big);
    if (p.attention) floats = Math.max(floats, (big * big / 16) ** 2);
  }
  return 4 * floats;
}

/** The whole defense as an attack Target. */
export function defenseTarget(p: DefenseParts): Target {
  const clf = classifierTarget(p.modules.classifier, { name: p.spec.classifier.arch });
  p.modules.purifier?.eval();
  const randomized = p.variant.transform &&
    p.spec.transform.some((t) => t.kind !== "custom" || t.randomized);
  const parts = [
    p.variant.transform && p.spec.transform.length
      ? p.spec.transform.map((t) => t.kind).join("+")
      : null,
    p.variant.purifier && p.modules.purifier ? "purifier" : null,
    clf.name,
  ].filter(Boolean);
  const t: Target = {
    name: parts.join(" -> "),
    numClasses: clf.numClasses,
    randomized,
    logits: (x, rows) => clf.logits(preprocess(p, x, undefined, rows)),
    resetDraws: (rows, scope) => p.draws?.reset(rows, scope),
    bytesPerImage: defenseBytesPerImage(
      p.spec,
      p.variant.purifier && p.modules.purifier !== null,
      p.modules.classifier,
    ),
  };
  // The built-in stages draw through Rng / ExampleDraws and keep no other host state; a custom
  // stage's function may (attack iterations on it then run eagerly).
  const custom = p.variant.transform && p.spec.transform.some((s) => s.kind === "custom");
  return custom ? t : replaySafe(t);
}

export interface ExplainRow {
  stage: string;
  kernels: Record<string, number>;
  shape: number[];
  flops: number;
  bytes: number;
}

/** Traces one forward pass of the defense on a batch; nothing runs on the GPU. */
export function explainDefense(p: DefenseParts, batch: number): ExplainRow[] {
  const size = p.spec.imageSize;
  const marks: { stage: string; at: number; shape: number[] }[] = [];
  const eng = engine();
  const { dispatches } = noGrad(() =>
    tidy(() =>
      eng.trace(() => {
        const x = ops.full([batch, 3, size, size], 0.5);
        marks.push({ stage: "input", at: eng.tracedCount, shape: [...x.shape] });
        const img = preprocess(
          p,
          x,
          (stage, out) => marks.push({ stage, at: eng.tracedCount, shape: [...out.shape] }),
        );
        const z = p.modules.classifier.forward(img);
        marks.push({
          stage: `classifier:${p.spec.classifier.arch}`,
          at: eng.tracedCount,
          shape: [...z.shape],
        });
      })
    )
  );
  const rows: ExplainRow[] = [];
  for (let i = 1; i < marks.length; i++) {
    const ds = dispatches.slice(marks[i - 1].at, marks[i].at);
    const kernels: Record<string, number> = {};
    for (const d of ds) kernels[d.kernel] = (kernels[d.kernel] ?? 0) + 1;
    rows.push({
      stage: marks[i].stage,
      kernels,
      shape: marks[i].shape,
      flops: ds.reduce((a, d) => a + d.flops, 0),
      bytes: ds.reduce((a, d) => a + d.bytes, 0),
    });
  }
  return rows;
}

export interface StepExplain {
  step: string;
  dispatches: number;
  /** Elementwise ops folded into fused kernels, and ops never run (unread). */
  fusedOps: number;
  droppedOps: number;
  flops: number;
  /** Peak of live GPU bytes during the step (inputs and weights included). */
  peakBytes: number;
}

/** Traces the compiled steps that matter for speed: an attack gradient through the whole
 * defense (EOT draws stacked into one pass) and a purifier update (forward, L1 losses,
 * backward, Adam). Nothing runs on the GPU; kernels are counted after fusion. */
export function explainSteps(p: DefenseParts, batch: number, eot: number): StepExplain[] {
  const eng = engine();
  const size = p.spec.imageSize;
  const target = defenseTarget({ ...p, draws: new ExampleDraws(p.spec.seed, 0x3e7) });
  const rows = Array.from({ length: batch }, (_, i) => i);
  const one = (step: string, fn: () => void): StepExplain => {
    const f0 = fusionStats();
    eng.pool.startPeakWindow();
    const { dispatches } = eng.trace(() => tidy(fn));
    const f1 = fusionStats();
    return {
      step,
      dispatches: dispatches.length,
      fusedOps: f1.fusedOps - f0.fusedOps,
      droppedOps: f1.dropped - f0.dropped,
      flops: dispatches.reduce((a, d) => a + d.flops, 0),
      peakBytes: eng.pool.windowPeak,
    };
  };
  const out: StepExplain[] = [];
  out.push(one(`attack gradient, EOT ${eot} (batch ${batch})`, () => {
    const x = ops.full([batch, 3, size, size], 0.5);
    const y = ops.zeros([batch]);
    eotGradient(target, x, (z) => ops.crossEntropy(z, y, { reduction: "none" }), eot, rows);
  }));
  const purifier = p.modules.purifier as Purifier | null;
  if (purifier && typeof purifier.run === "function") {
    const opt = new Adam(purifier.parameters(), { lr: 1e-4 });
    purifier.train();
    out.push(one(`purifier update (batch ${batch})`, () => {
      const x = ops.full([batch, 3, size, size], 0.5);
      const mask = ops.zeros([batch, 1, size, size]);
      const sigma = noiseSigma(p.spec);
      const r = purifier.run(x, mask, sigma > 0 ? ops.full([batch, 1, 1, 1], sigma) : undefined);
      backward(ops.add(ops.l1Loss(r.coarse, x), ops.l1Loss(r.fine, x)));
      opt.step();
      opt.zeroGrad();
    }));
    purifier.eval();
    opt.dispose();
  }
  return out;
}

/** The compiled-step table. */
export function explainStepsText(steps: StepExplain[]): string {
  const lines = [
    "compiled steps (kernels after fusion; peak = live GPU memory, weights included):",
    "| step | kernels | elementwise ops fused | ops never run | FLOPs | peak memory |",
    "|---|---|---|---|---|---|",
  ];
  for (const s of steps) {
    lines.push(
      `| ${s.step} | ${s.dispatches} | ${s.fusedOps} | ${s.droppedOps} | ` +
        `${human(s.flops, "FLOP")} | ${human(s.peakBytes, "B")} |`,
    );
  }
  lines.push(
    "execution: training steps and PGD/APGD iterations are captured after their first call and " +
      "replayed as graphs (no JS of the step runs; runtime/graph/capture.ts, ATOP_GRAPH=off for " +
      "eager), one command buffer per step with no readback (losses are read every 16 steps); " +
      "PGD and APGD read back once per run (deno task bench --only " +
      "resnet18_train_step_submits,pgd10_resnet18_readbacks counts them).",
  );
  return lines.join("\n");
}

function human(n: number, unit: string): string {
  const k = ["", "K", "M", "G", "T"];
  let i = 0;
  while (n >= 1000 && i < k.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(n < 10 && i ? 2 : 0)} ${k[i]}${unit}`;
}

/** The explain table as text: stage, launches by kernel, output shape, FLOPs, bytes bound. */
export function explainText(spec: PipelineSpecT, rows: ExplainRow[], batch: number): string {
  const lines = [
    `pipeline "${spec.name}" (batch ${batch}, ${spec.imageSize}x${spec.imageSize}), one forward pass:`,
  ];
  lines.push(
    "| stage | kernels (launches) | output shape | FLOPs | buffer bytes |",
    "|---|---|---|---|---|",
  );
  for (const r of rows) {
    const ks = Object.entries(r.kernels).map(([k, n]) => `${k} x${n}`).join(", ") || "-";
    lines.push(
      `| ${r.stage} | ${ks} | [${r.shape}] | ${human(r.flops, "FLOP")} | ${human(r.bytes, "B")} |`,
    );
  }
  const total = rows.reduce((a, r) => a + r.flops, 0);
  const launches = rows.reduce(
    (a, r) => a + Object.values(r.kernels).reduce((x, y) => x + y, 0),
    0,
  );
  lines.push(
    `total: ${launches} launches, ${
      human(total, "FLOP")
    } forward; a training step costs about 3x the forward.`,
  );
  return lines.join("\n");
}
