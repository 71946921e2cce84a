// Fast gradient sign method (Goodfellow et al. 2015); with norm "l2" the fast gradient
// method x + eps * g/||g||. One projected step from the clean image.

import type { AttackInput, AttackResult, Norm } from "./common.ts";
import type { AttackLoss } from "./objective.ts";
import { pgd } from "./pgd.ts";

export interface FgsmOptions {
  /** Default "linf". */
  norm?: Norm;
  /** Default 8/255 (linf) or 0.5 (l2). */
  eps?: number;
  /** Default "ce". */
  loss?: AttackLoss;
  /** EOT draws for the gradient; default 1. */
  eot?: number;
}

export function fgsm(input: AttackInput, opts: FgsmOptions = {}): Promise<AttackResult> {
  const norm = opts.norm ?? "linf";
  const eps = opts.eps ?? (norm === "linf" ? 8 / 255 : 0.5);
  return pgd(input, {
    norm,
    eps,
    stepSize: eps,
    steps: 1,
    restarts: 1,
    randomStart: false,
    eot: opts.eot ?? 1,
    loss: opts.loss ?? "ce",
  });
}
