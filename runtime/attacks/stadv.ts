// StAdv (Xiao et al., ICLR 2018): spatially transformed adversarials. A per-pixel flow field
// f [N,2,H,W] (channel 0 = dx, 1 = dy) warps the image bilinearly; the attack minimizes
//   L_adv(warp(x, f)) + tau * L_flow(f)
// with the CW-style margin L_adv = max(z_y - max_{i!=y} z_i, -kappa) and the smoothness loss
// L_flow(f) = sum_p sum_{q in N(p)} sqrt(||f_p - f_q||^2 + eps) over 4-neighbourhoods.
// As the StAdv evaluations of DiffPure and AToP (perceptual-advex on mister_ed): the flow is in
// normalised grid coordinates (1 = half the image width, grid_sample's align_corners=False
// unit), Adam at lr 0.01, an Linf bound of 0.05 on the flow enforced by projection after each
// step, tau 0.05 (0.0025 / bound), the margin unclipped (kappa = infinity), and sample
// positions kept inside the image (the reference clips the grid), so no zeros come in from
// outside. The warp is a convex combination of pixels, so images stay in [0,1].

import { keep, Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { type AttackInput, type AttackResult, defaultIndices } from "./common.ts";
import { noGrad } from "../autograd.ts";
import { marginLoss } from "./losses.ts";
import { eotGradient, isReplaySafe, type Target } from "./target.ts";
import { CompiledStep } from "../graph/capture.ts";

export interface StadvOptions {
  /** Adam iterations; default 100. */
  steps?: number;
  /** Adam learning rate on the flow (normalised grid units); default 0.01. */
  lr?: number;
  /** Weight of the flow smoothness loss (on the normalised flow); default 0.05. */
  tau?: number;
  /** CW confidence: the margin is clipped at -kappa; default Infinity (unclipped). */
  kappa?: number;
  /** Linf bound on each flow component, normalised grid units; default 0.05 (Infinity: none). */
  bound?: number;
  /** EOT draws per gradient; default 1. */
  eot?: number;
  /** Unused by the deterministic zero-flow start; kept for a uniform attack interface. */
  seed?: number;
}

type FlowWarp = (x: Tensor, flow: Tensor) => Tensor;

/** The bilinear flow warp of runtime/ops/sample.ts. */
export function flowWarpOp(): FlowWarp {
  const f = (ops as unknown as { flowWarp?: FlowWarp }).flowWarp;
  if (!f) throw new Error("stadv: ops.flowWarp (runtime/ops/sample.ts) is not available");
  return f;
}

const diffCache = new Map<string, Tensor>();
/** [n, n-1] with column j = e_{j+1} - e_j, so (row vector) @ D = forward differences. */
function diffMatrix(n: number): Tensor {
  const key = `d${n}`;
  let t = diffCache.get(key);
  if (!t || t.disposed) {
    const v = new Float32Array(n * (n - 1));
    for (let j = 0; j < n - 1; j++) {
      v[j * (n - 1) + j] = -1;
      v[(j + 1) * (n - 1) + j] = 1;
    }
    t = keep(Tensor.fromData(v, [n, n - 1]));
    diffCache.set(key, t);
  }
  return t;
}

/** Xiao et al.'s flow smoothness loss per example [N]: each pair of 4-neighbours (p, q)
 * contributes sqrt(||f_p - f_q||^2 + eps) twice (once from each side). */
export function flowSmoothnessLoss(flow: Tensor, eps = 1e-8): Tensor {
  if (flow.ndim !== 4 || flow.shape[1] !== 2) {
    throw new Error(`flowSmoothnessLoss: flow must be [N,2,H,W], got [${flow.shape}]`);
  }
  const [n, , h, w] = flow.shape;
  const terms: Tensor[] = [];
  if (w > 1) {
    // Horizontal differences: rows of length W times D_W.
    const dx = ops.reshape(ops.matmul(ops.reshape(flow, [n * 2 * h, w]), diffMatrix(w)), [
      n,
      2,
      h,
      w - 1,
    ]);
    terms.push(ops.sum(ops.sqrt(ops.add(ops.sum(ops.square(dx), 1), eps)), [1, 2]));
  }
  if (h > 1) {
    // Vertical differences: columns, via the transposed difference matrix on the left.
    const ft = ops.reshape(flow, [n * 2, h, w]);
    const dtm = diffMatrixT(h);
    const dy = ops.reshape(ops.matmul(dtm, ft), [n, 2, h - 1, w]);
    terms.push(ops.sum(ops.sqrt(ops.add(ops.sum(ops.square(dy), 1), eps)), [1, 2]));
  }
  if (terms.length === 0) return ops.zeros([n]);
  const s = terms.length === 2 ? ops.add(terms[0], terms[1]) : terms[0];
  return ops.scale(s, 2);
}

function diffMatrixT(n: number): Tensor {
  const key = `t${n}`;
  let t = diffCache.get(key);
  if (!t || t.disposed) {
    const v = new Float32Array((n - 1) * n);
    for (let j = 0; j < n - 1; j++) {
      v[j * n + j] = -1;
      v[j * n + j + 1] = 1;
    }
    t = keep(Tensor.fromData(v, [n - 1, n]));
    diffCache.set(key, t);
  }
  return t;
}

/** Per-example objective to minimize: clipped margin + tau * flow loss. */
function stadvObjective(
  target: Target,
  x: Tensor,
  y: Tensor,
  tau: number,
  kappa: number,
  warp: FlowWarp,
  rows: readonly number[],
  toPixels: Tensor,
) {
  return (flow: Tensor) => {
    const xa = ops.clamp(warp(x, ops.mul(flow, toPixels)), 0, 1);
    const margin = marginLoss(target.logits(xa, rows), y);
    const adv = Number.isFinite(kappa) ? ops.maximum(margin, -kappa) : margin;
    return ops.add(adv, ops.scale(flowSmoothnessLoss(flow), tau));
  };
}

/** [1,2,1,1] pixels per normalised grid unit (W/2 for dx, H/2 for dy). */
function pixelScale(h: number, w: number): Tensor {
  return Tensor.fromData([w / 2, h / 2], [1, 2, 1, 1]);
}

/** Per-pixel bounds [1,2,H,W] on the normalised flow that keep each sample position inside
 * the image (x + dx in [0, W-1], y + dy in [0, H-1]), intersected with [-bound, bound]. */
export function flowBox(h: number, w: number, bound: number): { lo: Tensor; hi: Tensor } {
  const lo = new Float32Array(2 * h * w), hi = new Float32Array(2 * h * w);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const p = r * w + c;
      lo[p] = Math.max(-bound, -c / (w / 2));
      hi[p] = Math.min(bound, (w - 1 - c) / (w / 2));
      lo[h * w + p] = Math.max(-bound, -r / (h / 2));
      hi[h * w + p] = Math.min(bound, (h - 1 - r) / (h / 2));
    }
  }
  return { lo: Tensor.fromData(lo, [1, 2, h, w]), hi: Tensor.fromData(hi, [1, 2, h, w]) };
}

