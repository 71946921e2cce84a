import { assertClose, checkOp, gpu, input, randArray, rng } from "./helpers/check.ts";
import * as ops from "../runtime/ops/mod.ts";
import { keep, Tensor, tidyAsync } from "../runtime/tensor.ts";

await gpu();

function mv(
  w: Float64Array,
  rows: number,
  cols: number,
  v: ArrayLike<number>,
  t: boolean,
): Float64Array {
  const out = new Float64Array(t ? cols : rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      if (t) out[j] += w[i * cols + j] * v[i];
      else out[i] += w[i * cols + j] * v[j];
    }
  }
  return out;
}
function normalized(v: Float64Array): Float64Array {
  const n = Math.sqrt(v.reduce((a, b) => a + b * b, 0));
  return v.map((x) => x / (n + 1e-12));
}

Deno.test("spectralNorm: one power iteration and w/sigma match float64, gradient with u,v fixed", async () => {
  const r = rng(41);
  const [rows, cols] = [5, 3 * 2 * 2];
  const w = input([rows, 3, 2, 2], r);
  const w32 = Float64Array.from(Float32Array.from(w.data));
  const u0 = Float64Array.from(Float32Array.from(randArray(rows, r)));
  // Reference power iteration (u, v are constants for the gradient, as in PyTorch).
  const v0 = normalized(mv(w32, rows, cols, u0, true));
  const u1 = normalized(mv(w32, rows, cols, v0, false));
  const v1 = normalized(mv(w32, rows, cols, u1, true));
  const ref = ([wx]: Float64Array[]) => {
    const sigma = mv(wx, rows, cols, v1, false).reduce((a, b, i) => a + b * u1[i], 0);
    return wx.map((x) => x / sigma);
  };
  await tidyAsync(async () => {
    const u = keep(Tensor.fromData(Float32Array.from(u0), [rows]));
    await checkOp(
      "spectralNorm train",
      ([wt]) => ops.spectralNorm(wt, u, { training: true }),
      ref,
      [w],
    );
    assertClose(await u.data(), u1, 1e-5, "u after one power iteration");
    u.dispose();
  });
});

Deno.test("spectralNorm converges to the largest singular value", async () => {
  const r = rng(42);
  const [rows, cols] = [6, 4];
  const w = Float64Array.from(Float32Array.from(randArray(rows * cols, r)));
  let v = normalized(Float64Array.from({ length: cols }, () => 1));
  for (let i = 0; i < 2000; i++) {
    v = normalized(mv(w, rows, cols, mv(w, rows, cols, v, false), true));
  }
  const sigma = Math.sqrt(mv(w, rows, cols, v, false).reduce((a, b) => a + b * b, 0));
  await tidyAsync(async () => {
    const u = keep(Tensor.fromData(Float32Array.from(randArray(rows, r)), [rows]));
    const wt = Tensor.fromData(Float32Array.from(w), [rows, cols]);
    const out = ops.spectralNorm(wt, u, { training: true, iterations: 200 });
    const got = await out.data();
    assertClose(got, w.map((x) => x / sigma), 1e-4, "w / sigma_max");
    // Eval mode reuses u without updating it and gives the same normalization.
    const before = await u.data();
    assertClose(await ops.spectralNorm(wt, u, { training: false }).data(), got, 1e-4, "eval");
    assertClose(await u.data(), before, 0, "eval leaves u unchanged");
    u.dispose();
  });
});
