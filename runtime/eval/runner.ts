// Robust evaluation over a dataset slice: clean predictions, every attack, predictions of the
// evaluated target on the adversarials, per-example worst case, sanity checks. Progress is
// saved after every batch (one JSON line appended to a state file), so an interrupted run
// resumes where it stopped and gives the same report as a straight run.

import { noGrad } from "../autograd.ts";
import { Tensor, tidyAsync } from "../tensor.ts";
import { scatterRows, selectRows } from "../attacks/common.ts";
import * as ops from "../ops/mod.ts";
import { EVAL_PROTOCOL_VERSION, protocolPredict } from "./verdict.ts";
import { checkStateBatch } from "./state_schema.ts";
import { drawScope } from "../rng.ts";
import { assertValidAdversarials } from "./adversarial.ts";
import {
  type AttackName,
  type AttackParams,
  autoAttackComponents,
  runAttack,
  runsWithoutEot,
  usesDlrLoss,
} from "./attacks.ts";
import { checkGradients, checkLogitsRange, checkRandomized } from "./checks.ts";
import { type Dataset, gatherImages } from "./data.ts";
import { appendJsonLine, exists, readJsonLines, writeFileAtomic } from "./files.ts";
import { imageGridPng } from "./grid.ts";
import {
  type AttackEntry,
  buildReport,
  type CheckResult,
  type EvalConfig,
  type EvalReport,
  type ExampleResult,
} from "./report.ts";
import type { EvalTargets } from "./threat.ts";

export interface RunnerOptions {
  config: EvalConfig;
  /** Attacks with their resolved settings, in order. */
  attacks: { name: AttackName; params: AttackParams }[];
  data: Dataset;
  /** Global indices of the examples this run evaluates (already limited and sharded). */
  indices: number[];
  shard: EvalReport["shard"];
  targets: EvalTargets;
  /** JSON-lines progress file; resumed when it exists. */
  statePath?: string | null;
  /** PNG grid of the first examples: clean, adversarial (worst case), purified. */
  gridPath?: string | null;
  gridCount?: number;
  log?: (msg: string) => void;
  /** Called with the batch's example count after each batch; `resumed` for the batches an
   * earlier run finished. */
  onBatch?: (examples: number, resumed: boolean) => void;
  /** Stop (returning null) after this many new batches: simulates an interruption. */
  stopAfterBatches?: number;
}

interface StateHeader {
  kind: "header";
  key: string;
}
interface StateBatch {
  kind: "batch";
  batch: number;
  examples: ExampleResult[];
  checks: CheckResult[];
  seconds: number;
}
type StateLine = StateHeader | StateBatch;

/** Identifies the evaluation a state file belongs to. */
function stateKey(o: RunnerOptions): string {
  return JSON.stringify({
    protocol: EVAL_PROTOCOL_VERSION,
    config: o.config,
    attacks: o.attacks,
    shard: o.shard,
    indices: o.indices,
  });
}

