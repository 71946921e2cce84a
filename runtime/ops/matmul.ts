// Matrix products: batched matmul with transposes, and linear layers (x @ W^T + b).

import { record } from "../autograd.ts";
import { engine, grid1d } from "../engine.ts";
import { blockTile } from "./tiles.ts";
import { Tensor } from "../tensor.ts";
import { isPendingExpr, realizePacked } from "../graph/fuse.ts";
import { launch1d, words } from "./util.ts";
import { add } from "./elementwise.ts";
import { sum } from "./reduce.ts";

/** Threads per workgroup of tile16 and tile4 (blocks numbered flat: see the shader). */
const WG = 64;

/** The matmul kernel variants: tile16 (CPU adapter), tile4 and tiled (workgroup memory, the
 * default on GPUs). Chosen per adapter, not by timing: they may round differently. */
export type MatmulVariant = "tile4" | "tile16" | "tiled";
let forcedVariant: MatmulVariant | null = null;

/** Forces a matmul variant (tests run every variant on every adapter); null lifts it. */
export function forceMatmulVariant(v: MatmulVariant | null): void {
  forcedVariant = v;
}

function matmulVariant(): MatmulVariant {
  if (forcedVariant) return forcedVariant;
  let env: string | undefined;
  try {
    env = Deno.env.get("ATOP_MATMUL");
  } catch {
    env = undefined;
  }
  if (env === "tile4" || env === "tile16" || env === "tiled") return env;
  if (env) throw new Error(`ATOP_MATMUL: expected tile4, tile16 or tiled, got "${env}"`);
  const t = blockTile(); // ATOP_TILE=4|16 and the adapter default
  return t === 16 ? "tile16" : engine().adapter.isFallbackAdapter ? "tile4" : "tiled";
}

export interface PackStrides {
  /** Element strides of the source: between batches, between output rows, along a row. */
  sb: number;
  so: number;
  si: number;
}

/** Gathers a batched operand into rows of a multiple of 4 floats: out [batch*O + extraRows, I4]
 * with out[b*O+o, i] = src[b*sb + o*so + i*si] for i < I and 0 up to I4 = ceil(I/4)*4; the
 * extra rows are zeros. With si = 1 it pads rows, with so = 1 it transposes. This is the layout
 * the matmul and conv kernels read as vec4s. No autograd. */
export function packRows4(
  src: Tensor,
  batch: number,
  O: number,
  I: number,
  s: PackStrides,
  extraRows = 0,
): Tensor {
  const i4 = Math.ceil(I / 4);
  const out = Tensor.empty([batch * O + extraRows, i4 * 4]);
  const rows = batch * O * i4;
  const total = rows + extraRows * i4;
  if (total === 0) return out;
  if (isPendingExpr(src)) {
    // A pending elementwise result (e.g. relu(batchNorm(x))) is computed straight into the
    // packed layout: it never needs its own buffer.
    realizePacked(src, out, {
      rows: batch * O,
      O,
      I,
      I4: i4 * 4,
      sb: s.sb,
      so: s.so,
      si: s.si,
      total: total * 4,
    });
    return out;
  }
  if (s.so === 1 && O % 4 === 0 && s.si % 4 === 0 && s.sb % 4 === 0) {
    // Transpose of vec4-aligned planes (NCHW -> channels-last): 4x4 blocks.
    const blocks = rows / 4;
    const n = blocks + extraRows * i4;
    launch1d(
      "matmul",
      n,
      [src.buffer, out.buffer],
      words(n, blocks, O / 4, i4, I, s.sb / 4, s.si / 4),
      {},
      "pack4",
    );
    return out;
  }
  launch1d(
    "matmul",
    total,
    [src.buffer, out.buffer],
    words(total, rows, O, i4, I, s.sb, s.so, s.si),
    {},
    "pack",
  );
  return out;
}

/** C = op(A) @ op(B) on [M,K]x[K,N] or batched [b,M,K]x[b,K,N] (a 2-d operand is shared
 * across the batch). transA/transB read the stored operand transposed. No autograd. */
