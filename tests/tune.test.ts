// The kernel tuner (runtime/tune/tuner.ts): every variant of every tuned family gives the same
// bits (so a choice never changes results) and matches the float64 reference; the tuner times
// the candidates on first use, keeps the fastest in its cache file, and reuses it.

import { assert, checkOp, gpu, input, rng } from "./helpers/check.ts";
import { engine } from "../runtime/engine.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import { grad } from "../runtime/autograd.ts";
import * as ops from "../runtime/ops/mod.ts";
import {
  CACHE_VERSION,
  fastest,
  forceVariant,
  resetTuning,
  settleTuning,
  tuneCachePath,
  tuningChoices,
  tuningTimes,
} from "../runtime/tune/tuner.ts";
import { conv2dRef } from "./ref/conv.ts";
import { mirrorTensor } from "../runtime/ops/texture.ts";
// (matmul is not tuned: its two tiles round a dot product differently on llvmpipe; nor are the
// conv kernels' workgroup-memory variants for GPUs, "tiled", for the same reason: it is the
// GPU default, and checked against float64 here.)

await gpu();

function rand(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.fromData(Array.from({ length: n }, () => r() - 0.5), shape);
}

async function bits(t: Tensor): Promise<Uint32Array> {
  return new Uint32Array((await t.data()).buffer);
}

const CASES = [
  { x: [2, 3, 9, 8], w: [5, 3, 3, 3], o: { padding: 1 } },
  { x: [3, 8, 8, 8], w: [16, 8, 3, 3], o: { padding: 2, dilation: 2 } },
  { x: [1, 6, 7, 7], w: [20, 6, 5, 5], o: { stride: 2, padding: 2 } },
  // Few channels both ways (the narrow blocks), a dilation that leaves whole taps in the
  // padding of an 8x8 map (skipped taps), and a strided one with 3 input channels.
  { x: [3, 7, 8, 8], w: [6, 7, 3, 3], o: { padding: 4, dilation: 4 } },
  { x: [2, 3, 10, 9], w: [4, 3, 3, 3], o: { stride: 2, padding: 1 } },
  // More than one workgroup of every variant: 1,200 pixels (75 threads of 16 pixels, 64 to a
  // workgroup), and a weight gradient whose 16x4 blocks span 2 x 25 taps x 4 batch chunks.
  { x: [3, 4, 20, 20], w: [6, 4, 3, 3], o: { padding: 1 } },
  { x: [4, 3, 9, 9], w: [20, 3, 5, 5], o: { padding: 2 } },
  // Packed operands of more than one 4096-texel row of a mirror texture (the "tex:" variants):
  // the input is 1,152 pixels x 4 vec4s.
  { x: [2, 16, 24, 24], w: [8, 16, 3, 3], o: { padding: 1 } },
];

/** Forward and input-gradient variants beside tile4 (the weight gradient's are separate), each
 * also reading its operands from mirror textures ("tex:"), and tile16 with its loop bounds as
 * pipeline constants ("+k"). */
const BLOCK_VARIANTS = [
  "tile16",
  "tile16+k",
  "tex:tile16+k",
  "tile16x8",
  "tile16x4",
  "tex:tile4",
  "tex:tile16",
  "tex:tile16x8",
  "tex:tile16x4",
];

/** The weight gradient's variant run beside a forward variant: it has no 16x8 block (its 16x4
 * is 16 output x 4 input channels) and no constant-bound one. */
function weightVariant(v: string): string {
  return v.replace("tile16x8", "tile16").replace("tile16x4", "tile16").replace("+k", "");
}

Deno.test("conv variants are bit-identical to each other (fwd, input and weight gradients)", async () => {
  for (const c of CASES) {
    const x = rand(c.x, 1), w = rand(c.w, 2);
    const run = async (fwd: string, data: string, weight: string) => {
      // Fresh (zeroed) buffers: a recycled one would still hold the previous variant's result,
      // hiding outputs a variant never writes.
      await engine().sync();
      engine().pool.trim();
      forceVariant("conv2d_fwd", fwd);
      forceVariant("conv2d_bwd_data", data);
      forceVariant("conv2d_bwd_weight", weight);
      try {
        x.requiresGrad = w.requiresGrad = true;
        const out = tidy(() => {
          const y = ops.conv2d(x, w, null, c.o);
          const [gx, gw] = grad(ops.sum(ops.mul(y, y)), [x, w]);
          return { y: ops.detach(y), gx, gw };
        });
        const r = { y: await bits(out.y), gx: await bits(out.gx), gw: await bits(out.gw) };
        for (const t of Object.values(out)) t.dispose();
        return r;
      } finally {
        for (const f of ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"]) {
          forceVariant(f, null);
        }
      }
    };
    const a = await run("tile4", "tile4", "tile4");
    for (const v of BLOCK_VARIANTS) {
      const b = await run(v, v, weightVariant(v));
      assert.deepEqual(b, a, `conv ${JSON.stringify(c)}: ${v} vs tile4`);
    }
    if (c.x[1] <= 4) {
      for (const v of ["tile16x4", "tex:tile16x4"]) {
        const d = await run("tile16", "tile16", v);
        assert.deepEqual(d.gw, a.gw, `weight gradient ${v} vs tile4`);
      }
    }
    x.dispose();
    w.dispose();
  }
});

