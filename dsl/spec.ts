// The pipeline spec: a typed, declarative description of
//   random transform(s) -> purifier -> classifier -> training loss, plus the attacks used to
// train and to evaluate. Validated with zod before any GPU work; every error names the field
// path (e.g. `transform[1].missingRate`), what was expected and what was given.

import { atopTerms } from "../runtime/train/purifier.ts";
import { z } from "zod";
import { maxEps } from "../runtime/attacks/common.ts";
import { CIFAR } from "../runtime/data/cifar.ts";

const unit = (what: string) =>
  z.number({ error: `expected ${what}` }).min(0, `expected ${what}`).lt(1, `expected ${what}`);
const positiveInt = (what = "a positive integer") =>
  z.number({ error: `expected ${what}` }).int(`expected ${what}`).min(1, `expected ${what}`);
const nonNegative = (what = "a number >= 0") =>
  z.number({ error: `expected ${what}` }).min(0, `expected ${what}`);
const count = (what = "an integer >= 0") =>
  z.number({ error: `expected ${what}` }).int(`expected ${what}`).min(0, `expected ${what}`);

const mask = {
  /** Fraction of blocks masked, in [0,1); AToP uses 0.25. */
  missingRate: unit("a number in [0,1)").default(0.25),
  /** Side of the square blocks in pixels (must divide the image size). */
  blockSize: positiveInt().default(4),
};

/** RT1: mask random square blocks, drawn per example and per call. */
export const Rt1 = z.strictObject({ kind: z.literal("rt1"), ...mask });
/** RT2: Gaussian noise, then RT1 masking. */
export const Rt2 = z.strictObject({
  kind: z.literal("rt2"),
  sigma: nonNegative().default(0.25),
  ...mask,
});
/** RT3: `repeats` rounds of (mask with a fresh draw -> purify). */
export const Rt3 = z.strictObject({
  kind: z.literal("rt3"),
  repeats: positiveInt().default(3),
  sigma: nonNegative().default(0),
  ...mask,
});
/** Additive Gaussian noise alone (clipped to [0,1]). */
export const Noise = z.strictObject({
  kind: z.literal("noise"),
  sigma: nonNegative().default(0.25),
});
/** A user stage: a function of the image batch. Non-differentiable ones set `bpda`. */
export const CustomTransform = z.strictObject({
  kind: z.literal("custom"),
  name: z.string().min(1),
  randomized: z.boolean().default(false),
  /** Backward pass: "exact" (autodiff), "identity" (BPDA), or BPDA with a surrogate. */
  bpda: z.enum(["exact", "identity", "surrogate"]).default("exact"),
  apply: z.custom<(x: any) => any>(
    (v) => typeof v === "function",
    "expected a function (x: Tensor) => Tensor",
  ),
  surrogate: z.custom<(x: any) => any>((v) => typeof v === "function", "expected a function")
    .optional(),
});

export const Transform = z.discriminatedUnion("kind", [Rt1, Rt2, Rt3, Noise, CustomTransform], {
  error: (iss) =>
    iss.code === "invalid_union"
      ? 'expected kind to be one of "rt1", "rt2", "rt3", "noise", "custom"'
      : undefined,
});

