// FAB (Croce & Hein, ICML 2020). FAB-T, the targeted Fast Adaptive Boundary attack as run by
// AutoAttack standard: for each of the top `targets` other classes, iterate linearized projections onto
// the decision boundary between the true and the target class, biased toward the clean image
// (alpha <= alpha_max), with overshoot eta and a backward step beta after each success. It
// finds minimal-norm adversarials; a point counts only if its norm is <= eps.
//
// Gradients and predictions run on the GPU; the iterate and the projections live on the CPU
// in float64 (the Linf/L2 box-constrained hyperplane projection is a sort-based scan).

import { Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import {
  type AttackInput,
  type AttackResult,
  checkEps,
  defaultIndices,
  type Norm,
  predictions,
} from "./common.ts";
import { pick } from "./losses.ts";
import { eotGradient, type Target } from "./target.ts";
import { projectHyperplaneL2, projectHyperplaneLinf } from "./fab_projection.ts";
import { exampleNormal, exampleUniform, STREAM } from "./rand.ts";

export interface FabOptions {
  /** Default "linf". */
  norm?: Norm;
  /** Success threshold (and random-start radius); default 8/255 (linf) or 0.5 (l2). */
  eps?: number;
  /** Iterations per run; default 100. */
  steps?: number;
  /** Runs per target class; runs after the first start from a random point. Default 1. */
  restarts?: number;
  /** Number of target classes (2nd..(targets+1)-th most likely); default 9. */
  targets?: number;
  /** Largest step toward the clean image; default 0.1. */
  alphaMax?: number;
  /** Overshoot; default 1.05. */
  eta?: number;
  /** Backward step after a success; default 0.9. */
  beta?: number;
  /** Base seed; default 0. */
  seed?: number;
}

export function fabDefaults(o: FabOptions = {}) {
  const norm = o.norm ?? "linf";
  return {
    norm,
    eps: o.eps ?? (norm === "linf" ? 8 / 255 : 0.5),
    steps: o.steps ?? 100,
    restarts: o.restarts ?? 1,
    targets: o.targets ?? 9,
    alphaMax: o.alphaMax ?? 0.1,
    eta: o.eta ?? 1.05,
    beta: o.beta ?? 0.9,
    seed: o.seed ?? 0,
  };
}

function norm(p: Norm, v: ArrayLike<number>, off = 0, len = v.length): number {
  let r = 0;
  for (let i = off; i < off + len; i++) {
    if (p === "linf") r = Math.max(r, Math.abs(v[i]));
    else r += v[i] * v[i];
  }
  return p === "linf" ? r : Math.sqrt(r);
}

async function logitsOf(
  target: Target,
  x: Float32Array,
  shape: readonly number[],
  rows: readonly number[],
) {
  const t = Tensor.fromData(x, shape);
  const z = tidy(() => target.logits(t, rows)); // free the forward's intermediates now
  const r = await predictions(z);
  z.dispose();
  t.dispose();
  return r;
}

/** One FAB run on a batch (all rows correctly classified at the start): targeted at yTarget,
 * or untargeted (yTarget null: each iteration linearizes every class k != y and projects onto
 * the closest boundary, |f_k| / ||w_k||_dual smallest, as the reference's FAB). Returns the
 * smallest-norm adversarial found per row (res = Infinity where none). */
async function singleRun(
  target: Target,
  im: Float32Array,
  shape: readonly number[],
  labels: number[],
  yTarget: number[] | null,
  o: ReturnType<typeof fabDefaults>,
  indices: number[],
  stream: number[],
  randStart: boolean,
): Promise<{ adv: Float32Array; res: number[] }> {
  const n = labels.length, d = im.length / n;
  const x1 = Float64Array.from(im);
  if (randStart) {
    for (let i = 0; i < n; i++) {
      const t = o.norm === "linf"
        ? exampleUniform(o.seed, indices[i], stream, d, -1, 1)
        : exampleNormal(o.seed, indices[i], stream, d);
      const s = (o.eps * 0.5) / (norm(o.norm, t) || 1);
      for (let j = 0; j < d; j++) {
        x1[i * d + j] = Math.min(1, Math.max(0, im[i * d + j] + s * t[j]));
      }
    }
  }
  const adv = Float32Array.from(im);
  const res = new Array<number>(n).fill(Infinity);
  const y = Tensor.fromData(labels, [n]);
  const yt = yTarget ? Tensor.fromData(yTarget, [n]) : null;
  for (let it = 0; it < o.steps; it++) {
    const xt = Tensor.fromData(Float32Array.from(x1), shape);
    const { g, f } = yt
      ? await linearizeTargeted(target, xt, y, yt, indices)
      : await linearizeClosest(target, xt, labels, o.norm, indices);
    xt.dispose();
    for (let i = 0; i < n; i++) {
      const off = i * d;
      const w = g.subarray(off, off + d);
      // Linearization f(z) ~ f + w.(z - x1); the boundary is w.z = w.x1 - f.
      let b = -f[i];
      for (let j = 0; j < d; j++) b += w[j] * x1[off + j];
      const proj = o.norm === "linf" ? projectHyperplaneLinf : projectHyperplaneL2;
      const d1 = proj(x1.subarray(off, off + d), w, b);
      const d2 = proj(im.subarray(off, off + d), w, b);
      const a1 = Math.max(norm(o.norm, d1), 1e-8);
      const a2 = Math.max(norm(o.norm, d2), 1e-8);
      const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), o.alphaMax);
      for (let j = 0; j < d; j++) {
        const v = (x1[off + j] + o.eta * d1[j]) * (1 - alpha) +
          (im[off + j] + o.eta * d2[j]) * alpha;
        x1[off + j] = Math.min(1, Math.max(0, v));
      }
    }
    const x1f = Float32Array.from(x1);
    const { pred } = await logitsOf(target, x1f, shape, indices);
    for (let i = 0; i < n; i++) {
      if (pred[i] === labels[i]) continue;
      const off = i * d;
      const delta = new Float64Array(d);
      for (let j = 0; j < d; j++) delta[j] = x1f[off + j] - im[off + j];
      const t = norm(o.norm, delta);
      if (t < res[i]) {
        res[i] = t;
        adv.set(x1f.subarray(off, off + d), off);
      }
      // Step back toward the clean image to look for a closer adversarial.
      for (let j = 0; j < d; j++) x1[off + j] = im[off + j] + delta[j] * o.beta;
    }
  }
  y.dispose();
  yt?.dispose();
  return { adv, res };
}

