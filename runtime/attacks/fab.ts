// FAB (Croce & Hein, ICML 2020). FAB-T, the targeted Fast Adaptive Boundary attack as run by
// AutoAttack standard: for each of the top `targets` other classes, iterate linearized projections onto
// the decision boundary between the true and the target class, biased toward the clean image
// (alpha <= alpha_max), with overshoot eta and a backward step beta after each success. It
// finds minimal-norm adversarials; a point counts only if its norm is <= eps.
//
// Everything in a run's iterations stays on the GPU: gradients, predictions, the iterate, the
// box-constrained hyperplane projections (a kernel per batch, shaders/fab_project.wgsl) and
// the best point; a run reads back once at its end. Between runs the rows still robust are
// chosen on the CPU (a handful of runs per call).

import { keep, Tensor, tidy } from "../tensor.ts";
import { noGrad } from "../autograd.ts";
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
import { projectHyperplane } from "./fab_projection.ts";
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
 * the closest boundary, |f_k| / ||w_k||_dual smallest, as the reference's FAB). The iterate,
 * the projections (shaders/fab_project.wgsl), the best point and its norm stay on the GPU;
 * the run reads back once, at its end. Returns the smallest-norm adversarial found per row
 * (res = Infinity where none). */
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
  const start = Float32Array.from(im);
  if (randStart) {
    for (let i = 0; i < n; i++) {
      const t = o.norm === "linf"
        ? exampleUniform(o.seed, indices[i], stream, d, -1, 1)
        : exampleNormal(o.seed, indices[i], stream, d);
      const s = (o.eps * 0.5) / (norm(o.norm, t) || 1);
      for (let j = 0; j < d; j++) {
        start[i * d + j] = Math.min(1, Math.max(0, im[i * d + j] + s * t[j]));
      }
    }
  }
  const col = [n, ...shape.slice(1).map(() => 1)]; // a per-row value over a row's pixels
  const rowNorm = (v: Tensor) =>
    o.norm === "linf" ? ops.normLinfPerExample(v) : ops.normL2PerExample(v);
  const imT = keep(Tensor.fromData(im, shape));
  const y = keep(Tensor.fromData(labels, [n]));
  const yt = yTarget ? keep(Tensor.fromData(yTarget, [n])) : null;
  const closest = yt ? null : closestSetup(target.numClasses, labels, indices);
  let x1 = keep(Tensor.fromData(start, shape));
  let adv = keep(ops.clone(imT));
  let res = keep(ops.full([n], Infinity));
  try {
    for (let it = 0; it < o.steps; it++) {
      const next = tidy(() => {
        const { g, f } = yt
          ? linearizeTargeted(target, x1, y, yt, indices)
          : linearizeClosest(target, x1, y, o.norm, closest!);
        // Linearization f(z) ~ f + w.(z - x1); the boundary is w.z = w.x1 - f, which x1 misses
        // by f and the clean image by f + w.(im - x1) (no cancellation of two large dots).
        const axes = shape.slice(1).map((_, k) => k + 1);
        const d1 = projectHyperplane(o.norm, x1, g, f);
        const d2 = projectHyperplane(
          o.norm,
          imT,
          g,
          ops.add(f, ops.sum(ops.mul(g, ops.sub(imT, x1)), axes)),
        );
        const a1 = ops.maximum(rowNorm(d1), 1e-8);
        const a2 = ops.maximum(rowNorm(d2), 1e-8);
        const alpha = ops.clamp(ops.div(a1, ops.add(a1, a2)), 0, o.alphaMax).view(col);
        const xn = ops.clamp(
          ops.add(
            ops.mul(ops.add(x1, ops.mul(d1, o.eta)), ops.sub(1, alpha)),
            ops.mul(ops.add(imT, ops.mul(d2, o.eta)), alpha),
          ),
          0,
          1,
        );
        // Misclassified: a candidate (kept if closer than the best so far), then a step back
        // toward the clean image to look for a closer one.
        const z = noGrad(() => target.logits(xn, indices));
        const wrong = ops.sub(1, ops.eq(ops.argmax(z, 1), y));
        const delta = ops.sub(xn, imT);
        const t = rowNorm(delta);
        const better = ops.mul(wrong, ops.lt(t, res));
        return {
          res: keep(ops.where(better, t, res)),
          adv: keep(ops.where(better.view(col), xn, adv)),
          x1: keep(ops.where(wrong.view(col), ops.add(imT, ops.mul(delta, o.beta)), xn)),
        };
      });
      for (const t of [x1, adv, res]) t.dispose();
      ({ x1, adv, res } = next);
    }
    const [a, r] = await Promise.all([adv.data(), res.data()]);
    return { adv: a, res: Array.from(r) };
  } finally {
    for (const t of [x1, adv, res, imT, y, yt, closest?.cls]) t?.dispose();
  }
}

