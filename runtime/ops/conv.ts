// 2-D convolutions (NCHW, PyTorch weight layouts): conv2d and convTranspose2d with stride,
// padding, dilation and bias. Three direct kernels serve both ops: forward, input gradient
// (= transposed-conv forward) and weight gradient; none needs an im2col buffer.

import { isGradEnabled, record } from "../autograd.ts";
import { type Dispatch, engine, grid1d } from "../engine.ts";
import { blockTile } from "./tiles.ts";
import { forcedVariant, runTuned } from "../tune/tuner.ts";
import { keep, Tensor } from "../tensor.ts";
import { launch1d, words } from "./util.ts";
import { reshape } from "./shape.ts";
import { add } from "./elementwise.ts";
import { sum } from "./reduce.ts";
import { packRows4 } from "./matmul.ts";
import { canMirror, mirrorTensor } from "./texture.ts";
import { convStorage } from "./precision.ts";

// Workgroups of the CPU variants: 64 threads along the pixels, one channel block each. On
// llvmpipe an idle thread of a workgroup costs a large part of what a busy one does, and layers
// with few channels left most of an 8x8 workgroup idle (16 -> 8 channels, 16 x 8 blocks: 4.8 ->
// 1.6 ms).
const WX = 64, WY = 1;

const tileSize = blockTile;
const MAX_GROUPS = 65535;

export type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: Pair;
}

/** Geometry of a convolution seen from its input x [N,Cin,H,W] to output y [N,Cout,Ho,Wo]. */
interface Geometry {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  Ho: number;
  Wo: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
  DH: number;
  DW: number;
}

function pair(op: string, field: string, v: Pair | undefined, dflt: number, min: number) {
  const [a, b] = v === undefined ? [dflt, dflt] : typeof v === "number" ? [v, v] : v;
  for (const x of [a, b]) {
    if (!Number.isInteger(x) || x < min) {
      throw new Error(`${op}: ${field} must be an integer >= ${min} (or a pair of them), got ${v}`);
    }
  }
  return [a, b] as const;
}

function geoWords(g: Geometry): number[] {
  return words(
    g.N,
    g.Cin,
    g.H,
    g.W,
    g.Cout,
    g.Ho,
    g.Wo,
    g.KH,
    g.KW,
    g.SH,
    g.SW,
    g.PH,
    g.PW,
    g.DH,
    g.DW,
  );
}

/** Splits `quads` thread columns over x (and z when x would exceed the limit). */
function columns(quads: number): [number, number] {
  return groups(Math.ceil(quads / WX));
}

/** Splits `n` workgroups over x and z within the per-dimension limit. */
function groups(n: number): [number, number] {
  if (n <= MAX_GROUPS) return [n, 1];
  const z = Math.ceil(n / MAX_GROUPS);
  return [Math.ceil(n / z), z];
}

/** Pixels x channels per thread of the forward and input-gradient variants (the shaders' entry
 * points of the same names). */
const BLOCKS: Record<string, readonly [number, number]> = {
  tile4: [4, 4],
  tile16: [16, 16],
  tile16x8: [16, 8],
  tile16x4: [16, 4],
};

/** A block variant "tex:NAME" runs entry NAME of the kernel's "_tex" shader, which reads both
 * operands from their mirror textures (runtime/ops/texture.ts): the same sums in the same
 * order, so the same bits. */
const TEX = "tex:";

/** A block variant "NAME+k" gets its loop bounds (kernel taps, vec4s per operand row) as
 * pipeline constants instead of reading them from the params: llvmpipe compiles a constant trip
 * count into a different loop, faster for some layers and slower for others (on an AMD EPYC: the
 * c64 and c128 3x3 forward 22% and 10% faster, the input gradient of c128-c512 20-30% slower),
 * so the tuner times it beside the others. Each shape then has a pipeline of its own (~5 s to
 * compile once per machine, kept in Mesa's shader cache). */
const BOUND = "+k";

/** A variant's entry point (its name without "tex:" or "+k"). */
function entryOf(variant: string): string {
  const v = variant.startsWith(TEX) ? variant.slice(TEX.length) : variant;
  return v.endsWith(BOUND) ? v.slice(0, -BOUND.length) : v;
}

/** `blocks` and their texture twins; the twins only when `operands` fit textures (none given:
 * every name, for the list a test may force), never for half-float operands (buffers only). */
