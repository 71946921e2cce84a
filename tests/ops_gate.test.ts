// The gated activation (runtime/ops/gate.ts) against a float64 reference and finite differences,
// for every activation; and the gated conv built on it against two separate convs.

import { assert, checkOp, gpu, input, rng } from "./helpers/check.ts";
import * as ops from "../runtime/ops/mod.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import { grad } from "../runtime/autograd.ts";
import { GatedConv2d, InitRng } from "../runtime/nn/mod.ts";
import type { GateActivation } from "../runtime/ops/gate.ts";

await gpu();

const sig = (v: number) => 1 / (1 + Math.exp(-v));
const ACT: Record<GateActivation, (v: number) => number> = {
  relu: (v) => Math.max(v, 0),
  elu: (v) => (v > 0 ? v : Math.exp(v) - 1),
  lrelu: (v) => (v > 0 ? v : 0.2 * v),
  tanh: Math.tanh,
  none: (v) => v,
};

/** act(y[:, :C]) * sigmoid(y[:, C:]) in float64, y [N, 2C, H, W]. */
function gateRef(act: GateActivation, [N, C2, H, W]: number[]) {
  return ([y]: Float64Array[]) => {
    const C = C2 / 2, hw = H * W;
    const out = new Float64Array(N * C * hw);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        for (let p = 0; p < hw; p++) {
          const f = y[(n * C2 + c) * hw + p], g = y[(n * C2 + C + c) * hw + p];
          out[(n * C + c) * hw + p] = ACT[act](f) * sig(g);
        }
      }
    }
    return out;
  };
}

Deno.test("gatedActivation matches float64, forward and gradient, for every activation", async () => {
  const r = rng(3);
  for (const act of Object.keys(ACT) as GateActivation[]) {
    for (const shape of [[2, 6, 3, 5], [1, 2, 1, 1], [3, 10, 4, 4]]) {
      await checkOp(
        `gate ${act} [${shape}]`,
        ([y]) => ops.gatedActivation(y, act),
        gateRef(act, shape),
        [
          input(shape, r, -2, 2),
        ],
      );
    }
  }
});

Deno.test("gatedActivation names the bad input and the fix", () => {
  const odd = Tensor.fromData(new Float32Array(6), [1, 3, 1, 2]);
  assert.throws(() => ops.gatedActivation(odd, "elu"), /even channel count/);
  const y = Tensor.fromData(new Float32Array(8), [1, 4, 1, 2]);
  assert.throws(
    () => ops.gatedActivation(y, "gelu" as GateActivation),
    /unknown activation "gelu"/,
  );
  [odd, y].forEach((t) => t.dispose());
});

Deno.test("a gated conv (one conv over both weight sets) equals two convs and the gate", async () => {
  const layer = new GatedConv2d(new InitRng(4), 5, 6, 3, { padding: 2, dilation: 2 }, "elu");
  const x = new (await import("../runtime/rng.ts")).Rng(8).uniform([2, 5, 7, 6], -1, 1);
  x.requiresGrad = true;
  const params = [x, ...layer.parameters()];
  const run = (two: boolean) =>
    tidy(() => {
      const y = two
        ? ops.mul(ops.elu(layer.conv.forward(x), 1), ops.sigmoid(layer.maskConv.forward(x)))
        : layer.forward(x);
      const g = grad(ops.sum(ops.mul(y, y)), params);
      return [ops.detach(y), ...g];
    });
  const [a, b] = [run(true), run(false)];
  for (let i = 0; i < a.length; i++) {
    const [u, v] = [await a[i].data(), await b[i].data()];
    let worst = 0;
    for (let j = 0; j < u.length; j++) worst = Math.max(worst, Math.abs(u[j] - v[j]));
    assert.ok(worst <= 1e-5 * Math.max(1, ...u.map(Math.abs)), `output/gradient ${i}: ${worst}`);
  }
  [...a, ...b, x].forEach((t) => t.dispose());
  layer.dispose();
});
