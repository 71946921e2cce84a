// The classical inpainting baselines (runtime/metrics/fill.ts) on small hand-checkable inputs.

import { assert, rng } from "./helpers/check.ts";
import { blurDiffusionFill, blurKnown, diffusionFill, meanFill } from "../runtime/metrics/fill.ts";

const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

Deno.test("mean fill: holes get the per-image, per-channel mean of the known pixels only", () => {
  // 2 images, 2 channels, 2x2: image 0 has one hole, image 1 has none known.
  const image = Float32Array.from([
    ...[0.1, 0.2, 0.3, 999], // image 0, channel 0 (pixel 3 is a hole with garbage in it)
    ...[0.5, 0.5, 0.8, -7], //  image 0, channel 1
    ...[1, 2, 3, 4], //         image 1, channel 0 (all holes)
    ...[5, 6, 7, 8],
  ]);
  const mask = Float32Array.from([0, 0, 0, 1, 1, 1, 1, 1]);
  const out = meanFill(image, mask, [2, 2, 2, 2]);
  near(out[3], (0.1 + 0.2 + 0.3) / 3, 1e-7, "channel 0");
  near(out[7], 0.6, 1e-7, "channel 1");
  assert.deepEqual([...out.subarray(0, 3)], [...image.subarray(0, 3)], "known pixels kept");
  assert.deepEqual([...out.subarray(8)], new Array(8).fill(0.5), "no known pixel: 0.5");
  assert.throws(() => meanFill(image, mask, [2, 2, 2, 3]), /needs 24 image and 12 mask values/);
});

Deno.test("diffusion fill: constants stay constant, ramps are recovered, one sweep by hand", () => {
  const h = 9, w = 10, plane = h * w, r = rng(7);
  // Holes: a 3x3 interior block, a 2x2 block in a corner and a border strip.
  const mask = new Float32Array(plane);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if ((y >= 3 && y < 6 && x >= 4 && x < 7) || (y < 2 && x < 2) || (y === 8 && x >= 6)) {
        mask[y * w + x] = 1;
      }
    }
  }
  // A constant image with garbage in the holes fills to the constant.
  const flat = Float32Array.from({ length: plane }, (_, p) => (mask[p] ? 10 * r() : 0.37));
  for (const v of diffusionFill(flat, mask, [1, 1, h, w])) near(v, 0.37, 1e-6, "constant");
  // A linear ramp is harmonic, so an interior hole converges to the ramp itself.
  const ramp = (p: number) => 0.05 * (p % w) + 0.03 * Math.floor(p / w);
  const inner = mask.map((m, p) => (m && p >= 3 * w && p < 6 * w ? 1 : 0));
  const img = Float32Array.from({ length: plane }, (_, p) => (inner[p] ? 0 : ramp(p)));
  const filled = diffusionFill(img, inner, [1, 1, h, w], 400);
  for (let p = 0; p < plane; p++) near(filled[p], ramp(p), 1e-5, `ramp at ${p}`);
  // One Jacobi sweep on a 3x3 image whose centre and right-middle pixels are holes: each takes
  // the mean of its neighbours from the mean fill (m), computed by hand.
  const tiny = Float32Array.from([0.1, 0.2, 0.3, 0.4, 0, 0, 0.7, 0.8, 0.9]);
  const hole = Float32Array.from([0, 0, 0, 0, 1, 1, 0, 0, 0]);
  const m = (0.1 + 0.2 + 0.3 + 0.4 + 0.7 + 0.8 + 0.9) / 7;
  const one = diffusionFill(tiny, hole, [1, 1, 3, 3], 1);
  near(one[4], (0.2 + 0.8 + 0.4 + m) / 4, 1e-6, "centre");
  near(one[5], (0.3 + 0.9 + m) / 3, 1e-6, "border pixel, 3 neighbours");
  assert.deepEqual(diffusionFill(tiny, hole, [1, 1, 3, 3], 0), meanFill(tiny, hole, [1, 1, 3, 3]));
  // Known pixels are fixed; two images and channels are independent; deterministic.
  const two = Float32Array.from({ length: 2 * 3 * plane }, () => r());
  const mask2 = Float32Array.from([...mask, ...inner]);
  const a = diffusionFill(two, mask2, [2, 3, h, w], 7);
  assert.deepEqual(a, diffusionFill(two, mask2, [2, 3, h, w], 7));
  for (let j = 0; j < a.length; j++) {
    const p = j % plane, i = Math.floor(j / (3 * plane));
    if (!mask2[i * plane + p]) assert.equal(a[j], two[j]);
  }
  const single = diffusionFill(two.subarray(4 * plane, 5 * plane), inner, [1, 1, h, w], 7);
  assert.deepEqual(a.subarray(4 * plane, 5 * plane), single);
});

Deno.test("blur of the known pixels: normalised over known pixels, holes untouched", () => {
  const r = rng(8);
  const h = 12, w = 12, plane = h * w;
  const mask = Float32Array.from({ length: plane }, (_, p) => (p % 5 === 0 ? 1 : 0));
  // Constant known pixels stay constant whatever the holes hold; holes are copied.
  const flat = Float32Array.from({ length: plane }, (_, p) => (mask[p] ? 5 * r() : 0.6));
  const b = blurKnown(flat, mask, [1, 1, h, w]);
  for (let p = 0; p < plane; p++) near(b[p], mask[p] ? flat[p] : 0.6, 1e-6, `pixel ${p}`);
  // By hand on 3x3 (sigma 1, radius 2 covers the whole image), top-left pixel with the centre
  // a hole: weights exp(-(dx^2+dy^2)/2) over the 8 known pixels.
  const tiny = Float32Array.from([0.1, 0.2, 0.3, 0.4, 99, 0.6, 0.7, 0.8, 0.9]);
  const hole = Float32Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0]);
  let s = 0, sw = 0;
  for (let p = 0; p < 9; p++) {
    if (hole[p]) continue;
    const k = Math.exp(-((p % 3) ** 2 + Math.floor(p / 3) ** 2) / 2);
    s += k * tiny[p];
    sw += k;
  }
  const bt = blurKnown(tiny, hole, [1, 1, 3, 3]);
  near(bt[0], s / sw, 1e-7, "top-left");
  assert.equal(bt[4], tiny[4]);
  // Noise on a constant image: the blur shrinks the error, and blur + diffusion fills the
  // holes near the constant.
  const noisy = Float32Array.from({ length: plane }, () => 0.5 + 0.2 * (r() - 0.5));
  const err = (x: Float32Array) =>
    x.reduce((a, v, p) => a + (mask[p] ? 0 : (v - 0.5) ** 2), 0) / plane;
  const blurred = blurKnown(noisy, mask, [1, 1, h, w]);
  assert.ok(err(blurred) < err(noisy) / 3, `blur: ${err(blurred)} vs ${err(noisy)}`);
  const filled = blurDiffusionFill(noisy, mask, [1, 1, h, w]);
  for (let p = 0; p < plane; p++) if (mask[p]) near(filled[p], 0.5, 0.05, `hole ${p}`);
  for (let p = 0; p < plane; p++) if (!mask[p]) assert.equal(filled[p], blurred[p]);
});