export const Purifier = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("deepfill"),
    width: positiveInt().default(16),
    dilations: z.array(positiveInt()).min(1).default([2, 4, 8]),
    /** Critic width and depth (SN-PatchGAN). */
    discWidth: positiveInt().default(16),
    discLayers: positiveInt().default(4),
    /** Pre-trained weights (safetensors); otherwise pre-trained by the pipeline. */
    weights: z.string().optional(),
    /** The coarse stage's starting point: holes zeroed (absent, DeepFillv2) or push-pull
     * filled (without or with smoothing at every level: "multigrid"; or solved to the harmonic
     * fill by SOR: "harmonic"), the coarse stage then
     * predicting a correction of a classical fill. */
    prefill: z.enum(["zeros", "pushpull", "multigrid", "harmonic"]).optional(),
    /** Scale of the gated layers' feature weights over PyTorch's default init ([1]); about 4
     * keeps activations and gradients at one scale through a stage (runtime/nn/layers.ts). */
    gatedGain: z.number().positive("expected a gain > 0").optional(),
    /** Tell the purifier each example's noise level (FFDNet's noise map): the prefill fills
     * the holes from the known pixels blurred by a Gaussian of this sigma, in the classifier's
     * pixels, at the transform's noise sigma, and proportionally less at lower levels
     * (pre-training's noiseScaleShare); the known pixels keep their values; both stages see the
     * level as an input channel. Needs a prefill. Absent or 0, or a transform without noise:
     * not told. */
    prefillBlur: nonNegative().optional(),
    /** Training only: the refine stage sees the coarse image detached, so the coarse stage
     * learns from l1-coarse alone and the refine stage corrects it (absent: gradients of the
     * refined output reach the coarse stage, as in DeepFillv2). Attacks differentiate through
     * both stages either way. */
    detachCoarse: z.boolean().optional(),
    /** The refine stage borrows bottleneck features from known regions by contextual attention
     * (DeepFillv2's attention branch: cosine similarity, softmax scale 10, hole positions never
     * lend), merged with its convolutional features by one more gated layer. Absent: off. */
    attention: z.boolean().optional(),
  }),
  z.strictObject({ kind: z.literal("none") }),
]);

export const Classifier = z.strictObject({
  arch: z.enum(["smallcnn", "resnet18", "wrn28_10"], {
    error: 'expected one of "smallcnn", "resnet18", "wrn28_10"',
  }),
  numClasses: positiveInt().default(10),
  /** The small CNN's four stage widths (default [16, 32, 64, 128]); smallcnn only. */
  widths: z.tuple([positiveInt(), positiveInt(), positiveInt(), positiveInt()], {
    error: "expected four positive integers, e.g. [32, 64, 128, 256]",
  }).optional(),
  weights: z.string().optional(),
});

/** The training attack that makes x_adv for AToP fine-tuning (FGSM in the reference code). */
export const TrainAttack = z.strictObject({
  kind: z.enum(["fgsm", "pgd"]).default("fgsm"),
  norm: z.enum(["linf", "l2"]).default("linf"),
  eps: nonNegative().default(8 / 255),
  steps: positiveInt().default(1),
  stepSize: nonNegative().optional(),
});

/** The purifier's two training stages, as loss terms name them. */
export const PURIFIER_STAGES = ["pretraining", "finetuning"] as const;
export type PurifierStage = (typeof PURIFIER_STAGES)[number];

/** A weighted term of the purifier's training loss. */
export const LossTerm = z.strictObject({
  term: z.enum(["gan", "l1-coarse", "l1-fine", "ce", "mse-fine"], {
    error: 'expected one of "gan", "l1-coarse", "l1-fine", "ce", "mse-fine"',
  }),
  weight: nonNegative(),
  /** Switch the term on only after this many steps (lambda warm-up for CE). */
  after: z.number().int().min(0).default(0),
  /** l1-coarse, l1-fine, mse-fine: weight of a hole pixel against a known one (default 1, the
   * plain mean; partial convolutions' hole/valid split uses 6). */
  holes: z.number().positive("expected a hole weight > 0").optional(),
  /** The purifier stages that train with the term (absent: both; "ce" is fine-tuning's only,
   * since pre-training has no classifier). `after` counts each stage's own steps. */
  stages: z.array(z.enum(PURIFIER_STAGES, {
    error: 'expected "pretraining" or "finetuning"',
  })).min(1, "expected at least one stage (drop the term to switch it off)").optional(),
});

/** AToP: L = L_gan + a (L1 coarse + L1 fine) + lambda CE, CE switched on after warm-up. */
export function atopLoss(a = 1, lambda = 0.1, warmup = 0) {
  return atopTerms(a, lambda, warmup) as z.output<typeof LossTerm>[];
}

