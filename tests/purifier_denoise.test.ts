// The purifier told each example's noise level (purifier.prefillBlur / PurifierDenoise): the
// transforms report the level, the known pixels are blurred in proportion to it before the
// fill, and both stages see it as a channel. Checked against float64 references (the blur, the
// classical baselines of runtime/metrics/fill.ts) and finite differences.

import { assert, checkOp, gpu, input, rng } from "./helpers/check.ts";
import { denoiseKnown, denoiseRadius } from "../runtime/models/prefill.ts";
import { Purifier } from "../runtime/models/mod.ts";
import { blurDiffusionFill, diffusionFill } from "../runtime/metrics/fill.ts";
import { combineNoise, rt1, rt2, trainingNoiseGate } from "../runtime/transforms.ts";
import { Rng } from "../runtime/rng.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { parseSpec, SpecError } from "../dsl/spec.ts";
import { purifierOptions, transformSteps } from "../dsl/compile.ts";

await gpu();

/** float64 reference of denoiseKnown: normalised Gaussian convolution over the known pixels in
 * the window inside the image, blended by the example's level; holes 0. */
function denoiseRef(
  x: Float64Array,
  hole: ArrayLike<number>,
  level: ArrayLike<number>,
  [n, c, h, w]: number[],
  sigma: number,
): Float64Array {
  const r = denoiseRadius(sigma);
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      const o = (i * c + ch) * h * w;
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) {
          if (hole[i * h * w + y * w + xx]) continue;
          let s = 0, sw = 0;
          for (let dy = -r; dy <= r; dy++) {
            for (let dx = -r; dx <= r; dx++) {
              const yy = y + dy, xc = xx + dx;
              if (yy < 0 || yy >= h || xc < 0 || xc >= w || hole[i * h * w + yy * w + xc]) continue;
              const k = Math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma));
              s += k * x[o + yy * w + xc];
              sw += k;
            }
          }
          const v = x[o + y * w + xx];
          out[o + y * w + xx] = v + level[i] * (s / sw - v);
        }
      }
    }
  }
  return out;
}

Deno.test("denoiseKnown: float64 normalised blur blended by each example's level; finite differences", async () => {
  const r = rng(31);
  for (const [shape, sigma] of [[[2, 3, 9, 10], 1], [[3, 2, 12, 7], 1.7]] as const) {
    const [n, , h, w] = shape;
    const hole = Array.from({ length: n * h * w }, () => (r() < 0.3 ? 1 : 0));
    const level = Array.from({ length: n }, (_, i) => [0.35, 1, 0][i]);
    const m = Tensor.fromData(Float32Array.from(hole), [n, 1, h, w]);
    const lv = Tensor.fromData(Float32Array.from(level), [n, 1, 1, 1]);
    // The input's holes are zero, as the purifier's are.
    const zeroHoles = (v: Float64Array) => {
      const o = Float64Array.from(v);
      for (let k = 0; k < o.length; k++) {
        const i = Math.floor(k / (o.length / n)), p = k % (h * w);
        if (hole[i * h * w + p]) o[k] = 0;
      }
      return o;
    };
    await checkOp(
      `denoiseKnown [${shape}] sigma ${sigma}`,
      ([x]) => denoiseKnown(ops.mul(x, ops.sub(1, m)), m, lv, sigma),
      ([x]) => denoiseRef(zeroHoles(x), hole, level, [...shape], sigma),
      [input(shape, r, 0, 1)],
    );
  }
});

/** Images in (0,1) that vary smoothly, as CIFAR images mostly do. */
function smooth(n: number, h: number, w: number): Float32Array {
  const v = new Float32Array(n * 3 * h * w);
  for (let i = 0; i < v.length; i++) {
    const x = i % w, y = Math.floor(i / w) % h, c = Math.floor(i / (h * w)) % 3;
    const e = Math.floor(i / (3 * h * w));
    v[i] = 0.5 + 0.35 * Math.sin((x + 2 * y) * 0.15 + c + e);
  }
  return v;
}