Deno.test("every conv variant matches the float64 reference, forward and gradients", async () => {
  const r = rng(9);
  for (const v of ["tile4", ...BLOCK_VARIANTS, "tiled"]) {
    // Fresh buffers per variant: a recycled one could hold the previous variant's result.
    await engine().sync();
    engine().pool.trim();
    for (const f of ["conv2d_fwd", "conv2d_bwd_data"]) forceVariant(f, v);
    forceVariant("conv2d_bwd_weight", /tile16x8|\+k/.test(v) ? weightVariant(v) : v);
    try {
      // Dilated; strided with ragged phases (the input gradient skips taps per phase); and
      // wider than one 64-channel block of the tiled kernels.
      const cases = [
        { N: 2, Cin: 5, H: 7, W: 6, Cout: 6, KH: 3, s: 1, p: 2, d: 2 },
        { N: 3, Cin: 4, H: 9, W: 7, Cout: 5, KH: 3, s: 2, p: 1, d: 1 },
        { N: 1, Cin: 70, H: 5, W: 5, Cout: 66, KH: 1, s: 1, p: 0, d: 1 },
        // A dilation larger than the image: some taps reach no output pixel at all.
        { N: 2, Cin: 3, H: 2, W: 3, Cout: 4, KH: 3, s: 1, p: 8, d: 8 },
      ];
      for (const c of cases) {
        const g = {
          ...c,
          KW: c.KH,
          stride: [c.s, c.s] as [number, number],
          padding: [c.p, c.p] as [number, number],
          dilation: [c.d, c.d] as [number, number],
        };
        await checkOp(
          `conv2d ${v} ${JSON.stringify(c)}`,
          ([x, w]) => ops.conv2d(x, w, null, { stride: c.s, padding: c.p, dilation: c.d }),
          conv2dRef(g, false),
          [input([g.N, g.Cin, g.H, g.W], r), input([g.Cout, g.Cin, g.KH, g.KW], r)],
        );
      }
    } finally {
      for (const f of ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"]) forceVariant(f, null);
    }
  }
});

/** Runs `fn` with the tuner on and a fresh cache file (its path given), then turns it off. */
async function withTuning(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tune.json`;
  Deno.env.set("ATOP_TUNE_CACHE", path);
  Deno.env.set("ATOP_TUNE_QUIET", "1");
  Deno.env.set("ATOP_TUNE", "on");
  resetTuning();
  try {
    await fn(path);
  } finally {
    Deno.env.delete("ATOP_TUNE_CACHE");
    Deno.env.set("ATOP_TUNE", "off");
    resetTuning();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the tuner times the candidates on first use, caches the fastest on disk, and reuses it", async () => {
  // Only the CPU adapter times variants (GPUs run "tiled"; ATOP_TILE forces one).
  if (!engine().device.features.has("timestamp-query")) return;
  if (!engine().adapter.isFallbackAdapter || Deno.env.get("ATOP_TILE")) return;
  await withTuning(async (path) => {
    assert.equal(tuneCachePath(), path);
    const x = rand([2, 4, 12, 12], 5), w = rand([8, 4, 3, 3], 6);
    const eng = engine();
    const conv = async () => {
      await eng.sync();
      const d0 = eng.counters.dispatches;
      // A computed weight (pending): no packed-weight cache, so only tuning changes counts.
      const y = tidy(() => ops.conv2d(x, ops.mul(w, 1), null, { padding: 1 }));
      const v = await bits(y);
      y.dispose();
      return { v, d: eng.counters.dispatches - d0 };
    };
    // A cache of the old format (single timings) is not read: its choice would be a guess.
    const stale = JSON.stringify({ version: 1, adapters: { any: { "conv2d_fwd|x": "tile4" } } });
    await Deno.writeTextFile(path, stale);
    const first = await conv();
    await settleTuning();
    const second = await conv();
    // 8 output channels: tile4, tile16 and tile16x8, from buffers and from textures, each timed
    // twice (its first launch also loads its pipeline). A texture variant is 3 launches: the
    // copies of its two operands into their mirror textures, then the conv.
    const chosen = [...tuningChoices()].find(([k]) => k.startsWith("conv2d_fwd|"))?.[1] ?? "";
    const launches = (v: string) => v.startsWith("tex:") ? 3 : 1;
    assert.equal(
      first.d - (second.d - launches(chosen)),
      2 * 3 * (1 + 3),
      `first use times the 6 candidates twice (${first.d} vs ${second.d}, ${chosen} chosen)`,
    );
    assert.deepEqual(second.v, first.v, "the choice does not change the result");
    const choices = tuningChoices();
    assert.ok([...choices.keys()].some((k) => k.startsWith("conv2d_fwd|")));
    const file = JSON.parse(await Deno.readTextFile(path));
    assert.equal(file.version, CACHE_VERSION, "written in the current format");
    assert.ok(!Object.keys(file.adapters).includes("any"), "the stale entries are dropped");
    const saved = Object.values(file.adapters)[0] as Record<string, string>;
    assert.ok(Object.keys(saved).some((k) => k.startsWith("conv2d_fwd|")), "cached on disk");
    // A fresh process state reads the cache: no timing again.
    resetTuning();
    const third = await conv();
    assert.equal(third.d, second.d, "the cached choice is used without timing");
    x.dispose();
    w.dispose();
  });
});

Deno.test("timings stay true once mirror textures are in use", async () => {
  const eng = engine();
  if (!eng.device.features.has("timestamp-query") || !eng.adapter.isFallbackAdapter) return;
  if (Deno.env.get("ATOP_TILE")) return;
  // Fresh mirror textures, as the "tex:" variants make one per buffer. wgpu must not clear
  // them: on llvmpipe a clear moves every later timestamp of the process into a binned render
  // scene, stamped at the pass's end together with its beginning (~0 ms per candidate).
  const x = rand([16, 48, 32, 32], 3), w = rand([48, 48, 3, 3], 4);
  await withTuning(async () => {
    // Forward and both gradients in one submit, as the benchmark runs them.
    x.requiresGrad = w.requiresGrad = true;
    const [gx, gw] = tidy(() => grad(ops.sum(ops.conv2d(x, w, null, { padding: 1 })), [x, w]));
    await settleTuning();
    gx.dispose();
    gw.dispose();
    for (const family of ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"]) {
      const times = [...tuningTimes()].find(([k]) => k.startsWith(`${family}|n16 48>48`))?.[1];
      assert.ok(times, `${family} was timed`);
      // 0.7 GFLOP: tens of milliseconds for every variant on this adapter.
      for (const [v, ms] of times) assert.ok(ms > 2, `${family} ${v} timed at ${ms} ms`);
    }
  }).finally(() => [x, w].forEach((t) => t.dispose()));
});

Deno.test("a mirror texture is filled once per write of its buffer, and always when timed", async () => {
  const eng = engine();
  const t = rand([3, 8], 7);
  // Fills: copy commands, or texel_store launches inside a timed section.
  const copies = (f: () => void) => {
    const c0 = eng.counters.mirrorCopies, d0 = eng.counters.dispatches;
    f();
    return eng.counters.mirrorCopies - c0 + eng.counters.dispatches - d0;
  };
  const launches = (f: () => void) => {
    const d0 = eng.counters.dispatches;
    f();
    return eng.counters.dispatches - d0;
  };
  try {
    assert.equal(copies(() => mirrorTensor(t)), 1, "the first fill");
    ops.assign(t, rand([3, 8], 6));
    assert.equal(launches(() => mirrorTensor(t)), 0, "outside a timed section: a copy command");
    assert.equal(copies(() => mirrorTensor(t)), 0, "unchanged since: nothing to copy");
    ops.assign(t, rand([3, 8], 8));
    assert.equal(copies(() => mirrorTensor(t)), 1, "written since: filled again");
    // A timed candidate pays its copies, as the first reader of a fresh operand does.
    if (eng.device.features.has("timestamp-query")) {
      assert.equal(launches(() => void eng.timed(() => mirrorTensor(t))), 1, "timed: a launch");
    }
    // A recording (graph capture) fills it again, once: a replay must not trust a fill made
    // before the graph, which later writes outside it could make stale.
    eng.startRecording();
    try {
      assert.equal(copies(() => mirrorTensor(t)), 1, "first fill in a recording");
      assert.equal(copies(() => mirrorTensor(t)), 0, "filled in this recording");
    } finally {
      eng.stopRecording();
    }
    assert.equal(copies(() => mirrorTensor(t)), 0, "the recording's fill is current after it");
    await eng.sync();
  } finally {
    t.dispose();
  }
  // A training step on tex variants: the weight gradient reads the mirrors the forward (packed
  // input) and the input gradient (packed output gradient) filled, so 4 copies, not 6; and a
  // weight written in place between two steps is copied again (the same gradients as buffers).
  const x = rand([2, 8, 9, 9], 9), w = rand([8, 8, 3, 3], 10);
  x.requiresGrad = w.requiresGrad = true;
  const step = async (variant: string) => {
    for (const f of ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"]) {
      forceVariant(f, variant);
    }
    try {
      const d0 = eng.counters.dispatches + eng.counters.mirrorCopies;
      const gs = tidy(() => grad(ops.sum(ops.conv2d(x, w, null, { padding: 1 })), [x, w]));
      const d = eng.counters.dispatches + eng.counters.mirrorCopies - d0;
      const b = await Promise.all(gs.map(bits));
      gs.forEach((g) => g.dispose());
      return { d, b };
    } finally {
      for (const f of ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"]) forceVariant(f, null);
    }
  };
  try {
    const buf = await step("tile16"), tex = await step("tex:tile16");
    assert.equal(tex.d - buf.d, 4, "copies: packed input and weights, output gradient and weights");
    assert.deepEqual(tex.b, buf.b);
    ops.assign(w, rand([8, 8, 3, 3], 11));
    const [buf2, tex2] = [await step("tile16"), await step("tex:tile16")];
    assert.deepEqual(tex2.b, buf2.b, "a weight written in place is mirrored again");
    assert.notDeepEqual(tex2.b[0], tex.b[0]);
  } finally {
    [x, w].forEach((t) => t.dispose());
  }
});

Deno.test("layers of 16+ channels also time tile16 with constant loop bounds; narrower ones do not", async () => {
  if (!engine().device.features.has("timestamp-query")) return;
  if (!engine().adapter.isFallbackAdapter || Deno.env.get("ATOP_TILE")) return;
  await withTuning(async () => {
    const candidates = async (cin: number, cout: number) => {
      const x = rand([1, cin, 6, 6], 11), w = rand([cout, cin, 3, 3], 12);
      x.requiresGrad = true;
      const gx = tidy(() => grad(ops.sum(ops.conv2d(x, w, null, { padding: 1 })), [x])[0]);
      await gx.data();
      await settleTuning();
      [x, w, gx].forEach((t) => t.dispose());
      const of = (family: string) =>
        [...tuningTimes()].filter(([k]) => k.startsWith(`${family}|n1 ${cin}>${cout} `))
          .flatMap(([, t]) => [...t.keys()]);
      return { fwd: of("conv2d_fwd"), data: of("conv2d_bwd_data") };
    };
    // The forward's rows are input channels, the input gradient's output channels.
    const wide = await candidates(16, 20);
    assert.ok(wide.fwd.includes("tex:tile16+k"), `forward 16>20: ${wide.fwd}`);
    assert.ok(wide.data.includes("tex:tile16+k"), `input gradient 16>20: ${wide.data}`);
    const narrow = await candidates(12, 8);
    assert.ok(!narrow.fwd.some((v) => v.endsWith("+k")), `forward 12>8: ${narrow.fwd}`);
    assert.ok(!narrow.data.some((v) => v.endsWith("+k")), `input gradient 12>8: ${narrow.data}`);
    assert.ok(narrow.fwd.length >= 4 && narrow.data.length >= 4);
  });
});

Deno.test("a trace (explain) lists the launch that would run, never the tuner's candidates", async () => {
  const eng = engine();
  if (!eng.adapter.isFallbackAdapter || Deno.env.get("ATOP_TILE")) return;
  const x = rand([2, 8, 10, 10], 5), w = rand([8, 8, 3, 3], 6);
  await withTuning(async () => {
    const { dispatches } = eng.trace(() => tidy(() => ops.conv2d(x, w, null, { padding: 1 })));
    const convs = dispatches.filter((d) => d.kernel.startsWith("conv2d_fwd"));
    assert.equal(convs.length, 1, dispatches.map((d) => d.kernel).join(", "));
    assert.equal(dispatches.filter((d) => d.kernel === "texel_store").length, 0);
    await Promise.resolve();
  }).finally(() => [x, w].forEach((t) => t.dispose()));
});

Deno.test("the tuner refuses implausible timings: zeros, or a spread no kernel change explains", () => {
  assert.equal(fastest([3, 1.5, 2]), 1);
  assert.equal(fastest([2, 3, 2]), 2, "a tie keeps the last candidate (the default)");
  // What llvmpipe's timestamps gave while the tex variants were new: buffer kernels at ~0 ms.
  assert.equal(fastest([0.06, 0.08, 143.4, 0.12]), null);
  assert.equal(fastest([0, 120, 140]), null);
  assert.equal(fastest([110, Number.NaN]), null);
  assert.equal(fastest([]), null);
});