/** f = z_t - z_y (the target wins where f > 0) and its input gradient, per row. */
async function linearizeTargeted(
  target: Target,
  xt: Tensor,
  y: Tensor,
  yt: Tensor,
  indices: number[],
): Promise<{ g: Float32Array; f: Float32Array }> {
  const e = eotGradient(target, xt, (z) => ops.sub(pick(z, yt), pick(z, y)), 1, indices);
  const g = await e.grad.data();
  const f = await e.lastLoss.data();
  for (const t of [e.grad, e.loss, e.lastLogits, e.lastLoss]) t.dispose();
  return { g, f };
}

/** Untargeted: per row the class k != y whose linearized boundary z_k - z_y = 0 is closest in
 * the dual norm of the attack's norm; returns that class's f and gradient. The Jacobian of the
 * logits comes from one pass over a batch repeating each row once per class: the copies share
 * the example's index, so a randomized defense gives all of them the same draw, and every
 * class gradient and the logits belong to one forward, as in the reference. */
async function linearizeClosest(
  target: Target,
  xt: Tensor,
  labels: number[],
  p: Norm,
  indices: number[],
): Promise<{ g: Float32Array; f: Float32Array }> {
  const n = labels.length, k = target.numClasses, d = xt.size / n;
  const src = await xt.data();
  const rep = new Float32Array(n * k * d);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) rep.set(src.subarray(i * d, (i + 1) * d), (i * k + c) * d);
  }
  const xk = Tensor.fromData(rep, [n * k, ...xt.shape.slice(1)]);
  const cls = Tensor.fromData(Array.from({ length: n * k }, (_, r) => r % k), [n * k]);
  const rows = indices.flatMap((ix) => new Array<number>(k).fill(ix));
  const e = eotGradient(target, xk, (l) => pick(l, cls), 1, rows);
  const grads = await e.grad.data(); // row i*k+c: the gradient of z_c at row i
  const zs = await e.lastLogits.data();
  for (const t of [xk, cls, e.grad, e.loss, e.lastLogits, e.lastLoss]) t.dispose();
  const gr = (i: number, c: number, j: number) => grads[(i * k + c) * d + j];
  const g = new Float32Array(n * d), f = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const yi = labels[i], z = zs.subarray(i * k * k, i * k * k + k); // copy 0's logits
    let best = -1, bestDist = Infinity;
    for (let c = 0; c < k; c++) {
      if (c === yi) continue;
      let dual = 0;
      for (let j = 0; j < d; j++) {
        const w = gr(i, c, j) - gr(i, yi, j);
        dual = p === "linf" ? dual + Math.abs(w) : dual + w * w; // L1 for linf, L2 for l2
      }
      if (p === "l2") dual = Math.sqrt(dual);
      const dist = Math.abs(z[c] - z[yi]) / (1e-12 + dual);
      if (dist < bestDist) {
        bestDist = dist;
        best = c;
      }
    }
    f[i] = z[best] - z[yi];
    for (let j = 0; j < d; j++) g[i * d + j] = gr(i, best, j) - gr(i, yi, j);
  }
  return { g, f };
}

