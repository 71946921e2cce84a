// Shared helpers for op implementations: shapes, strides, broadcasting, launch sizes.

import { engine, f32bits, grid1d } from "../engine.ts";
import type { Shape, Tensor } from "../tensor.ts";

export const WG = 256;
export const MAX_DIMS = 6;

export function stridesOf(shape: Shape): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** NumPy broadcasting of two shapes; the error names the op and both shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes [${a}] and [${b}] cannot be broadcast together`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` read as if broadcast to `out` (0 on broadcast dims), padded to 6. */
export function broadcastStrides(shape: Shape, out: Shape): number[] {
  const s = stridesOf(shape);
  const res: number[] = [];
  for (let i = 0; i < out.length; i++) {
    const j = i - (out.length - shape.length);
    res.push(j < 0 || shape[j] === 1 ? 0 : s[j]);
  }
  return pad6(res);
}

export function pad6(xs: number[], fill = 0): number[] {
  if (xs.length > MAX_DIMS) throw new Error(`tensors of more than ${MAX_DIMS} dims unsupported`);
  return [...xs, ...new Array(MAX_DIMS - xs.length).fill(fill)];
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Packs a mix of u32 words and f32 values (wrapped as {f: x}) into param words. */
export function words(...xs: (number | { f: number } | number[])[]): number[] {
  const out: number[] = [];
  for (const x of xs) {
    if (Array.isArray(x)) out.push(...x);
    else if (typeof x === "number") out.push(x >>> 0);
    else out.push(f32bits(x.f));
  }
  return out;
}

/** Launches a 1-thread-per-element kernel over `n` elements. */
export function launch1d(
  kernel: string,
  n: number,
  buffers: GPUBuffer[],
  params: number[],
  constants: Record<string, number> = {},
  entry?: string,
  refresh?: () => number[],
): void {
  if (n === 0) return;
  engine().dispatch({
    kernel,
    entry,
    constants: { WG, ...constants },
    buffers,
    params,
    refresh,
    workgroups: grid1d(n, WG),
  });
}

export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) {
    throw new Error(`${op}: axis ${axis} is out of range for a ${ndim}-d tensor`);
  }
  return a;
}

export function assertNdim(op: string, t: Tensor, ndim: number, layout: string): void {
  if (t.ndim !== ndim) {
    throw new Error(`${op}: expected a ${ndim}-d ${layout} tensor, got shape [${t.shape}]`);
  }
}
