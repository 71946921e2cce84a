// Inpainting quality as a table: the purifier's coarse and refined outputs beside classical
// baselines on the same transformed images, every row scored against the clean images with
// runtime/metrics/image.ts. The caller draws the masks and noise (runtime/transforms.ts).

import { Tensor, tidyAsync } from "../tensor.ts";
import { noGrad } from "../autograd.ts";
import * as ops from "../ops/mod.ts";
import type { Purifier } from "../models/purifier.ts";
import { type ImageQuality, imageQualityBatch, type Nchw } from "../metrics/image.ts";
import { blurDiffusionFill, diffusionFill, fillSettingsAt, meanFill } from "../metrics/fill.ts";

/** Transformed images with their masks and the clean images they came from (NCHW, [0,1]). */
export interface InpaintingCase {
  clean: Float32Array;
  image: Float32Array;
  /** [N,1,H,W], 1 = hole. */
  mask: Float32Array;
  shape: Nchw;
  /** The noise sigma of the known pixels (RT2; 0 or absent for RT1): a noisy case adds the blur
   * + diffusion baseline, and the purifier is told the level. */
  sigma?: number;
  /** image, mask and shape are at this many times the resolution of `clean` (purifierSize):
   * every method works at that size and is scored after the area downsampling the classifier
   * sees. Default 1. */
  scale?: number;
}

/** The mean of each f x f block of NCHW images (what runtime/transforms.ts toClassifierSize
 * does on the GPU), in float64. */
export function areaDownsample(x: ArrayLike<number>, shape: Nchw, f: number): Float64Array {
  const [n, c, h, w] = shape, ho = h / f, wo = w / f;
  const out = new Float64Array(n * c * ho * wo);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < ho; y++) {
      for (let xo = 0; xo < wo; xo++) {
        let s = 0;
        for (let dy = 0; dy < f; dy++) {
          for (let dx = 0; dx < f; dx++) s += x[(p * h + y * f + dy) * w + xo * f + dx];
        }
        out[(p * ho + y) * wo + xo] = s / (f * f);
      }
    }
  }
  return out;
}

/** Where scores are taken: the clean images' resolution, with the hole mask brought down to it
 * (a pixel is a hole when most of its block is; mask blocks are aligned, so exactly). */
function scoring(c: InpaintingCase): { mask: ArrayLike<number>; shape: Nchw; f: number } {
  const f = c.scale ?? 1;
  if (f === 1) return { mask: c.mask, shape: c.shape, f };
  const [n, ch, h, w] = c.shape;
  const mask = areaDownsample(c.mask, [n, 1, h, w], f).map((v) => v > 0.5 ? 1 : 0);
  return { mask, shape: [n, ch, h / f, w / f], f };
}

export interface InpaintingRow extends ImageQuality {
  method: string;
}

/** The baselines' images, in table order: the transformed image itself, mean fill, diffusion
 * fill, and for noisy inputs blur + diffusion. */
export function baselineImages(c: InpaintingCase): { method: string; images: Float32Array }[] {
  const { sweeps, sigma } = fillSettingsAt(c.scale ?? 1);
  const out = [
    { method: "transformed", images: c.image },
    { method: "mean fill", images: meanFill(c.image, c.mask, c.shape) },
    { method: "diffusion fill", images: diffusionFill(c.image, c.mask, c.shape, sweeps) },
  ];
  if ((c.sigma ?? 0) > 0) {
    out.push({
      method: "blur + diffusion",
      images: blurDiffusionFill(c.image, c.mask, c.shape, sweeps, sigma),
    });
  }
  return out;
}

/** The purifier's coarse and refined images (eval mode, no gradients, in batches). `noise`:
 * each image's noise sigma, or one for all (absent: none). */
export async function purifierImages(
  purifier: Purifier,
  image: Float32Array,
  mask: Float32Array,
  shape: Nchw,
  o: { noise?: ArrayLike<number> | number; batchSize?: number } = {},
): Promise<{ coarse: Float32Array; fine: Float32Array }> {
  const batchSize = o.batchSize ?? 32;
  const perImage = typeof o.noise === "object" ? Float32Array.from(o.noise) : null;
  const [n, c, h, w] = shape, d = c * h * w;
  const coarse = new Float32Array(n * d), fine = new Float32Array(n * d);
  const wasTraining = purifier.training;
  purifier.eval();
  try {
    for (let s = 0; s < n; s += batchSize) {
      const b = Math.min(batchSize, n - s);
      await tidyAsync(async () => {
        const x = Tensor.fromData(image.subarray(s * d, (s + b) * d), [b, c, h, w]);
        const m = Tensor.fromData(mask.subarray(s * h * w, (s + b) * h * w), [b, 1, h, w]);
        const levels = perImage
          ? Tensor.fromData(perImage.subarray(s, s + b), [b, 1, 1, 1])
          : typeof o.noise === "number"
          ? ops.full([b, 1, 1, 1], o.noise)
          : undefined;
        const out = noGrad(() => purifier.run(x, m, levels));
        coarse.set(await out.coarse.data(), s * d);
        fine.set(await out.fine.data(), s * d);
      });
    }
  } finally {
    purifier.train(wasTraining);
  }
  return { coarse, fine };
}

const row = (method: string, images: ArrayLike<number>, c: InpaintingCase): InpaintingRow => {
  const at = scoring(c);
  const seen = at.f === 1 ? images : areaDownsample(images, c.shape, at.f);
  return { method, ...imageQualityBatch(seen, c.clean, at.mask, at.shape).mean };
};

export function baselineRows(c: InpaintingCase): InpaintingRow[] {
  return baselineImages(c).map((b) => row(b.method, b.images, c));
}

/** Rows "<label> coarse" and "<label> refined". */
export async function purifierRows(
  label: string,
  purifier: Purifier,
  c: InpaintingCase,
): Promise<InpaintingRow[]> {
  const out = await purifierImages(purifier, c.image, c.mask, c.shape, { noise: c.sigma });
  return [row(`${label} coarse`, out.coarse, c), row(`${label} refined`, out.fine, c)];
}

/** Baselines, then each purifier's coarse and refined rows. */
export async function inpaintingRows(
  c: InpaintingCase,
  purifiers: readonly { label: string; purifier: Purifier }[],
): Promise<InpaintingRow[]> {
  const rows = baselineRows(c);
  for (const p of purifiers) rows.push(...await purifierRows(p.label, p.purifier, c));
  return rows;
}
