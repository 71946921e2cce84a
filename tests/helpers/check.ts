// Test harness: compares GPU ops with float64 CPU references on random inputs (never zeros),
// and GPU gradients with central finite differences of the float64 reference.

import assert from "node:assert/strict";
import { initEngine } from "../../runtime/engine.ts";
import { type Shape, shapeSize, Tensor, tidyAsync } from "../../runtime/tensor.ts";
import { backward } from "../../runtime/autograd.ts";
import * as ops from "../../runtime/ops/mod.ts";

export { assert };

/** Deterministic test RNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform values in [lo, hi), nudged away from exact zero. */
export function randArray(n: number, r: () => number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = lo + (hi - lo) * r();
    if (Math.abs(v) < 1e-3) v = v < 0 ? -1e-3 : 1e-3;
    a[i] = v;
  }
  return a;
}

/** A random integer in [lo, hi]. */
export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export async function gpu(): Promise<void> {
  // Kernel tuning off in tests unless a test turns it on: dispatch counts stay exact and the
  // user's tuning cache is not written (tests/tune.test.ts covers the tuner).
  if (Deno.env.get("ATOP_TUNE") === undefined) Deno.env.set("ATOP_TUNE", "off");
  await initEngine((Deno.env.get("ATOP_ADAPTER") as "auto" | "cpu" | "gpu") ?? "auto");
}

export interface Input {
  shape: Shape;
  data: Float64Array;
  /** Compare the gradient w.r.t. this input (default true). */
  grad?: boolean;
}

export function input(shape: Shape, r: () => number, lo = -1, hi = 1, grad = true): Input {
  return { shape, data: randArray(shapeSize(shape), r, lo, hi), grad };
}

/** Max over elements of |a-b| / (|b| + 1e-2 * rms(b)): relative error that does not blow up on
 * entries that are tiny only because of cancellation. */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, "length mismatch");
  let ss = 0;
  for (let i = 0; i < want.length; i++) ss += want[i] * want[i];
  const floor = 1e-2 * Math.sqrt(ss / Math.max(1, want.length)) + 1e-30;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + floor);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const e = relError(got, want);
  if (!(e <= tol)) {
    let worstI = 0, worstE = -1;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(got[i] - want[i]);
      if (d > worstE || Number.isNaN(d)) [worstI, worstE] = [i, Number.isNaN(d) ? Infinity : d];
    }
    assert.fail(
      `${what}: relative error ${e.toExponential(2)} > ${tol} ` +
        `(worst at [${worstI}]: got ${got[worstI]}, want ${want[worstI]})`,
    );
  }
}

export type GpuFn = (xs: Tensor[]) => Tensor;
export type RefFn = (xs: Float64Array[]) => Float64Array;

export interface CheckOptions {
  fwdTol?: number;
  bwdTol?: number;
  /** Finite-difference step in float64. */
  h?: number;
  /** At most this many coordinates per input are checked by finite differences. */
  maxCoords?: number;
  seed?: number;
  skipBackward?: boolean;
}

/** Forward vs reference, then backward (of sum(out * w), random w) vs central differences. */
export async function checkOp(
  name: string,
  fn: GpuFn,
  ref: RefFn,
  inputs: Input[],
  opts: CheckOptions = {},
): Promise<void> {
  const { fwdTol = 1e-4, bwdTol = 1e-3, h = 1e-5, maxCoords = 48, seed = 7 } = opts;
  const want = ref(inputs.map((i) => i.data));
  await tidyAsync(async () => {
    const xs = inputs.map((i) => {
      const t = Tensor.fromData(Float32Array.from(i.data), i.shape);
      t.requiresGrad = !opts.skipBackward && i.grad !== false;
      return t;
    });
    // The reference sees the float32-rounded inputs, so only op error is measured.
    const rounded = inputs.map((i) => Float64Array.from(Float32Array.from(i.data)));
    const want32 = ref(rounded);
    const out = fn(xs);
    assert.equal(
      out.size,
      want.length,
      `${name}: output has ${out.size} values, reference ${want.length}`,
    );
    assertClose(await out.data(), want32, fwdTol, `${name} forward`);
    if (opts.skipBackward) return;

    const r = rng(seed);
    const w = randArray(out.size, r);
    const wT = Tensor.fromData(Float32Array.from(w), out.shape);
    const loss = ops.sum(ops.mul(out, wT));
    backward(loss);
    const objective = (vals: Float64Array[]) => {
      const y = ref(vals);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * w[i];
      return s;
    };
    for (let k = 0; k < inputs.length; k++) {
      if (inputs[k].grad === false) continue;
      const g = xs[k].grad;
      assert.ok(g, `${name}: input ${k} got no gradient`);
      const got = await g.data();
      const n = inputs[k].data.length;
      const coords = n <= maxCoords
        ? [...Array(n).keys()]
        : Array.from({ length: maxCoords }, () => Math.floor(r() * n));
      const fd: number[] = [], gg: number[] = [];
      for (const c of coords) {
        const vals = rounded.map((v) => Float64Array.from(v));
        vals[k][c] += h;
        const up = objective(vals);
        vals[k][c] -= 2 * h;
        const down = objective(vals);
        fd.push((up - down) / (2 * h));
        gg.push(got[c]);
      }
      assertClose(gg, fd, bwdTol, `${name} backward wrt input ${k}`);
    }
    for (const x of xs) {
      x.grad?.dispose();
      x.grad = null;
    }
  });
}
