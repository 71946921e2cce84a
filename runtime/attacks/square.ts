// Square Attack (Andriushchenko et al., ECCV 2020), score-based, Linf and L2, following the
// reference implementation (fra31/auto-attack square.py): random square updates of side
// s = round(sqrt(p * n_features / c)) with p from a piecewise-constant schedule starting at
// p_init, accepted when the margin loss decreases. Differences from the reference, on purpose:
// each example draws its own square position and signs (from its own random stream, so results
// do not depend on the batch), and the initial query counts toward the budget, so no example
// ever uses more than `queries` forward passes per restart.
//
// The search state lives on the CPU; each query is one batched forward of the examples still
// robust.

import { noGrad } from "../autograd.ts";
import { Tensor, tidy } from "../tensor.ts";
import {
  type AttackInput,
  type AttackResult,
  checkEps,
  defaultIndices,
  type Norm,
  predictions,
} from "./common.ts";
import type { Target } from "./target.ts";
import { exampleUniform, STREAM } from "./rand.ts";

export interface SquareOptions {
  /** Default "linf". */
  norm?: Norm;
  /** Default 8/255 (linf) or 0.5 (l2). */
  eps?: number;
  /** Query budget per example and restart, the initial query included; default 5000. */
  queries?: number;
  /** Initial fraction of pixels changed per square; default 0.8. */
  pInit?: number;
  /** Default 1. */
  restarts?: number;
  /** Scale the p schedule (breakpoints for 10,000 queries) to `queries`; default true
   * (AutoAttack's standard version passes false). */
  rescaleSchedule?: boolean;
  /** "margin" (default) or "ce". */
  loss?: "margin" | "ce";
  /** Base seed; default 0. */
  seed?: number;
}

export function squareDefaults(o: SquareOptions = {}) {
  const norm = o.norm ?? "linf";
  return {
    norm,
    eps: o.eps ?? (norm === "linf" ? 8 / 255 : 0.5),
    queries: o.queries ?? 5000,
    pInit: o.pInit ?? 0.8,
    restarts: o.restarts ?? 1,
    rescaleSchedule: o.rescaleSchedule ?? true,
    loss: o.loss ?? "margin",
    seed: o.seed ?? 0,
  };
}

/** The reference p schedule: p_init halved after iterations 10, 50, 200, 500, 1000, 2000,
 * 4000, 6000, 8000 (of 10,000; rescaled to the budget when `rescale`). */
export function squarePSelection(it: number, pInit: number, queries: number, rescale: boolean) {
  const i = rescale ? Math.trunc((it / queries) * 10000) : it;
  const marks = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let p = pInit;
  for (const m of marks) if (i > m) p /= 2;
  return p;
}

/** Python's round (half to even). */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Side of the square at iteration `it`. */
export function squareSide(
  norm: Norm,
  it: number,
  o: { pInit: number; queries: number; rescaleSchedule: boolean },
  c: number,
  h: number,
  w: number,
): number {
  const p = squarePSelection(it, o.pInit, o.queries, o.rescaleSchedule);
  let s = roundHalfEven(Math.sqrt((p * c * h * w) / c));
  if (norm === "linf") s = Math.max(s, 1);
  else {
    s = Math.max(s, 3);
    if (s % 2 === 0) s++;
  }
  return Math.min(s, h, w);
}

/** The L2 update pattern eta(s) of the reference: nested rectangles with weights 1/(k+1)^2,
 * positive on the top half and negative on the bottom half, unit L2 norm; transposed when
 * `transpose`. */
export function squareEta(s: number, transpose: boolean): Float64Array {
  const rect = (x: number, y: number) => {
    const d = new Float64Array(x * y);
    const xc = Math.floor(x / 2) + 1, yc = Math.floor(y / 2) + 1;
    let c0 = xc - 1, c1 = yc - 1;
    for (let k = 0; k < Math.max(xc, yc); k++) {
      for (let i = Math.max(c0, 0); i < Math.min(c0 + 2 * k + 1, x); i++) {
        for (let j = Math.max(c1, 0); j < Math.min(c1 + 2 * k + 1, y); j++) {
          d[i * y + j] += 1 / ((k + 1) * (k + 1));
        }
      }
      c0--;
      c1--;
    }
    let n = 0;
    for (const v of d) n += v * v;
    n = Math.sqrt(n);
    return d.map((v) => (n > 0 ? v / n : v));
  };
  const top = Math.floor(s / 2);
  const out = new Float64Array(s * s);
  out.set(rect(top, s), 0);
  const bottom = rect(s - top, s);
  for (let i = 0; i < bottom.length; i++) out[top * s + i] = -bottom[i];
  let n = 0;
  for (const v of out) n += v * v;
  n = Math.sqrt(n);
  for (let i = 0; i < out.length; i++) out[i] /= n;
  if (!transpose) return out;
  const t = new Float64Array(s * s);
  for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) t[j * s + i] = out[i * s + j];
  return t;
}

