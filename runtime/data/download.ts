// Fetching the official CIFAR binary archives into a cache directory: download to a temp file
// while hashing, verify the published MD5 *before* touching the content, gunzip, untar into a
// staging directory and rename it into place, so the cache never holds a partial dataset.

import { createHash } from "node:crypto";
import { CIFAR, type CifarName } from "./cifar.ts";
import { gunzip, readTar, safeRelativePath } from "./tar.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { hashFile } from "../io/hash.ts";

export interface ArchiveSource {
  url: string;
  md5: string;
  /** File name of the archive in the cache directory. */
  archive: string;
}

export const CIFAR_SOURCES: Record<CifarName, ArchiveSource> = {
  cifar10: {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    archive: "cifar-10-binary.tar.gz",
  },
  cifar100: {
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    archive: "cifar-100-binary.tar.gz",
  },
};

/** $ATOP_CACHE, else ~/.cache/atop-gpu (XDG_CACHE_HOME respected). */
export function defaultCacheDir(): string {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined; // no --allow-env
    }
  };
  const explicit = env("ATOP_CACHE");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/atop-gpu`;
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) throw new Error(`no cache directory: set ATOP_CACHE (or HOME)`);
  return `${home}/.cache/atop-gpu`;
}

export type Fetcher = (url: string) => Promise<Response>;

export interface EnsureOptions {
  cacheDir?: string;
  /** Replaces the global fetch (tests, proxies). */
  fetch?: Fetcher;
  /** Status messages (default: stderr). */
  log?: (msg: string) => void;
  /** Replaces the official URL and checksum (tests, mirrors). */
  source?: ArchiveSource;
}

function tempSuffix(): string {
  const r = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return `${Deno.pid}-${r}`;
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

/** Downloads `src.url` to a temp file beside `dest`, hashing as it streams; on an MD5 match
 * renames it to `dest`, otherwise deletes it and throws. */
export async function downloadVerified(
  src: ArchiveSource,
  dest: string,
  fetcher: Fetcher,
  log: (msg: string) => void,
): Promise<void> {
  const tmp = `${dest}.part-${tempSuffix()}`;
  let res: Response;
  try {
    res = await fetcher(src.url);
  } catch (e) {
    throw new Error(
      `cannot download ${src.url}: ${e instanceof Error ? e.message : e} (offline? place the ` +
        `archive at ${dest} by hand and run again)`,
    );
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`cannot download ${src.url}: HTTP ${res.status} ${res.statusText}`);
  }
  const total = Number(res.headers.get("content-length") ?? 0);
  log(`downloading ${src.url}${total ? ` (${(total / 1e6).toFixed(1)} MB)` : ""}`);
  const md5 = createHash("md5");
  let bytes = 0;
  try {
    const f = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let nextReport = 0.1;
      for await (const chunk of res.body) {
        md5.update(chunk);
        let off = 0;
        while (off < chunk.length) off += await f.write(chunk.subarray(off));
        bytes += chunk.length;
        if (total && bytes / total >= nextReport) {
          log(`  ${Math.floor((100 * bytes) / total)}%`);
          nextReport += 0.1;
        }
      }
      await f.sync();
    } finally {
      f.close();
    }
    const got = md5.digest("hex");
    if (got !== src.md5) {
      throw new Error(
        `checksum mismatch for ${src.url}: expected MD5 ${src.md5}, got ${got} (${bytes} bytes); ` +
          `the download is corrupt or the file changed upstream. The partial file was deleted; ` +
          `try again`,
      );
    }
    await Deno.rename(tmp, dest);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Unpacks a verified .tar.gz into `cacheDir` through a staging directory. Returns the paths
 * (relative to cacheDir) of the regular files written. */
export async function extractTarGz(archivePath: string, cacheDir: string): Promise<string[]> {
  const tar = await gunzip(await Deno.readFile(archivePath), archivePath);
  const entries = readTar(tar);
  const staging = `${cacheDir}/.extract-${tempSuffix()}`;
  const written: string[] = [];
  try {
    for (const e of entries) {
      if (e.type !== "file") continue; // directories are implied; links are not needed
      const rel = safeRelativePath(e.name);
      await writeFileAtomic(`${staging}/${rel}`, e.data);
      written.push(rel);
    }
    // Move each top-level item into place (one rename each: atomic per item).
    for await (const item of Deno.readDir(staging)) {
      const target = `${cacheDir}/${item.name}`;
      if (await exists(target)) await Deno.remove(target, { recursive: true });
      await Deno.rename(`${staging}/${item.name}`, target);
    }
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  return written;
}

async function missingFiles(dataset: CifarName, dir: string): Promise<string[]> {
  const L = CIFAR[dataset];
  const missing: string[] = [];
  for (const f of [...L.train, ...L.test]) if (!(await exists(`${dir}/${f}`))) missing.push(f);
  return missing;
}

/** Returns the dataset's batches directory in the cache (cifar-10-batches-bin/ or
 * cifar-100-binary/), downloading, verifying and unpacking the official archive first if
 * needed. An archive already in the cache directory (copied there by hand) is used instead
 * of the network once its MD5 matches. */
export async function ensureCifar(
  dataset: CifarName,
  opts: string | EnsureOptions = {},
): Promise<string> {
  if (!(dataset in CIFAR)) {
    throw new Error(`ensureCifar: dataset must be "cifar10" or "cifar100", got "${dataset}"`);
  }
  const o: EnsureOptions = typeof opts === "string" ? { cacheDir: opts } : opts;
  const cacheDir = (o.cacheDir ?? defaultCacheDir()).replace(/\/+$/, "");
  const log = o.log ?? ((m: string) => console.error(m));
  const src = o.source ?? CIFAR_SOURCES[dataset];
  const dir = `${cacheDir}/${CIFAR[dataset].dir}`;
  if ((await missingFiles(dataset, dir)).length === 0) return dir;

  await Deno.mkdir(cacheDir, { recursive: true });
  const archive = `${cacheDir}/${src.archive}`;
  let downloaded = false;
  if (await exists(archive)) {
    const got = await hashFile(archive, "md5");
    if (got !== src.md5) {
      throw new Error(
        `${archive}: MD5 ${got} does not match the published ${src.md5}; delete the file so ` +
          `it is downloaded again, or replace it with the official ${src.url}`,
      );
    }
    log(`using ${archive}`);
  } else {
    await downloadVerified(src, archive, o.fetch ?? fetch, log);
    downloaded = true;
  }
  log(`extracting ${archive}`);
  await extractTarGz(archive, cacheDir);
  const missing = await missingFiles(dataset, dir);
  if (missing.length) {
    throw new Error(
      `${archive} did not contain ${CIFAR[dataset].dir}/{${missing.join(", ")}}; is it the ` +
        `binary version of ${CIFAR[dataset].title}?`,
    );
  }
  if (downloaded) await Deno.remove(archive).catch(() => {}); // the extracted files suffice
  return dir;
}
