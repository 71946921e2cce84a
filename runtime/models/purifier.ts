// DeepFillv2-style inpainting purifier (Yu et al., ICCV 2019): gated convolutions, a coarse
// encoder-decoder with dilated convolutions, then a refinement network that corrects the coarse
// result (pasted into the holes, or whole after a prefill). Pixels in [0,1] come in and go out
// (internally [-1,1]), so the classifier after it always gets [0,1] images. Contextual attention
// in the refine stage is an option (off by default: at the quick schedule it left the refined
// image where the coarse one is, docs/DSL.md).

import { type Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { Conv2d, GatedConv2d, InitRng, Module } from "../nn/mod.ts";
import { denoiseKnown, pushPullFill } from "./prefill.ts";
import { contextualAttention } from "./contextual_attention.ts";

/** Bumped whenever the purifier's layers or forward pass change, so cached pre-training
 * stages of an older architecture are never loaded into the new one. */
export const PURIFIER_ARCH_VERSION = "deepfill/noise-level-1";

/** Jacobi sweeps after push-pull (measured on 64 test images, RT1 hole PSNR: 0 sweeps
 * 16.9 dB, 8 sweeps 18.9, 64 sweeps 19.5; 8 costs about 130 small kernels a forward). */
export const PREFILL_SWEEPS = 8;
/** Sweeps at every coarser level for `prefill: "multigrid"` (64 test images at 2x the
 * resolution, RT1 hole PSNR: push-pull 19.52 dB, with 4 sweeps a level 20.72, with 8 20.89,
 * with 16 21.00; diffusion fill 21.47). */
export const PREFILL_LEVEL_SWEEPS = 8;

/** Red-black SOR iterations and over-relaxation of `prefill: "harmonic"` after push-pull
 * (64 test images at 2x the resolution, RT1 hole PSNR: 16 iterations at omega 1.8 give 21.47 dB,
 * the same as 1,600 Jacobi sweeps of the diffusion-fill baseline; 32 or 64 iterations change
 * nothing; one launch forward and one backward). */
export const PREFILL_SOR_ITERATIONS = 16;
export const PREFILL_SOR_OMEGA = 1.8;

export type PrefillKind = "zeros" | "pushpull" | "multigrid" | "harmonic";

/** The purifier told each example's noise level (FFDNet's noise map): the holes are filled
 * from the known pixels blurred in proportion to the level (the known pixels keep their own
 * values), and both stages see the level as an extra input channel. */
export interface PurifierDenoise {
  /** Gaussian sigma, in the purifier's pixels, of the blur at the reference noise level. */
  blur: number;
  /** The noise sigma (in [0,1] pixel units) that gets the whole blur; an example's share is its
   * own sigma over this, at most 1. */
  reference: number;
}

export interface PurifierOptions {
  /** Base width (DeepFillv2 uses 48); 8 or 16 are CPU sizes. */
  width?: number;
  /** Dilation rates of the bottleneck (default [2, 4, 8]). */
  dilations?: number[];
  seed?: number;
  /** What the coarse stage starts from: the holes zeroed (DeepFillv2, the default), or
   * filled by push-pull (a classical fill; the coarse stage then predicts a correction of it,
   * zero at initialisation), or by push-pull with smoothing at every level ("multigrid"), or
   * by push-pull then solved to the harmonic (diffusion) fill by SOR ("harmonic"). */
  prefill?: PrefillKind;
  /** Scale of the gated layers' feature weights over PyTorch's default init (default 1; see
   * GatedConv2d). */
  gatedGain?: number;
  /** Denoise by the noise level the transform reports (absent: the level is ignored). */
  denoise?: PurifierDenoise;
  /** In training mode only, the refine stage sees the coarse image detached: the coarse stage
   * then learns from its own loss term alone and the refine stage corrects it. In eval mode
   * (attacks, the defense) gradients flow through both stages. */
  detachCoarse?: boolean;
  /** The refine stage borrows features from known regions by contextual attention at its
   * bottleneck (DeepFillv2's refine branch; default off): the attended features and the
   * convolutional ones are merged by one more gated layer. */
  attention?: boolean;
}

/** One stage: 4-channel input (image in [-1,1] + mask) to an image in [-1,1]. A residual
 * stage predicts a correction to a base image instead of the image itself. */
class Stage extends Module {
  readonly enc: GatedConv2d[] = [];
  readonly dec: GatedConv2d[] = [];
  readonly out: Conv2d;
  /** Merges the bottleneck's features with their contextual attention (attention stages). */
  readonly merge: GatedConv2d | null = null;
  constructor(
    rng: InitRng,
    c: number,
    dilations: number[],
    readonly residual = false,
    inputs = 4,
    gain = 1,
    attention = false,
  ) {
    super();
    const g = (
      cin: number,
      cout: number,
      k: number,
      cfg: { stride?: number; padding?: number; dilation?: number },
    ) => new GatedConv2d(rng, cin, cout, k, cfg, "elu", gain);
    const enc = [
      g(inputs, c, 5, { padding: 2 }),
      g(c, 2 * c, 3, { stride: 2, padding: 1 }),
      g(2 * c, 2 * c, 3, { padding: 1 }),
      g(2 * c, 4 * c, 3, { stride: 2, padding: 1 }),
      g(4 * c, 4 * c, 3, { padding: 1 }),
      ...dilations.map((d) => g(4 * c, 4 * c, 3, { padding: d, dilation: d })),
      g(4 * c, 4 * c, 3, { padding: 1 }),
    ];
    enc.forEach((m, i) => this.enc.push(this.child(`enc${i}`, m)));
    const dec = [
      g(4 * c, 2 * c, 3, { padding: 1 }), // after 2x upsampling
      g(2 * c, 2 * c, 3, { padding: 1 }),
      g(2 * c, c, 3, { padding: 1 }), // after 2x upsampling
      g(c, Math.max(1, c >> 1), 3, { padding: 1 }),
    ];
    dec.forEach((m, i) => this.dec.push(this.child(`dec${i}`, m)));
    this.out = this.child("out", new Conv2d(rng, Math.max(1, c >> 1), 3, 3, { padding: 1 }));
    // A residual stage starts as the identity on its base image, so the GAN term can only
    // nudge a good image instead of pulling a fresh decoder to a constant (mode collapse).
    if (residual) tidy(() => this.out.parameters().forEach((t) => ops.assign(t, ops.zerosLike(t))));
    // Drawn last, so a stage without attention gets the same initial weights as before.
    if (attention) this.merge = this.child("merge", g(8 * c, 4 * c, 3, { padding: 1 }));
  }
  /** base: the image to correct (residual stages only), in [-1,1]; mask [N,1,H,W] (1 = hole),
   * needed by attention stages. */
  forward(x: Tensor, base?: Tensor, mask?: Tensor): Tensor {
    let h = x;
    for (const m of this.enc) h = m.forward(h);
    if (this.merge) {
      if (!mask) throw new Error("purifier: an attention stage needs the hole mask");
      // A bottleneck position is a hole if any pixel under it is: only fully known positions
      // lend features.
      const hole = ops.maxPool2d(mask, { kernel: 4, stride: 4 });
      h = this.merge.forward(ops.concat([h, contextualAttention(h, hole)], 1));
    }
    h = ops.upsampleNearest(h, 2);
    h = this.dec[1].forward(this.dec[0].forward(h));
    h = ops.upsampleNearest(h, 2);
    h = this.dec[3].forward(this.dec[2].forward(h));
    if (!this.residual) return ops.tanh(this.out.forward(h));
    if (!base) throw new Error("purifier: a residual stage needs its base image");
    return ops.clamp(ops.add(base, this.out.forward(h)), -1, 1);
  }
}

export interface PurifierOutput {
  /** Coarse and refined predictions in [0,1] (whole image, not composited). */
  coarse: Tensor;
  fine: Tensor;
}

export class Purifier extends Module {
  readonly width: number;
  readonly prefill: PrefillKind;
  readonly coarse: Stage;
  readonly refine: Stage;
  readonly denoise: PurifierDenoise | null;
  readonly detachCoarse: boolean;
  readonly attention: boolean;
  constructor(o: PurifierOptions = {}) {
    super();
    this.attention = o.attention ?? false;
    this.detachCoarse = o.detachCoarse ?? false;
    this.width = o.width ?? 16;
    this.prefill = o.prefill ?? "zeros";
    this.denoise = o.denoise ?? null;
    if (this.denoise && !(this.denoise.blur > 0 && this.denoise.reference > 0)) {
      throw new Error(
        `purifier: denoise needs blur > 0 and reference > 0, got ${JSON.stringify(this.denoise)}`,
      );
    }
    if (this.denoise && this.prefill === "zeros") {
      throw new Error("purifier: denoise fills the holes from denoised pixels and needs a prefill");
    }
    const rng = new InitRng(o.seed ?? 0);
    const dil = o.dilations ?? [2, 4, 8];
    // One more input channel, the noise map, when the level is used.
    const map = this.denoise ? 1 : 0;
    this.coarse = this.child(
      "coarse",
      new Stage(rng, this.width, dil, this.prefill !== "zeros", 4 + map, o.gatedGain ?? 1),
    );
    // The refine stage sees the pasted image and the coarse one (7 channels with the mask).
    this.refine = this.child(
      "refine",
      new Stage(rng, this.width, dil, true, 7 + map, o.gatedGain ?? 1, this.attention),
    );
  }

  /** x: transformed image in [0,1] [N,3,H,W] (H, W divisible by 4); mask [N,1,H,W], 1 = hole;
   * noise: each example's noise sigma [N,1,1,1] as the transform reports it (absent: none). */
  run(x: Tensor, mask: Tensor, noise?: Tensor): PurifierOutput {
    if (x.ndim !== 4 || x.shape[1] !== 3 || x.shape[2] % 4 || x.shape[3] % 4) {
      throw new Error(
        `purifier: input must be [N,3,H,W] with H and W divisible by 4, got [${x.shape}]`,
      );
    }
    const [n, , h, w] = x.shape;
    mask.assertShape([n, 1, h, w], "purifier: mask");
    const keepM = ops.sub(1, mask);
    // [0,1] -> [-1,1], holes zeroed, mask as a 4th channel.
    const xin = ops.mul(ops.affine(x, 2, -1), keepM);
    // The noise map (FFDNet): each example's level as a share of the reference, as a channel.
    const level = this.denoise ? noiseShare(noise, n, this.denoise.reference) : null;
    const extra = level ? [ops.expand(level, [n, 1, h, w])] : [];
    // The holes are filled from the known pixels denoised in proportion to the level (none
    // without noise: skipped); the known pixels keep their own values. (Blurring them too, the
    // quick run 10 raised the whole-image PSNR under RT2 by 3 dB but the classifier lost a
    // sixth of its accuracy on the purified images: docs/DSL.md.)
    const coarse = this.prefill !== "zeros"
      ? (() => {
        const start = this.denoise && noise
          ? ops.add(
            xin,
            ops.mul(
              prefillOf(this.prefill, denoiseKnown(xin, mask, level!, this.denoise.blur), mask),
              mask,
            ),
          )
          : prefillOf(this.prefill, xin, mask);
        return this.coarse.forward(ops.concat([start, mask, ...extra], 1), start);
      })()
      : this.coarse.forward(ops.concat([xin, mask, ...extra], 1));
    // The refine stage sees DeepFillv2's pasted image (known pixels from the input, holes from
    // the coarse guess) beside the coarse image. It corrects the pasted image, or, after a
    // prefill, the coarse image itself (its known pixels start as the input's): it then starts
    // as the coarse output, and under RT2 it keeps the coarse stage's denoising of the known
    // pixels (correcting the pasted noisy pixels instead, it ended 0.3 dB below the coarse
    // image; seeing only the coarse image, 4 channels, it did not learn at all in one run).
    const seen = this.detachCoarse && this.training ? ops.detach(coarse) : coarse;
    const pasted = ops.add(xin, ops.mul(seen, mask));
    const base = this.prefill === "zeros" ? pasted : seen;
    const fine = this.refine.forward(ops.concat([pasted, seen, mask, ...extra], 1), base, mask);
    return { coarse: ops.affine(coarse, 0.5, 0.5), fine: ops.affine(fine, 0.5, 0.5) };
  }

  /** The purified image in [0,1] (refined output over the whole image). */
  forward(x: Tensor, mask?: Tensor): Tensor {
    const m = mask ?? ops.zeros([x.shape[0], 1, x.shape[2], x.shape[3]]);
    return this.run(x, m).fine;
  }
}

/** Each example's noise level over the reference, in [0,1], [N,1,1,1] (zeros without noise). */
function noiseShare(noise: Tensor | undefined, n: number, reference: number): Tensor {
  if (!noise) return ops.zeros([n, 1, 1, 1]);
  noise.assertShape([n, 1, 1, 1], "purifier: noise level");
  return ops.clamp(ops.scale(noise, 1 / reference), 0, 1);
}

/** The classical fill the coarse stage corrects, in [-1,1] (xin has its holes zeroed). */
function prefillOf(kind: Exclude<PrefillKind, "zeros">, xin: Tensor, mask: Tensor): Tensor {
  if (kind === "harmonic") {
    return ops.harmonicFill(pushPullFill(xin, mask), mask, {
      iterations: PREFILL_SOR_ITERATIONS,
      omega: PREFILL_SOR_OMEGA,
    });
  }
  return pushPullFill(xin, mask, PREFILL_SWEEPS, kind === "multigrid" ? PREFILL_LEVEL_SWEEPS : 0);
}
