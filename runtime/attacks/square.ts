// Square Attack (Andriushchenko et al., ECCV 2020), score-based, Linf and L2, following the
// reference implementation (fra31/auto-attack square.py): random square updates of side
// s = round(sqrt(p * n_features / c)) with p from a piecewise-constant schedule starting at
// p_init, accepted when the margin loss decreases. Differences from the reference, on purpose:
// each example draws its own square position and signs (from its own random stream, so results
// do not depend on the batch), and the initial query counts toward the budget, so no example
// ever uses more than `queries` forward passes per restart.
//
// The search state (best point, margin, loss, query counts) lives on the GPU and each query is
// one batched forward; an example fooled stops searching at once (masked, its forwards not
// counted) and leaves the batch at the next checkpoint (iterations 1, 2, 4, ... and every
// 256th), the only readbacks before a run's end.

import { CompiledStep } from "../graph/capture.ts";
import { noGrad } from "../autograd.ts";
import { keep, Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { oneHotMask, pick } from "./losses.ts";
import {
  type AttackInput,
  type AttackResult,
  checkEps,
  defaultIndices,
  type Norm,
} from "./common.ts";
import { isReplaySafe, type Target } from "./target.ts";
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

/** Margin z_y - max_{i!=y} z_i and the loss the search minimizes (the margin, or minus the
 * cross-entropy), per row of the logits z [m, k], as tensors. */
function marginAndLoss(
  z: Tensor,
  y: Tensor,
  loss: "margin" | "ce",
): { margin: Tensor; loss: Tensor } {
  const k = z.shape[1];
  const zy = pick(z, y);
  const other = ops.max(ops.where(oneHotMask(y, k), -Infinity, z), 1);
  const margin = ops.sub(zy, other);
  if (loss === "margin") return { margin, loss: margin };
  const mx = ops.max(z, 1, true);
  const lse = ops.add(ops.log(ops.sum(ops.exp(ops.sub(z, mx)), 1)), mx.view([z.shape[0]]));
  return { margin, loss: ops.sub(zy, lse) };
}

/** One forward of the target without gradients (its intermediates freed at once: Square runs
 * thousands of forwards in one evaluation batch). */
function query(target: Target, x: Tensor, examples: readonly number[]): Tensor {
  return tidy(() => noGrad(() => target.logits(x, examples)));
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

/** One L2 Square proposal for a batch of perturbations `delta` [m, c, h, w], before the final
 * rescale to eps: window 1 (mask w1 [m,1,h,w], side s) gets a fresh eta pattern (`eta`, the
 * pattern placed in window 1, zeros elsewhere) of per-channel `signs` [m,c,1,1] plus its old
 * direction, window 2 (mask w2) is zeroed. The new window's norm is, per channel as in the
 * reference's square.py, sqrt(max(eps^2 - |delta|^2, 0) / c + |delta over both windows, this
 * channel|^2). */
export function squareL2Proposal(
  delta: Tensor,
  w1: Tensor,
  w2: Tensor,
  eta: Tensor,
  signs: Tensor,
  eps: number,
): Tensor {
  const [m, c] = delta.shape;
  const col = [m, 1, 1, 1];
  const sq = ops.square(delta);
  const normImage2 = ops.sum(sq, [1, 2, 3]).view(col);
  const both = ops.maximum(w1, w2);
  const nw = ops.sum(ops.mul(sq, both), [2, 3], true); // [m, c, 1, 1]
  const scaleTo = ops.sqrt(
    ops.add(ops.div(ops.maximum(ops.sub(eps * eps, normImage2), 0), c), nw),
  );
  const n1 = ops.sqrt(ops.sum(ops.mul(sq, w1), [2, 3], true));
  const nd = ops.mul(ops.add(ops.mul(eta, signs), ops.div(delta, ops.add(n1, 1e-12))), w1);
  const n2 = ops.sqrt(ops.sum(ops.square(nd), [2, 3], true));
  const fresh = ops.mul(ops.div(nd, ops.add(n2, 1e-12)), scaleTo);
  return ops.where(w1, fresh, ops.where(w2, 0, delta));
}

/** Rescales points xn so that their L2 distance to x is <= eps. The norms are float32, so the
 * target is a few float32 ulps inside eps: the float64 check on the result (enforceL2, run on
 * the CPU at the end) then leaves the evaluated points as they are. */
function enforceL2Gpu(xn: Tensor, x: Tensor, eps: number): Tensor {
  const col = [x.shape[0], 1, 1, 1];
  const target = eps * (1 - 4e-6);
  for (let tries = 0; tries < 4; tries++) {
    const d = ops.sub(xn, x);
    const nrm = ops.normL2PerExample(d).view(col);
    const f = ops.mul(ops.div(target, nrm), 1 - 1e-6 * (tries + 1));
    xn = ops.where(ops.gt(nrm, target), ops.add(x, ops.mul(d, f)), xn);
  }
  return xn;
}

/** Iterations before which a run reads its margins back and drops the rows already fooled
 * from the batch: 1, 2, 4, ... and every 256th (a few dozen readbacks in 5,000 queries). */
function isCheckpoint(it: number): boolean {
  return it > 0 && ((it & (it - 1)) === 0 || it % 256 === 0);
}

/** One restart on a batch: returns x_best, its margin, and the queries used per row. The
 * search state (best point, margin, loss, query counts) and the proposals live on the GPU;
 * the random windows and signs come from each example's table (uploaded per iteration). A
 * row that is fooled stops: it is masked at once, and dropped from the batch at the next
 * checkpoint (isCheckpoint), the only readbacks before the end. */
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

  const init = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const u = tables[i], off = i * d;
    if (o.norm === "linf") {
      // Vertical stripes of +-eps per channel and column.
      for (let ch = 0; ch < c; ch++) {
        for (let r = 0; r < h; r++) {
          for (let col = 0; col < w; col++) {
            const j = off + ch * h * w + r * w + col;
            init[j] = Math.min(1, Math.max(0, x[j] + eps * sgn(u[ch * w + col])));
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
        init[off + j] = Math.min(1, Math.max(0, x[off + j] + delta[j] * f));
      }
      enforceL2(init.subarray(off, off + d), x.subarray(off, off + d), eps);
    }
  }

  const shape = [n, c, h, w];
  const out = {
    xBest: new Float32Array(n * d),
    margin: new Array<number>(n).fill(0),
    queries: new Array<number>(n).fill(1),
  };
  // Rows of the run still in the batch, and the batch's tensors (kept across iterations).
  let live = Array.from({ length: n }, (_, i) => i);
  const rowsIota = keep(Tensor.fromData(Array.from({ length: h }, (_, i) => i), [1, 1, h, 1]));
  const colsIota = keep(Tensor.fromData(Array.from({ length: w }, (_, i) => i), [1, 1, 1, w]));
  let st = tidy(() => {
    const xT = Tensor.fromData(x, shape);
    const xBest = Tensor.fromData(init, shape);
    const y = Tensor.fromData(labels, [n]);
    const ml = marginAndLoss(query(target, xBest, indices), y, o.loss);
    const lo = o.norm === "linf" ? ops.maximum(ops.sub(xT, eps), 0) : xT;
    const hi = o.norm === "linf" ? ops.minimum(ops.add(xT, eps), 1) : xT;
    return keepAll({
      x: xT,
      lo,
      hi,
      y,
      xBest,
      margin: ml.margin,
      loss: ml.loss,
      queries: ops.zeros([n]),
    });
  });
  // Writes the results of the batch rows at positions `pos` (of `live`) into `out`.
  const retire = async (pos: number[]) => {
    const [xb, mg, qs] = await Promise.all([st.xBest.data(), st.margin.data(), st.queries.data()]);
    for (const p of pos) {
      const i = live[p];
      out.xBest.set(xb.subarray(p * d, (p + 1) * d), i * d);
      out.margin[i] = mg[p];
      out.queries[i] = 1 + qs[p];
    }
  };
  // The window of side s at corner (vh, vw) per row; the ends vh + s, vw + s come in computed
  // on the host (small integers: the same values the former ops.add gave).
  const window = (vh: Tensor, vhEnd: Tensor, vw: Tensor, vwEnd: Tensor) =>
    ops.mul(
      ops.mul(ops.ge(rowsIota, vh), ops.lt(rowsIota, vhEnd)),
      ops.mul(ops.ge(colsIota, vw), ops.lt(colsIota, vwEnd)),
    );
  // One iteration (proposal, query, acceptance), captured after its first call and replayed:
  // the batch's state and the iteration's draws (corners, signs, the L2 eta pattern) come in,
  // the new best point, margin, loss and query counts go out. Keyed by the batch size: rows
  // leave only at checkpoints.
  let queryRows: number[] = [];
  const iteration = new CompiledStep("square iteration", (...a: Tensor[]) => {
    const [x, lo, hi, y, xBest, margin, loss, queries, vh, vhEnd, vw, vwEnd, signs, ...l2] = a;
    const m = x.shape[0];
    const col = [m, 1, 1, 1];
    const w1 = window(vh, vhEnd, vw, vwEnd);
    let xNew: Tensor;
    if (o.norm === "linf") {
      const moved = ops.minimum(hi, ops.maximum(lo, ops.add(xBest, ops.mul(signs, 2 * eps))));
      xNew = ops.where(w1, moved, xBest);
    } else {
      // L2: move the perturbation mass of window 2 into window 1 with a fresh eta pattern.
      const [vh2, vh2End, vw2, vw2End, etaImg, signs5] = l2;
      const w2 = window(vh2, vh2End, vw2, vw2End);
      const delta = squareL2Proposal(ops.sub(xBest, x), w1, w2, etaImg, signs5, eps);
      const f = ops.div(eps, ops.add(ops.normL2PerExample(delta), 1e-12)).view(col);
      xNew = enforceL2Gpu(ops.clamp(ops.add(x, ops.mul(delta, f)), 0, 1), x, eps);
    }
    const res = marginAndLoss(query(target, xNew, queryRows), y, o.loss);
    // Only rows not fooled yet search; a lower loss is kept, and a fooling point always.
    const active = ops.gt(margin, 0);
    const lower = ops.mul(active, ops.lt(res.loss, loss));
    const improved = ops.mul(active, ops.maximum(lower, ops.le(res.margin, 0)));
    return [
      ops.where(improved.view(col), xNew, xBest),
      ops.where(improved, res.margin, margin),
      ops.where(lower, res.loss, loss),
      ops.add(queries, active),
    ];
  }, { eager: !isReplaySafe(target) });
  try {
    for (let it = 0; it < nIter; it++) {
      if (isCheckpoint(it)) {
        const mg = await st.margin.data();
        const stay: number[] = [], leave: number[] = [];
        mg.forEach((v, p) => (v > 0 ? stay : leave).push(p));
        if (leave.length > 0) {
          await retire(leave);
          if (stay.length === 0) {
            live = [];
            break;
          }
          const prev = st;
          st = tidy(() =>
            keepAll(
              Object.fromEntries(
                Object.entries(prev).map(([k, t]) => [k, ops.takeRows(t, stay)]),
              ) as typeof prev,
            )
          );
          disposeAll(prev);
          live = stay.map((p) => live[p]);
        }
      }
      const m = live.length;
      const s = squareSide(o.norm, it, o, c, h, w);
      const base = initDraws + it * perIter;
      const at = (k: number) => live.map((i) => tables[i][base + k]);
      // Per batch row: a window corner along an axis of `size` from draw k, and the channel
      // signs from draws k.. (k + c - 1).
      const corner = (k: number, size: number) => at(k).map((u) => Math.floor((size - s) * u));
      const signsAt = (k: number) =>
        Tensor.fromData(
          live.flatMap((i) => Array.from({ length: c }, (_, ch) => sgn(tables[i][base + k + ch]))),
          [m, c, 1, 1],
        );
      const col = [m, 1, 1, 1];
      const vh = corner(0, h), vw = corner(1, w);
      const draws: Tensor[] = [
        Tensor.fromData(vh, col),
        Tensor.fromData(vh.map((v) => v + s), col),
        Tensor.fromData(vw, col),
        Tensor.fromData(vw.map((v) => v + s), col),
        signsAt(2),
      ];
      if (o.norm === "l2") {
        const vh2 = corner(2, h), vw2 = corner(3, w);
        const etas = [squareEta(s, false), squareEta(s, true)];
        const etaImg = new Float32Array(m * h * w);
        live.forEach((i, a) => {
          const eta = etas[tables[i][base + 4] > 0.5 ? 1 : 0];
          for (let r = 0; r < s; r++) {
            for (let cc = 0; cc < s; cc++) {
              etaImg[a * h * w + (vh[a] + r) * w + vw[a] + cc] = eta[r * s + cc];
            }
          }
        });
        draws.push(
          Tensor.fromData(vh2, col),
          Tensor.fromData(vh2.map((v) => v + s), col),
          Tensor.fromData(vw2, col),
          Tensor.fromData(vw2.map((v) => v + s), col),
          Tensor.fromData(etaImg, [m, 1, h, w]),
          signsAt(5),
        );
      }
      queryRows = live.map((i) => indices[i]);
      const [xBest, margin, loss, queries] = iteration.run(
        st.x,
        st.lo,
        st.hi,
        st.y,
        st.xBest,
        st.margin,
        st.loss,
        st.queries,
        ...draws,
      ) as Tensor[];
      for (const t of draws) t.dispose();
      for (const k of ["xBest", "margin", "loss", "queries"] as const) st[k].dispose();
      st = keepAll({ ...st, xBest, margin, loss, queries });
    }
    if (live.length > 0) await retire(live.map((_, p) => p));
  } finally {
    iteration.dispose();
    disposeAll(st);
    rowsIota.dispose();
    colsIota.dispose();
  }
  if (o.norm === "l2") {
    for (let i = 0; i < n; i++) {
      enforceL2(out.xBest.subarray(i * d, (i + 1) * d), x.subarray(i * d, (i + 1) * d), eps);
    }
  }
  return out;
}

function keepAll<T extends Record<string, Tensor>>(ts: T): T {
  for (const t of Object.values(ts)) keep(t);
  return ts;
}

function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) if (!t.disposed) t.dispose();
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
  const cleanMargin = tidy(() =>
    marginAndLoss(query(target, x, indices), Tensor.fromData(labels, [n]), o.loss).margin
  );
  const clean = { margin: Array.from(await cleanMargin.data()) };
  cleanMargin.dispose();
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
