// The attack registry of evaluations and the CLI: one name per attack, with the settings of a
// run resolved to the attack's documented defaults (and recorded in the report).

import type { AttackInput, AttackResult, Norm } from "../attacks/common.ts";
import { fgsm } from "../attacks/fgsm.ts";
import { pgd } from "../attacks/pgd.ts";
import { apgd, apgdTargeted } from "../attacks/apgd.ts";
import { fabTargeted } from "../attacks/fab.ts";
import { square } from "../attacks/square.ts";
import {
  autoAttack,
  AUTOATTACK_COMPONENTS,
  autoAttackList,
  type AutoAttackName,
  autoAttackRestarts,
  type AutoAttackResult,
  type AutoAttackVersion,
} from "../attacks/autoattack.ts";
import { stadv } from "../attacks/stadv.ts";

export const ATTACK_NAMES = [
  "fgsm",
  "pgd",
  "apgd-ce",
  "apgd-dlr",
  "apgd-t",
  "fab-t",
  "square",
  "stadv",
  "autoattack",
  "autoattack-rand",
  "autoattack-plus",
] as const;
export type AttackName = typeof ATTACK_NAMES[number];

export function parseAttackName(s: string): AttackName {
  if ((ATTACK_NAMES as readonly string[]).includes(s)) return s as AttackName;
  throw new Error(`--attack: unknown attack "${s}" (one of ${ATTACK_NAMES.join(", ")})`);
}

export interface AttackParams {
  norm: Norm;
  eps: number;
  steps: number;
  stepSize: number | null;
  restarts: number;
  eot: number;
  seed: number;
  queries: number | null;
  /** AutoAttack only: a custom list of its components (absent: the version's own list). */
  components?: string[];
  /** StAdv only: flow bound and loss weights as run (kappa null = unclipped margin). */
  stadv?: { lr: number; bound: number; tau: number; kappa: number | null };
}

/** Settings given on the command line (undefined = the attack's default). */
export interface AttackParamsInput {
  norm?: Norm;
  eps?: number;
  steps?: number;
  stepSize?: number;
  restarts?: number;
  eot?: number;
  seed?: number;
  queries?: number;
  /** AutoAttack: run these components (a custom version) instead of the version's list. */
  components?: string[];
  /** StAdv's flow bound, smoothness weight and margin clip. */
  bound?: number;
  tau?: number;
  kappa?: number;
}

/** Fills in defaults: eps 8/255 (linf) / 0.5 (l2); steps 10 (pgd), 1 (fgsm), 100 (APGD, FAB,
 * AutoAttack, StAdv); EOT 20 for autoattack-rand; 5000 Square queries. */
export function resolveParams(name: AttackName, p: AttackParamsInput): AttackParams {
  const norm = p.norm ?? "linf";
  const steps = p.steps ?? (name === "pgd" ? 10 : name === "fgsm" ? 1 : 100);
  const version = autoAttackVersion(name, p.components);
  const isAA = version !== null;
  if (p.components !== undefined) {
    if (!isAA) {
      throw new Error(`${name}: a list of AutoAttack components only applies to AutoAttack`);
    }
    if (p.components.length === 0) throw new Error(`${name}: the component list is empty`);
    for (const c of p.components) {
      if (!(AUTOATTACK_COMPONENTS as readonly string[]).includes(c)) {
        throw new Error(
          `${name}: unknown component "${c}" (one of ${AUTOATTACK_COMPONENTS.join(", ")})`,
        );
      }
    }
  }
  const usesQueries = name === "square" || name === "autoattack" || name === "autoattack-plus" ||
    (p.components?.includes("square") ?? false);
  return {
    norm,
    eps: p.eps ?? (norm === "linf" ? 8 / 255 : 0.5),
    steps,
    stepSize: p.stepSize ?? null,
    // AutoAttack's restarts are fixed by its version (as the reference): recorded as run.
    restarts: version ? autoAttackRestarts(version) : p.restarts ?? 1,
    eot: p.eot ?? (name === "autoattack-rand" ? 20 : 1),
    seed: p.seed ?? 0,
    queries: usesQueries ? (p.queries ?? 5000) : null,
    // The AToP/DiffPure StAdv evaluation: Adam lr 0.01, Linf flow bound 0.05 (normalised grid
    // units), tau 0.05, margin unclipped.
    ...(p.components !== undefined ? { components: [...p.components] } : {}),
    ...(name === "stadv"
      ? {
        stadv: {
          lr: p.stepSize ?? 0.01,
          bound: p.bound ?? 0.05,
          tau: p.tau ?? 0.05,
          kappa: p.kappa ?? null,
        },
      }
      : {}),
  };
}

