// Reading evaluation data: the CIFAR-10 binary record format (1 label byte, then 3072 pixel
// bytes: red, green, blue planes of a 32x32 image), scaled to [0,1].

export interface Dataset {
  /** N*C*H*W floats in [0,1], NCHW. */
  images: Float32Array;
  labels: number[];
  shape: [number, number, number];
}

const REC = 1 + 3 * 32 * 32;

export function parseCifarBin(bytes: Uint8Array, what = "CIFAR data"): Dataset {
  if (bytes.length === 0 || bytes.length % REC !== 0) {
    throw new Error(
      `${what}: ${bytes.length} bytes is not a whole number of ${REC}-byte CIFAR-10 records`,
    );
  }
  const n = bytes.length / REC;
  const images = new Float32Array(n * (REC - 1));
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = bytes[i * REC];
    if (label > 99) throw new Error(`${what}: record ${i} has label byte ${label}`);
    labels.push(label);
    for (let j = 0; j < REC - 1; j++) images[i * (REC - 1) + j] = bytes[i * REC + 1 + j] / 255;
  }
  return { images, labels, shape: [3, 32, 32] };
}

export async function readCifarBin(path: string): Promise<Dataset> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`--data ${path}: ${e instanceof Error ? e.message : e}`);
  }
  return parseCifarBin(bytes, path);
}

/** Rows `indices` of the dataset as one contiguous NCHW array. */
export function gatherImages(ds: Dataset, indices: number[]): Float32Array {
  const d = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const out = new Float32Array(indices.length * d);
  indices.forEach((i, j) => {
    if (!(i >= 0 && i < ds.labels.length)) {
      throw new Error(`dataset: index ${i} out of range (n=${ds.labels.length})`);
    }
    out.set(ds.images.subarray(i * d, (i + 1) * d), j * d);
  });
  return out;
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
