// Softmax family and losses. Row-wise kernels (softmax, fused cross-entropy, DLR/margin) run one
// thread per row with serial loops, so every result is bit-identical run to run; their
// backward kernels run one thread per logit. Simple elementwise losses (L1, MSE, hinge GAN)
// are compositions of existing ops. Labels and targets are float class indices [N].

import { record } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, sameShape, words } from "./util.ts";
import { abs, add, affine, neg, relu, square, sub } from "./elementwise.ts";
import { mean, sum } from "./reduce.ts";
import { oneHotRaw } from "./layout.ts";

export type Reduction = "mean" | "sum" | "none";

function checkReduction(op: string, reduction: Reduction): void {
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") {
    throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${reduction}'`);
  }
}

function reduce(x: Tensor, reduction: Reduction): Tensor {
  return reduction === "mean" ? mean(x) : reduction === "sum" ? sum(x) : x;
}

/** Rows of the last axis: [rows, K]. */
function rowsOf(op: string, x: Tensor): [number, number] {
  if (x.ndim < 1) {
    throw new Error(
      `${op}: expected at least a 1-d tensor (rows on the last axis), got a 0-d tensor`,
    );
  }
  const K = x.shape[x.ndim - 1];
  if (K === 0) throw new Error(`${op}: the last axis of [${x.shape}] is empty`);
  return [x.size / K, K];
}

function softmaxFamily(op: string, mode: 0 | 1, x: Tensor): Tensor {
  const [rows, K] = rowsOf(op, x);
  const y = Tensor.empty(x.shape);
  launch1d("softmax", rows, [x.buffer, y.buffer], words(rows, K), { MODE: mode });
  return record(y, op, [x], (gy) => {
    const gx = Tensor.empty(x.shape);
    launch1d("softmax_grad", rows, [y.buffer, gy.buffer, gx.buffer], words(rows, K), {
      MODE: mode,
    });
    return [gx];
  });
}

/** log(softmax(x)) over the last axis (x is [N,K] for logits), numerically stable. */
export const logSoftmax = (x: Tensor) => softmaxFamily("logSoftmax", 0, x);
/** softmax over the last axis. */
export const softmax = (x: Tensor) => softmaxFamily("softmax", 1, x);

function checkLogits(op: string, z: Tensor, labels: Tensor, minK = 1): [number, number] {
  if (z.ndim !== 2) throw new Error(`${op}: logits must be [N,K], got [${z.shape}]`);
  labels.assertShape([z.shape[0]], `${op}: labels (float class indices, one per row)`);
  if (z.shape[1] < minK) {
    throw new Error(`${op}: needs at least ${minK} classes, got logits [${z.shape}]`);
  }
  return [z.shape[0], z.shape[1]];
}

export interface CrossEntropyOptions {
  reduction?: Reduction;
}

/** Cross-entropy of logits [N,K] against labels [N] (float class indices): per example
 * logsumexp(z) - z_y, then reduced ('mean' by default). Gradient (softmax - onehot) * gy.
 * A label outside [0,K) or not an integer gives NaN. */
export function crossEntropy(logits: Tensor, labels: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const [N, K] = checkLogits("crossEntropy", logits, labels);
  const reduction = o.reduction ?? "mean";
  checkReduction("crossEntropy", reduction);
  const loss = Tensor.empty([N]);
  const lse = Tensor.empty([N]);
  launch1d(
    "cross_entropy",
    N,
    [logits.buffer, labels.buffer, loss.buffer, lse.buffer],
    words(N, K),
  );
  const out = record(loss, "crossEntropy", [logits], (gy) => {
    const gz = Tensor.empty(logits.shape);
    launch1d(
      "cross_entropy_grad",
      N * K,
      [logits.buffer, labels.buffer, lse.buffer, gy.buffer, gz.buffer],
      words(N * K, K),
    );
    return [gz];
  });
  if (!out.gradFn) lse.dispose();
  return reduce(out, reduction);
}

