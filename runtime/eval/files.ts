// Small file helpers for evaluation outputs: atomic writes (temp file + rename, so a crash
// never leaves a half-written report) and JSON-lines state files that tolerate a torn last
// line.

import { writeFileAtomic } from "../io/atomic.ts";

/** Atomic writes live in runtime/io/atomic.ts; re-exported for the evaluation modules. */
export { writeFileAtomic };

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Appends one JSON value as a line and flushes it to disk. */
export async function appendJsonLine(path: string, value: unknown): Promise<void> {
  const f = await Deno.open(path, { append: true, create: true });
  try {
    await f.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
    await f.sync();
  } finally {
    f.close();
  }
}

/** Reads a JSON-lines file. A torn (unparseable or unterminated) last line — an interrupted
 * append — is dropped and the file is rewritten without it. */
export async function readJsonLines<T>(path: string): Promise<T[]> {
  const text = await Deno.readTextFile(path);
  const lines = text.split("\n");
  const out: T[] = [];
  let torn = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.trim() === "") continue;
    const last = i === lines.length - 1; // no trailing newline: the append did not finish
    try {
      if (last) throw new Error("unterminated");
      out.push(JSON.parse(l));
    } catch (e) {
      if (i >= lines.length - 2) {
        torn = true;
        break;
      }
      throw new Error(`${path}: corrupt line ${i + 1}: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (torn) {
    await writeFileAtomic(path, out.map((v) => JSON.stringify(v) + "\n").join(""));
  }
  return out;
}
