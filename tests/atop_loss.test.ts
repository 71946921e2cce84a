import { assert, checkOp, gpu, input, randArray, rng } from "./helpers/check.ts";
import { generatorLoss } from "../runtime/train/purifier.ts";
import { atopLoss, parseSpec, SpecError } from "../dsl/spec.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";

await gpu();

Deno.test("AToP generator loss (GAN + a(L1 coarse + L1 fine) + lambda CE) matches float64, with gradients", async () => {
  const r = rng(51);
  const [n, d, k, p] = [3, 3 * 4 * 4, 5, 2]; // images [3,3,4,4], 5 classes, 2 patch logits
  const x = Float64Array.from(Float32Array.from(randArray(n * d, r, 0.05, 0.95)));
  const labels = [1, 4, 0];
  const wc = Float64Array.from(Float32Array.from(randArray(d * p, r)));
  const wk = Float64Array.from(Float32Array.from(randArray(d * k, r)));
  const [a, lambda] = [0.7, 0.3];
  const terms = atopLoss(a, lambda, 0);
  const lin = (img: Float64Array, w: Float64Array, m: number) => {
    const z = new Float64Array(n * m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        for (let q = 0; q < d; q++) z[i * m + j] += img[i * d + q] * w[q * m + j];
      }
    }
    return z;
  };
  const ref = ([coarse, fine]: Float64Array[]) => {
    const crit = lin(fine, wc, p);
    const gan = -crit.reduce((s, v) => s + v, 0) / crit.length;
    const l1 = (u: Float64Array) => u.reduce((s, v, i) => s + Math.abs(v - x[i]), 0) / u.length;
    const z = lin(fine, wk, k);
    let ce = 0;
    for (let i = 0; i < n; i++) {
      const row = z.slice(i * k, (i + 1) * k);
      const m = Math.max(...row);
      ce += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[labels[i]];
    }
    return Float64Array.of(gan + a * (l1(coarse) + l1(fine)) + lambda * ce / n);
  };
  await tidyAsync(async () => {
    const xt = Tensor.fromData(Float32Array.from(x), [n, 3, 4, 4]);
    const yt = Tensor.fromData(labels, [n]);
    const wcT = Tensor.fromData(Float32Array.from(wc), [d, p]);
    const wkT = Tensor.fromData(Float32Array.from(wk), [d, k]);
    await checkOp(
      "generatorLoss",
      ([coarse, fine]) =>
        generatorLoss(terms, { coarse, fine }, xt, yt, {
          critic: (img) => ops.matmul(ops.flatten(img), wcT),
          classifier: (img) => ops.matmul(ops.flatten(img), wkT),
        }).total!,
      ref,
      [input([n, 3, 4, 4], r, 0, 1), input([n, 3, 4, 4], r, 0, 1)],
    );
  });
});

Deno.test("L1 and MSE terms with a hole weight (hole/valid split) match float64, with gradients; refused on other terms", async () => {
  const r = rng(52);
  const [n, c, hw] = [2, 3, 16];
  const x = Float64Array.from(Float32Array.from(randArray(n * c * hw, r, 0.05, 0.95)));
  const hole = Array.from({ length: n * hw }, () => (r() < 0.3 ? 1 : 0));
  const terms = [
    { term: "l1-coarse" as const, weight: 0.5, after: 0, holes: 6 },
    { term: "l1-fine" as const, weight: 2, after: 0, holes: 3 },
    { term: "mse-fine" as const, weight: 1.5, after: 0, holes: 0.5 },
  ];
  const ref = ([coarse, fine]: Float64Array[]) => {
    const term = (u: Float64Array, holes: number, sq: boolean) => {
      let s = 0;
      for (let k = 0; k < u.length; k++) {
        const i = Math.floor(k / (c * hw)), p = k % hw;
        const e = sq ? (u[k] - x[k]) ** 2 : Math.abs(u[k] - x[k]);
        s += e * (hole[i * hw + p] ? holes : 1);
      }
      return s / u.length;
    };
    return Float64Array.of(
      0.5 * term(coarse, 6, false) + 2 * term(fine, 3, false) + 1.5 * term(fine, 0.5, true),
    );
  };
  await tidyAsync(async () => {
    const xt = Tensor.fromData(Float32Array.from(x), [n, c, 4, 4]);
    const mask = Tensor.fromData(Float32Array.from(hole), [n, 1, 4, 4]);
    const noNet = () => {
      throw new Error("not used");
    };
    await checkOp(
      "generatorLoss with hole weights",
      ([coarse, fine]) =>
        generatorLoss(terms, { coarse, fine }, xt, ops.zeros([n]), {
          critic: noNet,
          classifier: null,
          mask,
        }).total!,
      ref,
      [input([n, c, 4, 4], r, 0, 1), input([n, c, 4, 4], r, 0, 1)],
    );
    assert.throws(
      () =>
        generatorLoss(terms, { coarse: xt, fine: xt }, xt, ops.zeros([n]), {
          critic: noNet,
          classifier: null,
        }),
      /"l1-coarse" with a hole weight needs the mask/,
    );
  });
  assert.throws(
    () =>
      parseSpec({
        name: "holes",
        classifier: { arch: "smallcnn" },
        loss: [{ term: "gan", weight: 1, holes: 6 }],
      }),
    (e: unknown) =>
      e instanceof SpecError &&
      e.issues.some((i) => /^loss\[0\]\.holes: only the l1-coarse, l1-fine and mse-fine/.test(i)),
  );
});