function withTwins(blocks: string[], operands?: Tensor[], half = false): string[] {
  if (half || (operands && !operands.every(canMirror))) return blocks;
  return [...blocks, ...blocks.map((b) => TEX + b)];
}

/** Every variant of the forward and input-gradient families (a test may force any of them). */
const BLOCK_VARIANTS = [
  ...withTwins([...Object.keys(BLOCKS), "tile16" + BOUND]),
  "tiled",
];

/** The variants timed for a layer with `channels` output channels and `rowVec4s` vec4s per
 * operand row: the narrow blocks only where tile16's channel block would be at least half empty
 * (the purifier's 3-8 channel layers), so that wide layers do not pay for compiling and timing
 * them; each also from textures when its operands fit them; tile16 with constant loop bounds
 * (BOUND) where a row has at least 4 vec4s (16 channels), from textures where they fit. */
function blockVariants(
  channels: number,
  rowVec4s: number,
  operands: Tensor[],
  half: boolean,
): string[] {
  const narrow = channels <= 4 ? ["tile16x4"] : channels <= 8 ? ["tile16x8"] : [];
  const blocks = withTwins(["tile4", "tile16", ...narrow], operands, half);
  if (rowVec4s < 4) return blocks;
  return [...blocks, (blocks.includes(TEX + "tile16") ? TEX : "") + "tile16" + BOUND];
}

/** Variant `v` of `kernel`: its shader (the "_tex" one for a "tex:" variant, after mirroring the
 * two operands it binds first), entry point and texture bindings. */
function variantLaunch(
  kernel: string,
  v: string,
  operands: [Tensor, Tensor],
  half = false,
): { kernel: string; entry: string; textures?: number[] } {
  const tex = v.startsWith(TEX);
  if (half) {
    // Half-float operands live in buffers only: there is no "tex:" twin of a "_h" kernel.
    if (tex) throw new Error(`conv: variant "${v}" reads textures; ATOP_F16=1 has buffers only`);
    return { kernel: `${kernel}_h`, entry: entryOf(v) };
  }
  if (tex) operands.forEach(mirrorTensor);
  return {
    kernel: tex ? `${kernel}_tex` : kernel,
    entry: entryOf(v),
    textures: tex ? [0, 1] : undefined,
  };
}

/** Packed float32 rows [R, 4k] as half floats, two to a word: [R, 2k] (half_pack.wgsl). */
function toHalf(packed: Tensor): Tensor {
  const vec4s = packed.size / 4;
  const out = Tensor.empty([packed.shape[0], packed.shape[1] / 2]);
  launch1d("half_pack", vec4s, [packed.buffer, out.buffer], words(vec4s));
  return out;
}

/** packRows4's result for a kernel operand: as is, or as half floats (disposing the f32 rows). */
function operand(packed: Tensor, half: boolean): Tensor {
  if (!half) return packed;
  const h = toHalf(packed);
  packed.dispose();
  return h;
}

/** A block launch of the forward or input gradient: variantLaunch and pipeline constants, the
 * loop bounds among them for a "+k" variant (0 = read from the params). */
function blockLaunch(
  kernel: string,
  v: string,
  operands: [Tensor, Tensor],
  g: Geometry,
  rowVec4s: number,
  half: boolean,
): Pick<Dispatch, "kernel" | "entry" | "constants" | "textures"> {
  const bound = v.endsWith(BOUND);
  const constants: Record<string, number> = entryOf(v) === "tiled" ? {} : {
    WX,
    WY,
    TAPS_H: bound ? g.KH : 0,
    TAPS_W: bound ? g.KW : 0,
    ROW_VEC4S: bound ? rowVec4s : 0,
  };
  return { ...variantLaunch(kernel, v, operands, half), constants };
}

/** Workgroups of a kernel over pixel x channel blocks (forward, input gradient): tiled runs
 * 64 x 64 per 16x16 workgroup, the others BLOCKS[v] per thread on WX x WY threads. */
function blockGrid(variant: string, pixels: number, channels: number): [number, number, number] {
  const v = entryOf(variant);
  if (v === "tiled") {
    const [x, z] = groups(Math.ceil(pixels / 64));
    return [x, Math.ceil(channels / 64), z];
  }
  const [pp, pc] = BLOCKS[v];
  const [x, z] = columns(Math.ceil(pixels / pp));
  return [x, Math.ceil(channels / (pc * WY)), z];
}

/** Runs a conv kernel family: on GPUs its workgroup-memory variant "tiled", never timed against
 * the others (it may round the dot products differently, on llvmpipe it does, and a timed
 * choice must never change bits); on the CPU adapter the tuner's choice among `variants`. */
