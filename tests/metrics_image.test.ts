// PSNR, SSIM and L1 (runtime/metrics/image.ts) against direct float64 formulas.

import { assert, rng } from "./helpers/check.ts";
import { imageQualityBatch, psnrOfMse, ssimMap } from "../runtime/metrics/image.ts";

const close = (a: number | null, b: number, tol = 1e-9, what = "") =>
  assert.ok(
    a !== null && Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)),
    `${what}: ${a} vs ${b}`,
  );

function randomImages(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => r());
}

/** The SSIM of one window directly from Wang et al.'s formula with an explicit 2-D Gaussian. */
function ssimWindow(x: Float32Array, y: Float32Array, w: number, cy: number, cx: number): number {
  let sw = 0;
  const wt = (i: number, j: number) => Math.exp(-(i * i + j * j) / (2 * 1.5 * 1.5));
  for (let i = -5; i <= 5; i++) for (let j = -5; j <= 5; j++) sw += wt(i, j);
  let mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
  for (let i = -5; i <= 5; i++) {
    for (let j = -5; j <= 5; j++) {
      const k = wt(i, j) / sw, a = x[(cy + i) * w + cx + j], b = y[(cy + i) * w + cx + j];
      mx += k * a;
      my += k * b;
      xx += k * a * a;
      yy += k * b * b;
      xy += k * a * b;
    }
  }
  const c1 = 1e-4, c2 = 9e-4;
  const vx = xx - mx * mx, vy = yy - my * my, cxy = xy - mx * my;
  return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
}

Deno.test("PSNR of a known MSE; L1 and PSNR match direct sums", () => {
  const shape = [2, 3, 11, 12] as const;
  const d = 3 * 11 * 12, n = 2 * d;
  const clean = randomImages(n, rng(1));
  // Errors of exactly +-0.125 everywhere: MSE 1/64, PSNR 10 log10(64), L1 0.125.
  const x = clean.map((v, i) => v + (i % 2 ? 0.125 : -0.125));
  const q = imageQualityBatch(x, clean, null, shape);
  for (const im of q.perImage) {
    close(im.psnr, 10 * Math.log10(64), 1e-6, "psnr");
    close(im.l1, 0.125, 1e-6, "l1");
    assert.equal(im.psnr_holes, null);
    assert.equal(im.l1_holes, null);
  }
  // Random errors: compare with float64 sums over the float32 values.
  const r = rng(2);
  const y = clean.map((v) => v + (r() - 0.5) * 0.3);
  const qy = imageQualityBatch(y, clean, null, shape);
  for (let i = 0; i < 2; i++) {
    let sq = 0, ab = 0;
    for (let k = i * d; k < (i + 1) * d; k++) {
      sq += (y[k] - clean[k]) ** 2;
      ab += Math.abs(y[k] - clean[k]);
    }
    close(qy.perImage[i].psnr, -10 * Math.log10(sq / d), 1e-12, "psnr");
    close(qy.perImage[i].l1, ab / d, 1e-12, "l1");
  }
  close(qy.mean.psnr, (qy.perImage[0].psnr + qy.perImage[1].psnr) / 2, 1e-12, "mean psnr");
  assert.equal(psnrOfMse(0), 100);
});

