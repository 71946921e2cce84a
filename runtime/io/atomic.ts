// Atomic file writes: the data goes to a temp file in the target's directory, is flushed to
// disk, then renamed over the target. A crash or error at any point leaves either the old
// file or the new one, never a torn mix, and never a stray temp file after an error.

function dirname(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : path.slice(0, i);
}

function tempName(path: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  return `${path}.tmp-${Deno.pid}-${rand[0].toString(36)}${rand[1].toString(36)}`;
}

/** Writes `data` to `path` atomically (same-directory temp file, fsync, rename). Creates
 * missing parent directories. On failure the previous content of `path` is untouched. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const dir = dirname(path);
  const tmp = tempName(path);
  try {
    await Deno.mkdir(dir, { recursive: true });
    const f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    try {
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
      await f.sync(); // the rename must not become visible before the data is on disk
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`cannot write ${path}: ${e instanceof Error ? e.message : e}`);
  }
  await syncDir(dir);
}

/** Flushes a directory entry (the rename) where the platform allows opening directories. */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Not supported on this file system: the rename is still atomic, only not yet durable.
  }
}

/** `JSON.stringify(value, null, 2)` plus a trailing newline, written atomically. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) {
    return Promise.reject(new Error(`cannot write ${path}: value is not JSON-serialisable`));
  }
  return writeFileAtomic(path, text + "\n");
}