export const Schedule = z.strictObject({
  /** Whole passes over the (limited) training set; 0 skips the stage's training. */
  epochs: count().default(1),
  batchSize: positiveInt().default(32),
  lr: z.number().positive("expected a learning rate > 0").default(1e-4),
  /** Limit on training images (quick runs). */
  limit: positiveInt().optional(),
  /** Purifier stages only: decay of an exponential moving average of the generator's weights,
   * which the stage keeps and evaluates (e.g. 0.99). */
  ema: z.number().gt(0, "expected a decay in (0, 1)").lt(1, "expected a decay in (0, 1)")
    .optional(),
  /** Purifier stages only: the share of training examples whose transform draws no noise
   * (RT2 becomes RT1 for them, drawn per example), so that the purifier also learns to leave
   * clean known pixels and their fills alone (e.g. 0.5). */
  noiseFreeShare: share().optional(),
  /** Purifier stages only: the share of training examples whose noise is scaled by a factor
   * drawn uniformly from [0, 1) per example, so the purifier meets every noise level from none
   * to the transform's (blind denoising). Unlike noiseFreeShare no example is exactly clean:
   * under L1, exact zeros at a share of the known pixels pin the learned correction at zero. */
  noiseScaleShare: share().optional(),
});

function share() {
  return z.number().min(0, "expected a share in [0, 1]").max(1, "expected a share in [0, 1]");
}

export const EvalAttack = z.strictObject({
  attack: z.enum([
    "pgd",
    "apgd-ce",
    "apgd-dlr",
    "apgd-t",
    "fab-t",
    "square",
    "stadv",
    "autoattack",
    "autoattack-rand",
    "autoattack-plus",
    "fgsm",
  ]),
  /** AutoAttack only: run this list of its components (a custom version). */
  attacks: z.array(z.enum(["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"])).min(1)
    .optional(),
  norm: z.enum(["linf", "l2"]).default("linf"),
  eps: nonNegative().default(8 / 255),
  steps: positiveInt().default(20),
  restarts: positiveInt().default(1),
  eot: positiveInt().default(1),
  /** Square's query budget (also inside AutoAttack standard); default 5000. */
  queries: positiveInt().optional(),
  /** PGD step size (default 2/255 for linf, eps/4 for l2) or StAdv's Adam learning rate on the
   * flow, in normalised grid units (default 0.01). Ignored by the APGD family, FAB and Square. */
  stepSize: z.number().positive("expected a step size > 0").optional(),
  /** StAdv: Linf bound on the flow in normalised grid units (default 0.05), the weight of the
   * flow smoothness loss (default 0.05) and the margin clip (default: none). */
  bound: z.number().positive("expected a flow bound > 0").optional(),
  tau: nonNegative().optional(),
  kappa: nonNegative().optional(),
});

export const PipelineSpec = z.strictObject({
  name: z.string().min(1, "expected a non-empty name"),
  dataset: z.enum(["cifar10", "cifar100"]).default("cifar10"),
  imageSize: positiveInt().default(32),
  /** The resolution the random transform and the purifier work at (default: imageSize). Images
   * go up by bilinear interpolation and come back down by the area average before the
   * classifier; mask blocks keep their size in classifier pixels (the AToP code masks 32-px
   * blocks at 256x256, i.e. 4-px blocks of the 32x32 image), the noise is per purifier pixel. */
  purifierSize: positiveInt().optional(),
  transform: z.array(Transform).default([]),
  purifier: Purifier.default({ kind: "none" }),
  classifier: Classifier,
  loss: z.array(LossTerm).default(atopLoss()),
  trainAttack: TrainAttack.default({ kind: "fgsm", norm: "linf", eps: 8 / 255, steps: 1 }),
  classifierTraining: Schedule.default({ epochs: 10, batchSize: 128, lr: 0.1 }),
  pretraining: Schedule.default({ epochs: 1, batchSize: 32, lr: 1e-4 }),
  finetuning: Schedule.default({ epochs: 1, batchSize: 32, lr: 1e-4 }),
  evaluation: z.strictObject({
    limit: positiveInt().default(512),
    attacks: z.array(EvalAttack).default([]),
    threat: z.enum(["classifier-only", "full-pipeline", "both"]).default("both"),
    eotDraws: positiveInt().default(20),
    /** Draws in the majority vote that decides a randomized defense's clean and adversarial
     * predictions (1 = a single draw, when absent). */
    votes: positiveInt().optional(),
    /** Also score every defense's clean accuracy on the first this many test images (one
     * forward pass each, the same verdict rule and draws as the attacked `limit` images): a
     * clean figure with a narrow interval where attacks can afford only a few images. */
    cleanLimit: positiveInt().optional(),
  }).default({ limit: 512, attacks: [], threat: "both", eotDraws: 20 }),
  seed: z.number().int().min(0).default(0),
});