export interface NamedAttackResult extends AttackResult {
  /** AutoAttack: robust flags after each stage, on the attack target. */
  stages?: { name: string; robust: boolean[] }[];
}

export async function runAttack(
  name: AttackName,
  p: AttackParams,
  input: AttackInput,
): Promise<NamedAttackResult> {
  const step = p.stepSize ?? undefined;
  const common = { norm: p.norm, eps: p.eps, seed: p.seed };
  switch (name) {
    case "fgsm":
      return await fgsm(input, { norm: p.norm, eps: p.eps, eot: p.eot });
    case "pgd":
      return await pgd(input, {
        ...common,
        steps: p.steps,
        stepSize: step,
        restarts: p.restarts,
        eot: p.eot,
      });
    case "apgd-ce":
    case "apgd-dlr":
      return await apgd(input, {
        ...common,
        steps: p.steps,
        restarts: p.restarts,
        eot: p.eot,
        loss: name === "apgd-ce" ? "ce" : "dlr",
      });
    case "apgd-t":
      return await apgdTargeted(input, {
        ...common,
        steps: p.steps,
        restarts: p.restarts,
        eot: p.eot,
      });
    case "fab-t":
      return await fabTargeted(input, { ...common, steps: p.steps, restarts: p.restarts });
    case "square":
      return await square(input, { ...common, queries: p.queries ?? 5000, restarts: p.restarts });
    case "stadv":
      return await stadv(input, {
        steps: p.steps,
        seed: p.seed,
        eot: p.eot,
        lr: p.stadv?.lr ?? step,
        bound: p.stadv?.bound,
        tau: p.stadv?.tau,
        kappa: p.stadv?.kappa ?? undefined,
      });
    case "autoattack":
    case "autoattack-plus":
    case "autoattack-rand": {
      const r: AutoAttackResult = await autoAttack(input, {
        ...common,
        version: autoAttackVersion(name, p.components)!,
        attacks: p.components as AutoAttackName[] | undefined,
        steps: p.steps,
        queries: p.queries ?? 5000,
        eot: p.eot,
      });
      return { ...r, stages: r.perAttack };
    }
  }
}

/** The AutoAttack version an evaluation attack runs (null: not AutoAttack). A component list
 * keeps its version's settings ("custom" only for the standard name, as the reference). */
export function autoAttackVersion(
  name: AttackName,
  components?: readonly string[],
): AutoAttackVersion | null {
  if (name === "autoattack") return components ? "custom" : "standard";
  if (name === "autoattack-plus") return "plus";
  if (name === "autoattack-rand") return "rand";
  return null;
}

/** The cascade's components in order (null: not AutoAttack). */
export function autoAttackComponents(name: AttackName, p: AttackParams): AutoAttackName[] | null {
  const v = autoAttackVersion(name, p.components);
  if (!v) return null;
  return (p.components as AutoAttackName[] | undefined) ?? autoAttackList(v);
}

/** Whether the attack optimizes a DLR loss (APGD-DLR, APGD-T, and cascades that run them). */
export function usesDlrLoss(name: AttackName, p: AttackParams): boolean {
  const parts = autoAttackComponents(name, p) ?? [name];
  return parts.some((c) => c === "apgd-dlr" || c === "apgd-t");
}

/** Whether a gradient of the attack is taken without EOT: its eot is 1, or it runs FAB (which
 * has no EOT). Square is gradient-free and needs none. */
export function runsWithoutEot(name: AttackName, p: AttackParams): boolean {
  const parts = autoAttackComponents(name, p) ?? [name];
  if (parts.some((c) => c === "fab" || c === "fab-t")) return true;
  return parts.some((c) => c !== "square") && p.eot <= 1;
}
