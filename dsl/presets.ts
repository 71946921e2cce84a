// Presets: `paper` follows the AToP paper's scale (ResNet-18, DeepFill width 48, long
// schedules, 100-iteration attacks with EOT 20; for a GPU), `quick` fits the 2-core software
// adapter (small CNN, width-8 purifier, short schedules, reduced attacks on 128 test images).
// `standard` sits between them, for conclusions on the shipped subset: a widened small CNN
// with augmentation, a width-8 purifier at 64x64 (purifierSize) pre-trained twice as long as
// quick's, all 512 test images under 20-iteration attacks with EOT 8 and AutoAttack.
// A preset only fills defaults: anything in the user's spec wins.

import type { PipelineSpecInput } from "./spec.ts";
import { atopLoss } from "./spec.ts";

export type PresetName = "quick" | "standard" | "paper";
export const PRESET_NAMES: readonly PresetName[] = ["quick", "standard", "paper"];

export const PRESETS: Record<PresetName, Partial<PipelineSpecInput>> = {
  paper: {
    classifier: { arch: "resnet18" },
    purifier: {
      kind: "deepfill",
      width: 48,
      dilations: [2, 4, 8, 16],
      discWidth: 64,
      discLayers: 4,
    },
    classifierTraining: { epochs: 200, batchSize: 128, lr: 0.1 },
    // L_gan + 1 (L1 coarse + L1 fine) + 0.1 CE after a 10-step warm-up (AToP's weights).
    loss: atopLoss(1, 0.1, 10),
    pretraining: { epochs: 100, batchSize: 64, lr: 1e-4 },
    finetuning: { epochs: 10, batchSize: 64, lr: 1e-4 },
    evaluation: {
      limit: 512,
      eotDraws: 20,
      threat: "both",
      attacks: [
        { attack: "pgd", norm: "linf", eps: 8 / 255, steps: 20 },
        { attack: "pgd", norm: "l2", eps: 0.5, steps: 20 },
        { attack: "autoattack", norm: "linf", eps: 8 / 255, steps: 100 },
        { attack: "autoattack", norm: "l2", eps: 0.5, steps: 100 },
        { attack: "stadv", norm: "linf", eps: 0, steps: 100 },
      ],
    },
  },
  standard: {
    // Sized for a night on the 2-core software adapter (BENCHMARKS.md, session 16): the defense
    // costs about one attack pass per 43 ms there with the width-8 purifier and the widened small
    // CNN (23.3 passes/s, PGD with EOT 8 at batch 32), against 79 ms with a width-16 purifier
    // (12.6), measured one after another on one machine. The evaluation is what costs: about 800
    // passes per attacked image and defense through the purifier.
    classifier: { arch: "smallcnn", widths: [32, 64, 128, 256] },
    purifierSize: 64,
    purifier: {
      kind: "deepfill",
      width: 8,
      dilations: [2, 4, 8],
      discWidth: 8,
      discLayers: 3,
      prefill: "harmonic",
      gatedGain: 4,
      prefillBlur: 1,
    },
    // As in quick: the GAN term in fine-tuning only, the refined output's L1 weighted twice.
    loss: [
      { term: "gan", weight: 0.01, after: 0, stages: ["finetuning"] },
      { term: "l1-coarse", weight: 1, after: 0, holes: 6 },
      { term: "l1-fine", weight: 2, after: 0, holes: 6 },
      { term: "ce", weight: 0.1, after: 20 },
    ],
    // Random crops and flips are on in classifier training (runtime/train/classifier.ts). The
    // widened small CNN reached 57.0% on the 512 test images in 15 epochs (7.6 minutes here),
    // the default widths 51.6% (3.5 minutes).
    classifierTraining: { epochs: 15, batchSize: 128, lr: 0.1 },
    // Quick's pre-training recipe, twice the passes; fine-tuning at quick's rate on twice its
    // images.
    pretraining: { epochs: 4, batchSize: 16, lr: 2e-3, ema: 0.95, noiseScaleShare: 1 },
    finetuning: { epochs: 1, batchSize: 16, lr: 2.5e-4, limit: 2048 },
    evaluation: {
      limit: 512,
      eotDraws: 8,
      threat: "both",
      attacks: [
        { attack: "pgd", norm: "linf", eps: 8 / 255, steps: 20 },
        { attack: "pgd", norm: "l2", eps: 0.5, steps: 20 },
        { attack: "autoattack", norm: "linf", eps: 8 / 255, steps: 20, queries: 1000 },
        { attack: "stadv", norm: "linf", eps: 0, steps: 20 },
      ],
    },
  },
  quick: {
    classifier: { arch: "smallcnn" },
    // The transform and the purifier at 64x64 (purifierSize, as the AToP code works at 256):
    // RT2's noise then averages down to about sigma / 2 at the classifier's pixels (the purifier
    // kept 27.1% of 54.2% on 48 images at 32x32; 47.9%, and AToP 47.9%, at 64x64 with this
    // recipe: quick run 8, BENCHMARKS.md). The coarse stage starts from the classical diffusion fill
    // (push-pull solved by SOR: "harmonic"), the refine stage from the coarse image, and the
    // hinge GAN term is weak (0.01) and acts in fine-tuning only: at this schedule a GAN weight of
    // 1 made the refined image worse than its input. The gated layers' feature weights start at
    // 4x PyTorch's init (gatedGain), or gradients fade ~3.5x a layer and the coarse stage never
    // learns. Every pre-training example gets RT2's noise scaled by a uniform factor
    // (noiseScaleShare 1), so the purifier also fills clean images (RT1) better than diffusion,
    // and the refined output, the one purified, has twice the coarse stage's L1 weight (317-step
    // pre-training runs, hole PSNR RT1 / RT2: share 0.5 21.48 / 19.04, share 1 21.57 / 18.98,
    // share 1 with l1-fine 2 21.59 / 19.10; BENCHMARKS.md, run 9).
    // The purifier is told each example's noise level (prefillBlur: its holes are filled from
    // the known pixels blurred as the blur + diffusion baseline does, in proportion to the
    // level; the known pixels keep their values), the L1 terms weigh holes 6x, and the weight
    // average decays at 0.95: hole PSNR RT1 / RT2 22.15 / 19.87 against the baselines' 21.47 /
    // 18.89 (run 12; the level alone: 21.49 / 18.99, run 11; blurring the known pixels too cost
    // a sixth of the clean accuracy, run 10).
    purifierSize: 64,
    purifier: {
      kind: "deepfill",
      width: 8,
      dilations: [2, 4],
      discWidth: 8,
      discLayers: 3,
      prefill: "harmonic",
      gatedGain: 4,
      prefillBlur: 1,
    },
    // The hinge GAN term acts in fine-tuning only, as in AToP's fine-tuning objective (the
    // critic still trains through pre-training). In pre-training it cost the refined image its
    // lead over the coarse one (RT2 holes 20.146 against 20.147 dB; without it 20.191 against
    // 20.185, and every hole figure up 0.02-0.04 dB: runs 23 and G, BENCHMARKS.md); switched on
    // after step 100 it never acted in the 64 fine-tuning steps either.
    loss: [
      { term: "gan", weight: 0.01, after: 0, stages: ["finetuning"] },
      { term: "l1-coarse", weight: 1, after: 0, holes: 6 },
      { term: "l1-fine", weight: 2, after: 0, holes: 6 },
      { term: "ce", weight: 0.1, after: 10 },
    ],
    classifierTraining: { epochs: 3, batchSize: 64, lr: 0.05 },
    // Two passes over the 5,085-image subset, at a higher learning rate than the paper's so the
    // width-8 purifier inpaints visibly within minutes; the generator's weights averaged (decay
    // 0.95) smooth its jitter. The second pass lifts the hole PSNR by 0.3 dB under RT1 and RT2
    // (22.12 -> 22.41, 19.87 -> 20.15) for about 5 minutes (BENCHMARKS.md, session 14).
    pretraining: { epochs: 2, batchSize: 16, lr: 2e-3, ema: 0.95, noiseScaleShare: 1 },
    // Fine-tuning at a quarter of the rate: with gatedGain 4, AToP kept 77% of the classifier's
    // clean accuracy at 1e-3, 84.5% at 5e-4, 88% at 2.5e-4 (48 images, BENCHMARKS.md).
    finetuning: { epochs: 1, batchSize: 16, lr: 2.5e-4, limit: 1024 },
    evaluation: {
      // The attacks on the first 128 test images (about 10 minutes here): on 48 one image was
      // 2.1 points and a 95% interval about +-14, so that the purifier-versus-AToP rows flipped
      // with a single image from run to run; on 128 the interval is about +-8.5.
      limit: 128,
      // Clean accuracy of every defense on all 512 test images as well (about 40 s a defense).
      cleanLimit: 512,
      eotDraws: 2,
      threat: "both",
      attacks: [
        { attack: "pgd", norm: "linf", eps: 8 / 255, steps: 10 },
        { attack: "pgd", norm: "l2", eps: 0.5, steps: 10 },
        { attack: "autoattack", norm: "linf", eps: 8 / 255, steps: 10, eot: 2, queries: 500 },
        // The AToP/DiffPure StAdv (Adam lr 0.01 on the normalised flow, bound 0.05 = 0.8 px on
        // 32x32), 10 iterations: about 1.6 px per step, so the bound is reached.
        { attack: "stadv", norm: "linf", eps: 0, steps: 10 },
      ],
    },
  },
};

/** The raw spec a pipeline run validates: preset defaults, then the pipeline file's spec,
 * then the --seed override. Shared by `deno task run` and `--pipeline` attacks. */
export function resolveSpecInput(
  base: unknown,
  preset: string,
  seed?: number,
): PipelineSpecInput {
  if (!(preset in PRESETS)) {
    throw new Error(`--preset: expected ${PRESET_NAMES.join(", ")}, got "${preset}"`);
  }
  const raw = mergeSpec(
    mergeSpec({} as PipelineSpecInput, PRESETS[preset as PresetName]),
    base,
  );
  return seed === undefined ? raw : { ...raw, seed };
}

/** Deep-merges plain objects; arrays and scalars from `over` replace those in `base`. */
export function mergeSpec<T>(base: T, over: unknown): T {
  if (over === undefined) return base;
  if (!isPlain(base) || !isPlain(over)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) out[k] = mergeSpec(out[k], v);
  return out as T;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype;
}