/** [N,K] float rows with a one at column labels[n] (zeros for invalid labels); no gradient. */
export function oneHot(labels: Tensor, K: number): Tensor {
  if (labels.ndim !== 1) throw new Error(`oneHot: labels must be [N], got [${labels.shape}]`);
  if (!Number.isInteger(K) || K < 1) {
    throw new Error(`oneHot: number of classes K must be a positive integer, got ${K}`);
  }
  return oneHotRaw(labels, K);
}

function checkPair(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(`${op}: input [${a.shape}] and target [${b.shape}] must have the same shape`);
  }
}

/** |a - b| reduced; gradient sign(a - b) (0 where a == b). */
export function l1Loss(a: Tensor, b: Tensor, reduction: Reduction = "mean"): Tensor {
  checkPair("l1Loss", a, b);
  checkReduction("l1Loss", reduction);
  return reduce(abs(sub(a, b)), reduction);
}

/** (a - b)^2 reduced. */
export function mseLoss(a: Tensor, b: Tensor, reduction: Reduction = "mean"): Tensor {
  checkPair("mseLoss", a, b);
  checkReduction("mseLoss", reduction);
  return reduce(square(sub(a, b)), reduction);
}

/** Discriminator hinge loss: mean(relu(1 - real)) + mean(relu(1 + fake)). */
export function hingeGanLossD(realLogits: Tensor, fakeLogits: Tensor): Tensor {
  if (realLogits.size === 0 || fakeLogits.size === 0) {
    throw new Error(
      `hingeGanLossD: logits must be non-empty, got real [${realLogits.shape}], fake [${fakeLogits.shape}]`,
    );
  }
  const real = mean(relu(affine(realLogits, -1, 1)));
  const fake = mean(relu(affine(fakeLogits, 1, 1)));
  return add(real, fake);
}

/** Generator hinge loss: -mean(fake). */
export function hingeGanLossG(fakeLogits: Tensor): Tensor {
  if (fakeLogits.size === 0) {
    throw new Error(`hingeGanLossG: logits must be non-empty, got [${fakeLogits.shape}]`);
  }
  return neg(mean(fakeLogits));
}

const MARGIN_MODE = { dlrLoss: 0, dlrTargetedLoss: 1, marginLoss: 2 } as const;

function marginFamily(
  op: keyof typeof MARGIN_MODE,
  z: Tensor,
  labels: Tensor,
  targets: Tensor | null,
  minK: number,
): Tensor {
  const [N, K] = checkLogits(op, z, labels, minK);
  if (targets) targets.assertShape([N], `${op}: targets (float class indices, one per row)`);
  const t = targets ?? labels;
  const mode = MARGIN_MODE[op];
  const out = Tensor.empty([N]);
  const side = Tensor.empty([N, 4]);
  launch1d(
    "margin_losses",
    N,
    [z.buffer, labels.buffer, t.buffer, out.buffer, side.buffer],
    words(N, K),
    { MODE: mode },
  );
  const res = record(out, op, [z], (gy) => {
    const gz = Tensor.empty(z.shape);
    launch1d(
      "margin_losses_grad",
      N * K,
      [z.buffer, labels.buffer, t.buffer, side.buffer, gy.buffer, gz.buffer],
      words(N * K, K),
      { MODE: mode },
    );
    return [gz];
  });
  if (!res.gradFn) side.dispose();
  return res;
}

/** Untargeted DLR loss (Croce & Hein 2020) per example, [N]:
 * -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3 + 1e-12), pi the descending order. Needs K >= 3. */
export function dlrLoss(logits: Tensor, labels: Tensor): Tensor {
  return marginFamily("dlrLoss", logits, labels, null, 3);
}

/** Targeted DLR loss per example, [N]: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2 + 1e-12).
 * Needs K >= 4. */
export function dlrTargetedLoss(logits: Tensor, labels: Tensor, targets: Tensor): Tensor {
  return marginFamily("dlrTargetedLoss", logits, labels, targets, 4);
}

/** Classification margin per example, [N]: z_y - max_{i!=y} z_i (negative when
 * misclassified). Needs K >= 2. */
export function marginLoss(logits: Tensor, labels: Tensor): Tensor {
  return marginFamily("marginLoss", logits, labels, null, 2);
}
