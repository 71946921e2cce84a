// Where a run's data comes from when no --data is given: the CIFAR-10 subset shipped in the
// repository (data/cifar10/, sha256-checked on read) for CPU-sized runs, the full dataset in
// the cache directory (downloaded and MD5-checked on first use) for full-scale ones.

import { fileURLToPath } from "node:url";
import { CIFAR, type CifarName } from "./cifar.ts";
import { CIFAR_SOURCES, defaultCacheDir, ensureCifar, type EnsureOptions } from "./download.ts";

/** The CIFAR-10 subset inside the repository (5,085 train, 512 test images); a relative path
 * when the module is not loaded from a local checkout. */
export const EMBEDDED_CIFAR10: string = import.meta.url.startsWith("file:")
  ? fileURLToPath(new URL("../../data/cifar10", import.meta.url))
  : "data/cifar10";

/** The full dataset's batches directory in the cache, fetched when missing. Offline, the error
 * names --data and the cache path where the archive can be placed by hand. */
export async function fullDataset(dataset: CifarName, o: EnsureOptions = {}): Promise<string> {
  try {
    return await ensureCifar(dataset, o);
  } catch (e) {
    // A bad archive or a wrong MD5 has its own message; only a failed fetch is "offline".
    if (!(e instanceof Error && e.message.startsWith("cannot download"))) throw e;
    const cache = o.cacheDir ?? defaultCacheDir();
    throw new Error(
      `the full ${CIFAR[dataset].title} is not in the cache (${cache}) and could not be ` +
        `fetched: ${e instanceof Error ? e.message : e}. Pass --data DIR (a local ` +
        `${CIFAR[dataset].dir}/ or .bin files), or copy ${CIFAR_SOURCES[dataset].archive} ` +
        `into ${cache}`,
    );
  }
}
