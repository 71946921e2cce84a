import { assert, checkOp, gpu, input, rng } from "./helpers/check.ts";
import { contextualAttention } from "../runtime/models/contextual_attention.ts";
import { Purifier } from "../runtime/models/mod.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import { Rng } from "../runtime/rng.ts";
import { rt1 } from "../runtime/transforms.ts";
import * as ops from "../runtime/ops/mod.ts";
import { grad } from "../runtime/autograd.ts";

await gpu();

/** float64 reference: out[n,:,p] = sum_k softmax_k(s*cos(f_p, f_k) - 1e4*hole_k) f[n,:,k]. */
function attentionRef(n: number, c: number, p: number, scale: number) {
  return ([f, hole]: Float64Array[]) => {
    const out = new Float64Array(n * c * p);
    for (let b = 0; b < n; b++) {
      const at = (ch: number, k: number) => f[(b * c + ch) * p + k];
      const norm = Array.from({ length: p }, (_, k) => {
        let s = 0;
        for (let ch = 0; ch < c; ch++) s += at(ch, k) ** 2;
        return Math.sqrt(s + 1e-8);
      });
      for (let q = 0; q < p; q++) {
        const sc = Array.from({ length: p }, (_, k) => {
          let d = 0;
          for (let ch = 0; ch < c; ch++) d += at(ch, q) * at(ch, k);
          return scale * d / (norm[q] * norm[k]) - 1e4 * hole[b * p + k];
        });
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, v) => a + v, 0);
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let k = 0; k < p; k++) s += (e[k] / z) * at(ch, k);
          out[(b * c + ch) * p + q] = s;
        }
      }
    }
    return out;
  };
}

Deno.test("contextual attention: forward vs float64, backward vs finite differences", async () => {
  const r = rng(11);
  const [n, c, h, w] = [2, 5, 3, 4];
  const f = input([n, c, h, w], r);
  // A fixed hole pattern with known positions in each example, and one example all holes.
  for (
    const [scale, holes] of [
      [10, (b: number, k: number) => (k % 3 === b ? 1 : 0)],
      [3, (b: number, _k: number) => (b === 1 ? 1 : 0)],
    ] as const
  ) {
    const hole = {
      shape: [n, 1, h, w],
      data: Float64Array.from(
        { length: n * h * w },
        (_, i) => holes(Math.floor(i / (h * w)), i % (h * w)),
      ),
      grad: false,
    };
    await checkOp(
      `contextualAttention scale ${scale}`,
      ([x, m]) => contextualAttention(x, m, scale),
      attentionRef(n, c, h * w, scale),
      [f, hole],
      { fwdTol: 2e-4, bwdTol: 3e-3, h: 1e-4 },
    );
  }
});

Deno.test("contextual attention: an all-hole example scores exactly as with no holes", async () => {
  await tidyAsync(async () => {
    // Large, nearly parallel features: cos differences of ~1e-4, which a -1e4 offset in float32
    // (spacing 1e-3) would round away.
    const v = Float32Array.from({ length: 2 * 8 * 6 }, (_, i) => 50 + Math.sin(i) * 0.5);
    const f = Tensor.fromData(v, [2, 8, 2, 3]);
    const allHoles = await contextualAttention(
      f,
      Tensor.fromData(new Float32Array(12).fill(1), [2, 1, 2, 3]),
      1000,
    ).data();
    const noHoles = await contextualAttention(
      f,
      Tensor.fromData(new Float32Array(12), [2, 1, 2, 3]),
      1000,
    ).data();
    assert.deepEqual(allHoles, noHoles);
  });
});

Deno.test("contextual attention: hole positions lend nothing", async () => {
  await tidyAsync(async () => {
    // Position 0 is a hole holding a huge feature; every output must be a mix of known ones.
    const f = Tensor.fromData(Float32Array.from([100, 1, 2, 3, 100, 1, 2, 3]), [1, 2, 2, 2]);
    const hole = Tensor.fromData(Float32Array.from([1, 0, 0, 0]), [1, 1, 2, 2]);
    const out = await contextualAttention(f, hole).data();
    assert.ok(out.every((v) => v >= 1 - 1e-5 && v <= 3 + 1e-5), `got ${[...out]}`);
  });
});

Deno.test("purifier attention: refine stage borrows features; off leaves the weights as before", async () => {
  const plain = new Purifier({ width: 4, dilations: [2], seed: 5 });
  const att = new Purifier({ width: 4, dilations: [2], seed: 5, attention: true });
  try {
    await tidyAsync(async () => {
      const a = plain.stateDict(), b = att.stateDict();
      const extra = [...b.keys()].filter((k) => !a.has(k));
      assert.ok(extra.length > 0 && extra.every((k) => k.startsWith("refine.merge.")), `${extra}`);
      for (const [k, t] of a) assert.deepEqual(await t.data(), await b.get(k)!.data(), k);
      const v = new Float32Array(2 * 3 * 32 * 32).map((_, i) => 0.5 + 0.4 * Math.sin(i * 0.37));
      const x = Tensor.fromData(v, [2, 3, 32, 32]);
      const { image, mask } = rt1(new Rng(3), x, { missingRate: 0.25, blockSize: 4 });
      // The refine stage's output layer starts at zero; give it weights so gradients reach the
      // merge layer through the attention branch.
      for (const t of att.refine.out.parameters()) ops.assign(t, ops.full(t.shape, 0.01));
      const o = att.run(image, mask);
      assert.deepEqual(o.fine.shape, [2, 3, 32, 32]);
      assert.ok((await o.fine.data()).every((u) => u >= 0 && u <= 1));
      // The merge layer's input channels 4c..8c are the attended features: their weights get a
      // gradient only if the attention branch is wired in and differentiable.
      const m = att.refine.merge!;
      const g = grad(ops.l1Loss(o.fine, x), [m.conv.weight, m.maskConv.weight]);
      for (const gi of g) {
        const [co, ci, kh, kw] = gi.shape, v = await gi.data(), k = kh * kw;
        let attended = 0;
        for (let o2 = 0; o2 < co; o2++) {
          for (let i = ci / 2; i < ci; i++) {
            for (let j = 0; j < k; j++) attended += Math.abs(v[(o2 * ci + i) * k + j]);
          }
        }
        assert.ok(attended > 0, "no gradient through the attention branch");
      }
    });
  } finally {
    plain.dispose();
    att.dispose();
  }
});
