// Half-float conv operands (ATOP_F16=1, runtime/ops/precision.ts): every variant against float64
// references computed on the half-rounded operands (activations and weights rounded to binary16,
// gradients kept float32), variants bit-identical to each other, and the mode's switch.
import { assert, assertClose, gpu, relError, rng } from "./helpers/check.ts";
import { conv2dRef, convOutSize, type ConvRefGeometry } from "./ref/conv.ts";
import * as ops from "../runtime/ops/mod.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import { grad } from "../runtime/autograd.ts";
import { engine } from "../runtime/engine.ts";
import { forceVariant } from "../runtime/tune/tuner.ts";
import { convStorage, setConvStorage } from "../runtime/ops/precision.ts";
import { checkConvStorage } from "../runtime/eval/run_files.ts";

await gpu();

const FAMILIES = ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"];

/** Forward and input-gradient variant, and the weight gradient's counterpart (it has no 16x8
 * block and no constant-bound variant). */
const VARIANTS: [string, string][] = [
  ["tile4", "tile4"],
  ["tile16", "tile16"],
  ["tile16x8", "tile16"],
  ["tile16x4", "tile16x4"],
  ["tile16+k", "tile16"],
  ["tiled", "tiled"],
];

const CASES: ConvRefGeometry[] = [
  // 3x3 "same" with channel counts that leave partial blocks.
  {
    N: 2,
    Cin: 19,
    H: 7,
    W: 6,
    Cout: 13,
    KH: 3,
    KW: 3,
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
  },
  // Strided and dilated, RGB-like input (the weight gradient's 16x4 block).
  {
    N: 3,
    Cin: 3,
    H: 9,
    W: 8,
    Cout: 6,
    KH: 3,
    KW: 2,
    stride: [2, 3],
    padding: [2, 1],
    dilation: [2, 1],
  },
];

function randoms(n: number, r: () => number): Float64Array {
  // Values of mixed magnitude, so that rounding to 11 significant bits matters everywhere.
  return Float64Array.from({ length: n }, () => (r() * 2 - 1) * 2 ** Math.floor(r() * 6 - 3));
}

const f16 = (a: Float64Array) => a.map((v) => Math.f16round(Math.fround(v)));

/** d/dv of sum(f(v) * gy), f linear in v: exact central differences (step 1) in float64. */
function linearGrad(
  f: (v: Float64Array) => Float64Array,
  v: Float64Array,
  gy: Float64Array,
): Float64Array {
  const obj = (u: Float64Array) => f(u).reduce((s, y, i) => s + y * gy[i], 0);
  const out = new Float64Array(v.length);
  for (let c = 0; c < v.length; c++) {
    const u = Float64Array.from(v);
    u[c] += 1;
    const up = obj(u);
    u[c] -= 2;
    out[c] = (up - obj(u)) / 2;
  }
  return out;
}

async function runConv(
  g: ConvRefGeometry,
  x: Float64Array,
  w: Float64Array,
  gy: Float64Array,
  variant: [string, string] | null,
) {
  await engine().sync();
  engine().pool.trim(); // fresh buffers: a recycled one could hold another variant's output
  if (variant) {
    forceVariant("conv2d_fwd", variant[0]);
    forceVariant("conv2d_bwd_data", variant[0]);
    forceVariant("conv2d_bwd_weight", variant[1]);
  }
  try {
    const xt = Tensor.fromData(Float32Array.from(x), [g.N, g.Cin, g.H, g.W]);
    const wt = Tensor.fromData(Float32Array.from(w), [g.Cout, g.Cin, g.KH, g.KW]);
    const [Ho, Wo] = convOutSize(g);
    const gt = Tensor.fromData(Float32Array.from(gy), [g.N, g.Cout, Ho, Wo]);
    xt.requiresGrad = wt.requiresGrad = true;
    const out = tidy(() => {
      const y = ops.conv2d(xt, wt, null, {
        stride: g.stride,
        padding: g.padding,
        dilation: g.dilation,
      });
      const [gx, gw] = grad(ops.sum(ops.mul(y, gt)), [xt, wt]);
      return { y: ops.detach(y), gx, gw };
    });
    const r = { y: await out.y.data(), gx: await out.gx.data(), gw: await out.gw.data() };
    for (const t of [...Object.values(out), xt, wt, gt]) t.dispose();
    return r;
  } finally {
    for (const f of FAMILIES) forceVariant(f, null);
  }
}

Deno.test("ATOP_F16: every conv variant matches float64 on half-rounded activations and weights", async () => {
  const r = rng(41);
  for (const g of CASES) {
    const [Ho, Wo] = convOutSize(g);
    const x = randoms(g.N * g.Cin * g.H * g.W, r);
    const w = randoms(g.Cout * g.Cin * g.KH * g.KW, r);
    const gy = randoms(g.N * g.Cout * Ho * Wo, r).map(Math.fround);
    const ref = conv2dRef(g, false);
    const x16 = f16(x), w16 = f16(w);
    const want = {
      y: ref([x16, w16]),
      // The input gradient reads half weights and the float32 output gradient; the weight
      // gradient half inputs and the float32 output gradient.
      gx: linearGrad((v) => ref([v, w16]), x16, gy),
      gw: linearGrad((v) => ref([x16, v]), w16, gy),
    };
    const wantF32 = ref([x.map(Math.fround), w.map(Math.fround)]);
    setConvStorage("f16");
    try {
      let first: Awaited<ReturnType<typeof runConv>> | null = null;
      for (const v of VARIANTS) {
        const got = await runConv(g, x, w, gy, v);
        const what = `f16 ${v.join("/")} ${JSON.stringify(g)}`;
        assertClose(got.y, want.y, 1e-4, `${what} forward`);
        assertClose(got.gx, want.gx, 1e-4, `${what} input gradient`);
        assertClose(got.gw, want.gw, 1e-4, `${what} weight gradient`);
        // The operands were rounded: the float32 reference is much further from the result.
        const e16 = relError(got.y, want.y), e32 = relError(got.y, wantF32);
        assert.ok(e32 > 10 * e16, `${what}: the forward looks float32 (${e32} vs ${e16})`);
        // The CPU variants add in the same order, so they agree bit for bit; "tiled" (GPUs'
        // workgroup-memory kernel) may round its dot products differently on llvmpipe.
        if (!engine().adapter.isFallbackAdapter || v[0] === "tiled") continue;
        if (!first) first = got;
        else {
          for (const k of ["y", "gx", "gw"] as const) {
            assert.deepEqual(got[k], first[k], `${what}: ${k} differs from tile4's bits`);
          }
        }
      }
      // The tuner's own choice (no variant forced) runs the half kernels too.
      const tuned = await runConv(g, x, w, gy, null);
      assertClose(tuned.y, want.y, 1e-4, "f16 default variant forward");
    } finally {
      setConvStorage(undefined);
    }
    // Back to float32: the same call matches the float32 reference again.
    const back = await runConv(g, x, w, gy, null);
    assertClose(back.y, wantF32, 1e-4, "float32 after the f16 test");
  }
});