Deno.test("purifier told the noise level starts as the classical fills: holes of blur + diffusion at full noise, of diffusion without; known pixels kept", async () => {
  await tidyAsync(async () => {
    const shape = [3, 3, 32, 32];
    const x = Tensor.fromData(smooth(3, 32, 32), shape);
    const p = new Purifier({
      width: 4,
      dilations: [2],
      seed: 5,
      prefill: "harmonic",
      gatedGain: 4,
      denoise: { blur: 1, reference: 0.25 },
    });
    p.eval();
    const o = { sigma: 0.25, missingRate: 0.25, blockSize: 4 };
    const noisy = rt2(new Rng(12), x, o);
    assert.deepEqual(await noisy.noise!.data(), new Float32Array(3).fill(0.25));
    const img = await noisy.image.data(), hole = await noisy.mask.data();
    const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
      return d;
    };
    const isHole = (k: number) => hole[Math.floor(k / 3072) * 1024 + (k % 1024)] > 0.5;
    // Known pixels as the baseline's to float32 rounding; holes near its converged fill (the
    // harmonic prefill runs 16 SOR iterations: a mean 2e-3 from the limit, 2e-2 at worst).
    const near = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
      let known = 0, sum = 0, worst = 0, holes = 0;
      for (let k = 0; k < got.length; k++) {
        const d = Math.abs(got[k] - want[k]);
        if (!isHole(k)) known = Math.max(known, d);
        else [sum, worst, holes] = [sum + d, Math.max(worst, d), holes + 1];
      }
      assert.ok(known < 1e-5, `${what}: known pixels ${known} apart`);
      assert.ok(sum / holes < 4e-3 && worst < 3e-2, `${what}: holes ${sum / holes}, ${worst}`);
    };
    // The holes of blur + diffusion, the known pixels of the input as they are.
    const want = blurDiffusionFill(img, hole, shape as [number, number, number, number], 1600)
      .map((v, k) => (isHole(k) ? v : img[k]));
    const out = p.run(noisy.image, noisy.mask, noisy.noise);
    const [coarse, fine] = [await out.coarse.data(), await out.fine.data()];
    assert.deepEqual(coarse, fine, "the refine stage starts as the coarse image");
    near(fine, want, "full noise against blur + diffusion's holes");
    // Told nothing (or level 0), it is the diffusion fill of the same noisy pixels.
    const plain = diffusionFill(img, hole, shape as [number, number, number, number], 1600);
    const none = await p.run(noisy.image, noisy.mask).fine.data();
    near(none, plain, "no level against diffusion fill");
    assert.ok(maxDiff(want, plain) > 0.1, "the two fills hardly differ");
    const zero = await p.run(noisy.image, noisy.mask, ops.zeros([3, 1, 1, 1])).fine.data();
    assert.deepEqual(zero, none, "level 0 is no denoising, bit for bit");
    // A level above the reference gets the whole blur and no more.
    const over = await p.run(noisy.image, noisy.mask, ops.full([3, 1, 1, 1], 0.5)).fine.data();
    assert.deepEqual(over, fine);
    // The level is a channel of both stages (5 and 8 inputs): with the output layers no longer
    // zero, a constant image (which the blur leaves as it is) comes out differently per level.
    const sd = p.stateDict();
    assert.equal(sd.get("coarse.enc0.conv.weight")?.shape[1], 5);
    assert.equal(sd.get("refine.enc0.conv.weight")?.shape[1], 8);
    for (const [k, t] of sd) if (k.includes(".out.")) ops.assign(t, ops.full(t.shape, 0.01));
    const flat = ops.full(shape, 0.5);
    const at = async (v: number) =>
      await p.run(flat, noisy.mask, ops.full([3, 1, 1, 1], v)).fine.data();
    const d = maxDiff(await at(0.05), await at(0.2));
    assert.ok(d > 1e-4, `the output ignores the level (${d})`);
    p.dispose();
  });
});

