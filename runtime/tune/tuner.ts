// Kernel variants chosen per adapter and shape by timing them on first use (the jax-js tuner
// idea). A kernel family offers candidates that compute bit-identical results (the variants
// differ in how work is split over threads, never in the order of any sum: tests check it),
// so a choice changes speed only and results stay the same run to run whatever was chosen.
//
// First use of a (family, shape) records every candidate twice, each time in its own timestamped
// pass, and keeps each one's faster time: a variant's first launch also loads its pipeline (from
// Mesa's shader cache or by compiling it), which made a variant no other shape had used yet look
// up to 1.5x slower than it is. The output is written identically by each. When the times come
// back (after that batch's submit) the fastest is kept, in memory and in a cache file per adapter (ATOP_TUNE_CACHE, by
// default ~/.cache/atop-gpu/tune.json, beside Mesa's shader cache); until then the default
// runs. A budget bounds the extra kernel time per run (ATOP_TUNE_BUDGET_MS, default 20000).
// ATOP_TUNE=off runs the defaults; ATOP_TILE=4|16 forces a tile everywhere (tests).

import { engine } from "../engine.ts";
import { dirname, join } from "node:path";

export interface Candidate {
  name: string;
  /** Records the kernel with this variant. */
  run: () => void;
}

/** Cache format: 2 since choices are timed twice and the CPU variants run 64-thread workgroups;
 * 3 since the tex variants read read-only storage textures, 4 since kernels read their parameters
 * from uniform buffers (older choices are dropped). Bump it whenever a change makes the cached
 * choices stale. */
export const CACHE_VERSION = 4;

