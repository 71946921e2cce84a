// Auto-PGD (Croce & Hein, ICML 2020) as in the reference implementation (fra31/auto-attack,
// autopgd_base.py): APGD-CE and APGD-DLR (untargeted), APGD-T (targeted DLR over the top
// classes), Linf and L2, with EOT. Step size starts at 2*eps and is halved at checkpoints
// when the loss increased in < rho of the steps since the last checkpoint, or when the step
// size was not reduced at the last checkpoint and the best loss has not improved since; after
// a reduction the iterate restarts from the best point. Momentum 0.75.
//
// Per-example bookkeeping (losses, step sizes, checkpoint counters, success masks) lives in GPU
// tensors next to the images and gradients, updated with per-example masks; a run reads back
// once, at its end.

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
  predictions,
  project,
  selectRows,
} from "./common.ts";
import { objective } from "./objective.ts";
import { noGrad } from "../autograd.ts";
import { eotGradient, isReplaySafe, type Target } from "./target.ts";
import { CompiledStep } from "../graph/capture.ts";
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

/** Per-row float mask m [n] broadcast over images: where m, a, else b. */
function rowsWhere(m: Tensor, a: Tensor, b: Tensor): Tensor {
  return ops.where(ops.reshape(m, [m.shape[0], ...a.shape.slice(1).map(() => 1)]), a, b);
}

/** Replaces each named tensor of `state` with its new value, disposing the old one. */
function update<T extends Record<string, Tensor>>(state: T, next: Partial<T>): void {
  for (const [k, v] of Object.entries(next) as [keyof T, Tensor][]) {
    state[k].dispose();
    state[k] = v as T[keyof T];
  }
}

