// Training checkpoints: every module's state dict, every optimizer's state and the loop's
// position (epoch, batch, step, RNG state, log) in one safetensors file, written atomically,
// so a run killed at any point resumes from its last checkpoint with identical results.

import { Tensor, tidyAsync } from "../tensor.ts";
import type { Module } from "../nn/mod.ts";
import { readSafetensorsRaw, writeSafetensors } from "../io/safetensors.ts";

export interface OptimizerLike {
  stateTensors(): Map<string, Tensor>;
  loadState(map: Map<string, Tensor>): Promise<void>;
}

export interface Checkpointed {
  modules: Record<string, Module>;
  optimizers: Record<string, OptimizerLike>;
}

const STATE_KEY = "atop_train_state";

/** Writes `<module>/<key>` and `optim/<name>/<key>` tensors plus the loop state (JSON). */
export async function saveCheckpoint(
  path: string,
  parts: Checkpointed,
  state: unknown,
): Promise<void> {
  await tidyAsync(async () => {
    const tensors = new Map<string, Tensor>();
    for (const [m, mod] of Object.entries(parts.modules)) {
      for (const [k, t] of mod.stateDict()) tensors.set(`${m}/${k}`, t);
    }
    for (const [o, opt] of Object.entries(parts.optimizers)) {
      for (const [k, t] of opt.stateTensors()) tensors.set(`optim/${o}/${k}`, t);
    }
    await writeSafetensors(path, tensors, { [STATE_KEY]: JSON.stringify(state) });
  });
}

/** Loads a checkpoint into the given modules and optimizers; returns the saved loop state,
 * or null when the file does not exist. */
export async function loadCheckpoint<S>(path: string, parts: Checkpointed): Promise<S | null> {
  try {
    await Deno.stat(path);
  } catch {
    return null;
  }
  const raw = await readSafetensorsRaw(path);
  const metadata = raw.metadata;
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