function runConvKernel(
  family: string,
  g: Geometry,
  run: (v: string) => () => void,
  variants: string[],
  dflt: string,
  known: string[],
  half: boolean,
): void {
  const f = forcedVariant(family);
  if (f !== undefined) {
    if (!known.includes(f)) {
      throw new Error(`forceVariant: ${family} has no variant "${f}"; one of ${known.join(", ")}`);
    }
    return run(f)();
  }
  if (!engine().adapter.isFallbackAdapter) return run("tiled")();
  // Half-float operands are another kernel: their timings are kept apart.
  const key = shapeKey(g) + (half ? " h" : "");
  runTuned(family, key, variants.map((v) => ({ name: v, run: run(v) })), dflt);
}

/** The conv input x [N,Cin,H,W] channels-last, Cin padded to 4, plus a zero row that padding
 * taps read: [N*H*W + 1, Cin4]. Shared by the forward and the weight gradient. */
function packInput(x: Tensor, g: Geometry): Tensor {
  const hw = g.H * g.W;
  return packRows4(x, g.N, hw, g.Cin, { sb: g.Cin * hw, so: 1, si: hw }, 1);
}

/** The conv output gradient gy [N,Cout,Ho,Wo] the same way: [N*Ho*Wo + 1, Cout4]. Shared by
 * the input and the weight gradient. */
function packOutput(gy: Tensor, g: Geometry): Tensor {
  const hwo = g.Ho * g.Wo;
  return packRows4(gy, g.N, hwo, g.Cout, { sb: g.Cout * hwo, so: 1, si: hwo }, 1);
}

/** The shape class a tuned conv choice is kept for (batch rounded up to a power of two). */
function shapeKey(g: Geometry): string {
  const n = 2 ** Math.ceil(Math.log2(Math.max(1, g.N)));
  return `n${n} ${g.Cin}>${g.Cout} ${g.H}x${g.W}>${g.Ho}x${g.Wo} k${g.KH}x${g.KW} ` +
    `s${g.SH},${g.SW} p${g.PH},${g.PW} d${g.DH},${g.DW}`;
}

/** Packed weights of frozen layers, by weight buffer and layout: an attack runs the same
 * weights thousands of times. An entry is stored on the second request at the same write
 * version of the weight (training changes the weights every step: nothing is kept there). */
const packCache = new WeakMap<GPUBuffer, Map<string, { version: number; packed: Tensor | null }>>();

let cacheHooked = false;

function packedWeight(w: Tensor, layout: string, pack: () => Tensor): { wp: Tensor; own: boolean } {
  if (w.pending) return { wp: pack(), own: true };
  if (!cacheHooked) {
    cacheHooked = true;
    // A weight's buffer going back to the pool, or written (a step, a reload), ends its packed
    // copies: their release invalidates a captured graph that bound them.
    const drop = (buf: GPUBuffer) => {
      const byLayout = packCache.get(buf);
      if (!byLayout) return;
      packCache.delete(buf);
      for (const e of byLayout.values()) e.packed?.dispose();
    };
    engine().pool.onRelease.push(drop);
    engine().onWrite.push(drop);
  }
  const buf = w.buffer;
  const version = engine().version(buf);
  let byLayout = packCache.get(buf);
  if (!byLayout) packCache.set(buf, byLayout = new Map());
  const e = byLayout.get(layout);
  if (e && e.version === version) {
    if (e.packed && !e.packed.disposed) return { wp: e.packed, own: false };
    e.packed = keep(pack());
    return { wp: e.packed, own: false };
  }
  e?.packed?.dispose();
  byLayout.set(layout, { version, packed: null });
  return { wp: pack(), own: true };
}