/** One APGD run (attack_single_run of the reference) on a batch. All per-row bookkeeping
 * (losses, step sizes, checkpoint counters, success mask) is kept in GPU tensors; the run
 * reads back once, at its end. */
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
  const n = x.shape[0];
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

  /** Gradient, prediction-is-correct mask and per-row loss (of the last EOT draw, as the
   * reference bookkeeps) at a point. */
  const evalAt = (pt: Tensor) => {
    const e = eotGradient(target, pt, lossFn, o.eot, indices);
    const correct = tidy(() => ops.eq(ops.argmax(e.lastLogits, 1), y));
    e.loss.dispose();
    e.lastLogits.dispose();
    return { grad: e.grad, correct, loss: e.lastLoss };
  };

  const first = evalAt(xa);
  const st = {
    xa,
    xaOld: ops.clone(xa),
    xBest: ops.clone(xa),
    xBestAdv: ops.clone(xa),
    grad: first.grad,
    gradBest: ops.clone(first.grad),
    acc: first.correct,
    lossBest: ops.clone(first.loss),
    lossStart: first.loss,
    step: ops.full([n, ...shape.map(() => 1)], 2 * eps),
    // loss_steps of the reference is zero until written: the first checkpoint compares
    // iteration 0 with that zero.
    prevLoss: ops.zeros([n]),
    increases: ops.zeros([n]),
    lossBestLastCheck: ops.clone(first.loss),
    reducedLastCheck: ops.full([n], 1),
  };
  const nIter = o.steps;
  // Iterations (1-based counts) after which the step size is checked.
  const checkpoints = apgdCheckpoints(nIter);
  let lastCheck = 0;

  // One iteration (momentum step, EOT gradient, bookkeeping), captured after its first call
  // and replayed from then on; the first iteration (no momentum yet) is its own graph. The
  // state it reads comes in, its new values go out.
  let a = 1.0;
  const iteration = new CompiledStep(
    "apgd iteration",
    (
      xa: Tensor,
      xaOld: Tensor,
      grad: Tensor,
      step: Tensor,
      acc: Tensor,
      xBestAdv: Tensor,
      xBest: Tensor,
      gradBest: Tensor,
      lossBest: Tensor,
      increases: Tensor,
      prevLoss: Tensor,
    ) => {
      const next = tidy(() => {
        const grad2 = ops.sub(xa, xaOld);
        const dir = o.norm === "linf" ? ops.sign(grad) : normalizeL2(grad);
        const z1 = project(o.norm, ops.add(xa, ops.mul(step, dir)), x, eps);
        const mom = ops.add(ops.add(xa, ops.scale(ops.sub(z1, xa), a)), ops.scale(grad2, 1 - a));
        return project(o.norm, mom, x, eps);
      });
      const r = evalAt(next);
      const improved = ops.gt(r.loss, lossBest);
      return {
        xa: next,
        grad: r.grad,
        acc: ops.minimum(acc, r.correct),
        xBestAdv: rowsWhere(ops.sub(1, r.correct), next, xBestAdv),
        xBest: rowsWhere(improved, next, xBest),
        gradBest: rowsWhere(improved, r.grad, gradBest),
        lossBest: ops.where(improved, r.loss, lossBest),
        increases: ops.add(increases, ops.gt(r.loss, prevLoss)),
        prevLoss: ops.clone(r.loss),
      };
    },
    { key: () => String(a), eager: !isReplaySafe(target) },
  );

  try {
    for (let i = 0; i < nIter; i++) {
      a = i > 0 ? 0.75 : 1.0;
      const out = iteration.run(
        st.xa,
        st.xaOld,
        st.grad,
        st.step,
        st.acc,
        st.xBestAdv,
        st.xBest,
        st.gradBest,
        st.lossBest,
        st.increases,
        st.prevLoss,
      ) as Record<string, Tensor>;
      st.xaOld.dispose();
      st.xaOld = st.xa;
      const { xa: next, ...rest } = out;
      st.xa = next;
      update(st, rest as Partial<typeof st>);

      if (checkpoints.includes(i + 1)) {
        const kk = i + 1 - lastCheck;
        lastCheck = i + 1;
        update(
          st,
          tidy(() => {
            const oscillation = ops.le(st.increases, kk * o.rho);
            const noImprovement = ops.mul(
              ops.sub(1, st.reducedLastCheck),
              ops.ge(st.lossBestLastCheck, st.lossBest),
            );
            const reduce = ops.maximum(oscillation, noImprovement);
            return {
              step: rowsWhere(reduce, ops.scale(st.step, 0.5), st.step),
              xa: rowsWhere(reduce, st.xBest, st.xa),
              grad: rowsWhere(reduce, st.gradBest, st.grad),
              reducedLastCheck: reduce,
              lossBestLastCheck: ops.clone(st.lossBest),
              increases: ops.zeros([n]),
            };
          }),
        );
      }
    }
  } finally {
    iteration.dispose();
  }
  const packed = ops.concat([st.acc, st.lossBest, st.lossStart], 0);
  const v = await packed.data();
  const { xBest, xBestAdv, ...rest } = st;
  for (const t of [packed, y, ...Object.values(rest)]) t.dispose();
  tT?.dispose();
  return {
    xBest,
    xBestAdv,
    acc: Array.from(v.subarray(0, n), (c) => c > 0),
    lossBest: Array.from(v.subarray(n, 2 * n)),
    lossStart: Array.from(v.subarray(2 * n, 3 * n)),
  };
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
  // The clean pass decides the rows to attack and ranks the target classes; an untargeted
  // attack on every row needs neither (no readback).
  const targeted = runs.some((r) => r.targetRank !== undefined);
  let zClean: Float32Array = new Float32Array(0);
  let acc = new Array<boolean>(n).fill(true);
  if (input.attackAll !== true || targeted) {
    const clean = tidy(() => noGrad(() => target.logits(x, indices)));
    const p = await predictions(clean);
    clean.dispose();
    zClean = p.z;
    acc = p.pred.map((c, i) => input.attackAll === true || c === labels[i]);
  }
  let adv = ops.clone(x);
  const lossStart = new Array<number>(n).fill(NaN);
  const lossBest = new Array<number>(n).fill(-Infinity);
  const bestLossRun = new Array<number>(n).fill(-Infinity);

  for (const run of runs) {
    const rows = acc.flatMap((a, i) => (a ? [i] : []));
    if (rows.length === 0) break;
    const xs = selectRows(x, rows);
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
    // over all runs so far. The images are merged by one GPU row gather from
    // [adv; xBestAdv; xBest].
    const m = rows.length;
    const from = Array.from({ length: n }, (_, i) => i);
    rows.forEach((i, r) => {
      if (Number.isNaN(lossStart[i])) lossStart[i] = res.lossStart[r];
      lossBest[i] = Math.max(lossBest[i], res.lossBest[r]);
      if (!res.acc[r]) {
        acc[i] = false;
        from[i] = n + r;
      } else if (res.lossBest[r] > bestLossRun[i]) {
        bestLossRun[i] = res.lossBest[r];
        from[i] = n + m + r;
      }
    });
    const found = ops.concat([res.xBestAdv, res.xBest], 0);
    const merged = ops.takeRows(adv, from, found);
    for (const t of [found, xs, res.xBest, res.xBestAdv, adv]) t.dispose();
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
