// AutoAttack (Croce & Hein, ICML 2020): a parameter-free ensemble run in cascade, each attack
// only on the points still robust, each success verified by a fresh forward pass.
//   standard: APGD-CE (1 run), APGD-T (9 target classes), FAB-T (9 target classes),
//             Square (5000 queries, p_init 0.8, schedule not rescaled) — 100 iterations each.
//   plus:     APGD-CE and APGD-DLR (5 restarts each), untargeted FAB (5 restarts), Square,
//             APGD-T and FAB-T (9 target classes each), as the reference's "plus" version.
//   rand:     APGD-CE and APGD-DLR with EOT over 20 draws (randomized defenses).
//   custom:   any list of the components above (`attacks`), standard settings.

import { type Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import {
  type AttackInput,
  type AttackResult,
  defaultIndices,
  type Norm,
  predictions,
  scatterRows,
  selectRows,
} from "./common.ts";
import { apgd, apgdTargeted } from "./apgd.ts";
import { fabTargeted, fabUntargeted } from "./fab.ts";
import { square } from "./square.ts";

export type AutoAttackVersion = "standard" | "plus" | "rand" | "custom";
export const AUTOATTACK_COMPONENTS = [
  "apgd-ce",
  "apgd-dlr",
  "fab",
  "square",
  "apgd-t",
  "fab-t",
] as const;
export type AutoAttackName = typeof AUTOATTACK_COMPONENTS[number];

export interface AutoAttackOptions {
  /** Default "linf". */
  norm?: Norm;
  /** Default 8/255 (linf) or 0.5 (l2). */
  eps?: number;
  /** Default "standard". */
  version?: AutoAttackVersion;
  /** Override the attack list (a "custom" version). */
  attacks?: AutoAttackName[];
  /** APGD and FAB iterations; default 100. (Reduce only for tests.) */
  steps?: number;
  /** Square query budget; default 5000. */
  queries?: number;
  /** Target classes of APGD-T and FAB-T; default 9. */
  targets?: number;
  /** EOT draws of the rand version; default 20 (1 for standard). */
  eot?: number;
  /** Base seed; default 0. */
  seed?: number;
}

export interface AutoAttackResult extends AttackResult {
  /** Per example: correctly classified at the clean point (the cascade's starting set). */
  cleanCorrect: boolean[];
  /** Per attack, in cascade order: which examples were still robust after it. */
  perAttack: { name: AutoAttackName; robust: boolean[] }[];
}

/** Restarts of the untargeted APGD and FAB in a version (APGD-T and FAB-T always run once). */
export function autoAttackRestarts(version: AutoAttackVersion): number {
  return version === "plus" || version === "custom" ? 5 : 1;
}

export function autoAttackList(version: AutoAttackVersion): AutoAttackName[] {
  switch (version) {
    case "standard":
      return ["apgd-ce", "apgd-t", "fab-t", "square"];
    case "plus":
      return ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"];
    case "rand":
      return ["apgd-ce", "apgd-dlr"];
    case "custom":
      throw new Error("autoAttack: the custom version needs its `attacks` list");
  }
}

export async function autoAttack(
  input: AttackInput,
  opts: AutoAttackOptions = {},
): Promise<AutoAttackResult> {
  const norm = opts.norm ?? "linf";
  const eps = opts.eps ?? (norm === "linf" ? 8 / 255 : 0.5);
  const version = opts.version ?? "standard";
  const attacks = opts.attacks ?? autoAttackList(version);
  for (const a of attacks) {
    if (!(AUTOATTACK_COMPONENTS as readonly string[]).includes(a)) {
      throw new Error(
        `autoAttack: unknown attack "${a}" (one of ${AUTOATTACK_COMPONENTS.join(", ")})`,
      );
    }
  }
  // The untargeted APGD and FAB restart 5 times in the plus and custom versions (the
  // reference's constructor defaults, which its custom version keeps), once otherwise.
  const restarts = autoAttackRestarts(version);
  const steps = opts.steps ?? 100;
  const eot = opts.eot ?? (version === "rand" ? 20 : 1);
  const seed = opts.seed ?? 0;
  const targets = opts.targets ?? 9;
  const indices = defaultIndices(input);
  const { target, x, labels } = input;

  // One prediction rule for the clean pass and every stage's verification.
  const verify = input.verify ?? (async (t: Tensor, rows: readonly number[]) => {
    const z = tidy(() => target.logits(t, rows));
    const { pred } = await predictions(z);
    z.dispose();
    return pred;
  });
  const cleanPred = input.attackAll === true ? labels.slice() : await verify(x, indices);
  const cleanCorrect = cleanPred.map((p, i) => p === labels[i]);
  // What decided each row: the clean pass, then the verification that found it fooled.
  const verdictPred = cleanPred.slice();
  const robust = cleanCorrect.slice();
  let xAdv = ops.detach(x);
  let first = true;
  const perAttack: AutoAttackResult["perAttack"] = [];

  for (const name of attacks) {
    const rows = robust.flatMap((r, i) => (r ? [i] : []));
    if (rows.length === 0) {
      perAttack.push({ name, robust: robust.slice() });
      continue;
    }
    const xs = selectRows(x, rows);
    const sub: AttackInput = {
      target,
      x: xs,
      labels: rows.map((i) => labels[i]),
      indices: rows.map((i) => indices[i]),
      // These rows are robust under the cascade's own verification: attack every one.
      attackAll: true,
    };
    let res: AttackResult;
    switch (name) {
      case "apgd-ce":
        res = await apgd(sub, { norm, eps, steps, restarts, loss: "ce", eot, seed });
        break;
      case "apgd-dlr":
        res = await apgd(sub, { norm, eps, steps, restarts, loss: "dlr", eot, seed });
        break;
      case "fab":
        res = await fabUntargeted(sub, { norm, eps, steps, restarts, seed });
        break;
      case "apgd-t":
        res = await apgdTargeted(sub, { norm, eps, steps, restarts: 1, targets, eot, seed });
        break;
      case "fab-t":
        res = await fabTargeted(sub, { norm, eps, steps, restarts: 1, targets, seed });
        break;
      case "square":
        res = await square(sub, {
          norm,
          eps,
          queries: opts.queries ?? 5000,
          pInit: 0.8,
          restarts: 1,
          rescaleSchedule: false,
          seed,
        });
        break;
      default:
        throw new Error(`autoAttack: unknown attack "${name}"`);
    }
    // Verify with a fresh forward pass (or the caller's rule), as the reference does.
    const pv = await verify(res.xAdv, sub.indices!);
    const fooled = pv.map((p, j) => p !== sub.labels[j]);
    // The first attack's strongest points stand in for the still-robust rows (useful when the
    // adversarials are transferred to a defense); later attacks replace only successes.
    const take = first ? rows : rows.filter((_, j) => fooled[j]);
    if (take.length > 0) {
      const src = first
        ? res.xAdv
        : selectRows(res.xAdv, rows.flatMap((_, j) => fooled[j] ? [j] : []));
      const merged = scatterRows(xAdv, take, src);
      if (src !== res.xAdv) src.dispose();
      xAdv.dispose();
      xAdv = merged;
    }
    first = false;
    rows.forEach((i, j) => {
      if (fooled[j]) {
        robust[i] = false;
        verdictPred[i] = pv[j];
      }
    });
    res.xAdv.dispose();
    xs.dispose();
    perAttack.push({ name, robust: robust.slice() });
  }
  return {
    xAdv,
    fooled: robust.map((r) => !r),
    verdictPred,
    cleanCorrect,
    perAttack,
  };
}
