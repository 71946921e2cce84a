// Leftovers of killed runs, and runs that must not overlap:
// - cleanStaleTemps: a kill during an atomic write leaves `<file>.tmp-<pid>-<rand>` (or a
//   download's `.part-<pid>-<rand>`); once that pid is gone the file is junk and is removed.
// - acquireRunLock: a long command (train, attack, a pipeline run) holds `<out>.lock` or
//   `<out>/.lock` with its pid; a second run on the same output is refused while the first
//   is alive, and a lock whose pid is gone (kill -9) is taken over.

import { join } from "node:path";

const TEMP = /\.(tmp|part)-(\d+)-[0-9a-z]+$/;

/** Whether a process with this pid is running (Linux /proc; elsewhere: assume it is). */
export function pidAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  if (Deno.build.os !== "linux") return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Removes temp files of dead processes in `dir` (and its subdirectories up to `depth`).
 * Returns the paths removed. A missing directory has nothing to clean. */
export async function cleanStaleTemps(dir: string, depth = 2): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return removed;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory && depth > 0) removed.push(...await cleanStaleTemps(path, depth - 1));
    if (!e.isFile) continue;
    const m = TEMP.exec(e.name);
    if (m && !pidAlive(Number(m[2]))) {
      await Deno.remove(path).catch(() => {});
      removed.push(path);
    }
  }
  return removed;
}

interface LockInfo {
  pid: number;
  started: string;
  command: string;
}

export interface RunLock {
  path: string;
  release(): void;
}

/** Takes the lock at `path` for this process, or throws one line naming the holder. */
export async function acquireRunLock(path: string, what: string): Promise<RunLock> {
  const info: LockInfo = {
    pid: Deno.pid,
    started: new Date().toISOString(),
    command: ["deno", ...Deno.args].join(" ").slice(0, 300),
  };
  const text = JSON.stringify(info) + "\n";
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.mkdir(join(path, ".."), { recursive: true });
      await Deno.writeTextFile(path, text, { createNew: true });
      const release = () => {
        try {
          const now = JSON.parse(Deno.readTextFileSync(path)) as LockInfo;
          if (now.pid === Deno.pid) Deno.removeSync(path);
        } catch {
          // already gone
        }
      };
      globalThis.addEventListener("unload", release);
      return { path, release };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    let held: LockInfo | null = null;
    try {
      held = JSON.parse(await Deno.readTextFile(path));
    } catch {
      held = null; // empty or torn: a run killed while taking it
    }
    if (held && Number.isInteger(held.pid) && pidAlive(held.pid)) {
      throw new Error(
        `${what} is in use by another run (pid ${held.pid}, started ${held.started}); wait for ` +
          `it to finish or choose another --out (if that process is gone, delete ${path})`,
      );
    }
    await Deno.remove(path).catch(() => {}); // stale: its process is gone
  }
  throw new Error(`cannot take the lock ${path}: another run keeps recreating it`);
}
