// Inpainting quality of purifiers under RT1 and RT2, measured instead of eyeballed: the first
// n test images, one fixed draw of masks and noise per transform (keyed by the seed alone, so
// every epoch and every purifier sees the same holes), baselines and purifiers scored with
// PSNR/SSIM/L1 against the clean images (runtime/eval/inpainting.ts).

import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import { Rng } from "../runtime/rng.ts";
import { gatherBatch, type ImageSet } from "../runtime/data/mod.ts";
import type { Purifier } from "../runtime/models/mod.ts";
import {
  type InpaintingCase,
  type InpaintingRow,
  inpaintingRows,
} from "../runtime/eval/inpainting.ts";
import { METRIC_KEYS } from "../runtime/metrics/image.ts";
import { blocksAt, type MaskOptions, rt1, rt2, toPurifierSize } from "../runtime/transforms.ts";
import type { PipelineSpecT } from "./spec.ts";

/** Test images scored: enough for stable means, few enough to cost seconds per epoch. */
export const INPAINTING_IMAGES = 64;
/** Rng streams of the two fixed draws (distinct from every training and evaluation stream). */
const STREAMS = { rt1: 0x1a9a01, rt2: 0x1a9a02 } as const;

export type InpaintingTransform = keyof typeof STREAMS;

export interface InpaintingSettings {
  rt1: MaskOptions;
  rt2: MaskOptions & { sigma: number };
}

export interface InpaintingTable {
  transform: InpaintingTransform;
  settings: MaskOptions & { sigma?: number };
  rows: InpaintingRow[];
}

export interface InpaintingReport {
  /** Test images scored (the first n of the test set). */
  n: number;
  seed: number;
  tables: InpaintingTable[];
  /** Present with a purifierSize: every method ran at this many times the resolution. */
  scale?: number;
}

/** RT1 and RT2 settings from the spec: the mask of its first masking transform and the sigma of
 * its first noisy one; AToP's defaults (25% of 4x4 blocks, sigma 0.25) for what it lacks. */
export function inpaintingSettings(spec: Pick<PipelineSpecT, "transform">): InpaintingSettings {
  const masked = spec.transform.find((t) =>
    t.kind === "rt1" || t.kind === "rt2" || t.kind === "rt3"
  ) as MaskOptions | undefined;
  const noisy = spec.transform.find((t) =>
    (t.kind === "rt2" || t.kind === "rt3" || t.kind === "noise") && t.sigma > 0
  ) as { sigma: number } | undefined;
  const mask = { missingRate: masked?.missingRate ?? 0.25, blockSize: masked?.blockSize ?? 4 };
  return { rt1: mask, rt2: { ...mask, sigma: noisy?.sigma ?? 0.25 } };
}

/** The fixed draw of one transform on `clean` (NCHW floats of n images); with a `scale`
 * (purifierSize) on the clean images brought up to that resolution, blocks scaled with them. */
export async function drawCase(
  kind: InpaintingTransform,
  settings: InpaintingSettings,
  clean: Float32Array,
  shape: readonly [number, number, number, number],
  seed: number,
  scale = 1,
): Promise<InpaintingCase> {
  return await tidyAsync(async () => {
    const rng = new Rng(seed, STREAMS[kind]);
    const x = toPurifierSize(Tensor.fromData(clean, [...shape]), shape[2] * scale);
    const t = kind === "rt1"
      ? rt1(rng, x, blocksAt(settings.rt1, scale))
      : rt2(rng, x, blocksAt(settings.rt2, scale));
    return {
      clean,
      image: await t.image.data(),
      mask: await t.mask.data(),
      shape: [...x.shape] as [number, number, number, number],
      sigma: kind === "rt2" ? settings.rt2.sigma : 0,
      scale,
    };
  });
}

export interface InpaintingEvalOptions {
  settings: InpaintingSettings;
  test: ImageSet;
  purifiers: readonly { label: string; purifier: Purifier }[];
  seed: number;
  n?: number;
  /** purifierSize / image size (default 1). */
  scale?: number;
}

/** One table per transform: baselines, then each purifier's coarse and refined rows. */
export async function evaluateInpainting(o: InpaintingEvalOptions): Promise<InpaintingReport> {
  const n = Math.min(o.n ?? INPAINTING_IMAGES, o.test.labels.length);
  const { x } = gatherBatch(o.test, Array.from({ length: n }, (_, i) => i));
  const shape = [n, ...o.test.shape] as [number, number, number, number];
  const tables: InpaintingTable[] = [];
  for (const kind of ["rt1", "rt2"] as const) {
    const c = await drawCase(kind, o.settings, x, shape, o.seed, o.scale ?? 1);
    tables.push({
      transform: kind,
      settings: o.settings[kind],
      rows: await inpaintingRows(c, o.purifiers),
    });
  }
  return { n, seed: o.seed, tables, ...(o.scale && o.scale > 1 ? { scale: o.scale } : {}) };
}

const fmt = (v: number | null, digits: number) => v === null ? "-" : v.toFixed(digits);
const DIGITS: Record<(typeof METRIC_KEYS)[number], number> = {
  psnr: 2,
  ssim: 3,
  l1: 4,
  psnr_holes: 2,
  ssim_holes: 3,
  l1_holes: 4,
};

/** One log line: each table's hole PSNR per row (e.g. at the end of an epoch). */
export function inpaintingSummary(r: InpaintingReport): string {
  return r.tables.map((t) =>
    `${t.transform.toUpperCase()} hole PSNR ` +
    t.rows.map((x) => `${x.method} ${fmt(x.psnr_holes, 2)}`).join(", ")
  ).join("; ");
}

/** The "Inpainting quality (RT1 / RT2)" section of report.md. */
export function inpaintingMarkdown(r: InpaintingReport): string[] {
  const settings = r.tables.map(({ transform, settings: s }) => {
    const pct = +(s.missingRate * 100).toFixed(2);
    const noise = s.sigma !== undefined ? `, noise sigma ${s.sigma}` : "";
    return `${transform.toUpperCase()}: ${pct}% of ${s.blockSize}x${s.blockSize} blocks${noise}`;
  }).join("; ");
  const lines = [
    "## Inpainting quality (RT1 / RT2)",
    "",
    `The first ${r.n} test images, one fixed draw per transform (seed ${r.seed}): ${settings}.`,
    "Every row is scored against the clean images, over the whole image and over the holes alone:",
    "PSNR in dB (data range 1), SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, valid",
    "windows, mean over channels; holes: windows centred on a hole) and L1 (mean absolute error).",
    "Baselines: the transformed image itself; holes filled with the image's mean over its known",
    "pixels; diffusion fill (repeated 4-neighbour averaging, known pixels fixed); for RT2, a",
    "Gaussian blur (sigma 1) of the known pixels followed by diffusion fill.",
    ...(r.scale
      ? [
        `With purifierSize: masks, noise and every method at ${r.scale}x the resolution, then`,
        "the area downsampling the classifier sees; scored at the classifier's resolution (the",
        `blur's sigma and the mask blocks scaled by ${r.scale}).`,
      ]
      : []),
    "",
    "| transform | method | PSNR | SSIM | L1 | PSNR holes | SSIM holes | L1 holes |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const t of r.tables) {
    for (const row of t.rows) {
      const cells = METRIC_KEYS.map((k) => fmt(row[k], DIGITS[k]));
      lines.push(`| ${t.transform.toUpperCase()} | ${row.method} | ${cells.join(" | ")} |`);
    }
  }
  return lines;
}
