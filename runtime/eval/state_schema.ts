// The evaluation state file's lines are checked before a resume merges them: a line that is
// valid JSON but lacks a field (a hand edit, another version's file) would otherwise be
// merged into the report as if it were a finished batch.

import { z } from "zod";

const Entry = z.object({
  adv_pred: z.number().int(),
  robust: z.boolean(),
  perturbation_norm: z.number(),
  loss_start: z.number().optional(),
  loss_best: z.number().optional(),
  queries: z.number().optional(),
  stages: z.record(z.string(), z.boolean()).optional(),
});

const Example = z.object({
  index: z.number().int().nonnegative(),
  label: z.number().int().nonnegative(),
  clean_pred: z.number().int(),
  attack_clean_pred: z.number().int(),
  adv_pred: z.number().int(),
  robust: z.boolean(),
  perturbation_norm: z.number(),
  perturbation_linf: z.number(),
  perturbation_l2: z.number(),
  attacks: z.record(z.string(), Entry),
});

const Check = z.object({
  id: z.string(),
  level: z.enum(["ok", "info", "warning"]),
  message: z.string(),
  count: z.number().optional(),
});

export const StateBatchSchema = z.object({
  kind: z.literal("batch"),
  batch: z.number().int().nonnegative(),
  examples: z.array(Example),
  checks: z.array(Check),
  seconds: z.number(),
});

/** Checks one batch line of `path` (1-based `line`): the schema, and that it holds exactly the
 * examples that batch evaluates and every attack of the evaluation. */
export function checkStateBatch(
  value: unknown,
  path: string,
  line: number,
  expected: { indices: readonly number[]; attacks: readonly string[] },
): z.infer<typeof StateBatchSchema> {
  const r = StateBatchSchema.safeParse(value);
  const fail = (why: string): never => {
    throw new Error(
      `state file ${path} line ${line}: ${why}; the file is damaged or from another version: ` +
        `delete it (the evaluation restarts) or choose another --out`,
    );
  };
  if (!r.success) {
    const issue = r.error.issues[0];
    fail(`${issue.path.join(".") || "the line"}: ${issue.message}`);
  }
  const b = r.data!;
  const got = b.examples.map((e) => e.index);
  if (got.length !== expected.indices.length || got.some((v, i) => v !== expected.indices[i])) {
    fail(`batch ${b.batch} holds examples [${got.slice(0, 4)}...], not the batch's own`);
  }
  for (const e of b.examples) {
    const missing = expected.attacks.find((a) => !(a in e.attacks));
    if (missing) fail(`example ${e.index} has no result for attack ${missing}`);
  }
  return b;
}
