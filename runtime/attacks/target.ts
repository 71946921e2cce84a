// The attack API: a Target maps images in [0,1] (NCHW) to logits, differentiably. Defenses
// are built from Stages (transforms, purifiers, quantizers) composed in front of a classifier;
// non-differentiable stages are wrapped with `bpda`, randomized ones are attacked with EOT.

import { grad, isGradEnabled, noGrad, record } from "../autograd.ts";
import { type Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { Module } from "../nn/module.ts";
import { engine } from "../engine.ts";

export interface Target {
  name: string;
  numClasses: number;
  /** True when two calls on the same input can give different logits (fresh randomness). */
  randomized: boolean;
  /** x in [0,1], NCHW; differentiable. A randomized target draws fresh randomness per call.
   * `rows`: the global example index of each row of x. A randomized defense keys its draws by
   * (example, that example's call count), so its randomness does not depend on the batch. */
  logits(x: Tensor, rows?: readonly number[]): Tensor;
  /** Restarts the per-example call counts of these examples in a scope (the evaluation runner
   * calls it when it starts a batch, scope 0, and before each attack, that attack's scope, so
   * every evaluation sees the same draws for an example). */
  resetDraws?(rows: readonly number[], scope?: number): void;
  /** Bytes of the largest tensor one image makes in a forward or backward pass (absent: small).
   * Stacked EOT passes hold at most as many images as fit the adapter's storage binding limit
   * twice over (a purifier at 64x64 holds 16x a 32x32 classifier's activations per image). */
  bytesPerImage?: number;
}

// Attack iterations are compiled (runtime/graph/capture.ts) only on targets whose logits do
// nothing on the host that a replay would have to repeat: built-in models, and defenses that draw
// their randomness through Rng / ExampleDraws (which replay their counters). A target is marked
// by its logits function, so a wrapper that replaces logits (to count queries, say) is eager
// unless it says otherwise.
const safeLogits = new WeakSet<object>();

/** Declares `t`'s logits replay-safe (see above); returns `t`. */
export function replaySafe<T extends Target>(t: T): T {
  safeLogits.add(t.logits);
  return t;
}

/** Whether attack iterations on `t` may be captured and replayed. */
export function isReplaySafe(t: Target): boolean {
  return safeLogits.has(t.logits);
}

/** One preprocessing step of a defense (random transform, purifier, quantizer, ...). */
export interface Stage {
  name: string;
  randomized?: boolean;
  /** apply does nothing on the host a replayed attack iteration would skip (default false). */
  replaySafe?: boolean;
  /** `rows` as in Target.logits. */
  apply(x: Tensor, rows?: readonly number[]): Tensor;
  resetDraws?(rows: readonly number[], scope?: number): void;
}

/** What `classifierTarget` needs from a model (runtime/nn Module satisfies it). */
export interface ClassifierLike {
  forward(x: Tensor): Tensor;
  eval?(): unknown;
  numClasses?: number;
}

/** Wraps a classifier (put in eval mode: attacks must not update batch-norm statistics). */
export function classifierTarget(
  model: ClassifierLike,
  opts: { name?: string; numClasses?: number } = {},
): Target {
  model.eval?.();
  const numClasses = opts.numClasses ?? model.numClasses ?? 10;
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new Error(`classifierTarget: numClasses must be an integer >= 2, got ${numClasses}`);
  }
  const t: Target = {
    name: opts.name ?? "classifier",
    numClasses,
    randomized: false,
    logits: (x) => model.forward(x),
  };
  // The project's models keep no host state in forward; another ClassifierLike may.
  return model instanceof Module ? replaySafe(t) : t;
}

function isTarget(s: Stage | Target): s is Target {
  return typeof (s as Target).logits === "function";
}

/** Chains stages in front of a final Target: logits(x) = target(stage_k(...stage_1(x))). */
export function composeTarget(...stages: (Stage | Target)[]): Target {
  if (stages.length === 0) throw new Error("composeTarget: needs at least a final Target");
  const last = stages[stages.length - 1];
  if (!isTarget(last)) {
    throw new Error(
      `composeTarget: the last stage must be a Target (has logits), got "${last.name}"`,
    );
  }
  const pre = stages.slice(0, -1).map((s, i) => {
    if (isTarget(s)) {
      throw new Error(`composeTarget: stage ${i} ("${s.name}") is a Target; only the last may be`);
    }
    return s;
  });
  const t: Target = {
    name: [...pre.map((s) => s.name), last.name].join(" -> "),
    numClasses: last.numClasses,
    randomized: last.randomized || pre.some((s) => s.randomized === true),
    logits(x: Tensor, rows?: readonly number[]): Tensor {
      let h = x;
      for (const s of pre) h = s.apply(h, rows);
      return last.logits(h, rows);
    },
    resetDraws(rows: readonly number[], scope?: number): void {
      for (const s of pre) s.resetDraws?.(rows, scope);
      last.resetDraws?.(rows, scope);
    },
  };
  return isReplaySafe(last) && pre.every((s) => s.replaySafe === true) ? replaySafe(t) : t;
}