/** One run of FAB over the batch: its targets (a class per batch row, or null: untargeted),
 * its random stream and whether it starts from a random point. */
interface FabRun {
  target: ((row: number) => number) | null;
  stream: number[];
  randStart: boolean;
}

/** Runs FAB's runs in order, each on the rows still robust; a run's successes (misclassified
 * at a point within eps, verified by a fresh forward pass as the reference does) replace the
 * clean image. `runs` sees the clean logits for choosing targets. */
async function fabRuns(
  input: AttackInput,
  o: ReturnType<typeof fabDefaults>,
  runs: (zClean: Float32Array) => FabRun[],
): Promise<AttackResult> {
  checkEps("fab", o.eps);
  const indices = defaultIndices(input);
  const { target, x, labels } = input;
  const n = x.shape[0], d = x.size / n;
  const shape = x.shape.slice(1);
  const xc = await x.data();
  const { pred, z: zClean } = await logitsOf(target, xc, x.shape, indices);
  const acc = pred.map((p, i) => input.attackAll === true || p === labels[i]);
  const out = Float32Array.from(xc);
  for (const run of runs(zClean)) {
    const rows = acc.flatMap((a, i) => (a ? [i] : []));
    if (rows.length === 0) break;
    const im = new Float32Array(rows.length * d);
    rows.forEach((i, j) => im.set(xc.subarray(i * d, (i + 1) * d), j * d));
    const sub = rows.map((i) => indices[i]);
    const { adv, res } = await singleRun(
      target,
      im,
      [rows.length, ...shape],
      rows.map((i) => labels[i]),
      run.target ? rows.map(run.target) : null,
      o,
      sub,
      run.stream,
      run.randStart,
    );
    const { pred: p2 } = await logitsOf(target, adv, [rows.length, ...shape], sub);
    rows.forEach((i, j) => {
      if (p2[j] !== labels[i] && res[j] <= o.eps) {
        acc[i] = false;
        out.set(adv.subarray(j * d, (j + 1) * d), i * d);
      }
    });
  }
  const xAdv = tidy(() => Tensor.fromData(out, x.shape));
  return { xAdv, fooled: acc.map((a) => !a) };
}

/** FAB-T: per example the smallest adversarial within eps found over the target classes (the
 * 2nd..(targets+1)-th most likely at the clean point), `restarts` runs each. */
export async function fabTargeted(
  input: AttackInput,
  opts: FabOptions = {},
): Promise<AttackResult> {
  const o = fabDefaults(opts);
  const k = input.target.numClasses;
  const nT = Math.min(o.targets, k - 1);
  return await fabRuns(input, o, (zClean) => {
    // The rank-th most likely class among those other than the label (rank 2 = runner-up).
    const y = input.labels;
    const ranked = (row: number, rank: number) =>
      Array.from({ length: k }, (_, c) => c).filter((c) => c !== y[row])
        .sort((a, b) => zClean[row * k + b] - zClean[row * k + a] || a - b)[rank - 2];
    const runs: FabRun[] = [];
    for (let tc = 2; tc < nT + 2; tc++) {
      for (let r = 0; r < o.restarts; r++) {
        runs.push({
          target: (row) => ranked(row, tc),
          stream: [STREAM.fab, tc, r],
          randStart: r > 0,
        });
      }
    }
    return runs;
  });
}

/** Untargeted FAB (AutoAttack's "fab" in the plus version): each run projects onto the closest
 * decision boundary; runs after the first start from a random point. */
export async function fabUntargeted(
  input: AttackInput,
  opts: FabOptions = {},
): Promise<AttackResult> {
  const o = fabDefaults(opts);
  return await fabRuns(input, o, () =>
    Array.from({ length: o.restarts }, (_, r) => ({
      target: null,
      stream: [STREAM.fab, 0, r],
      randStart: r > 0,
    })));
}