async function runBatch(
  o: RunnerOptions,
  batch: number,
  idx: number[],
  wantGrid: boolean,
): Promise<StateBatch> {
  const t0 = performance.now();
  const { attack, evaluate } = o.targets;
  const m = idx.length;
  const labels = idx.map((i) => o.data.labels[i]);
  return await tidyAsync(async () => {
    const xc = gatherImages(o.data, idx);
    const x = Tensor.fromData(xc, [m, ...o.data.shape]);
    // A randomized defense keys its draws by (example, call): restarting the examples' call
    // counts here makes their randomness independent of batch, shard and resume point.
    attack.resetDraws?.(idx);
    if (evaluate !== attack) evaluate.resetDraws?.(idx);
    const votes = o.config.votes ?? 1;
    // One clean verdict per example, by the protocol's prediction rule.
    const clean = await protocolPredict(evaluate, x, idx, votes, `batch ${batch}, clean images`);
    const attackClean = attack === evaluate && !evaluate.randomized
      ? clean
      : await protocolPredict(attack, x, idx, 1, `batch ${batch}, clean images (attacked target)`);
    // The DLR loss (APGD-DLR, APGD-T and the AutoAttack versions that run them) gets its own
    // zero-gradient check, as the reference runs inside APGD.
    const usesDlr = o.attacks.filter((a) => usesDlrLoss(a.name, a.params)).map((a) => a.name);
    // Per attack: each one that takes a gradient without EOT is named (FAB never has EOT).
    const withoutEot = o.attacks.filter((a) => runsWithoutEot(a.name, a.params))
      .map((a) => a.name);
    const checks: CheckResult[] = [
      await checkRandomized(attack, x, withoutEot, 5, idx),
      await checkGradients(attack, x, labels, idx),
      await checkLogitsRange(attack, x, idx),
    ];
    const entries: Record<string, AttackEntry>[] = idx.map(() => ({}));
    // Each attack's adversarials, read back once: pixels, predictions and per-example norms.
    const advs: { data: Float32Array; pred: number[]; norms: { linf: number[]; l2: number[] } }[] =
      [];
    // The protocol: every example correct under the clean verdict is attacked by every attack
    // (attackAll: no attack re-decides that with a clean pass of its own), and an attack's
    // verdict is the protocol's prediction on its final adversarial.
    const correct = idx.flatMap((_, j) => (clean[j] === labels[j] ? [j] : []));
    const whole = correct.length === m;
    const xs = whole || correct.length === 0 ? x : selectRows(x, correct);
    const rows = correct.map((j) => idx[j]);
    // The DLR loss is constant (zero gradient) wherever the label is the third-largest logit,
    // so, as the reference checks it inside APGD, only on rows the attacks run on and that the
    // attacked target itself classifies correctly (under classifier-only that is the bare
    // classifier, which may miss rows the defense gets right).
    const dlrRows = correct.filter((j) => attackClean[j] === labels[j]);
    if (usesDlr.length && attack.numClasses >= 3 && dlrRows.length > 0) {
      const xd = dlrRows.length === m ? x : selectRows(x, dlrRows);
      checks.push(
        await checkGradients(
          attack,
          xd,
          dlrRows.map((j) => labels[j]),
          dlrRows.map((j) => idx[j]),
          {
            name: "dlr",
            attacks: usesDlr,
          },
        ),
      );
      if (xd !== x) xd.dispose();
    }
    const verify = (t: Tensor, r: readonly number[], what = "adversarials") =>
      protocolPredict(evaluate, t, r, votes, `batch ${batch}, ${what}`);
    for (const a of o.attacks) {
      o.log?.(`batch ${batch}: ${a.name} on ${correct.length} of ${m} examples`);
      // Each attack draws the defense's randomness in a scope of its own (from its name and
      // settings), so the other attacks of the list cannot change its numbers.
      const scope = drawScope(JSON.stringify([a.name, a.params]));
      attack.resetDraws?.(idx, scope);
      if (evaluate !== attack) evaluate.resetDraws?.(idx, scope);
      const res = correct.length === 0 ? null : await runAttack(a.name, a.params, {
        target: attack,
        x: xs,
        labels: correct.map((j) => labels[j]),
        indices: rows,
        attackAll: true,
        // AutoAttack's cascade verifies by the protocol when it attacks the evaluated target.
        verify: attack === evaluate ? verify : undefined,
      });
      // AutoAttack verified each stage itself (on the evaluated target, by the protocol);
      // every other attack's final adversarial is verified here.
      const subPred = res === null
        ? []
        : attack === evaluate && res.verdictPred
        ? res.verdictPred
        : await verify(res.xAdv, rows, `${a.name} adversarials`);
      const xAdv = res === null
        ? ops.clone(x)
        : whole
        ? res.xAdv
        : scatterRows(x, correct, res.xAdv);
      if (res !== null && !whole) res.xAdv.dispose();
      const pred = clean.slice();
      correct.forEach((j, r) => (pred[j] = subPred[r]));
      const advData = await xAdv.data();
      xAdv.dispose();
      // Inside eps, inside [0,1], no NaN: else the batch fails (StAdv has no norm ball).
      const norms = assertValidAdversarials(
        a.name,
        advData,
        xc,
        m,
        a.name === "stadv" ? null : { norm: a.params.norm, eps: a.params.eps },
        idx,
      );
      const at = new Map(correct.map((j, r) => [j, r]));
      const stageNames = autoAttackComponents(a.name, a.params);
      for (let j = 0; j < m; j++) {
        const e: AttackEntry = {
          adv_pred: pred[j],
          robust: clean[j] === labels[j] && pred[j] === labels[j],
          perturbation_norm: a.params.norm === "linf" ? norms.linf[j] : norms.l2[j],
        };
        const r = at.get(j);
        if (res !== null && r !== undefined) {
          // Only examples the attack ran on have losses (JSON has no NaN/inf).
          const ls = res.lossStart?.[r], lb = res.lossBest?.[r];
          if (ls !== undefined && lb !== undefined && Number.isFinite(ls) && Number.isFinite(lb)) {
            e.loss_start = ls;
            e.loss_best = lb;
          }
          if (res.queries) e.queries = res.queries[r];
          if (res.stages) {
            e.stages = Object.fromEntries(res.stages.map((s) => [s.name, s.robust[r]]));
          }
        } else if (stageNames) {
          // Not attacked (wrong under the clean verdict): not robust after any stage. Named
          // from the attack's own list, so a batch with no attacked row looks the same.
          e.stages = Object.fromEntries(stageNames.map((s) => [s, false]));
        }
        entries[j][a.name] = e;
      }
      advs.push({ data: advData, pred, norms });
    }
    if (xs !== x) xs.dispose();
    // Worst case: the first attack that succeeded, else the last one.
    const d = x.size / m;
    const worst = new Float32Array(x.size);
    const examples: ExampleResult[] = idx.map((index, j) => {
      const robust = clean[j] === labels[j] && o.attacks.every((a) => entries[j][a.name].robust);
      let k = o.attacks.findIndex((a) => !entries[j][a.name].robust);
      if (clean[j] !== labels[j] || advs.length === 0) k = -1;
      else if (k < 0) k = advs.length - 1;
      const src = k < 0 ? xc : advs[k].data;
      worst.set(src.subarray(j * d, (j + 1) * d), j * d);
      const linf = k < 0 ? 0 : advs[k].norms.linf[j], l2 = k < 0 ? 0 : advs[k].norms.l2[j];
      return {
        index,
        label: labels[j],
        clean_pred: clean[j],
        attack_clean_pred: attackClean[j],
        adv_pred: k < 0 ? clean[j] : advs[k].pred[j],
        robust,
        perturbation_norm: o.config.norm === "linf" ? linf : l2,
        perturbation_linf: linf,
        perturbation_l2: l2,
        attacks: entries[j],
      };
    });
    if (wantGrid && o.gridPath) {
      const cnt = Math.min(o.gridCount ?? 8, m);
      const cols = [xc, worst];
      if (o.targets.purify) {
        const wt = Tensor.fromData(worst, x.shape);
        const p = noGrad(() => o.targets.purify!(wt));
        if (p.size === x.size) cols.push(await p.data());
      }
      await writeFileAtomic(o.gridPath, await imageGridPng(cols, cnt, o.data.shape));
    }
    return {
      kind: "batch" as const,
      batch,
      examples,
      checks,
      seconds: (performance.now() - t0) / 1000,
    };
  });
}