export type PipelineSpecInput = z.input<typeof PipelineSpec>;
/** What a pipeline file writes: a name and any fields; presets fill the rest. */
export type PipelineDraft = { name: string } & Partial<PipelineSpecInput>;
export type PipelineSpecT = z.output<typeof PipelineSpec>;
export type TransformSpec = z.output<typeof Transform>;

/** The largest noise sigma of the transform chain (0 when it adds none): the level at which
 * the purifier's prefillBlur applies in full. */
export function noiseSigma(spec: Pick<PipelineSpecT, "transform">): number {
  let s = 0;
  for (const t of spec.transform) {
    if (t.kind === "rt2" || t.kind === "rt3" || t.kind === "noise") s = Math.max(s, t.sigma);
  }
  return s;
}

/** How many purifier pixels per classifier pixel, along each side (1 without purifierSize). */
export function purifierScale(spec: Pick<PipelineSpecT, "imageSize" | "purifierSize">): number {
  return (spec.purifierSize ?? spec.imageSize) / spec.imageSize;
}

export class SpecError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid pipeline spec:\n  ${issues.join("\n  ")}`);
    this.name = "SpecError";
  }
}

/** `transform[1].missingRate` from zod's path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || "(spec)";
}

function show(v: unknown): string {
  if (typeof v === "function") return "a function";
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

/** Validates and fills defaults; throws SpecError listing every problem. Also checks the
 * relations zod cannot see (blocks dividing the image, RT3 needing a purifier). */
export function parseSpec(value: unknown): PipelineSpecT {
  const r = PipelineSpec.safeParse(value, { reportInput: true });
  if (!r.success) {
    throw new SpecError(r.error.issues.map((i) => {
      let input = (i as { input?: unknown }).input;
      const last = i.path.at(-1);
      if (typeof last === "string" && input && typeof input === "object" && last in input) {
        input = (input as Record<string, unknown>)[last];
      }
      const got = i.code === "unrecognized_keys" ? "" : `, got ${show(input)}`;
      return `${formatPath(i.path)}: ${i.message}${got}`;
    }));
  }
  const spec = r.data;
  const problems: string[] = [];
  spec.transform.forEach((t, i) => {
    if ("blockSize" in t && spec.imageSize % t.blockSize !== 0) {
      problems.push(
        `transform[${i}].blockSize: expected a divisor of the image size ${spec.imageSize}, got ${t.blockSize}`,
      );
    }
    if (t.kind === "rt3" && spec.purifier.kind === "none") {
      problems.push(
        `transform[${i}].kind: "rt3" repeats mask-and-purify and needs a purifier, got purifier.kind "none"`,
      );
    }
    if (t.kind === "custom" && t.bpda === "surrogate" && !t.surrogate) {
      problems.push(
        `transform[${i}].surrogate: expected a function when bpda is "surrogate", got nothing`,
      );
    }
  });
  spec.loss.forEach((t, i) => {
    if (t.holes !== undefined && !["l1-coarse", "l1-fine", "mse-fine"].includes(t.term)) {
      problems.push(
        `loss[${i}].holes: only the l1-coarse, l1-fine and mse-fine terms weigh holes, got it on "${t.term}": remove it`,
      );
    }
    if (t.term === "ce" && t.stages && !t.stages.includes("finetuning")) {
      problems.push(
        `loss[${i}].stages: "ce" needs the frozen classifier and acts in fine-tuning only, got [${t.stages}]: add "finetuning"`,
      );
    }
  });
  const classes = CIFAR[spec.dataset].classes;
  if (spec.classifier.numClasses !== classes) {
    problems.push(
      `classifier.numClasses: expected ${classes} for dataset "${spec.dataset}", got ` +
        `${spec.classifier.numClasses}`,
    );
  }
  if (spec.classifier.widths && spec.classifier.arch !== "smallcnn") {
    problems.push(
      `classifier.widths: only the smallcnn has stage widths, got them on "${spec.classifier.arch}": remove them`,
    );
  }
  // A radius beyond the image range constrains nothing: a typo such as 1e9 or a missing /255.
  const pixels = 3 * spec.imageSize * spec.imageSize;
  const radii = [
    { path: "trainAttack.eps", a: spec.trainAttack },
    ...spec.evaluation.attacks.map((a, i) => ({ path: `evaluation.attacks[${i}].eps`, a })),
  ];
  for (const { path, a } of radii) {
    const max = maxEps(a.norm, pixels);
    if (a.eps > max) {
      problems.push(
        `${path}: expected a number in [0, ${+max.toFixed(4)}] for ${a.norm} on ` +
          `${spec.imageSize}x${spec.imageSize} images, got ${a.eps}`,
      );
    }
  }
  for (const k of ["noiseFreeShare", "noiseScaleShare"] as const) {
    if (spec.classifierTraining[k] !== undefined) {
      problems.push(
        `classifierTraining.${k}: the noise shares are for the purifier stages (pretraining, finetuning), got ${
          spec.classifierTraining[k]
        }`,
      );
    }
  }
  for (const stage of ["pretraining", "finetuning"] as const) {
    const sc = spec[stage];
    if ((sc.noiseFreeShare ?? 0) > 0 && (sc.noiseScaleShare ?? 0) > 0) {
      problems.push(
        `${stage}.noiseScaleShare: give noiseFreeShare or noiseScaleShare, not both (noiseFreeShare is ${sc.noiseFreeShare}; the quick and standard presets set noiseScaleShare 1: set it to 0)`,
      );
    }
  }
  if (spec.classifierTraining.ema !== undefined) {
    problems.push(
      `classifierTraining.ema: the weight average is for the purifier stages (pretraining, finetuning), got ${spec.classifierTraining.ema}`,
    );
  }
  const ps = spec.purifierSize;
  if (ps !== undefined && (ps % spec.imageSize !== 0 || ps > 16 * spec.imageSize)) {
    problems.push(
      `purifierSize: expected imageSize (${spec.imageSize}) times an integer from 1 to 16, got ${ps}`,
    );
  }
  if (spec.purifier.kind === "deepfill" && (spec.purifier.prefillBlur ?? 0) > 0) {
    if (spec.purifier.prefill === undefined || spec.purifier.prefill === "zeros") {
      problems.push(
        `purifier.prefillBlur: the blur feeds the prefill's hole fill; set purifier.prefill (e.g. "harmonic"), or prefillBlur to 0, got ${spec.purifier.prefillBlur}`,
      );
    }
  }
  if (spec.imageSize % 4 !== 0 && spec.purifier.kind === "deepfill") {
    problems.push(
      `imageSize: expected a multiple of 4 for the deepfill purifier, got ${spec.imageSize}`,
    );
  }
  if (problems.length) throw new SpecError(problems);
  return spec;
}
