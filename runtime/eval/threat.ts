// Threat models: which function the attacker differentiates, and which one is evaluated.
//   classifier-only: adversarials are crafted on the classifier alone, then fed to the full
//                    defense (a transfer setting; the weakest adaptive attacker).
//   full-pipeline:   the attacker differentiates the whole defense (transforms, purifier,
//                    classifier), with EOT draws for randomness and BPDA where the pipeline
//                    wraps non-differentiable stages. This is the adaptive-attack setting.

import type { Tensor } from "../tensor.ts";
import type { Target } from "../attacks/target.ts";
import type { ThreatModel } from "./report.ts";

export type { ThreatModel };

/** What a `--pipeline FILE` module's default export provides. */
export interface DefenseModule {
  /** The whole defense as a Target (BPDA/EOT-ready stages composed with the classifier). */
  buildTarget(): Promise<Target>;
  /** The classifier alone (for classifier-only); defaults to the CLI's --arch/--weights. */
  buildClassifier?(): Promise<Target>;
  /** The defense's image-space output (e.g. the purified image), for the PNG grid. */
  purify?(x: Tensor): Tensor;
}

export interface EvalTargets {
  /** Differentiated by the attacks. */
  attack: Target;
  /** Classifies the clean and adversarial images for the reported accuracies. */
  evaluate: Target;
  purify?: (x: Tensor) => Tensor;
}

export function parseThreatModel(s: string): ThreatModel {
  if (s === "classifier-only" || s === "full-pipeline") return s;
  throw new Error(`--threat: expected classifier-only or full-pipeline, got "${s}"`);
}

/** Picks the attacked and evaluated targets. Without a defense both are the classifier. */
export function threatTargets(
  threat: ThreatModel,
  classifier: Target,
  defense?: Target,
  purify?: (x: Tensor) => Tensor,
): EvalTargets {
  if (!defense) return { attack: classifier, evaluate: classifier };
  if (defense.numClasses !== classifier.numClasses) {
    throw new Error(
      `threat model: defense has ${defense.numClasses} classes but the classifier ` +
        `${classifier.numClasses}`,
    );
  }
  return threat === "classifier-only"
    ? { attack: classifier, evaluate: defense, purify }
    : { attack: defense, evaluate: defense, purify };
}

/** The defenses a pipeline run's report compares. */
export type DefenseName = "none" | "rt-only" | "purifier" | "atop";
export const DEFENSE_NAMES: DefenseName[] = ["none", "rt-only", "purifier", "atop"];