Deno.test("hole-only metrics use hole pixels alone and ignore the known ones", () => {
  const shape = [3, 3, 12, 12] as const;
  const plane = 144, n = 3 * 3 * plane;
  const r = rng(3);
  const clean = randomImages(n, r);
  const mask = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    mask[p] = (p % 7 === 0) ? 1 : 0; // image 0: a few holes
    mask[plane + p] = p < 72 ? 1 : 0; // image 1: top half
    // image 2: no holes
  }
  const x = clean.map((v) => v + (r() - 0.5) * 0.2);
  const q = imageQualityBatch(x, clean, mask, shape);
  for (const i of [0, 1]) {
    let sq = 0, ab = 0, cnt = 0;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < plane; p++) {
        if (!mask[i * plane + p]) continue;
        const k = (i * 3 + c) * plane + p;
        sq += (x[k] - clean[k]) ** 2;
        ab += Math.abs(x[k] - clean[k]);
        cnt++;
      }
    }
    close(q.perImage[i].psnr_holes, -10 * Math.log10(sq / cnt), 1e-12, "psnr_holes");
    close(q.perImage[i].l1_holes, ab / cnt, 1e-12, "l1_holes");
  }
  assert.equal(q.perImage[2].l1_holes, null);
  // The batch mean of a hole metric skips the image without holes.
  close(q.mean.l1_holes, (q.perImage[0].l1_holes! + q.perImage[1].l1_holes!) / 2, 1e-12, "mean");
  // Changing known pixels leaves the hole metrics alone, and changes the whole-image ones.
  const x2 = x.slice();
  for (let i = 0; i < 3; i++) {
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < plane; p++) if (!mask[i * plane + p]) x2[(i * 3 + c) * plane + p] = 0.5;
    }
  }
  const q2 = imageQualityBatch(x2, clean, mask, shape);
  for (const i of [0, 1]) {
    assert.equal(q2.perImage[i].l1_holes, q.perImage[i].l1_holes);
    assert.equal(q2.perImage[i].psnr_holes, q.perImage[i].psnr_holes);
    assert.notEqual(q2.perImage[i].l1, q.perImage[i].l1);
  }
});

Deno.test("SSIM is 1 for identical images and matches Wang et al.'s formula window by window", () => {
  const r = rng(4);
  // Identical images: SSIM 1 exactly (up to rounding), whole and holes.
  const a = randomImages(2 * 3 * 16 * 16, r);
  const mask = Float32Array.from({ length: 2 * 256 }, (_, p) => (p % 5 === 0 ? 1 : 0));
  const same = imageQualityBatch(a, a, mask, [2, 3, 16, 16]);
  for (const im of same.perImage) {
    close(im.ssim, 1, 1e-12, "ssim");
    close(im.ssim_holes, 1, 1e-12, "ssim_holes");
    assert.equal(im.psnr, 100);
  }
  // One 11x11 window: the image's SSIM is that window's.
  const x = randomImages(121, r), y = x.map((v) => v * 0.7 + 0.2 * r());
  const m = ssimMap(x, y, 11, 11);
  assert.equal(m.length, 1);
  close(m[0], ssimWindow(x, y, 11, 5, 5), 1e-12, "11x11");
  // A 2-channel 13x14 image: a 3x4 map per channel, averaged over positions and channels;
  // holes-only averages the map over hole centres.
  const h = 13, w = 14, plane = h * w;
  const x2 = randomImages(2 * plane, r), y2 = x2.map((v) => Math.min(1, v + 0.3 * r()));
  const hole = Float32Array.from({ length: plane }, (_, p) => (p % 3 === 0 ? 1 : 0));
  const q = imageQualityBatch(x2, y2, hole, [1, 2, h, w]).perImage[0];
  let sum = 0, sumH = 0, cntH = 0;
  for (let c = 0; c < 2; c++) {
    const xc = x2.subarray(c * plane, (c + 1) * plane),
      yc = y2.subarray(c * plane, (c + 1) * plane);
    for (let cy = 5; cy < h - 5; cy++) {
      for (let cx = 5; cx < w - 5; cx++) {
        const s = ssimWindow(xc, yc, w, cy, cx);
        sum += s;
        if (hole[cy * w + cx]) {
          sumH += s;
          cntH++;
        }
      }
    }
  }
  close(q.ssim, sum / (2 * 3 * 4), 1e-12, "ssim");
  close(q.ssim_holes, sumH / cntH, 1e-12, "ssim_holes");
  assert.ok(q.ssim < 0.99, "different images must not score 1");
  assert.throws(() => ssimMap(x, y, 10, 12), /at least 11x11/);
  assert.throws(() => imageQualityBatch(x, y, null, [1, 3, 11, 11]), /needs 363 values/);
});