/** Backward Pass Differentiable Approximation (Athalye et al. 2018): the forward runs `fn`
 * without recording a graph; the backward is the identity (fn(x) ~ x) or, with a surrogate,
 * the vector-Jacobian product of the differentiable surrogate at the same input. */
export function bpda(
  fn: (x: Tensor) => Tensor,
  surrogate?: (x: Tensor) => Tensor,
  opts: { name?: string; randomized?: boolean } = {},
): Stage {
  const name = opts.name ?? "bpda";
  return {
    name,
    randomized: opts.randomized,
    apply(x: Tensor): Tensor {
      const y = noGrad(() => fn(x));
      if (!isGradEnabled() || !x.requiresGrad) return y;
      if (!surrogate) {
        if (y.size !== x.size || y.ndim !== x.ndim) {
          throw new Error(
            `${name}: identity BPDA needs fn to keep the shape, input [${x.shape}] -> ` +
              `output [${y.shape}]; pass a surrogate`,
          );
        }
        return record(y, name, [x], (gy) => [gy.view(x.shape)]);
      }
      // The surrogate's graph is built now on a leaf copy and differentiated in backward.
      const xs = ops.detach(x);
      xs.requiresGrad = true;
      const ys = surrogate(xs);
      ys.assertShape(y.shape, `${name}: surrogate output`);
      if (!ys.requiresGrad) return record(y, name, [x], () => [ops.zerosLike(x)]);
      return record(y, name, [x], (gy) => grad(ys, [xs], gy));
    },
  };
}

export interface EotResult {
  /** Mean over draws of d(sum_i loss_i)/dx, shape of x. */
  grad: Tensor;
  /** Mean per-example loss over draws, [N]. */
  loss: Tensor;
  /** Logits and per-example loss of the last draw (what the reference APGD bookkeeps). */
  lastLogits: Tensor;
  lastLoss: Tensor;
}

/** Images per forward pass when draws are stacked (ATOP_EOT_BATCH overrides). */
export function drawBatchImages(): number {
  try {
    const v = Number(Deno.env.get("ATOP_EOT_BATCH"));
    if (Number.isInteger(v) && v >= 1) return v;
  } catch {
    // no --allow-env
  }
  return 256;
}

/** Images per stacked pass for this target: the budget, and at most half of what the adapter's
 * storage binding limit holds of the target's largest per-image tensor. */
export function stackedImages(target: Target, budget = drawBatchImages()): number {
  if (!target.bytesPerImage || budget <= 0) return budget;
  const limit = engine().pool.maxBinding;
  return Math.max(1, Math.min(budget, Math.floor(limit / 2 / target.bytesPerImage)));
}

/** Draws per stacked pass for a batch of n images: as many as the budget holds. */
export function drawsPerPass(n: number, draws: number, budget = drawBatchImages()): number {
  return Math.max(1, Math.min(draws, Math.floor(budget / Math.max(1, n))));
}

/** x [n,...] repeated k times along the first axis, and its rows likewise: one call of a
 * randomized target on it draws for copy j what its j-th call would (runtime/rng.ts). */
export function stackDraws(x: Tensor, rows: readonly number[], k: number) {
  const n = x.shape[0], d = x.size / Math.max(1, n);
  const xt = k === 1
    ? ops.detach(x)
    : ops.reshape(ops.expandRaw(ops.reshape(x, [1, n * d]), [k, n * d]), [
      k * n,
      ...x.shape.slice(1),
    ]);
  const rt: number[] = [];
  for (let j = 0; j < k; j++) rt.push(...rows);
  return { xt, rows: rt };
}

export interface EotOptions {
  /** Stack the draws of a randomized target into passes of up to this many images (default
   * drawBatchImages()); 0 runs them one pass each. */
  batchImages?: number;
}

/** Expectation over Transformation: averages the input gradient of a per-example loss over
 * `draws` forward passes of a (randomized) target. When the target keys its randomness by
 * example (`rows` given), the draws are stacked into B*K passes (chunked to a memory budget):
 * the same draws as K calls, in far fewer kernels. Returns tensors of the current scope. */