export function matmulRaw(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  if (a.ndim < 2 || a.ndim > 3 || b.ndim < 2 || b.ndim > 3) {
    throw new Error(`matmul: expected 2-d or 3-d operands, got [${a.shape}] and [${b.shape}]`);
  }
  const ba = a.ndim === 3 ? a.shape[0] : 1;
  const bb = b.ndim === 3 ? b.shape[0] : 1;
  if (ba !== bb && ba !== 1 && bb !== 1) {
    throw new Error(`matmul: batch sizes ${ba} and ${bb} differ in [${a.shape}] @ [${b.shape}]`);
  }
  const batch = Math.max(ba, bb);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) {
    throw new Error(
      `matmul: inner dimensions differ: [${a.shape}]${transA ? "^T" : ""} @ ` +
        `[${b.shape}]${transB ? "^T" : ""} (${K} vs ${K2})`,
    );
  }
  const out = Tensor.empty(a.ndim === 3 || b.ndim === 3 ? [batch, M, N] : [M, N]);
  if (out.size === 0) return out;
  // The kernel wants A as [M,K4] and B as [N,K4] (K contiguous, padded to 4).
  const k4 = Math.ceil(K / 4);
  const direct = K % 4 === 0;
  const ap = !transA && direct
    ? a
    : packRows4(a, ba, M, K, transA ? { sb: K * M, so: 1, si: M } : { sb: M * K, so: K, si: 1 });
  const bp = transB && direct
    ? b
    : packRows4(b, bb, N, K, transB ? { sb: N * K, so: K, si: 1 } : { sb: K * N, so: 1, si: N });
  // Not tuned: the variants may round a dot product differently (tile4 and tile16 do on
  // llvmpipe), and a choice made by timing must never change results.
  const v = matmulVariant();
  // tiled: a 64x64 block per workgroup; the others one block per thread, numbered flat.
  const per = v === "tiled" ? 64 : v === "tile16" ? 16 : 4;
  const blocks = Math.ceil(N / per) * Math.ceil(M / per);
  engine().dispatch({
    kernel: "matmul",
    entry: v,
    constants: v === "tiled" ? {} : { WG },
    buffers: [ap.buffer, bp.buffer, out.buffer],
    params: words(M, N, k4, ba === 1 ? 0 : M * k4, bb === 1 ? 0 : N * k4, M * N),
    workgroups: v === "tiled"
      ? [Math.ceil(N / per), Math.ceil(M / per), batch]
      : [...grid1d(blocks, WG), batch],
    flops: 2 * batch * M * N * K,
  });
  if (ap !== a) ap.dispose();
  if (bp !== b) bp.dispose();
  return out;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const out = matmulRaw(a, b);
  return record(out, "matmul", [a, b], (gy, needs) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (needs[0]) {
      ga = matmulRaw(gy, b, false, true); // dA = dC @ B^T
      if (a.ndim === 2 && ga.ndim === 3) ga = sumBatch(ga);
    }
    if (needs[1]) {
      gb = matmulRaw(a, gy, true, false); // dB = A^T @ dC
      if (b.ndim === 2 && gb.ndim === 3) gb = sumBatch(gb);
    }
    return [ga, gb];
  });
}

function sumBatch(t: Tensor): Tensor {
  return sum(t, 0);
}

/** y = x @ W^T + b with x [N,in], W [out,in] (PyTorch layout), b [out]. */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  if (x.ndim !== 2 || w.ndim !== 2 || x.shape[1] !== w.shape[1]) {
    throw new Error(
      `linear: input [${x.shape}] does not match weight [${w.shape}] (expected [N, ${w.shape[1]}])`,
    );
  }
  const y = record(matmulRaw(x, w, false, true), "linear", [x, w], (gy, needs) => [
    needs[0] ? matmulRaw(gy, w) : null, // dx = gy @ W
    needs[1] ? matmulRaw(gy, x, true, false) : null, // dW = gy^T @ x
  ]);
  if (!b) return y;
  if (b.ndim !== 1 || b.shape[0] !== w.shape[0]) {
    throw new Error(`linear: bias [${b.shape}] should be [${w.shape[0]}]`);
  }
  return add(y, b);
}