/** y from the packed input xp (packInput; as half floats when `half`, see convStorage). */
function convForwardRaw(
  xp: Tensor,
  w: Tensor,
  b: Tensor | null,
  g: Geometry,
  half: boolean,
): Tensor {
  const y = Tensor.empty([g.N, g.Cout, g.Ho, g.Wo]);
  if (y.size === 0) return y;
  const t = tileSize();
  const kk = g.KH * g.KW;
  // Weight as [Cout, KH, KW, Cin].
  const { wp, own } = packedWeight(
    w,
    `${half ? "h:" : ""}fwd:${g.Cout},${kk},${g.Cin}`,
    () => operand(packRows4(w, g.Cout, kk, g.Cin, { sb: g.Cin * kk, so: 1, si: kk }), half),
  );
  const c4 = Math.ceil(g.Cin / 4);
  const run = (v: string) => () =>
    engine().dispatch({
      ...blockLaunch("conv2d_fwd", v, [xp, wp], g, c4, half),
      buffers: [xp.buffer, wp.buffer, (b ?? wp).buffer, y.buffer],
      params: [...geoWords(g), c4, b ? 1 : 0],
      workgroups: blockGrid(v, g.N * g.Ho * g.Wo, g.Cout),
      flops: convFlops(g),
    });
  const variants = blockVariants(g.Cout, c4, [xp, wp], half);
  runConvKernel("conv2d_fwd", g, run, variants, `tile${t}`, BLOCK_VARIANTS, half);
  if (own) wp.dispose();
  return y;
}

/** gx from the packed output gradient gp (packOutput; always float32); the weights as half
 * floats when `half`. */
function convInputGradRaw(gp: Tensor, w: Tensor, g: Geometry, half: boolean): Tensor {
  const gx = Tensor.empty([g.N, g.Cin, g.H, g.W]);
  if (gx.size === 0) return gx;
  const t = tileSize();
  const kk = g.KH * g.KW;
  // Weight as [Cin, KH, KW, Cout].
  const { wp, own } = packedWeight(
    w,
    `${half ? "h:" : ""}bwd_data:${g.Cin * kk},${g.Cout}`,
    () => operand(packRows4(w, 1, g.Cin * kk, g.Cout, { sb: 0, so: 1, si: g.Cin * kk }), half),
  );
  // Input pixels are enumerated phase by phase (see the shader), holes included.
  const Hs = Math.ceil(g.H / g.SH), Ws = Math.ceil(g.W / g.SW);
  const c4 = Math.ceil(g.Cout / 4);
  const run = (v: string) => () =>
    engine().dispatch({
      ...blockLaunch("conv2d_bwd_data", v, [gp, wp], g, c4, half),
      buffers: [gp.buffer, wp.buffer, gx.buffer],
      params: [...geoWords(g), c4, Hs, Ws],
      workgroups: blockGrid(v, g.N * g.SH * g.SW * Hs * Ws, g.Cin),
      flops: convFlops(g),
    });
  const variants = blockVariants(g.Cin, c4, [gp, wp], half);
  runConvKernel("conv2d_bwd_data", g, run, variants, `tile${t}`, BLOCK_VARIANTS, half);
  if (own) wp.dispose();
  return gx;
}

/** Threads to aim for by splitting the batch: enough to fill a large GPU; on the CPU adapter
 * a few per core (each split adds a partial plane to sum). */
function targetThreads(): number {
  return engine().adapter.isFallbackAdapter ? 1024 : 16384;
}

const WG_WEIGHT = 64;

/** gw from the packed input xp (packInput; as half floats when `half`) and output gradient gp
 * (packOutput; always float32). */
