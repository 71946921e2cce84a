// Sanity checks run with every evaluation (after AutoAttack's checks.py, plus the classic
// signs of gradient masking from Athalye et al. 2018 and Tramer et al. 2020). Each returns a
// finding; warnings are printed by the CLI and kept in the report.
//   randomized      randomized defense attacked without EOT
//   gradients       zero or NaN input gradients (suggest BPDA for non-differentiable stages)
//   logits          the target outputs probabilities, not logits
//   loss-increase   an attack's loss never increased (masked gradient or broken step)
//   clean-consistency  clean accuracy under the attack's forward != the reported one
//   square          the black-box Square attack beat the white-box attacks

import { noGrad } from "../autograd.ts";
import { Tensor, tidy } from "../tensor.ts";
import { ceLoss, dlrLoss } from "../attacks/losses.ts";
import { eotGradient, type Target } from "../attacks/target.ts";
import type { CheckResult, EvalConfig, ExampleResult } from "./report.ts";

async function logitsOf(
  target: Target,
  x: Tensor,
  rows?: readonly number[],
): Promise<Float32Array> {
  const z = tidy(() => noGrad(() => target.logits(x, rows)));
  const v = await z.data();
  z.dispose();
  return v;
}

/** Runs the target `draws` times on the same input and compares every pair of outputs (the
 * reference's checks.py: 5 draws, pairwise); any change means it is randomized. `eot` is the
 * smallest EOT of the attacks, or the names of the attacks that run without EOT. */
export async function checkRandomized(
  target: Target,
  x: Tensor,
  eot: number | string[],
  draws = 5,
  rows?: readonly number[],
): Promise<CheckResult> {
  const outs: Float32Array[] = [];
  for (let i = 0; i < draws; i++) outs.push(await logitsOf(target, x, rows));
  const k = target.numClasses, n = x.shape[0];
  let maxDiff = 0;
  for (let a = 0; a < draws; a++) {
    for (let b = a + 1; b < draws; b++) {
      for (let i = 0; i < n; i++) {
        // Compare L2-normalized outputs, as the reference does.
        let na = 0, nb = 0, diff = 0;
        for (let j = 0; j < k; j++) {
          na += outs[a][i * k + j] ** 2;
          nb += outs[b][i * k + j] ** 2;
        }
        na = Math.sqrt(na) + 1e-10;
        nb = Math.sqrt(nb) + 1e-10;
        for (let j = 0; j < k; j++) {
          diff += (outs[a][i * k + j] / na - outs[b][i * k + j] / nb) ** 2;
        }
        maxDiff = Math.max(maxDiff, Math.sqrt(diff));
      }
    }
  }
  const randomized = target.randomized || maxDiff > 1e-4;
  if (!randomized) return { id: "randomized", level: "ok", message: "deterministic target" };
  const how = target.randomized
    ? "declared randomized"
    : `outputs changed between identical calls (max normalized diff ${maxDiff.toExponential(2)})`;
  const without = typeof eot === "number" ? (eot <= 1 ? ["the attack"] : []) : eot;
  if (without.length) {
    return {
      id: "randomized",
      level: "warning",
      message: `randomized defense (${how}) attacked without EOT by ${without.join(", ")}: use ` +
        `--eot 20 (or NAME:eot=20) or autoattack-rand, otherwise the robust accuracy is ` +
        `overestimated`,
    };
  }
  return {
    id: "randomized",
    level: "ok",
    message: `randomized (${how}); every gradient attack uses EOT` +
      (typeof eot === "number" ? ` over ${eot} draws` : ""),
  };
}

/** Input gradients of an attack loss (cross-entropy, or DLR for the attacks that use it, as
 * the reference checks inside APGD): zero or non-finite ones break gradient attacks. */
export async function checkGradients(
  target: Target,
  x: Tensor,
  labels: number[],
  rows?: readonly number[],
  loss: { name: "ce" | "dlr"; attacks?: string[] } = { name: "ce" },
): Promise<CheckResult> {
  const y = Tensor.fromData(labels, [labels.length]);
  const lossFn = loss.name === "ce" ? (z: Tensor) => ceLoss(z, y) : (z: Tensor) => dlrLoss(z, y);
  const g = tidy(() => eotGradient(target, x, lossFn, 1, rows).grad);
  const v = await g.data();
  g.dispose();
  y.dispose();
  const n = x.shape[0], d = x.size / n;
  let zero = 0, bad = 0;
  for (let i = 0; i < n; i++) {
    let s = 0, finite = true;
    for (let j = i * d; j < (i + 1) * d; j++) {
      if (!Number.isFinite(v[j])) finite = false;
      else s += Math.abs(v[j]);
    }
    if (!finite) bad++;
    else if (s === 0) zero++;
  }
  const id = loss.name === "ce" ? "gradients" : "gradients-dlr";
  const of = loss.name === "ce" ? "" : ` of the DLR loss (used by ${loss.attacks?.join(", ")})`;
  if (zero === 0 && bad === 0) {
    return { id, level: "ok", message: `input gradients${of} are finite and non-zero` };
  }
  return {
    id,
    level: "warning",
    message: `${zero} of ${n} examples have an all-zero input gradient${of} and ${bad} a NaN/inf ` +
      `one: a stage is non-differentiable or saturated (gradient masking); wrap it with ` +
      `bpda(fn, surrogate?) so the attack sees a useful gradient`,
  };
}