/** Runs (or resumes) the evaluation; returns null when stopped by `stopAfterBatches`. */
export async function runEvaluation(o: RunnerOptions): Promise<EvalReport | null> {
  const bs = o.config.batch_size;
  if (!(Number.isInteger(bs) && bs >= 1)) throw new Error(`batch size must be >= 1, got ${bs}`);
  const key = stateKey(o);
  const done = new Map<number, StateBatch>();
  let resume = o.statePath !== null && o.statePath !== undefined && await exists(o.statePath);
  let lines: StateLine[] = [];
  if (resume) {
    lines = await readJsonLines<StateLine>(o.statePath!);
    // A run that failed before its first batch saved nothing: start over, whatever its
    // settings were, so the corrected rerun is not blocked by its header.
    if (lines.length <= 1 && (!lines[0] || lines[0].kind === "header")) resume = false;
  }
  if (resume) {
    const header = lines[0];
    if (!header || header.kind !== "header" || header.key !== key) {
      throw new Error(
        `state file ${o.statePath} belongs to a different evaluation (settings, shard or ` +
          `data changed); delete it or choose another --out`,
      );
    }
    const nb = Math.ceil(o.indices.length / bs);
    lines.slice(1).forEach((l, i) => {
      const b = (l as { batch?: unknown }).batch;
      if (!(Number.isInteger(b) && (b as number) >= 0 && (b as number) < nb)) {
        throw new Error(
          `state file ${o.statePath} line ${i + 2}: no batch number in [0, ${nb}); the file is ` +
            `damaged or from another version: delete it or choose another --out`,
        );
      }
      const checked = checkStateBatch(l, o.statePath!, i + 2, {
        indices: o.indices.slice((b as number) * bs, ((b as number) + 1) * bs),
        attacks: o.attacks.map((a) => a.name),
      });
      done.set(checked.batch, checked as StateBatch);
    });
    o.log?.(`resuming: ${done.size} batch(es) already done`);
    for (const b of done.values()) o.onBatch?.(b.examples.length, true);
  } else if (o.statePath) {
    await writeFileAtomic(o.statePath, JSON.stringify({ kind: "header", key }) + "\n");
  }
  const nBatches = Math.ceil(o.indices.length / bs);
  let fresh = 0;
  for (let b = 0; b < nBatches; b++) {
    if (done.has(b)) continue;
    if (o.stopAfterBatches !== undefined && fresh >= o.stopAfterBatches) return null;
    const idx = o.indices.slice(b * bs, (b + 1) * bs);
    const r = await runBatch(o, b, idx, b === 0);
    done.set(b, r);
    if (o.statePath) await appendJsonLine(o.statePath, r);
    fresh++;
    o.onBatch?.(idx.length, false);
    o.log?.(`batch ${b + 1}/${nBatches} done (${r.seconds.toFixed(1)} s)`);
  }
  const batches = [...done.values()];
  const seconds = batches.reduce((s, b) => s + b.seconds, 0);
  return buildReport(
    o.config,
    o.shard,
    batches.flatMap((b) => b.examples),
    batches.flatMap((b) => b.checks),
    { seconds, images_per_second: seconds > 0 ? o.indices.length / seconds : 0 },
  );
}
