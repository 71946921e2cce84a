// Refuses a command whose outputs would replace its own inputs: an output that is an input
// (the same path, a symbolic link to it, or a hard link: same device and inode), and an output
// directory that is or contains an input. Checked before anything is written, because an
// atomic write replaces the file whole and the input is gone for good.

import { basename, dirname, resolve } from "node:path";

/** A path and the flag (or field) that named it, for the error message. */
export interface PathArg {
  flag: string;
  path: string;
}

interface Identity {
  /** Absolute path with the directories resolved but not the last component (a link stays
   * the link). */
  literal: string;
  /** realpath: links resolved (the literal path when the file does not exist yet). */
  real: string;
  stat: Deno.FileInfo | null;
}

async function realOrNull(p: string): Promise<string | null> {
  return await Deno.realPath(p).catch(() => null);
}

/** Resolves the longest existing prefix of `p` (paths to be created have none). */
async function realPrefix(p: string): Promise<string> {
  const abs = resolve(p);
  const real = await realOrNull(abs);
  if (real !== null) return real;
  const parent = dirname(abs);
  return parent === abs ? abs : resolve(await realPrefix(parent), basename(abs));
}

async function identity(p: string): Promise<Identity> {
  const abs = resolve(p);
  const literal = dirname(abs) === abs
    ? abs
    : resolve(await realPrefix(dirname(abs)), basename(abs));
  const real = (await realOrNull(abs)) ?? literal;
  const stat = await Deno.stat(abs).catch(() => null);
  return { literal, real, stat };
}

function sameInode(a: Deno.FileInfo | null, b: Deno.FileInfo | null): boolean {
  return a !== null && b !== null && a.ino !== null && a.dev === b.dev && a.ino === b.ino;
}

/** How `out` and `inp` are the same file, or null when they are not. */
function sameFile(out: Identity, inp: Identity): string | null {
  if (out.literal === inp.literal) return "the same file";
  if (out.real === inp.real) return "the same file (through a symbolic link)";
  if (sameInode(out.stat, inp.stat)) return "the same file (a hard link)";
  return null;
}

/** Throws when an output is one of the inputs: `--out X is the same file as --data Y`. */
export async function refuseOverwrite(outputs: PathArg[], inputs: PathArg[]): Promise<void> {
  const ins = await Promise.all(inputs.map(async (i) => ({ arg: i, id: await identity(i.path) })));
  for (const o of outputs) {
    const out = await identity(o.path);
    for (const i of ins) {
      const how = sameFile(out, i.id);
      if (how) {
        throw new Error(
          `${o.flag} ${o.path} is ${how} as ${i.arg.flag} ${i.arg.path}: writing it would ` +
            `destroy the input; choose another ${o.flag.split(" ")[0]}`,
        );
      }
    }
  }
}

function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith("/") ? dir : dir + "/");
}

/** Whether the input lies in `dir`: by path (the link's place or its target), or because an
 * ancestor of it is the directory itself under another name (a bind mount: same dev+ino). */
async function contains(dir: Identity, inp: Identity): Promise<boolean> {
  for (const p of [inp.literal, inp.real]) {
    if (within(p, dir.literal) || within(p, dir.real)) return true;
  }
  if (!dir.stat?.isDirectory) return false;
  for (let p = inp.real;; p = dirname(p)) {
    if (sameInode(dir.stat, await Deno.stat(p).catch(() => null))) return true;
    if (dirname(p) === p) return false;
  }
}

/** Throws when the output directory is or contains an input (it writes checkpoints, weights
 * and stage directories into it): `--out D contains --data F`. */
export async function refuseOutputDir(dir: PathArg, inputs: PathArg[]): Promise<void> {
  const d = await identity(dir.path);
  for (const i of inputs) {
    if (await contains(d, await identity(i.path))) {
      throw new Error(
        `${dir.flag} ${dir.path} contains ${i.flag} ${i.path}: the run writes into ${dir.flag}, ` +
          `so keep its inputs outside; choose another ${dir.flag}`,
      );
    }
  }
}

/** Whether two paths name the same file (by path, link or inode). */
export async function isSameFile(a: string, b: string): Promise<boolean> {
  return sameFile(await identity(a), await identity(b)) !== null;
}

/** Files under `dir` (to `depth` levels) whose name matches: the inputs a directory holds. */
export async function filesUnder(
  dir: string,
  match: (name: string) => boolean,
  depth = 3,
): Promise<string[]> {
  const out: string[] = [];
  const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
  for (const e of entries) {
    const p = resolve(dir, e.name);
    if (e.isDirectory && depth > 1) out.push(...await filesUnder(p, match, depth - 1));
    else if (!e.isDirectory && match(e.name)) out.push(p);
  }
  return out.sort();
}
