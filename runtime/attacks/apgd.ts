// Auto-PGD (Croce & Hein, ICML 2020) as in the reference implementation (fra31/auto-attack,
// autopgd_base.py): APGD-CE and APGD-DLR (untargeted), APGD-T (targeted DLR over the top
// classes), Linf and L2, with EOT. Step size starts at 2*eps and is halved at checkpoints
// when the loss increased in < rho of the steps since the last checkpoint, or when the step
// size was not reduced at the last checkpoint and the best loss has not improved since; after
// a reduction the iterate restarts from the best point. Momentum 0.75.
//
// Per-example bookkeeping (losses, step sizes, checkpoint flags) lives on the CPU; images and
// gradients stay on the GPU and are updated with per-example masks.

import { Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import {
  type AttackInput,
  type AttackResult,
  checkEps,
  defaultIndices,
  type Norm,
  normalizeL2,
  normalizeLinf,
  perExampleConst,
  predictions,
  project,
  scatterRows,
  selectRows,
} from "./common.ts";
import { objective, objectiveCpu } from "./objective.ts";
import { eotGradient, type Target } from "./target.ts";
import { stackedRandom, STREAM } from "./rand.ts";

export interface ApgdOptions {
  /** Default "linf". */
  norm?: Norm;
  /** Default 8/255 (linf) or 0.5 (l2). */
  eps?: number;
  /** Iterations per run; default 100. */
  steps?: number;
  /** Runs on the points still robust (untargeted: restarts; targeted: per target class).
   * Default 1. */
  restarts?: number;
  /** Untargeted loss, "ce" (default) or "dlr". Ignored by apgdTargeted. */
  loss?: "ce" | "dlr";
  /** EOT draws per gradient (the "rand" version uses 20). Default 1. */
  eot?: number;
  /** Step-size reduction threshold rho; default 0.75. */
  rho?: number;
  /** Base seed; default 0. */
  seed?: number;
}

export interface ApgdTargetedOptions extends Omit<ApgdOptions, "loss"> {
  /** Target classes: the 2nd..(targets+1)-th most likely classes at the clean point.
   * Default 9. */
  targets?: number;
}

export function apgdDefaults(o: ApgdOptions = {}) {
  const norm = o.norm ?? "linf";
  return {
    norm,
    eps: o.eps ?? (norm === "linf" ? 8 / 255 : 0.5),
    steps: o.steps ?? 100,
    restarts: o.restarts ?? 1,
    loss: o.loss ?? "ce",
    eot: o.eot ?? 1,
    rho: o.rho ?? 0.75,
    seed: o.seed ?? 0,
  };
}

/** The reference's integer checkpoint schedule: first check after max(floor(0.22 N), 1)
 * iterations, each next interval shorter by max(floor(0.03 N), 1), never below
 * max(floor(0.06 N), 1). For N = 100: [0, 22, 41, 57, 70, 80, 87, 93, 99] — the paper's
 * w_j = ceil(p_j N) with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06). */
export function apgdCheckpoints(nIter: number): number[] {
  const first = Math.max(Math.floor(0.22 * nIter), 1);
  const decr = Math.max(Math.floor(0.03 * nIter), 1);
  const min = Math.max(Math.floor(0.06 * nIter), 1);
  const out = [0];
  let k = first, w = 0;
  while (w + k <= nIter) {
    w += k;
    out.push(w);
    k = Math.max(k - decr, min);
  }
  return out;
}

interface RunResult {
  xBest: Tensor;
  xBestAdv: Tensor;
  acc: boolean[];
  lossBest: number[];
  lossStart: number[];
}

/** Replaces rows where mask is set: returns a new tensor, or null when nothing changes. */
function blend(mask: boolean[], a: Tensor, b: Tensor): Tensor | null {
  if (!mask.some((m) => m)) return null;
  const m = perExampleConst(mask.map((v) => (v ? 1 : 0)), a);
  const r = ops.where(m, a, b);
  m.dispose();
  return r;
}

function replace(cur: Tensor, next: Tensor | null): Tensor {
  if (next === null) return cur;
  cur.dispose();
  return next;
}

/** One APGD run (attack_single_run of the reference) on a batch. */
async function singleRun(
  target: Target,
  x: Tensor,
  labels: number[],
  lossName: "ce" | "dlr" | "dlr-targeted",
  yTarget: number[] | undefined,
  o: ReturnType<typeof apgdDefaults>,
  indices: number[],
  stream: number[],
): Promise<RunResult> {
  const n = x.shape[0], k = target.numClasses;
  const shape = x.shape.slice(1);
  const y = Tensor.fromData(labels, [n]);
  const tT = yTarget ? Tensor.fromData(yTarget, [n]) : undefined;
  const lossFn = objective(lossName, y, tT);
  const eps = o.eps;

  // Random start on the sphere of the norm ball, clipped to the image box.
  let xa: Tensor;
  if (o.norm === "linf") {
    const t = stackedRandom("uniform", o.seed, indices, stream, shape, -1, 1);
    xa = tidy(() => ops.clamp(ops.add(x, ops.scale(normalizeLinf(t), eps)), 0, 1));
    t.dispose();
  } else {
    const t = stackedRandom("normal", o.seed, indices, stream, shape);
    xa = tidy(() => ops.clamp(ops.add(x, ops.scale(normalizeL2(t), eps)), 0, 1));
    t.dispose();
  }

  const evalAt = async (pt: Tensor) => {
    const e = eotGradient(target, pt, lossFn, o.eot, indices);
    const { pred, z } = await predictions(e.lastLogits);
    const loss = objectiveCpu(lossName, z, k, labels, yTarget);
    e.loss.dispose();
    e.lastLoss.dispose();
    e.lastLogits.dispose();
    return { grad: e.grad, pred, loss };
  };

  let xBest = ops.clone(xa);
  let xBestAdv = ops.clone(xa);
  const first = await evalAt(xa);
  let grad = first.grad;
  let gradBest = ops.clone(grad);
  const acc = first.pred.map((p, i) => p === labels[i]);
  const lossBest = first.loss.slice();
  const lossStart = first.loss.slice();

  const stepVals = new Array<number>(n).fill(2 * eps);
  let step = perExampleConst(stepVals, x);
  let xaOld = ops.clone(xa);
  const nIter = o.steps;
  // Iterations (1-based counts) after which the step size is checked.
  const checkpoints = apgdCheckpoints(nIter);
  let lastCheck = 0;
  // loss_steps of the reference: rows per iteration, zero until written (the first
  // checkpoint compares iteration 0 with the never-written last row, i.e. with 0).
  const lossSteps: Float64Array[] = Array.from({ length: nIter }, () => new Float64Array(n));
  let lossBestLastCheck = lossBest.slice();
  let reducedLastCheck = new Array<boolean>(n).fill(true);

  for (let i = 0; i < nIter; i++) {
    const a = i > 0 ? 0.75 : 1.0;
    const next = tidy(() => {
      const grad2 = ops.sub(xa, xaOld);
      const dir = o.norm === "linf" ? ops.sign(grad) : normalizeL2(grad);
      const z1 = project(o.norm, ops.add(xa, ops.mul(step, dir)), x, eps);
      const mom = ops.add(ops.add(xa, ops.scale(ops.sub(z1, xa), a)), ops.scale(grad2, 1 - a));
      return project(o.norm, mom, x, eps);
    });
    xaOld.dispose();
    xaOld = xa;
    xa = next;

    const r = await evalAt(xa);
    grad.dispose();
    grad = r.grad;
    const fooledNow = r.pred.map((p, j) => p !== labels[j]);
    for (let j = 0; j < n; j++) if (fooledNow[j]) acc[j] = false;
    xBestAdv = replace(xBestAdv, blend(fooledNow, xa, xBestAdv));

    const improved = r.loss.map((l, j) => l > lossBest[j]);
    xBest = replace(xBest, blend(improved, xa, xBest));
    gradBest = replace(gradBest, blend(improved, grad, gradBest));
    for (let j = 0; j < n; j++) {
      lossSteps[i][j] = r.loss[j];
      if (improved[j]) lossBest[j] = r.loss[j];
    }

    if (checkpoints.includes(i + 1)) {
      const kk = i + 1 - lastCheck;
      lastCheck = i + 1;
      const reduce: boolean[] = [];
      for (let j = 0; j < n; j++) {
        let t = 0;
        for (let c = 0; c < kk; c++) {
          const cur = lossSteps[i - c][j];
          const prev = lossSteps[(i - c - 1 + nIter) % nIter][j];
          if (cur > prev) t++;
        }
        const oscillation = t <= kk * o.rho;
        const noImprovement = !reducedLastCheck[j] && lossBestLastCheck[j] >= lossBest[j];
        reduce.push(oscillation || noImprovement);
      }
      reducedLastCheck = reduce;
      lossBestLastCheck = lossBest.slice();
      if (reduce.some((v) => v)) {
        for (let j = 0; j < n; j++) if (reduce[j]) stepVals[j] /= 2;
        step.dispose();
        step = perExampleConst(stepVals, x);
        xa = replace(xa, blend(reduce, xBest, xa));
        grad = replace(grad, blend(reduce, gradBest, grad));
      }
    }
  }
  for (const t of [xa, xaOld, grad, gradBest, step, y]) t.dispose();
  tT?.dispose();
  return { xBest, xBestAdv, acc, lossBest, lossStart };
}

/** Shared driver: runs `runs` (restarts, or target classes x restarts) on the points still
 * robust and collects the per-example result. */
async function drive(
  input: AttackInput,
  o: ReturnType<typeof apgdDefaults>,
  runs: { lossName: "ce" | "dlr" | "dlr-targeted"; targetRank?: number; stream: number[] }[],
): Promise<AttackResult> {
  checkEps("apgd", o.eps);
  if (!(Number.isInteger(o.steps) && o.steps >= 1)) {
    throw new Error(`apgd: steps must be a positive integer, got ${o.steps}`);
  }
  const indices = defaultIndices(input);
  const { target, x, labels } = input;
  const n = x.shape[0], k = target.numClasses;
  const clean = tidy(() => target.logits(x, indices));
  const { pred, z: zClean } = await predictions(clean);
  clean.dispose();
  const acc = pred.map((p, i) => input.attackAll === true || p === labels[i]);
  let adv = ops.clone(x);
  const lossStart = new Array<number>(n).fill(NaN);
  const lossBest = new Array<number>(n).fill(-Infinity);
  const bestLossRun = new Array<number>(n).fill(-Infinity);

  for (const run of runs) {
    const rows = acc.flatMap((a, i) => (a ? [i] : []));
    if (rows.length === 0) break;
    const xs = await selectRows(x, rows);
    const ls = rows.map((i) => labels[i]);
    let yTarget: number[] | undefined;
    if (run.targetRank !== undefined) {
      // The rank-th most likely class at the clean point (rank 2 = runner-up), among the
      // classes other than the label: a row that its own clean pass got wrong (attackAll on a
      // randomized defense) must not be "targeted" at its true class.
      yTarget = rows.map((i) => {
        const order = Array.from({ length: k }, (_, c) => c).filter((c) => c !== labels[i])
          .sort((a, b) => zClean[i * k + b] - zClean[i * k + a] || a - b);
        return order[run.targetRank! - 2];
      });
    }
    const res = await singleRun(
      target,
      xs,
      ls,
      run.lossName,
      yTarget,
      o,
      rows.map((i) => indices[i]),
      run.stream,
    );
    // Fooled points take the adversarial iterate; the others the highest-loss point found
    // over all runs so far.
    const advRows = await res.xBestAdv.data();
    const bestRows = await res.xBest.data();
    const prev = await adv.data();
    const d = x.size / n;
    const out = new Float32Array(rows.length * d);
    rows.forEach((i, r) => {
      const fooled = !res.acc[r];
      if (Number.isNaN(lossStart[i])) lossStart[i] = res.lossStart[r];
      lossBest[i] = Math.max(lossBest[i], res.lossBest[r]);
      let src = prev.subarray(i * d, (i + 1) * d);
      if (fooled) {
        acc[i] = false;
        src = advRows.subarray(r * d, (r + 1) * d);
      } else if (res.lossBest[r] > bestLossRun[i]) {
        bestLossRun[i] = res.lossBest[r];
        src = bestRows.subarray(r * d, (r + 1) * d);
      }
      out.set(src, r * d);
    });
    const upd = Tensor.fromData(out, [rows.length, ...x.shape.slice(1)]);
    const merged = await scatterRows(adv, rows, upd);
    for (const t of [upd, xs, res.xBest, res.xBestAdv, adv]) t.dispose();
    adv = merged;
  }
  return { xAdv: adv, fooled: acc.map((a) => !a), lossStart, lossBest };
}

const LOSS_CODE = { ce: 0, dlr: 1, "dlr-targeted": 2 } as const;

/** APGD-CE / APGD-DLR (untargeted). */
export function apgd(input: AttackInput, opts: ApgdOptions = {}): Promise<AttackResult> {
  const o = apgdDefaults(opts);
  const runs = Array.from({ length: o.restarts }, (_, r) => ({
    lossName: o.loss,
    stream: [STREAM.apgd, LOSS_CODE[o.loss], 0, r],
  }));
  return drive(input, o, runs);
}

/** APGD-T: targeted DLR against each of the top `targets` other classes in turn. */
export function apgdTargeted(
  input: AttackInput,
  opts: ApgdTargetedOptions = {},
): Promise<AttackResult> {
  const o = apgdDefaults(opts);
  const nT = Math.min(opts.targets ?? 9, input.target.numClasses - 1);
  const runs = [];
  for (let tc = 2; tc < nT + 2; tc++) {
    for (let r = 0; r < o.restarts; r++) {
      runs.push({
        lossName: "dlr-targeted" as const,
        targetRank: tc,
        stream: [STREAM.apgd, LOSS_CODE["dlr-targeted"], tc, r],
      });
    }
  }
  return drive(input, o, runs);
}
