// Evaluation data: images in NCHW with labels. The CIFAR readers live in runtime/data/cifar.ts;
// datasets keep raw bytes there, which are scaled to [0,1] when gathered here.

import {
  type CifarDataset,
  type CifarName,
  gatherBatch,
  parseCifar,
  readCifar,
} from "../data/cifar.ts";

export interface Dataset {
  /** N*C*H*W values, NCHW: floats in [0,1], or raw bytes (scaled by 1/255 when gathered). */
  images: Float32Array | Uint8Array;
  labels: ArrayLike<number>;
  shape: [number, number, number];
}

/** Parses CIFAR binary records (CIFAR-10 1-byte labels unless `dataset` says otherwise). */
export function parseCifarBin(
  bytes: Uint8Array,
  what = "CIFAR data",
  dataset: CifarName = "cifar10",
): Dataset {
  const p = parseCifar(bytes, { dataset, file: what });
  return { images: p.images, labels: p.labels, shape: [3, 32, 32] };
}

/** Reads --data: a CIFAR .bin file, or a dataset directory (its test split). The dataset is
 * `dataset`, or else told by the record size (and directory name). */
export async function readCifarBin(path: string, dataset?: CifarName): Promise<CifarDataset> {
  try {
    return await readCifar(path, { split: "test", dataset });
  } catch (e) {
    throw new Error(`--data ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** Rows `indices` of the dataset as one contiguous NCHW float array in [0,1]. */
export function gatherImages(ds: Dataset, indices: number[]): Float32Array {
  return gatherBatch(ds, indices).x;
}

/** The deterministic slice of `n` examples that shard `index` of `count` evaluates:
 * contiguous blocks [floor(i n / c), floor((i+1) n / c)). */
export function shardRange(n: number, index: number, count: number): [number, number] {
  if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(index))) {
    throw new Error(`shard: expected i/n with integers n >= 1, got ${index}/${count}`);
  }
  if (index < 0 || index >= count) throw new Error(`shard: index ${index} not in [0, ${count})`);
  return [Math.floor((index * n) / count), Math.floor(((index + 1) * n) / count)];
}

export function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`--shard: expected i/n (e.g. 0/4), got "${s}"`);
  const index = Number(m[1]), count = Number(m[2]);
  shardRange(1, index, count);
  return { index, count };
}