function convWeightGradRaw(xp: Tensor, gp: Tensor, g: Geometry, half: boolean): Tensor {
  const kk = g.KH * g.KW;
  const wShape = [g.Cout, g.Cin, g.KH, g.KW];
  const t = tileSize();
  // Blocks of t output x ti input channels; RGB-like inputs get narrow blocks on the CPU.
  const blocks = (v: string) =>
    v === "tile16x4" ? { to: 16, ti: 4 } : v === "tile4" ? { to: 4, ti: 4 } : { to: 16, ti: 16 };
  const dflt = t === 16 && g.Cin <= 4 ? "tile16x4" : `tile${t}`;
  // The batch split (and so the order of the final sum) is fixed by the default 16-wide
  // blocks, whichever variant runs: every variant gives the same bits.
  const ref = blocks(g.Cin <= 4 ? "tile16x4" : "tile16");
  const refLanes = Math.ceil(g.Cin / ref.ti) * Math.ceil(g.Cout / ref.to);
  let split = Math.max(1, Math.min(g.N, Math.ceil(targetThreads() / (refLanes * kk))));
  split = Math.min(split, Math.floor(MAX_GROUPS / kk));
  const nPer = Math.ceil(g.N / split);
  split = Math.ceil(g.N / nPer);
  const partial = Tensor.empty([split, ...wShape]);
  const run = (variant: string) => () => {
    const launch = variantLaunch("conv2d_bwd_weight", variant, [xp, gp], half);
    const v = launch.entry;
    const tiled = v === "tiled";
    const { to, ti } = blocks(v);
    const lanes = Math.ceil(g.Cin / ti) * Math.ceil(g.Cout / to);
    // tiled: one 16x16 workgroup per block of 64 x 64 channels (and tap and batch chunk); the
    // others number their threads flat over (tap and chunk, channel block): see the shader.
    const workgroups: [number, number] = tiled
      ? [Math.ceil(g.Cin / 64) * Math.ceil(g.Cout / 64), split * kk]
      : grid1d(lanes * split * kk, WG_WEIGHT);
    engine().dispatch({
      ...launch,
      constants: tiled ? {} : { WG: WG_WEIGHT },
      buffers: [xp.buffer, gp.buffer, partial.buffer],
      params: [...geoWords(g), nPer, Math.ceil(g.Cin / 4), Math.ceil(g.Cout / 4)],
      workgroups,
      flops: convFlops(g),
    });
  };
  // The batch split above is the same for every variant, the GPU's tiled one included.
  const variants = withTwins(
    ["tile4", "tile16", ...(g.Cin <= 4 ? ["tile16x4"] : [])],
    [xp, gp],
    half,
  );
  const known = [...withTwins(["tile4", "tile16", "tile16x4"]), "tiled"];
  runConvKernel("conv2d_bwd_weight", g, run, variants, dflt, known, half);
  if (split === 1) return partial.view(wShape);
  const gw = sum(partial, 0);
  partial.dispose();
  return gw;
}

/** Gradients of a convolution with geometry g for output gradient gy: [gx, gw] as needed.
 * The packed operands are made once and shared by both kernels. */
function convGrads(
  x: Tensor,
  w: Tensor,
  gy: Tensor,
  g: Geometry,
  needX: boolean,
  needW: boolean,
  savedXp: Tensor | null,
  half: boolean,
) {
  if (!needX && !needW) return [null, null];
  const gp = packOutput(gy, g);
  const gx = needX ? convInputGradRaw(gp, w, g, half) : null;
  let gw: Tensor | null = null;
  if (needW) {
    // The forward's packed input when it is still there (same scope), else packed again.
    const fresh = !savedXp || savedXp.disposed;
    const xp = fresh ? operand(packInput(x, g), half) : savedXp;
    gw = convWeightGradRaw(xp, gp, g, half);
    if (fresh) xp.dispose();
  }
  gp.dispose();
  return [gx, gw];
}

function checkBias(op: string, b: Tensor | null | undefined, c: number): Tensor | null {
  if (!b) return null;
  if (b.ndim !== 1 || b.shape[0] !== c) {
    throw new Error(`${op}: bias has shape [${b.shape}], expected [${c}]`);
  }
  return b;
}

function biasGrad(gy: Tensor): Tensor {
  return sum(gy, [0, 2, 3]);
}

/** y = conv2d(x [N,Cin,H,W], w [Cout,Cin,KH,KW]) + b, PyTorch semantics (zero padding). */
export function conv2d(x: Tensor, w: Tensor, b?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  const op = "conv2d";
  if (x.ndim !== 4) throw new Error(`${op}: input must be [N,C,H,W], got [${x.shape}]`);
  if (w.ndim !== 4) throw new Error(`${op}: weight must be [Cout,Cin,KH,KW], got [${w.shape}]`);
  const [N, Cin, H, W] = x.shape;
  const [Cout, wCin, KH, KW] = w.shape;
  if (wCin !== Cin) {
    throw new Error(
      `${op}: input [${x.shape}] has ${Cin} channels but weight [${w.shape}] expects ${wCin}`,
    );
  }
  const [SH, SW] = pair(op, "stride", o.stride, 1, 1);
  const [PH, PW] = pair(op, "padding", o.padding, 0, 0);
  const [DH, DW] = pair(op, "dilation", o.dilation, 1, 1);
  const Ho = Math.floor((H + 2 * PH - DH * (KH - 1) - 1) / SH) + 1;
  const Wo = Math.floor((W + 2 * PW - DW * (KW - 1) - 1) / SW) + 1;
  if (Ho < 1 || Wo < 1) {
    throw new Error(
      `${op}: input ${H}x${W} with padding ${PH},${PW} is smaller than the dilated kernel ` +
        `${DH * (KH - 1) + 1}x${DW * (KW - 1) + 1}; pad more or use a smaller kernel`,
    );
  }
  const bias = checkBias(op, b, Cout);
  const g: Geometry = { N, Cin, H, W, Cout, Ho, Wo, KH, KW, SH, SW, PH, PW, DH, DW };
  // ATOP_F16=1: the packed input (kept for the weight gradient) and weights as half floats.
  const half = convStorage() === "f16";
  const xp = operand(packInput(x, g), half);
  const y = convForwardRaw(xp, w, bias, g, half);
  // A weight that will want its gradient keeps the packed input for the backward (it lives
  // in the caller's scope, like the other saved activations): one pack fewer per step.
  const saveXp = isGradEnabled() && w.requiresGrad;
  if (!saveXp) xp.dispose();
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(y, op, inputs, (gy, needs) => [
    ...convGrads(x, w, gy, g, needs[0], needs[1], saveXp ? xp : null, half),
    needs[2] ? biasGrad(gy) : null,
  ]);
}