export async function stadv(input: AttackInput, opts: StadvOptions = {}): Promise<AttackResult> {
  const indices = defaultIndices(input);
  const steps = opts.steps ?? 100, lr = opts.lr ?? 0.01, tau = opts.tau ?? 0.05;
  const kappa = opts.kappa ?? Infinity, bound = opts.bound ?? 0.05, eot = opts.eot ?? 1;
  if (!(bound > 0)) throw new Error(`stadv: bound must be > 0, got ${bound}`);
  if (!(lr > 0) || !(tau >= 0) || !(kappa >= 0)) {
    throw new Error(`stadv: need lr > 0, tau >= 0 and kappa >= 0, got ${lr}, ${tau}, ${kappa}`);
  }
  const warp = flowWarpOp();
  const { target, x, labels } = input;
  const [n, , h, w] = x.shape;
  const y = Tensor.fromData(labels, [n]);
  const toPixels = pixelScale(h, w);
  const box = flowBox(h, w, bound);
  const objective = stadvObjective(target, x, y, tau, kappa, warp, indices, toPixels);
  // The flow is the attack variable: a pseudo-target mapping flow -> objective lets
  // eotGradient average its gradient over draws; Adam then descends it.
  let flow = ops.zeros([n, 2, h, w]);
  let m = ops.zeros(flow.shape), v = ops.zeros(flow.shape);
  // Per-row bookkeeping on the GPU (read back once, at the end).
  const st = {
    best: ops.detach(x),
    fooled: ops.zeros([n]),
    bestFlowLoss: ops.full([n], Infinity),
    bestObj: ops.full([n], Infinity),
    bestAdvLoss: ops.full([n], -Infinity),
    lossStart: null as Tensor | null,
  };
  const flowTarget: Target = {
    name: "stadv-flow",
    numClasses: 1,
    randomized: target.randomized,
    logits: (f) => ops.reshape(objective(f), [n, 1]),
  };
  const b1 = 0.9, b2 = 0.999;
  // One iteration: the EOT gradient of the objective at the flow, the bookkeeping there, and
  // Adam's step. Captured after its first call and replayed; the bias corrections change every
  // iteration, so they come in as tensors.
  let phase = "first";
  const iteration = new CompiledStep(
    "stadv iteration",
    (...a: Tensor[]) => {
      const [flow, m, v, best, fooled, bestFlowLoss, bestObj, bestAdvLoss, c1, c2] = a;
      const e = eotGradient(flowTarget, flow, (z) => ops.reshape(z, [n]), eot);
      // Bookkeeping at the current flow: prediction, flow loss, objective.
      const xa = ops.clamp(warp(x, ops.mul(flow, toPixels)), 0, 1);
      const z = noGrad(() => target.logits(xa, indices));
      const isAdv = ops.sub(1, ops.eq(ops.argmax(z, 1), y));
      // The sanity checks' attack loss is the negated margin (higher = closer to fooling):
      // the objective itself is dominated by the flow penalty once the flow moves.
      const advLoss = ops.neg(marginLoss(z, y));
      const flv = flowSmoothnessLoss(ops.detach(flow));
      const obj = e.loss;
      const notFooled = ops.sub(1, fooled);
      // Prefer fooling flows, then the smoothest of them; otherwise the lowest objective.
      const take = ops.where(
        isAdv,
        ops.maximum(notFooled, ops.lt(flv, bestFlowLoss)),
        ops.mul(notFooled, ops.lt(obj, bestObj)),
      );
      const kept = [
        ops.where(ops.reshape(take, [n, 1, 1, 1]), xa, best),
        ops.maximum(fooled, isAdv),
        ops.where(ops.mul(isAdv, take), flv, bestFlowLoss),
        ops.minimum(bestObj, obj),
        ops.maximum(bestAdvLoss, advLoss),
        advLoss,
      ];
      // Adam on the flow (c1, c2: 1 / (1 - beta^t)), then the Linf bound and the image box,
      // as the reference's clip of the grid.
      const g = e.grad;
      const m2 = ops.add(ops.scale(m, b1), ops.scale(g, 1 - b1));
      const v2 = ops.add(ops.scale(v, b2), ops.scale(ops.square(g), 1 - b2));
      const upd = ops.div(
        ops.add(ops.mul(m2, c1), 0),
        ops.add(ops.sqrt(ops.add(ops.mul(v2, c2), 0)), 1e-8),
      );
      let f2 = ops.sub(flow, ops.scale(upd, lr));
      f2 = ops.minimum(ops.maximum(f2, box.lo), box.hi);
      return [f2, m2, v2, ...kept];
    },
    { key: () => phase, eager: !isReplaySafe(target) },
  );
  try {
    for (let it = 0; it <= steps; it++) {
      phase = it === 0 ? "first" : it === steps ? "last" : "";
      const t1 = it + 1;
      const c1 = Tensor.fromData([1 / (1 - b1 ** t1)], [1]);
      const c2 = Tensor.fromData([1 / (1 - b2 ** t1)], [1]);
      const out = iteration.run(
        flow,
        m,
        v,
        st.best,
        st.fooled,
        st.bestFlowLoss,
        st.bestObj,
        st.bestAdvLoss,
        c1,
        c2,
      ) as Tensor[];
      const [f2, m2, v2, best, fooled, bestFlowLoss, bestObj, bestAdvLoss, advLoss] = out;
      for (const t of [c1, c2, flow, m, v, st.best, st.fooled, st.bestFlowLoss, st.bestObj]) {
        t.dispose();
      }
      st.bestAdvLoss.dispose();
      Object.assign(st, { best, fooled, bestFlowLoss, bestObj, bestAdvLoss });
      if (st.lossStart) advLoss.dispose();
      else st.lossStart = advLoss;
      // The last iteration only keeps its bookkeeping.
      flow = f2;
      m = m2;
      v = v2;
    }
  } finally {
    iteration.dispose();
  }
  for (const t of [flow, m, v, y, toPixels, box.lo, box.hi]) t.dispose();
  const packed = ops.concat([st.fooled, st.lossStart!, st.bestAdvLoss], 0);
  const vals = await packed.data();
  for (const t of [packed, st.fooled, st.lossStart!, st.bestAdvLoss, st.bestObj, st.bestFlowLoss]) {
    t.dispose();
  }
  return {
    xAdv: st.best,
    fooled: Array.from(vals.subarray(0, n), (f) => f > 0),
    lossStart: Array.from(vals.subarray(n, 2 * n)),
    lossBest: Array.from(vals.subarray(2 * n, 3 * n)),
  };
}