Deno.test("ATOP_F16: half weights are cached apart from float32 ones; textures refused", async () => {
  const r = rng(42);
  const g = CASES[0];
  const x = randoms(g.N * g.Cin * g.H * g.W, r);
  const w = randoms(g.Cout * g.Cin * g.KH * g.KW, r);
  const xt = Tensor.fromData(Float32Array.from(x), [g.N, g.Cin, g.H, g.W]);
  const wt = Tensor.fromData(Float32Array.from(w), [g.Cout, g.Cin, g.KH, g.KW]);
  const conv = () => tidy(() => ops.conv2d(xt, wt, null, { padding: 1 }));
  try {
    // A frozen weight's packed copy is cached from its second use: run each mode twice,
    // interleaved, and each must keep its own precision.
    const run = async () => {
      const y = conv();
      const v = await y.data();
      y.dispose();
      return v;
    };
    const seen: Record<string, Float32Array[]> = { f32: [], f16: [] };
    for (const mode of ["f32", "f16", "f32", "f16", "f32", "f16"] as const) {
      setConvStorage(mode);
      seen[mode].push(await run()); // the third of each mode reads its cached packed weights
    }
    for (const mode of ["f32", "f16"]) {
      for (const v of seen[mode].slice(1)) assert.deepEqual(v, seen[mode][0], `${mode} again`);
    }
    assert.notDeepEqual(seen.f32[0], seen.f16[0], "f16 and float32 gave the same bits");
    setConvStorage("f16");
    forceVariant("conv2d_fwd", "tex:tile16");
    assert.throws(() => conv(), /ATOP_F16=1 has buffers only/);
  } finally {
    forceVariant("conv2d_fwd", null);
    setConvStorage(undefined);
    xt.dispose();
    wt.dispose();
  }
});

Deno.test("ATOP_F16: the switch reads 1 or 0 and refuses anything else with its name", () => {
  const old = Deno.env.get("ATOP_F16");
  try {
    for (const [v, want] of [["1", "f16"], ["0", "f32"], ["", "f32"]] as const) {
      Deno.env.set("ATOP_F16", v);
      setConvStorage(undefined);
      assert.equal(convStorage(), want);
    }
    Deno.env.set("ATOP_F16", "yes");
    setConvStorage(undefined);
    assert.throws(() => convStorage(), /^Error: ATOP_F16: expected 1/);
  } finally {
    if (old === undefined) Deno.env.delete("ATOP_F16");
    else Deno.env.set("ATOP_F16", old);
    setConvStorage(undefined);
  }
});

Deno.test("ATOP_F16: values beyond the half range saturate at +-65504; convTranspose2d stays float32", async () => {
  const x = Tensor.fromData(Float32Array.from([1e6, -3e5, 70000, 1.5]), [1, 4, 1, 1]);
  const w = Tensor.fromData(Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]), [
    4,
    4,
    1,
    1,
  ]);
  const xt = Tensor.fromData(Float32Array.from([1.0001, 2]), [1, 2, 1, 1]);
  const wt = Tensor.fromData(Float32Array.from([1.0001, 1]), [2, 1, 1, 1]);
  setConvStorage("f16");
  try {
    const y = ops.conv2d(x, w);
    assert.deepEqual([...await y.data()], [65504, -65504, 65504, 1.5]);
    y.dispose();
    // Half floats would round 1.0001 to 1: the transposed conv keeps it.
    const t = ops.convTranspose2d(xt, wt);
    const want = Math.fround(Math.fround(1.0001) * Math.fround(1.0001) + 2);
    assert.deepEqual([...await t.data()], [want]);
    t.dispose();
  } finally {
    setConvStorage(undefined);
    for (const v of [x, w, xt, wt]) v.dispose();
  }
});

Deno.test("ATOP_F16: attacking a run under another conv storage than it was made with is refused", () => {
  const m = { preset: "quick", seed: 0, spec_hash: "x", stages: {} };
  checkConvStorage("out/r", m, "f32"); // an old manifest: float32
  checkConvStorage("out/r", { ...m, conv_storage: "f16" as const }, "f16");
  assert.throws(
    () => checkConvStorage("out/r", { ...m, conv_storage: "f16" as const }, "f32"),
    /^Error: --run out\/r: the run was made with f16 conv operands .* set ATOP_F16=1/,
  );
  assert.throws(() => checkConvStorage("out/r", m, "f16"), /set ATOP_F16=0 to attack it/);
});
