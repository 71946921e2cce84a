// Training checkpoints: every module's state dict, every optimizer's state and the loop's
// position (epoch, batch, step, RNG state, log) in one safetensors file, written atomically,
// so a run killed at any point resumes from its last checkpoint with identical results.
// The run's settings (and its data's hash) are recorded too: resuming with other settings
// would silently mix two runs, so it is refused, naming the fields that differ.

import { Tensor, tidyAsync } from "../tensor.ts";
import type { Module } from "../nn/mod.ts";
import { readSafetensorsRaw, writeSafetensors } from "../io/safetensors.ts";
import { stableStringify } from "../io/hash.ts";

export interface OptimizerLike {
  stateTensors(): Map<string, Tensor>;
  loadState(map: Map<string, Tensor>): Promise<void>;
}

export interface Checkpointed {
  modules: Record<string, Module>;
  optimizers: Record<string, OptimizerLike>;
}

/** What determines a run's result (hyper-parameters, seed, data hash): JSON values. */
export type TrainSettings = Record<string, unknown>;

const STATE_KEY = "atop_train_state";
const SETTINGS_KEY = "atop_train_settings";

/** A value for an error message: hashes shortened, JSON otherwise. */
function show(v: unknown): string {
  if (typeof v === "string" && /^[0-9a-f]{64}$/.test(v)) return v.slice(0, 12);
  return v === undefined ? "unset" : stableStringify(v);
}

/** Refuses to resume with settings other than the checkpoint's: one line naming each
 * differing field (old -> new) and the fix. */
export function checkSettings(path: string, saved: string | undefined, now: TrainSettings): void {
  const fix = `choose another --out, or delete ${path} to start over`;
  if (saved === undefined) {
    throw new Error(
      `${path}: the checkpoint records no training settings (an older version wrote it), so ` +
        `resuming it could mix two runs; ${fix}`,
    );
  }
  const old = JSON.parse(saved) as TrainSettings;
  const keys = [...new Set([...Object.keys(old), ...Object.keys(now)])].sort();
  const diffs = keys.filter((k) => stableStringify(old[k]) !== stableStringify(now[k]))
    .map((k) => `${k} ${show(old[k])} -> ${show(now[k])}`);
  if (diffs.length) {
    throw new Error(
      `${path}: the checkpoint is from a run with other settings (${diffs.join(", ")}); ` +
        `rerun with its settings to resume it, or ${fix}`,
    );
  }
}

/** Writes `<module>/<key>` and `optim/<name>/<key>` tensors plus the loop state and the
 * run's settings (JSON). */
export async function saveCheckpoint(
  path: string,
  parts: Checkpointed,
  state: unknown,
  settings?: TrainSettings,
): Promise<void> {
  await tidyAsync(async () => {
    const tensors = new Map<string, Tensor>();
    for (const [m, mod] of Object.entries(parts.modules)) {
      for (const [k, t] of mod.stateDict()) tensors.set(`${m}/${k}`, t);
    }
    for (const [o, opt] of Object.entries(parts.optimizers)) {
      for (const [k, t] of opt.stateTensors()) tensors.set(`optim/${o}/${k}`, t);
    }
    await writeSafetensors(path, tensors, {
      [STATE_KEY]: JSON.stringify(state),
      ...(settings ? { [SETTINGS_KEY]: stableStringify(settings) } : {}),
    });
  });
}

/** Loads a checkpoint into the given modules and optimizers; returns the saved loop state,
 * or null when the file does not exist. With `settings`, first refuses a checkpoint written
 * with other ones (or none). */
export async function loadCheckpoint<S>(
  path: string,
  parts: Checkpointed,
  settings?: TrainSettings,
): Promise<S | null> {
  try {
    await Deno.stat(path);
  } catch {
    return null;
  }
  const raw = await readSafetensorsRaw(path);
  const metadata = raw.metadata;
  if (metadata?.[STATE_KEY] !== undefined && settings) {
    checkSettings(path, metadata[SETTINGS_KEY], settings);
  }
  const tensors = new Map(
    [...raw.tensors].map(([k, t]) => [k, Tensor.fromData(t.data, t.shape)] as const),
  );
  try {
    const raw = metadata?.[STATE_KEY];
    if (raw === undefined) {
      throw new Error(`${path}: not a training checkpoint (no ${STATE_KEY} metadata)`);
    }
    for (const [m, mod] of Object.entries(parts.modules)) {
      const sub = new Map<string, Tensor>();
      for (const [k, t] of tensors) if (k.startsWith(`${m}/`)) sub.set(k.slice(m.length + 1), t);
      mod.loadStateDict(sub, { strict: true });
    }
    for (const [o, opt] of Object.entries(parts.optimizers)) {
      const sub = new Map<string, Tensor>();
      const prefix = `optim/${o}/`;
      for (const [k, t] of tensors) if (k.startsWith(prefix)) sub.set(k.slice(prefix.length), t);
      await opt.loadState(sub);
    }
    return JSON.parse(raw) as S;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