const sgn = (u: number) => (u < 0.5 ? -1 : 1);

interface Geometry {
  c: number;
  h: number;
  w: number;
  d: number;
}

/** Margin z_y - max_{i!=y} z_i and the loss the search minimizes, per row. */
async function marginAndLoss(
  target: Target,
  rows: Float32Array,
  m: number,
  g: Geometry,
  labels: number[],
  loss: "margin" | "ce",
  examples: readonly number[],
): Promise<{ margin: number[]; loss: number[] }> {
  const t = Tensor.fromData(rows, [m, g.c, g.h, g.w]);
  // tidy: a forward's intermediates go now, not at the end of the caller's scope (Square
  // runs thousands of forwards in one evaluation batch).
  const z = tidy(() => noGrad(() => target.logits(t, examples)));
  const { z: zc } = await predictions(z);
  z.dispose();
  t.dispose();
  const k = zc.length / m;
  const margin: number[] = [], lossOut: number[] = [];
  for (let i = 0; i < m; i++) {
    const row = zc.subarray(i * k, (i + 1) * k);
    const y = labels[i];
    let other = -Infinity, mx = -Infinity;
    for (let j = 0; j < k; j++) {
      mx = Math.max(mx, row[j]);
      if (j !== y) other = Math.max(other, row[j]);
    }
    const mg = row[y] - other;
    margin.push(mg);
    if (loss === "margin") lossOut.push(mg);
    else {
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp(row[j] - mx);
      lossOut.push(-(mx + Math.log(s) - row[y]));
    }
  }
  return { margin, loss: lossOut };
}

/** Rescales a float32 point so that its float64 L2 distance to x is <= eps. */
function enforceL2(xn: Float32Array, x: Float32Array, eps: number): void {
  for (let tries = 0; tries < 4; tries++) {
    let s = 0;
    for (let j = 0; j < xn.length; j++) s += (xn[j] - x[j]) ** 2;
    const nrm = Math.sqrt(s);
    if (nrm <= eps) return;
    const f = (eps / nrm) * (1 - 1e-6 * (tries + 1));
    for (let j = 0; j < xn.length; j++) xn[j] = x[j] + (xn[j] - x[j]) * f;
  }
}

/** One L2 Square proposal on a perturbation `delta` ([c,h,w], float64, changed in place),
 * before the final rescale to eps: window 1 ([vh,vw], side s) gets a fresh eta pattern of
 * per-channel `signs` plus its old direction, window 2 is zeroed. The new window's norm is,
 * per channel as in the reference's square.py, sqrt(max(eps^2 - |delta|^2, 0) / c +
 * |delta over both windows, this channel|^2). */
export function squareL2Proposal(
  delta: Float64Array,
  g: { c: number; h: number; w: number },
  s: number,
  [vh, vw, vh2, vw2]: [number, number, number, number],
  eta: Float64Array | Float32Array | number[],
  signs: number[],
  eps: number,
): void {
  const { c, h, w } = g;
  let normImage = 0;
  for (let j = 0; j < delta.length; j++) normImage += delta[j] * delta[j];
  normImage = Math.sqrt(normImage);
  const inW = (r: number, cc: number, a0: number, b0: number) =>
    r >= a0 && r < a0 + s && cc >= b0 && cc < b0 + s;
  // Per channel, as the reference ([n,c,1,1] norms over both windows).
  const scaleTo = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let nw = 0;
    for (let r = 0; r < h; r++) {
      for (let cc = 0; cc < w; cc++) {
        if (inW(r, cc, vh, vw) || inW(r, cc, vh2, vw2)) nw += delta[ch * h * w + r * w + cc] ** 2;
      }
    }
    scaleTo[ch] = Math.sqrt(Math.max(eps * eps - normImage * normImage, 0) / c + nw);
  }
  const fresh: Float64Array[] = [];
  for (let ch = 0; ch < c; ch++) {
    let n1 = 0;
    for (let r = 0; r < s; r++) {
      for (let cc = 0; cc < s; cc++) n1 += delta[ch * h * w + (vh + r) * w + vw + cc] ** 2;
    }
    n1 = Math.sqrt(n1);
    const sign = signs[ch];
    const nd = new Float64Array(s * s);
    let n2 = 0;
    for (let r = 0; r < s; r++) {
      for (let cc = 0; cc < s; cc++) {
        const v = eta[r * s + cc] * sign +
          delta[ch * h * w + (vh + r) * w + vw + cc] / (1e-12 + n1);
        nd[r * s + cc] = v;
        n2 += v * v;
      }
    }
    n2 = Math.sqrt(n2);
    for (let q = 0; q < nd.length; q++) nd[q] = (nd[q] / (1e-12 + n2)) * scaleTo[ch];
    fresh.push(nd);
  }
  for (let ch = 0; ch < c; ch++) {
    for (let r = 0; r < s; r++) {
      for (let cc = 0; cc < s; cc++) delta[ch * h * w + (vh2 + r) * w + vw2 + cc] = 0;
    }
  }
  for (let ch = 0; ch < c; ch++) {
    for (let r = 0; r < s; r++) {
      for (let cc = 0; cc < s; cc++) {
        delta[ch * h * w + (vh + r) * w + vw + cc] = fresh[ch][r * s + cc];
      }
    }
  }
}