export function eotGradient(
  target: Target,
  x: Tensor,
  lossFn: (logits: Tensor) => Tensor,
  draws = 1,
  rows?: readonly number[],
  opts: EotOptions = {},
): EotResult {
  if (!Number.isInteger(draws) || draws < 1) {
    throw new Error(`eotGradient: draws must be a positive integer, got ${draws}`);
  }
  if (!isGradEnabled()) throw new Error("eotGradient: called under noGrad");
  const budget = stackedImages(target, opts.batchImages ?? drawBatchImages());
  if (draws > 1 && rows && target.randomized && budget > 0) {
    return eotStacked(target, x, lossFn, draws, rows, drawsPerPass(x.shape[0], draws, budget));
  }
  let gSum: Tensor | null = null;
  let lSum: Tensor | null = null;
  let lastLogits: Tensor | null = null;
  let lastLoss: Tensor | null = null;
  for (let k = 0; k < draws; k++) {
    const r = tidy(() => {
      const xa = ops.detach(x);
      xa.requiresGrad = true;
      const logits = target.logits(xa, rows);
      const loss = lossFn(logits);
      if (loss.ndim !== 1 || loss.shape[0] !== x.shape[0]) {
        throw new Error(
          `eotGradient: loss must be per-example [${x.shape[0]}], got [${loss.shape}]`,
        );
      }
      // A target whose output does not depend on x (e.g. a stage run under noGrad) has a zero
      // gradient; the sanity checks report it.
      const g = loss.requiresGrad ? grad(ops.sum(loss), [xa])[0] : ops.zerosLike(x);
      return { g, l: ops.detach(loss), z: ops.detach(logits) };
    });
    if (gSum && lSum) {
      const g2: Tensor = ops.add(gSum, r.g);
      const l2: Tensor = ops.add(lSum, r.l);
      gSum.dispose();
      lSum.dispose();
      r.g.dispose();
      gSum = g2;
      lSum = l2;
    } else {
      gSum = r.g;
      lSum = ops.clone(r.l);
    }
    lastLogits?.dispose();
    lastLoss?.dispose();
    lastLogits = r.z;
    lastLoss = r.l;
  }
  if (draws === 1) {
    const g = gSum!, l = lSum!;
    return { grad: g, loss: l, lastLogits: lastLogits!, lastLoss: lastLoss! };
  }
  const gm = ops.scale(gSum!, 1 / draws);
  const lm = ops.scale(lSum!, 1 / draws);
  gSum!.dispose();
  lSum!.dispose();
  return { grad: gm, loss: lm, lastLogits: lastLogits!, lastLoss: lastLoss! };
}

/** eotGradient with `per` draws stacked in each pass. */
function eotStacked(
  target: Target,
  x: Tensor,
  lossFn: (logits: Tensor) => Tensor,
  draws: number,
  rows: readonly number[],
  per: number,
): EotResult {
  const n = x.shape[0], d = x.size / Math.max(1, n);
  let gSum: Tensor | null = null, lSum: Tensor | null = null;
  let lastLogits: Tensor | null = null, lastLoss: Tensor | null = null;
  for (let d0 = 0; d0 < draws; d0 += per) {
    const k = Math.min(per, draws - d0);
    const r = tidy(() => {
      const s = stackDraws(x, rows, k);
      const xt = s.xt;
      xt.requiresGrad = true;
      const z = target.logits(xt, s.rows);
      let total: Tensor | null = null;
      let lastZ: Tensor | null = null, lastL: Tensor | null = null;
      for (let j = 0; j < k; j++) {
        const zj = k === 1 ? z : ops.slice(z, 0, j * n, (j + 1) * n);
        const lj = lossFn(zj);
        if (lj.ndim !== 1 || lj.shape[0] !== n) {
          throw new Error(`eotGradient: loss must be per-example [${n}], got [${lj.shape}]`);
        }
        total = total ? ops.add(total, lj) : lj;
        lastZ = zj;
        lastL = lj;
      }
      const g = total!.requiresGrad
        ? ops.sum(ops.reshape(grad(ops.sum(total!), [xt])[0], [k, n * d]), 0)
        : ops.zeros([n * d]);
      return {
        g: ops.reshape(g, x.shape),
        l: ops.detach(total!),
        z: ops.detach(lastZ!),
        ll: ops.detach(lastL!),
      };
    });
    if (gSum && lSum) {
      const g2: Tensor = ops.add(gSum, r.g);
      const l2: Tensor = ops.add(lSum, r.l);
      for (const t of [gSum, lSum, r.g, r.l]) t.dispose();
      gSum = g2;
      lSum = l2;
    } else {
      gSum = r.g;
      lSum = r.l;
    }
    lastLogits?.dispose();
    lastLoss?.dispose();
    lastLogits = r.z;
    lastLoss = r.ll;
  }
  const gm = ops.scale(gSum!, 1 / draws);
  const lm = ops.scale(lSum!, 1 / draws);
  gSum!.dispose();
  lSum!.dispose();
  return { grad: gm, loss: lm, lastLogits: lastLogits!, lastLoss: lastLoss! };
}