/** f = z_t - z_y (the target wins where f > 0) and its input gradient, per row. */
function linearizeTargeted(
  target: Target,
  xt: Tensor,
  y: Tensor,
  yt: Tensor,
  indices: number[],
): { g: Tensor; f: Tensor } {
  const e = eotGradient(target, xt, (z) => ops.sub(pick(z, yt), pick(z, y)), 1, indices);
  return { g: e.grad, f: e.lastLoss };
}

/** What linearizeClosest repeats every iteration: each row once per class (the copies share
 * the example's index, so a randomized defense gives all of them the same draw), the class of
 * each copy, and the copy holding each row's own class. */
function closestSetup(k: number, labels: number[], indices: number[]) {
  const n = labels.length;
  return {
    k,
    repeat: Array.from({ length: n * k }, (_, r) => Math.floor(r / k)),
    own: labels.map((yi, i) => i * k + yi),
    first: labels.map((_, i) => i * k),
    rows: indices.flatMap((ix) => new Array<number>(k).fill(ix)),
    cls: keep(Tensor.fromData(Array.from({ length: n * k }, (_, r) => r % k), [n * k])),
  };
}

/** Untargeted: per row the class k != y whose linearized boundary z_k - z_y = 0 is closest in
 * the dual norm of the attack's norm; returns that class's f and gradient. The Jacobian of the
 * logits comes from one pass over a batch repeating each row once per class, so every class
 * gradient and the logits belong to one forward, as in the reference. Ties go to the lowest
 * class. */
function linearizeClosest(
  target: Target,
  xt: Tensor,
  y: Tensor,
  p: Norm,
  c: ReturnType<typeof closestSetup>,
): { g: Tensor; f: Tensor } {
  const n = xt.shape[0], k = c.k, d = xt.size / n;
  const xk = ops.takeRows(xt, c.repeat);
  const e = eotGradient(target, xk, (l) => pick(l, c.cls), 1, c.rows);
  const grads = e.grad.view([n, k, d]); // [i, c]: the gradient of z_c at row i
  const gy = ops.takeRows(e.grad.view([n * k, d]), c.own).view([n, 1, d]);
  const w = ops.sub(grads, gy); // w_c = grad z_c - grad z_y
  // L1 (the dual of Linf) or L2 norms of every w_c.
  const dual = p === "linf" ? ops.sum(ops.abs(w), 2) : ops.sqrt(ops.sum(ops.square(w), 2));
  const z = ops.takeRows(e.lastLogits, c.first); // the logits of each row's copy 0
  const zy = pick(z, y);
  const gap = ops.abs(ops.sub(z, zy.view([n, 1])));
  const dist = ops.where(ops.oneHot(y, k), Infinity, ops.div(gap, ops.add(dual, 1e-12)));
  const best = ops.argmax(ops.neg(dist), 1); // the first smallest distance
  const f = ops.sub(pick(z, best), zy);
  const g = ops.sum(ops.mul(w, ops.oneHot(best, k).view([n, k, 1])), 1).view(xt.shape);
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