/** Flags a model whose outputs look like probabilities (softmax applied) instead of logits. */
export async function checkLogitsRange(
  target: Target,
  x: Tensor,
  rows?: readonly number[],
): Promise<CheckResult> {
  const z = await logitsOf(target, x, rows);
  const k = target.numClasses, n = x.shape[0];
  let probs = true;
  for (let i = 0; i < n && probs; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) {
      const v = z[i * k + j];
      if (v < -1e-5 || v > 1 + 1e-5) probs = false;
      s += v;
    }
    if (Math.abs(s - 1) > 1e-5) probs = false;
  }
  return probs
    ? {
      id: "logits",
      level: "warning",
      message: "the target outputs a probability distribution; attacks need logits",
    }
    : { id: "logits", level: "ok", message: "outputs are logits" };
}

/** Per attack: did the attack's loss ever increase over its start point? */
export function checkLossIncrease(attack: string, examples: ExampleResult[]): CheckResult | null {
  const rows = examples.map((e) => e.attacks[attack]).filter((a) =>
    a && a.loss_start !== undefined && a.loss_best !== undefined &&
    Number.isFinite(a.loss_start)
  );
  if (rows.length === 0) return null;
  const up =
    rows.filter((a) => a.loss_best! > a.loss_start! + 1e-7 * Math.max(1, Math.abs(a.loss_start!)))
      .length;
  if (up === 0) {
    return {
      id: `loss-increase:${attack}`,
      level: "warning",
      message: `${attack}: the attack loss never increased on any of ${rows.length} examples: ` +
        `the gradient carries no signal (masked/obfuscated gradients, a non-differentiable ` +
        `stage without BPDA) or the step size is wrong`,
    };
  }
  return {
    id: `loss-increase:${attack}`,
    level: "ok",
    message: `${attack}: loss increased on ${up} of ${rows.length} examples`,
  };
}

/** The clean accuracy seen by the attack's forward pass vs. the reported clean accuracy. */
export function checkCleanConsistency(
  config: EvalConfig,
  examples: ExampleResult[],
  randomized: boolean,
): CheckResult {
  const n = examples.length;
  if (n === 0) return { id: "clean-consistency", level: "ok", message: "no examples" };
  const rep = examples.filter((e) => e.clean_pred === e.label).length / n;
  const att = examples.filter((e) => e.attack_clean_pred === e.label).length / n;
  const msg = `clean accuracy ${(100 * rep).toFixed(2)}% reported, ` +
    `${(100 * att).toFixed(2)}% under the attack's own forward pass`;
  if (rep === att) return { id: "clean-consistency", level: "ok", message: msg };
  if (config.threat_model === "classifier-only") {
    return {
      id: "clean-consistency",
      level: "info",
      message: `${msg} (expected: the classifier-only threat model attacks the classifier alone)`,
    };
  }
  // Two independent draws of a randomized defense: the difference of two accuracies, each with
  // binomial variance p(1-p)/n (a single proportion's sd was too tight: on 32 images the AToP
  // defense of a standard run gave 14 and 24 correct on two draws, 62 and 70 of 128).
  const p = (rep + att) / 2;
  const noise = 3 * Math.sqrt((2 * p * (1 - p)) / n) + 1 / n;
  if (randomized && Math.abs(rep - att) <= noise) {
    return { id: "clean-consistency", level: "info", message: `${msg} (within sampling noise)` };
  }
  return {
    id: "clean-consistency",
    level: "warning",
    message: `${msg}: the attacked forward pass is not the evaluated one (preprocessing, ` +
      `BPDA or model mismatch), so the attack may optimize the wrong function`,
  };
}

/** AutoAttack's check: Square (black-box) should not beat the white-box attacks. */
export function checkSquare(
  perAttack: Record<string, number>,
  stages: Record<string, Record<string, number>>,
  alpha = 0.002,
): CheckResult | null {
  const found: string[] = [];
  if ("square" in perAttack) {
    const others = Object.entries(perAttack).filter(([k]) => k !== "square").map(([, v]) => v);
    if (others.length && perAttack.square < Math.min(...others) - alpha) {
      found.push(
        `square alone ${(100 * perAttack.square).toFixed(2)}% vs best white-box ` +
          `${(100 * Math.min(...others)).toFixed(2)}%`,
      );
    }
  }
  for (const [a, s] of Object.entries(stages)) {
    const names = Object.keys(s);
    const i = names.indexOf("square");
    if (i > 0 && s.square < s[names[i - 1]] - alpha) {
      found.push(
        `${a}: square lowered robust accuracy from ${(100 * s[names[i - 1]]).toFixed(2)}% ` +
          `to ${(100 * s.square).toFixed(2)}%`,
      );
    }
  }
  if (!("square" in perAttack) && !Object.values(stages).some((s) => "square" in s)) return null;
  if (found.length === 0) {
    return { id: "square", level: "ok", message: "Square did not beat the white-box attacks" };
  }
  return {
    id: "square",
    level: "warning",
    message: `${found.join("; ")}: gradient-based attacks are unreliable here (gradient ` +
      `masking); run Square with more queries and an adaptive attack`,
  };
}

/** Ids of the checks derived from per-example results; merging recomputes them. */
export function isDerivedCheck(id: string): boolean {
  return id === "clean-consistency" || id === "square" || id.startsWith("loss-increase:");
}

/** The checks computed from per-example results (identical for merged shards). */
export function derivedChecks(
  config: EvalConfig,
  examples: ExampleResult[],
  perAttack: Record<string, number>,
  stages: Record<string, Record<string, number>>,
  randomized: boolean,
): CheckResult[] {
  const out: CheckResult[] = [checkCleanConsistency(config, examples, randomized)];
  for (const a of config.attacks) {
    const c = checkLossIncrease(a, examples);
    if (c) out.push(c);
  }
  const sq = checkSquare(perAttack, stages);
  if (sq) out.push(sq);
  return out;
}