/** Transposed convolution, x [N,Cin,H,W], w [Cin,Cout,KH,KW] (PyTorch layout); output size
 * (H-1)*stride - 2*padding + dilation*(K-1) + outputPadding + 1. */
export function convTranspose2d(
  x: Tensor,
  w: Tensor,
  b?: Tensor | null,
  o: ConvTranspose2dOptions = {},
): Tensor {
  const op = "convTranspose2d";
  if (x.ndim !== 4) throw new Error(`${op}: input must be [N,C,H,W], got [${x.shape}]`);
  if (w.ndim !== 4) throw new Error(`${op}: weight must be [Cin,Cout,KH,KW], got [${w.shape}]`);
  const [N, Cin, H, W] = x.shape;
  const [wCin, Cout, KH, KW] = w.shape;
  if (wCin !== Cin) {
    throw new Error(
      `${op}: input [${x.shape}] has ${Cin} channels but weight [${w.shape}] expects ${wCin}`,
    );
  }
  const [SH, SW] = pair(op, "stride", o.stride, 1, 1);
  const [PH, PW] = pair(op, "padding", o.padding, 0, 0);
  const [DH, DW] = pair(op, "dilation", o.dilation, 1, 1);
  const [OH, OW] = pair(op, "outputPadding", o.outputPadding, 0, 0);
  if (OH >= Math.max(SH, DH) || OW >= Math.max(SW, DW)) {
    throw new Error(
      `${op}: outputPadding must be smaller than stride or dilation, got ${OH},${OW}`,
    );
  }
  const Ho = (H - 1) * SH - 2 * PH + DH * (KH - 1) + OH + 1;
  const Wo = (W - 1) * SW - 2 * PW + DW * (KW - 1) + OW + 1;
  if (Ho < 1 || Wo < 1) throw new Error(`${op}: padding ${PH},${PW} leaves an empty output`);
  const bias = checkBias(op, b, Cout);
  // Seen as the convolution whose input gradient it is: conv input [N,Cout,Ho,Wo] -> [N,Cin,H,W].
  const g: Geometry = {
    N,
    Cin: Cout,
    H: Ho,
    W: Wo,
    Cout: Cin,
    Ho: H,
    Wo: W,
    KH,
    KW,
    SH,
    SW,
    PH,
    PW,
    DH,
    DW,
  };
  // x plays the output gradient of that convolution and gy its input. It stays float32 under
  // ATOP_F16=1: its backward's packed "input" is a gradient, and a forward with half weights
  // would differentiate another function than that backward.
  const xp = packOutput(x, g);
  let y = record(convInputGradRaw(xp, w, g, false), op, [x, w], (gy, needs) => {
    if (!needs[0] && !needs[1]) return [null, null];
    const gyp = packInput(gy, g);
    const gx = needs[0] ? convForwardRaw(gyp, w, null, g, false) : null;
    let gw: Tensor | null = null;
    if (needs[1]) {
      const p = packOutput(x, g);
      gw = convWeightGradRaw(gyp, p, g, false);
      p.dispose();
    }
    gyp.dispose();
    return [gx, gw];
  });
  xp.dispose();
  if (bias) y = add(y, reshape(bias, [1, Cout, 1, 1]));
  return y;
}

/** Multiply-adds of the forward (each backward pass does the same amount), times 2. */
export function convFlops(
  g: { N: number; Cin: number; Cout: number; Ho: number; Wo: number; KH: number; KW: number },
) {
  return 2 * g.N * g.Cout * g.Ho * g.Wo * g.Cin * g.KH * g.KW;
}
