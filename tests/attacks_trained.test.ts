// Attacks on a real classifier: the small CNN trained on the shipped CIFAR-10 subset
// (tests/fixtures/smallcnn_subset.safetensors, made with `deno task train --arch smallcnn
// --data data/cifar10 --epochs 8 --batch-size 64 --lr 0.05`).

import { assert, gpu } from "./helpers/check.ts";
import { type Classifier, createModel } from "../runtime/models/mod.ts";
import { readCifar, toTensorBatch } from "../runtime/data/mod.ts";
import { readSafetensors } from "../runtime/io/safetensors.ts";
import { classifierTarget } from "../runtime/attacks/target.ts";
import { pgd } from "../runtime/attacks/pgd.ts";
import { autoAttack } from "../runtime/attacks/autoattack.ts";
import { stadv } from "../runtime/attacks/stadv.ts";
import { noGrad } from "../runtime/autograd.ts";
import * as ops from "../runtime/ops/mod.ts";
import { tidyAsync } from "../runtime/tensor.ts";

await gpu();
const DATA = new URL("../data/cifar10/", import.meta.url).pathname;
const FIXTURE = new URL("./fixtures/smallcnn_subset.safetensors", import.meta.url).pathname;

async function trained(): Promise<Classifier> {
  const m = createModel("smallcnn") as Classifier;
  const w = await readSafetensors(FIXTURE);
  m.loadStateDict(w, { strict: true });
  for (const t of w.values()) t.dispose();
  return m.eval();
}

// AutoAttack runs its standard cascade (APGD-CE, APGD-T, FAB-T, Square) with a reduced budget
// (25 iterations, 300 Square queries) to keep CI short; the cascade order and the robust-point
// bookkeeping are the same as with the defaults.
Deno.test("trained smallcnn: clean > PGD-10 > PGD-20 >= AutoAttack (Linf 2/255); StAdv lowers accuracy", async () => {
  const model = await trained();
  const test = await readCifar(DATA, { split: "test" });
  const n = 64;
  const idx = Array.from({ length: n }, (_, i) => i);
  const labels = idx.map((i) => test.labels[i]);
  await tidyAsync(async () => {
    const { x } = toTensorBatch(test, idx);
    const target = classifierTarget(model, { name: "smallcnn" });
    const acc = async (xs: typeof x) => {
      const p = await noGrad(() => ops.argmax(model.forward(xs), 1)).data();
      return labels.filter((l, i) => p[i] === l).length / n;
    };
    const clean = await acc(x);
    // A small step (eps/8) so 10 steps have not converged and 20 steps can do better.
    const eps = 2 / 255, stepSize = 0.25 / 255;
    const p10 = await acc(
      (await pgd({ target, x, labels }, { eps, stepSize, steps: 10, seed: 1 })).xAdv,
    );
    const p20 = await acc(
      (await pgd({ target, x, labels }, { eps, stepSize, steps: 20, seed: 1 })).xAdv,
    );
    const aa = await autoAttack({ target, x, labels }, {
      eps,
      version: "standard",
      seed: 1,
      steps: 25,
      queries: 300,
    });
    const aaAcc = await acc(aa.xAdv);
    const st = await stadv({ target, x, labels }, { steps: 30 }); // the AToP/DiffPure defaults
    const stAcc = await acc(st.xAdv);
    console.log({ clean, p10, p20, aa: aaAcc, stadv: stAcc });
    assert.ok(clean >= 0.35, `the fixture classifier is not trained: clean ${clean}`);
    assert.ok(p10 < clean, `PGD-10 ${p10} is not below clean ${clean}`);
    assert.ok(p20 < p10, `PGD-20 ${p20} is not below PGD-10 ${p10}`);
    assert.ok(aaAcc <= p20, `AutoAttack ${aaAcc} is weaker than PGD-20 ${p20}`);
    assert.ok(stAcc < clean, `StAdv ${stAcc} does not lower accuracy below clean ${clean}`);
    // Its reported attack loss (the negated margin) rises on some examples: the sanity check
    // "the attack loss never increased" must not fire on a working StAdv.
    assert.ok(
      st.lossBest!.some((b, i) => b > st.lossStart![i]),
      "StAdv's attack loss never increased",
    );
  });
  model.dispose();
});