interface CacheFile {
  version: number;
  adapters: Record<string, Record<string, string>>;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

export function tuneCachePath(): string {
  const explicit = env("ATOP_TUNE_CACHE");
  if (explicit) return explicit;
  const base = env("XDG_CACHE_HOME") ?? join(env("HOME") ?? ".", ".cache");
  return join(base, "atop-gpu", "tune.json");
}

const state = {
  loaded: false,
  adapterKey: "",
  choices: new Map<string, string>(),
  /** The best of each candidate's two timings (ms) by choice id, this process only. */
  times: new Map<string, Map<string, number>>(),
  pending: new Set<string>(),
  spentMs: 0,
  timedShapes: 0,
  lastNote: 0,
  dirty: false,
  writing: null as Promise<void> | null,
};

function adapterKey(): string {
  const a = engine().adapter;
  return [a.description, a.vendor, a.architecture, a.device, a.backend].join("|");
}

function load(): void {
  if (state.loaded) return;
  state.loaded = true;
  state.adapterKey = adapterKey();
  try {
    const f = JSON.parse(Deno.readTextFileSync(tuneCachePath())) as CacheFile;
    if (f.version !== CACHE_VERSION) return;
    for (const [k, v] of Object.entries(f.adapters?.[state.adapterKey] ?? {})) {
      state.choices.set(k, v);
    }
  } catch {
    // No cache yet (or unreadable): everything is timed again.
  }
}

/** Writes the cache (merged with what other processes wrote), atomically. */
async function persist(): Promise<void> {
  if (state.writing) return;
  state.writing = (async () => {
    while (state.dirty) {
      state.dirty = false;
      const path = tuneCachePath();
      let f: CacheFile = { version: CACHE_VERSION, adapters: {} };
      try {
        const read = JSON.parse(await Deno.readTextFile(path)) as CacheFile;
        if (read.version === CACHE_VERSION) f = read;
      } catch {
        // first write
      }
      f.adapters ??= {};
      f.adapters[state.adapterKey] = {
        ...(f.adapters[state.adapterKey] ?? {}),
        ...Object.fromEntries(state.choices),
      };
      try {
        await Deno.mkdir(dirname(path), { recursive: true });
        const tmp = `${path}.${Deno.pid}.tmp`;
        await Deno.writeTextFile(tmp, JSON.stringify(f, null, 1) + "\n");
        await Deno.rename(tmp, path);
      } catch {
        // A read-only cache directory only costs re-timing next run.
      }
    }
  })();
  await state.writing;
  state.writing = null;
}

function budgetMs(): number {
  const v = Number(env("ATOP_TUNE_BUDGET_MS"));
  return Number.isFinite(v) && v >= 0 ? v : 20000;
}

function note(): void {
  const now = performance.now();
  if (env("ATOP_TUNE_QUIET") === "1" || now - state.lastNote < 10000) return;
  state.lastNote = now;
  console.error(
    `[tune] ${state.timedShapes} kernel shapes timed on this adapter ` +
      `(${(state.spentMs / 1000).toFixed(2)} s of kernel time, budget ` +
      `${(budgetMs() / 1000).toFixed(0)} s); cache ${tuneCachePath()}`,
  );
}

const forced = new Map<string, string>();
/** Forces a variant of a family (tests run each variant, including ones an adapter never
 * picks); null lifts it. */
export function forceVariant(family: string, name: string | null): void {
  if (name === null) forced.delete(family);
  else forced.set(family, name);
}

/** The variant a test forced for a family, if any. */
export function forcedVariant(family: string): string | undefined {
  return forced.get(family);
}

/** Records the kernel `family` for shape class `key` with its best known variant; on first
 * use times every candidate (each writes the same output) and remembers the fastest. */
export function runTuned(
  family: string,
  key: string,
  candidates: Candidate[],
  fallback: string,
): void {
  const byName = (n: string) => candidates.find((c) => c.name === n);
  const f = forced.get(family);
  if (f !== undefined) {
    const c = byName(f);
    if (!c) throw new Error(`forceVariant: ${family} has no variant "${f}" for ${key}`);
    return c.run();
  }
  const dflt = byName(fallback) ?? candidates[0];
  if (candidates.length < 2 || env("ATOP_TUNE") === "off" || env("ATOP_TILE")) {
    return dflt.run();
  }
  load();
  // The candidates are part of the key: a choice made before a variant existed is re-timed.
  const id = `${family}|${key}|${candidates.map((c) => c.name).join(",")}`;
  const chosen = state.choices.get(id);
  if (chosen !== undefined) return (byName(chosen) ?? dflt).run();
  const eng = engine();
  // A trace (explain) lists the launches that would run: timing would list every candidate.
  if (
    eng.tracing || state.pending.has(id) || state.spentMs >= budgetMs() ||
    !eng.device.features.has("timestamp-query")
  ) return dflt.run();
  state.pending.add(id);
  // The default last, so the pass that leaves the output is the one that would have run.
  const order = [...candidates.filter((c) => c !== dflt), dflt];
  const first = order.map((c) => eng.timed(c.run));
  const second = order.map((c) => eng.timed(c.run));
  Promise.all([...first, ...second]).then((ms) => {
    state.pending.delete(id);
    if (ms.some((t) => t === null)) return;
    const all = ms as number[];
    state.spentMs += all.reduce((a, b) => a + b, 0);
    const t = order.map((_, i) => Math.min(all[i], all[order.length + i]));
    state.times.set(id, new Map(order.map((c, i) => [c.name, t[i]])));
    if (env("ATOP_TUNE_LOG") === "1") {
      const times = order.map((c, i) => `${c.name} ${all[i].toFixed(2)}/${t[i].toFixed(2)}`);
      console.error(`[tune] ${id}: ${times.join(", ")} ms (first/best)`);
    }
    state.timedShapes++;
    const best = fastest(t);
    if (best === null) {
      // Kept for this process only: the next one times again.
      state.choices.set(id, dflt.name);
      console.error(
        `[tune] ${family}: implausible timings (${t.map((v) => v.toFixed(3)).join(", ")} ms); ` +
          `the default ${dflt.name} runs, not cached`,
      );
      return;
    }
    state.choices.set(id, order[best].name);
    state.dirty = true;
    void persist();
    note();
  });
}

/** Candidates of one kernel and shape differ by a few times at most (a block size, idle lanes,
 * loads): a spread beyond this means the timestamps were wrong, not the kernels different. */
const MAX_SPREAD = 20;

/** The index of the fastest of `times` (ties keep the last: the default), or null when the
 * timings are implausible: not finite and positive, or spread by more than MAX_SPREAD. */
export function fastest(times: readonly number[]): number | null {
  if (times.length === 0 || times.some((v) => !(v > 0) || !Number.isFinite(v))) return null;
  if (Math.max(...times) > MAX_SPREAD * Math.min(...times)) return null;
  let best = times.length - 1;
  for (let i = 0; i < times.length; i++) if (times[i] < times[best]) best = i;
  return best;
}

/** Waits until every timing started so far has been decided and written (tests, CLIs at exit). */
export async function settleTuning(): Promise<void> {
  engine().flush();
  while (state.pending.size > 0) {
    await engine().sync();
    await new Promise((r) => setTimeout(r, 1));
  }
  await state.writing;
}

/** The choices made so far on this adapter (for the bench report and tests). */
export function tuningChoices(): Map<string, string> {
  load();
  return new Map(state.choices);
}

/** The candidates' timings (ms, the better of two) by choice id, timed in this process. */
export function tuningTimes(): Map<string, Map<string, number>> {
  return new Map(state.times);
}

/** Forgets the in-memory choices (tests re-time with a fresh cache path). */
export function resetTuning(): void {
  state.loaded = false;
  state.choices.clear();
  state.pending.clear();
  state.spentMs = 0;
  state.timedShapes = 0;
}
