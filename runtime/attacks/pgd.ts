// Projected gradient descent (Madry et al. 2018), Linf and L2, with random start, restarts
// and EOT. Every iterate is projected onto the eps-ball and [0,1].

import { Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import {
  type AttackInput,
  type AttackResult,
  checkEps,
  defaultIndices,
  type Norm,
  normalizeL2,
  perExample,
  project,
  scatterRows,
  selectRows,
} from "./common.ts";
import { type AttackLoss, objective } from "./objective.ts";
import { noGrad } from "../autograd.ts";
import { eotGradient, isReplaySafe } from "./target.ts";
import { stackedRandom, STREAM } from "./rand.ts";
import { CompiledStep } from "../graph/capture.ts";

export interface PgdOptions {
  /** Default "linf". */
  norm?: Norm;
  /** Radius; default 8/255 (linf) or 0.5 (l2). */
  eps?: number;
  /** Step size; default 2/255 (linf) or eps/4 (l2). */
  stepSize?: number;
  /** Iterations per restart; default 10. */
  steps?: number;
  /** Independent runs from fresh random starts; the strongest per example wins. Default 1. */
  restarts?: number;
  /** Start from a uniform point in the ball (linf) / a random direction and radius (l2).
   * Default true. */
  randomStart?: boolean;
  /** EOT draws per gradient; default 1. */
  eot?: number;
  /** Objective; default "ce". */
  loss?: AttackLoss;
  /** Base seed of the per-example random streams; default 0. */
  seed?: number;
}

export function pgdDefaults(o: PgdOptions = {}): Required<PgdOptions> {
  const norm = o.norm ?? "linf";
  const eps = o.eps ?? (norm === "linf" ? 8 / 255 : 0.5);
  return {
    norm,
    eps,
    stepSize: o.stepSize ?? (norm === "linf" ? 2 / 255 : eps / 4),
    steps: o.steps ?? 10,
    restarts: o.restarts ?? 1,
    randomStart: o.randomStart ?? true,
    eot: o.eot ?? 1,
    loss: o.loss ?? "ce",
    seed: o.seed ?? 0,
  };
}

/** One step: xa + step * direction(g), projected. */
export function pgdStep(
  norm: Norm,
  xa: Tensor,
  x: Tensor,
  g: Tensor,
  step: number,
  eps: number,
): Tensor {
  const dir = norm === "linf" ? ops.sign(g) : normalizeL2(g);
  return project(norm, ops.add(xa, ops.mul(dir, step)), x, eps);
}

function randomStart(
  o: Required<PgdOptions>,
  x: Tensor,
  indices: number[],
  restart: number,
): Tensor {
  const shape = x.shape.slice(1);
  if (o.norm === "linf") {
    const u = stackedRandom("uniform", o.seed, indices, [STREAM.pgd, restart, 0], shape);
    const xa = tidy(() => project("linf", ops.add(x, ops.affine(u, 2 * o.eps, -o.eps)), x, o.eps));
    u.dispose();
    return xa;
  }
  const n = stackedRandom("normal", o.seed, indices, [STREAM.pgd, restart, 0], shape);
  const r = stackedRandom("uniform", o.seed, indices, [STREAM.pgd, restart, 1], []);
  const xa = tidy(() => {
    const d = ops.mul(normalizeL2(n), perExample(ops.scale(r, o.eps), x));
    return project("l2", ops.add(x, d), x, o.eps);
  });
  n.dispose();
  r.dispose();
  return xa;
}

/** PGD maximizing the chosen loss. Returns per example the last fooling iterate if any,
 * otherwise the highest-loss iterate. */
export async function pgd(input: AttackInput, opts: PgdOptions = {}): Promise<AttackResult> {
  const o = pgdDefaults(opts);
  checkEps("pgd", o.eps);
  if (!(o.steps >= 0 && Number.isInteger(o.steps))) {
    throw new Error(`pgd: steps must be a non-negative integer, got ${o.steps}`);
  }
  if (!(o.restarts >= 1 && Number.isInteger(o.restarts))) {
    throw new Error(`pgd: restarts must be a positive integer, got ${o.restarts}`);
  }
  const indices = defaultIndices(input);
  const { x, labels } = input;
  // Restart 0 runs on every row; each later restart only on the rows no restart has fooled
  // yet, so a row's adversarial (and, on a randomized defense, its draws) never depend on
  // the other rows of its batch.
  const first = await pgdRestart(input, o, x, labels, indices, 0);
  let best = first.best;
  const { fooled, bestLoss, lossStart } = first;
  for (let r = 1; r < o.restarts; r++) {
    const rows = fooled.flatMap((f, i) => (f ? [] : [i]));
    if (rows.length === 0) break;
    const xs = selectRows(x, rows);
    const run = await pgdRestart(
      input,
      o,
      xs,
      rows.map((i) => labels[i]),
      rows.map((i) => indices[i]),
      r,
    );
    xs.dispose();
    const take = rows.filter((i, j) => run.fooled[j] || run.bestLoss[j] > bestLoss[i]);
    rows.forEach((i, j) => {
      if (run.fooled[j]) fooled[i] = true;
      bestLoss[i] = Math.max(bestLoss[i], run.bestLoss[j]);
    });
    if (take.length) {
      const src = selectRows(run.best, take.map((i) => rows.indexOf(i)));
      const merged = scatterRows(best, take, src);
      src.dispose();
      best.dispose();
      best = merged;
    }
    run.best.dispose();
  }
  return { xAdv: best, fooled, lossStart, lossBest: bestLoss };
}

/** The state after considering iterate xa with logits z and per-row loss l: per row the last
 * fooling iterate if any, else the highest-loss one. */
function bookkeeping(
  xa: Tensor,
  z: Tensor,
  l: Tensor,
  y: Tensor,
  s: { best: Tensor; fooled: Tensor; bestLoss: Tensor },
): { best: Tensor; fooled: Tensor; bestLoss: Tensor } {
  const n = xa.shape[0];
  const isAdv = ops.sub(1, ops.eq(ops.argmax(z, 1), y));
  const improved = ops.mul(ops.sub(1, s.fooled), ops.gt(l, s.bestLoss));
  const take = ops.maximum(isAdv, improved);
  return {
    best: ops.where(ops.reshape(take, [n, 1, 1, 1]), xa, s.best),
    fooled: ops.maximum(s.fooled, isAdv),
    bestLoss: ops.maximum(s.bestLoss, l),
  };
}

/** One PGD restart on a batch: per row the last fooling iterate if any, else the
 * highest-loss iterate, with its loss at the start and its best loss. The bookkeeping (best
 * point, success mask, best loss) stays on the GPU; the three per-row vectors are read back
 * once, at the end. */
async function pgdRestart(
  input: AttackInput,
  o: Required<PgdOptions>,
  x: Tensor,
  labels: number[],
  indices: number[],
  restart: number,
): Promise<{ best: Tensor; fooled: boolean[]; bestLoss: number[]; lossStart: number[] }> {
  const { target } = input;
  const n = x.shape[0];
  const y = Tensor.fromData(labels, [n]);
  const lossFn = objective(o.loss, y);
  let best = ops.clone(x);
  let fooled = ops.zeros([n]);
  let bestLoss = ops.full([n], -Infinity);
  let lossStart: Tensor | null = null;

  let xa = o.randomStart && o.eps > 0 ? randomStart(o, x, indices, restart) : ops.clone(x);
  // One iteration (EOT gradient, bookkeeping, step), captured after its first call and replayed
  // from then on: the iterate and the state in, their successors and the iterate's loss out.
  const iteration = new CompiledStep(
    "pgd iteration",
    (xa: Tensor, best: Tensor, fooled: Tensor, bestLoss: Tensor) => {
      const e = eotGradient(target, xa, lossFn, o.eot, indices);
      const next = pgdStep(o.norm, xa, x, e.grad, o.stepSize, o.eps);
      const st = bookkeeping(xa, e.lastLogits, e.lastLoss, y, { best, fooled, bestLoss });
      return [next, st.best, st.fooled, st.bestLoss, e.lastLoss];
    },
    { eager: !isReplaySafe(target) },
  );
  try {
    for (let s = 0; s < o.steps; s++) {
      const [next, b, f, bl, l] = iteration.run(xa, best, fooled, bestLoss) as Tensor[];
      for (const t of [best, fooled, bestLoss, xa]) t.dispose();
      ({ best, fooled, bestLoss } = { best: b, fooled: f, bestLoss: bl });
      if (lossStart) l.dispose();
      else lossStart = l;
      xa = next;
    }
  } finally {
    iteration.dispose();
  }
  // The last iterate only needs a forward pass.
  {
    const { z, l } = tidy(() => {
      const z = noGrad(() => target.logits(xa, indices));
      return { z, l: noGrad(() => lossFn(z)) };
    });
    const st = tidy(() => bookkeeping(xa, z, l, y, { best, fooled, bestLoss }));
    for (const t of [best, fooled, bestLoss]) t.dispose();
    ({ best, fooled, bestLoss } = st);
    lossStart ??= ops.clone(l);
    z.dispose();
    l.dispose();
  }
  xa.dispose();
  y.dispose();
  const packed = ops.concat([fooled, bestLoss, lossStart!], 0);
  const v = await packed.data();
  for (const t of [packed, fooled, bestLoss, lossStart!]) t.dispose();
  return {
    best,
    fooled: Array.from(v.subarray(0, n), (f) => f > 0),
    bestLoss: Array.from(v.subarray(n, 2 * n)),
    lossStart: Array.from(v.subarray(2 * n, 3 * n)),
  };
}