/** One restart on a batch: returns x_best, its margin, and the queries used per row. */
async function singleRun(
  target: Target,
  x: Float32Array,
  g: Geometry,
  labels: number[],
  indices: number[],
  o: ReturnType<typeof squareDefaults>,
  restart: number,
  budget: number,
): Promise<{ xBest: Float32Array; margin: number[]; queries: number[] }> {
  const n = labels.length, { c, h, w, d } = g;
  const eps = o.eps;
  // As the reference: the initial point costs one query, then `budget` iterations.
  const nIter = budget;
  // Random table per example: the init draws, then a fixed number per iteration.
  const s0 = Math.floor(h / 5);
  const winsInit = o.norm === "l2" ? Math.floor(h / s0) * Math.floor(w / s0) : 0;
  const initDraws = o.norm === "linf" ? c * w : winsInit * (c + 1);
  const perIter = o.norm === "linf" ? 2 + c : 5 + c;
  const tables: Float32Array[] = [];
  for (const idx of indices) {
    tables.push(
      exampleUniform(o.seed, idx, [STREAM.square, restart], initDraws + nIter * perIter),
    );
  }

  const xBest = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const u = tables[i], off = i * d;
    if (o.norm === "linf") {
      // Vertical stripes of +-eps per channel and column.
      for (let ch = 0; ch < c; ch++) {
        for (let r = 0; r < h; r++) {
          for (let col = 0; col < w; col++) {
            const j = off + ch * h * w + r * w + col;
            xBest[j] = Math.min(1, Math.max(0, x[j] + eps * sgn(u[ch * w + col])));
          }
        }
      }
    } else {
      const delta = new Float64Array(d);
      const sp = Math.floor((h - s0 * 5) / 2);
      let q = 0;
      let vh = sp;
      for (let a = 0; a < Math.floor(h / s0); a++, vh += s0) {
        let vw = sp;
        for (let b = 0; b < Math.floor(w / s0); b++, vw += s0) {
          const eta = squareEta(s0, u[q++] > 0.5);
          for (let ch = 0; ch < c; ch++) {
            const sign = sgn(u[q++]);
            for (let r = 0; r < s0 && vh + r < h; r++) {
              for (let cc = 0; cc < s0 && vw + cc < w; cc++) {
                delta[ch * h * w + (vh + r) * w + vw + cc] += eta[r * s0 + cc] * sign;
              }
            }
          }
        }
      }
      let nrm = 0;
      for (const v of delta) nrm += v * v;
      const f = eps / (Math.sqrt(nrm) + 1e-12);
      for (let j = 0; j < d; j++) {
        xBest[off + j] = Math.min(1, Math.max(0, x[off + j] + delta[j] * f));
      }
      enforceL2(xBest.subarray(off, off + d), x.subarray(off, off + d), eps);
    }
  }
  const queries = new Array<number>(n).fill(1);
  let { margin: marginMin, loss: lossMin } = await marginAndLoss(
    target,
    xBest,
    n,
    g,
    labels,
    o.loss,
    indices,
  );
  for (let it = 0; it < nIter; it++) {
    const active = marginMin.flatMap((m, i) => (m > 0 ? [i] : []));
    if (active.length === 0) break;
    const s = squareSide(o.norm, it, o, c, h, w);
    const xNew = new Float32Array(active.length * d);
    active.forEach((i, a) => {
      const u = tables[i], base = initDraws + it * perIter, off = i * d, no = a * d;
      const vh = Math.floor((h - s) * u[base]);
      const vw = Math.floor((w - s) * u[base + 1]);
      if (o.norm === "linf") {
        xNew.set(xBest.subarray(off, off + d), no);
        for (let ch = 0; ch < c; ch++) {
          const v = 2 * eps * sgn(u[base + 2 + ch]);
          for (let r = vh; r < vh + s; r++) {
            for (let cc = vw; cc < vw + s; cc++) {
              const j = ch * h * w + r * w + cc;
              const lo = Math.max(x[off + j] - eps, 0), hi = Math.min(x[off + j] + eps, 1);
              xNew[no + j] = Math.min(hi, Math.max(lo, xBest[off + j] + v));
            }
          }
        }
        return;
      }
      // L2: move the perturbation mass of window 2 into window 1 with a fresh eta pattern.
      const vh2 = Math.floor((h - s) * u[base + 2]);
      const vw2 = Math.floor((w - s) * u[base + 3]);
      const eta = squareEta(s, u[base + 4] > 0.5);
      const delta = new Float64Array(d);
      for (let j = 0; j < d; j++) delta[j] = xBest[off + j] - x[off + j];
      const signs = Array.from({ length: c }, (_, ch) => sgn(u[base + 5 + ch]));
      squareL2Proposal(delta, g, s, [vh, vw, vh2, vw2], eta, signs, eps);
      let nd2 = 0;
      for (const v of delta) nd2 += v * v;
      const f = eps / (Math.sqrt(nd2) + 1e-12);
      for (let j = 0; j < d; j++) {
        xNew[no + j] = Math.min(1, Math.max(0, x[off + j] + delta[j] * f));
      }
      enforceL2(xNew.subarray(no, no + d), x.subarray(off, off + d), eps);
    });
    const res = await marginAndLoss(
      target,
      xNew,
      active.length,
      g,
      active.map((i) => labels[i]),
      o.loss,
      active.map((i) => indices[i]),
    );
    active.forEach((i, a) => {
      queries[i]++;
      let improved = res.loss[a] < lossMin[i];
      if (improved) lossMin[i] = res.loss[a];
      improved ||= res.margin[a] <= 0;
      if (improved) {
        marginMin[i] = res.margin[a];
        xBest.set(xNew.subarray(a * d, (a + 1) * d), i * d);
      }
    });
    marginMin = marginMin.slice();
    lossMin = lossMin.slice();
  }
  return { xBest, margin: marginMin, queries };
}