Deno.test("noise levels: RT2 reports sigma times each example's gate; chained noises add in quadrature; RT1 reports none", async () => {
  await tidyAsync(async () => {
    const x = Tensor.fromData(smooth(4, 8, 8), [4, 3, 8, 8]);
    const o = { sigma: 0.2, missingRate: 0.25, blockSize: 4 };
    assert.equal(rt1(new Rng(1), x, o).noise, undefined);
    const gate = trainingNoiseGate({ scaled: 1 })!;
    const r = rt2(new Rng(2), x, o, gate);
    const factors = await gate(new Rng(99), 4).data();
    const got = await r.noise!.data();
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(got[i] - 0.2 * factors[i]) < 1e-7);
    // The same draw as before the level existed: noise, gate, then blocks.
    const q = new Rng(2);
    const noise = q.normal([4, 3, 8, 8], 0, 0.2);
    const f = q.uniform([4, 1, 1, 1]);
    const image = ops.clamp(ops.add(x, ops.mul(noise, f)), 0, 1);
    const masked = rt1(q, image, o);
    assert.deepEqual(await r.image.data(), await masked.image.data());
    const c = await combineNoise(ops.full([1, 1, 1, 1], 0.3), ops.full([1, 1, 1, 1], 0.4))!.data();
    assert.ok(Math.abs(c[0] - 0.5) < 1e-6);
    // Through the DSL: noise 0.3 then RT2 0.4 (fixed levels), RT1 keeps the level.
    const spec = parseSpec({
      name: "levels",
      classifier: { arch: "smallcnn" },
      transform: [
        { kind: "noise", sigma: 0.3 },
        { kind: "rt2", sigma: 0.4, missingRate: 0.25, blockSize: 4 },
        { kind: "rt1", missingRate: 0.25, blockSize: 4 },
      ],
    });
    let s = { image: x, mask: ops.zeros([4, 1, 8, 8]) } as {
      image: Tensor;
      mask: Tensor;
      noise?: Tensor;
    };
    for (const step of transformSteps(spec, new Rng(3), null)) s = step.run(s);
    for (const v of await s.noise!.data()) assert.ok(Math.abs(v - 0.5) < 1e-6, `${v}`);
  });
});

Deno.test("spec: prefillBlur in classifier pixels, scaled to the purifier's size; off without noise or at 0; needs a prefill", () => {
  const purifier = { kind: "deepfill", width: 4, prefill: "harmonic", prefillBlur: 1 };
  const spec = parseSpec({
    name: "blur",
    classifier: { arch: "smallcnn" },
    purifierSize: 64,
    purifier,
    transform: [{ kind: "rt2", sigma: 0.25, missingRate: 0.25, blockSize: 4 }],
  });
  assert.deepEqual(purifierOptions(spec).denoise, { blur: 2, reference: 0.25 });
  for (const off of [{ ...purifier, prefillBlur: undefined }, { ...purifier, prefillBlur: 0 }]) {
    assert.equal(purifierOptions(parseSpec({ ...spec, purifier: off })).denoise, undefined);
  }
  // A preset's prefillBlur under a chain without noise: nothing to tell, not an error.
  const rt1Only = parseSpec({
    ...spec,
    transform: [{ kind: "rt1", missingRate: 0.25, blockSize: 4 }],
  });
  assert.equal(purifierOptions(rt1Only).denoise, undefined);
  assert.throws(
    () => parseSpec({ ...spec, purifier: { ...purifier, prefill: "zeros" } }),
    (e: unknown) =>
      e instanceof SpecError &&
      e.issues.some((i) =>
        /^purifier\.prefillBlur: .*set purifier\.prefill .* or prefillBlur to 0/.test(i)
      ),
  );
});
