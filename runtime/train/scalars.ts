// Per-step training scalars (losses, accuracy counts) kept on the GPU and read back in groups:
// reading a loss every step is a sync that leaves the GPU idle while the CPU records the next
// step. Each step's scalars are packed into one small tensor; `read` concatenates the pending
// ones and reads them back once.

import { keep, type Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";

/** Default steps between readbacks of the training scalars. */
export const READ_EVERY = 16;

export class ScalarLog<K extends string> {
  #pending: { tag: number; names: K[]; t: Tensor }[] = [];

  /** Records one step's scalars (each a 1-element tensor; not read now). `tag` comes back with
   * the values (e.g. the step number). */
  push(tag: number, values: Partial<Record<K, Tensor>>): void {
    const names = Object.keys(values) as K[];
    if (names.length === 0) {
      this.#pending.push({ tag, names, t: keep(ops.zeros([0])) });
      return;
    }
    const t = tidy(() => ScalarLog.pack(names.map((k) => values[k]!)));
    this.#pending.push({ tag, names, t: keep(t) });
  }

  /** Records one step's scalars already packed in a tensor of `names.length` values (a compiled
   * step's output; the log owns it from now on). */
  pushPacked(tag: number, names: K[], t: Tensor): void {
    if (t.size !== names.length) {
      throw new Error(`ScalarLog.pushPacked: ${names.length} names for ${t.size} values`);
    }
    this.#pending.push({ tag, names, t: keep(t) });
  }

  /** The packing `push` does, for a step that returns its scalars. */
  static pack(values: Tensor[]): Tensor {
    return ops.concat(values.map((v) => ops.reshape(v, [1])), 0);
  }

  get pending(): number {
    return this.#pending.length;
  }

  /** Reads every pending step in one readback, oldest first. */
  async read(): Promise<{ tag: number; values: Record<K, number> }[]> {
    const steps = this.#pending;
    this.#pending = [];
    if (steps.length === 0) return [];
    const withValues = steps.filter((s) => s.names.length > 0);
    let flat: Float32Array = new Float32Array(0);
    if (withValues.length > 0) {
      const all = tidy(() => ops.concat(withValues.map((s) => s.t), 0));
      flat = await all.data();
      all.dispose();
    }
    let at = 0;
    const out = steps.map((s) => {
      const values = {} as Record<K, number>;
      for (const k of s.names) values[k] = flat[at++];
      return { tag: s.tag, values };
    });
    for (const s of steps) s.t.dispose();
    return out;
  }

  dispose(): void {
    for (const s of this.#pending) s.t.dispose();
    this.#pending = [];
  }
}