/** Square Attack. `queries` in the result counts every forward pass of each example: the
 * clean check plus, per restart, the initial point and up to `queries` iterations (the
 * reference's count): at most `1 + restarts * (queries + 1)`. */
export async function square(input: AttackInput, opts: SquareOptions = {}): Promise<AttackResult> {
  const o = squareDefaults(opts);
  checkEps("square", o.eps);
  if (!(Number.isInteger(o.queries) && o.queries >= 1)) {
    throw new Error(`square: queries must be a positive integer, got ${o.queries}`);
  }
  const indices = defaultIndices(input);
  const { target, x, labels } = input;
  const [n, c, h, w] = x.shape;
  if (o.norm === "l2" && h < 5) throw new Error(`square: l2 needs images of height >= 5, got ${h}`);
  const g: Geometry = { c, h, w, d: c * h * w };
  const xc = await x.data();
  const clean = await marginAndLoss(target, xc, n, g, labels, o.loss, indices);
  const fooled = clean.margin.map((m) => input.attackAll !== true && m <= 0);
  const out = Float32Array.from(xc);
  const queries = new Array<number>(n).fill(1); // the clean check
  const bestMargin = clean.margin.slice();
  for (let r = 0; r < o.restarts; r++) {
    const rows = fooled.flatMap((f, i) => (f ? [] : [i]));
    // As the reference: each restart is an initial point plus `queries` iterations, on top of
    // the clean check.
    const budget = o.queries;
    if (rows.length === 0) break;
    const xs = new Float32Array(rows.length * g.d);
    rows.forEach((i, j) => xs.set(xc.subarray(i * g.d, (i + 1) * g.d), j * g.d));
    const res = await singleRun(
      target,
      xs,
      g,
      rows.map((i) => labels[i]),
      rows.map((i) => indices[i]),
      o,
      r,
      budget,
    );
    rows.forEach((i, j) => {
      queries[i] += res.queries[j];
      if (res.margin[j] <= 0) fooled[i] = true;
      if (res.margin[j] <= 0 || res.margin[j] < bestMargin[i]) {
        bestMargin[i] = res.margin[j];
        out.set(res.xBest.subarray(j * g.d, (j + 1) * g.d), i * g.d);
      }
    });
  }
  return { xAdv: Tensor.fromData(out, x.shape), fooled, queries };
}
