// CIFAR-10 and CIFAR-100 in the official binary format. A record is the label byte(s), then
// 3072 pixel bytes: the 1024 red, 1024 green and 1024 blue values of a 32x32 image, row-major.
// CIFAR-10 has 1 label byte; CIFAR-100 has 2 (coarse, then fine; we use fine by default).
// Pixels stay uint8 in memory (50,000 training images = 154 MB, not 614 MB of floats) and are
// scaled to [0,1] when a batch is built.

import { createHash } from "node:crypto";
import { Tensor } from "../tensor.ts";

export const CIFAR_NAMES = ["cifar10", "cifar100"] as const;
export type CifarName = typeof CIFAR_NAMES[number];
export type Split = "train" | "test";
export type LabelKind = "fine" | "coarse";

export const IMAGE_SHAPE: [number, number, number] = [3, 32, 32];
export const IMAGE_BYTES = 3 * 32 * 32;

export interface CifarLayout {
  title: string;
  labelBytes: number;
  classes: number;
  /** CIFAR-100 superclasses. */
  coarseClasses?: number;
  /** Folder the official archive extracts to. */
  dir: string;
  train: string[];
  test: string[];
  /** Class-name files, one name per line. */
  meta: string;
  coarseMeta?: string;
}

export const CIFAR: Record<CifarName, CifarLayout> = {
  cifar10: {
    title: "CIFAR-10",
    labelBytes: 1,
    classes: 10,
    dir: "cifar-10-batches-bin",
    train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
    test: ["test_batch.bin"],
    meta: "batches.meta.txt",
  },
  cifar100: {
    title: "CIFAR-100",
    labelBytes: 2,
    classes: 100,
    coarseClasses: 20,
    dir: "cifar-100-binary",
    train: ["train.bin"],
    test: ["test.bin"],
    meta: "fine_label_names.txt",
    coarseMeta: "coarse_label_names.txt",
  },
};

/** Anything batches can be built from: raw bytes (scaled by 1/255) or floats in [0,1]. */
export interface ImageSet {
  images: Uint8Array | Float32Array;
  labels: ArrayLike<number>;
  shape: readonly [number, number, number];
}

export interface CifarDataset extends ImageSet {
  dataset: CifarName;
  /** n * 3072 raw pixel bytes, CHW per image. */
  images: Uint8Array;
  /** The label used for training (fine by default). */
  labels: Uint8Array;
  /** CIFAR-100 superclass labels (null for CIFAR-10). */
  coarseLabels: Uint8Array | null;
  n: number;
  numClasses: number;
  classNames: string[] | null;
  shape: [number, number, number];
  /** Files read, in order. */
  files: string[];
  /** SHA-256 of the files' bytes, in order: the dataset's identity in manifests and caches. */
  hash: string;
}

function checkName(dataset: string): asserts dataset is CifarName {
  if (!(dataset in CIFAR)) {
    throw new Error(`dataset: expected "cifar10" or "cifar100", got "${dataset}"`);
  }
}

/** What a file that is not a CIFAR binary batch probably is, for error messages. */
function sniff(bytes: Uint8Array): string {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    return " (it is a gzip archive: extract it first, or let ensureCifar download and unpack it)";
  }
  if (bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5) {
    return " (it is a Python pickle: use the *binary* version of the dataset, not the python one)";
  }
  return "";
}

export interface ParsedCifar {
  n: number;
  images: Uint8Array;
  labels: Uint8Array;
  coarseLabels: Uint8Array | null;
}

/** Splits records into pixels and labels; errors name the file, the record size expected,
 * the file size and what was found. */
export function parseCifar(
  bytes: Uint8Array,
  o: { dataset: CifarName; label?: LabelKind; file?: string },
): ParsedCifar {
  checkName(o.dataset);
  const L = CIFAR[o.dataset];
  const file = o.file ?? `${L.title} data`;
  const rec = L.labelBytes + IMAGE_BYTES;
  if (bytes.length === 0) {
    throw new Error(`${file}: empty file (expected ${rec}-byte ${L.title} records)`);
  }
  if (bytes.length % rec !== 0) {
    const other = o.dataset === "cifar10" ? "cifar100" : "cifar10";
    const otherRec = CIFAR[other].labelBytes + IMAGE_BYTES;
    const hint = sniff(bytes) ||
      (bytes.length % otherRec === 0
        ? ` (the size fits ${otherRec}-byte ${
          CIFAR[other].title
        } records: is the dataset "${other}"?)`
        : "");
    throw new Error(
      `${file}: size ${bytes.length} is not a multiple of ${rec}, the ${L.title} record size ` +
        `(${L.labelBytes} label byte${
          L.labelBytes > 1 ? "s" : ""
        } + ${IMAGE_BYTES} pixel bytes); ` +
        `found ${Math.floor(bytes.length / rec)} whole records and ${bytes.length % rec} ` +
        `trailing bytes: the file is truncated or not a ${L.title} binary batch${hint}`,
    );
  }
  const n = bytes.length / rec;
  const images = new Uint8Array(n * IMAGE_BYTES);
  const fine = new Uint8Array(n);
  const coarse = L.coarseClasses ? new Uint8Array(n) : null;
  for (let i = 0; i < n; i++) {
    const o0 = i * rec;
    if (coarse) {
      const c = bytes[o0];
      if (c >= L.coarseClasses!) {
        throw new Error(
          `${file}: record ${i} has coarse label ${c}, but ${L.title} has ${L.coarseClasses} ` +
            `superclasses (corrupt file?)`,
        );
      }
      coarse[i] = c;
    }
    const label = bytes[o0 + L.labelBytes - 1];
    if (label >= L.classes) {
      throw new Error(
        `${file}: record ${i} has label ${label}, but ${L.title} has ${L.classes} classes ` +
          `(labels 0..${L.classes - 1}); wrong dataset or corrupt file${sniff(bytes)}`,
      );
    }
    fine[i] = label;
    images.set(bytes.subarray(o0 + L.labelBytes, o0 + rec), i * IMAGE_BYTES);
  }
  const labels = o.label === "coarse" ? coarse : fine;
  if (!labels) throw new Error(`${file}: ${L.title} has no coarse labels`);
  return { n, images, labels, coarseLabels: coarse };
}

/** The binary records for `images` (n*3072 bytes) and labels: the inverse of parseCifar. */
export function encodeCifar(
  images: Uint8Array,
  labels: ArrayLike<number>,
  o: { dataset: CifarName; coarseLabels?: ArrayLike<number> },
): Uint8Array {
  checkName(o.dataset);
  const L = CIFAR[o.dataset];
  const n = labels.length;
  if (images.length !== n * IMAGE_BYTES) {
    throw new Error(
      `encodeCifar: ${images.length} pixel bytes for ${n} labels (need ${n * IMAGE_BYTES})`,
    );
  }
  const rec = L.labelBytes + IMAGE_BYTES;
  const out = new Uint8Array(n * rec);
  for (let i = 0; i < n; i++) {
    if (L.labelBytes === 2) out[i * rec] = o.coarseLabels?.[i] ?? 0;
    out[i * rec + L.labelBytes - 1] = labels[i];
    out.set(images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), i * rec + L.labelBytes);
  }
  return out;
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

async function statKind(p: string): Promise<"file" | "dir" | null> {
  try {
    const s = await Deno.stat(p);
    return s.isFile ? "file" : s.isDirectory ? "dir" : null;
  } catch {
    return null;
  }
}

/** CIFAR-100 when the file sits in cifar-100-binary/ or only its record size fits. */
async function guessFormat(path: string): Promise<CifarName> {
  if (path.includes(CIFAR.cifar100.dir)) return "cifar100";
  const size = (await Deno.stat(path)).size;
  return size % (IMAGE_BYTES + 1) !== 0 && size % (IMAGE_BYTES + 2) === 0 ? "cifar100" : "cifar10";
}

/** Finds a split's files. `path` is a .bin file; a batches directory (cifar-10-batches-bin/,
 * cifar-100-binary/, or one with <split>_subset.bin); or the directory containing one. With
 * no `dataset`, CIFAR-10 layouts are tried first, then CIFAR-100. */
export async function locateCifar(
  path: string,
  split: Split,
  dataset?: CifarName,
): Promise<{ files: string[]; dataset: CifarName }> {
  if (split !== "train" && split !== "test") {
    throw new Error(`split: expected "train" or "test", got "${split}"`);
  }
  if (dataset !== undefined) checkName(dataset);
  const kind = await statKind(path);
  if (kind === "file") return { files: [path], dataset: dataset ?? await guessFormat(path) };
  if (kind === null) throw new Error(`no CIFAR data at ${path}: no such file or directory`);
  const tried: string[] = [];
  const names: CifarName[] = dataset ? [dataset] : ["cifar10", "cifar100"];
  for (const name of names) {
    const L = CIFAR[name];
    for (const dir of [path, join(path, L.dir)]) {
      const files = L[split].map((f) => join(dir, f));
      const present = await Promise.all(files.map(async (f) => (await statKind(f)) === "file"));
      if (present.every(Boolean)) return { files, dataset: name };
      tried.push(...files.filter((_, i) => !present[i]));
    }
  }
  // A directory of subset files, such as data/cifar10/{train,test}_subset.bin.
  const subset = join(path, `${split}_subset.bin`);
  if ((await statKind(subset)) === "file") {
    return { files: [subset], dataset: dataset ?? "cifar10" };
  }
  tried.push(subset);
  throw new Error(
    `no ${dataset ? CIFAR[dataset].title : "CIFAR"} ${split} data in ${path}: looked for ` +
      `${tried.join(", ")}`,
  );
}

/** The expected sha256 of each file listed in a `SHA256SUMS` file (sha256sum's format). */
async function readSums(dir: string): Promise<Map<string, string> | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, "SHA256SUMS"));
  } catch {
    return null;
  }
  const sums = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{64})\s+\*?(\S.*)$/.exec(line.trim());
    if (m) sums.set(m[2], m[1]);
  }
  return sums;
}

/** Checks a data file against the SHA256SUMS beside it, when there is one that lists it (the
 * subset shipped in data/cifar10/ has one): a changed or truncated file is refused. */
export async function verifyChecksum(file: string, bytes: Uint8Array): Promise<void> {
  const sums = await readSums(dirOf(file));
  const base = file.split(/[\\/]/).pop()!;
  const want = sums?.get(base);
  if (!want) return;
  const got = createHash("sha256").update(bytes).digest("hex");
  if (got !== want) {
    throw new Error(
      `${file}: sha256 ${got} does not match ${join(dirOf(file), "SHA256SUMS")} (${want}); ` +
        `the file is damaged or was changed: restore it (git checkout -- ${file}) or remove ` +
        `its line from SHA256SUMS if the change is intended`,
    );
  }
}

/** The files readCifar would read for these splits, or [path] where they cannot be found
 * (reading then says why): for the checks that come before reading, such as output guards. */
export async function cifarFiles(
  path: string,
  splits: Split[],
  dataset?: CifarName,
): Promise<string[]> {
  const files = new Set<string>();
  for (const split of splits) {
    const found = await locateCifar(path, split, dataset).catch(() => ({ files: [path] }));
    for (const f of found.files) files.add(f);
  }
  return [...files];
}

async function readNames(dir: string, file: string | undefined, count: number | undefined) {
  if (!file || !count) return null;
  try {
    const names = (await Deno.readTextFile(join(dir, file))).split("\n").map((s) => s.trim())
      .filter(Boolean);
    return names.length === count ? names : null;
  } catch {
    return null;
  }
}

/** Reads a split: `path` as for locateCifar. Class names come from batches.meta.txt
 * (CIFAR-10) or fine/coarse_label_names.txt (CIFAR-100) next to the data, when present. */
export async function readCifar(
  path: string,
  o: { dataset?: CifarName; split?: Split; label?: LabelKind } = {},
): Promise<CifarDataset> {
  const split = o.split ?? "train";
  const { files, dataset } = await locateCifar(path, split, o.dataset);
  const L = CIFAR[dataset];
  const parts: ParsedCifar[] = [];
  const hash = createHash("sha256");
  for (const f of files) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(f);
    } catch (e) {
      throw new Error(`cannot read ${f}: ${e instanceof Error ? e.message : e}`);
    }
    hash.update(bytes);
    await verifyChecksum(f, bytes);
    parts.push(parseCifar(bytes, { dataset, label: o.label, file: f }));
  }
  const n = parts.reduce((a, p) => a + p.n, 0);
  const images = new Uint8Array(n * IMAGE_BYTES);
  const labels = new Uint8Array(n);
  const coarseLabels = L.coarseClasses ? new Uint8Array(n) : null;
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * IMAGE_BYTES);
    labels.set(p.labels, at);
    if (coarseLabels && p.coarseLabels) coarseLabels.set(p.coarseLabels, at);
    at += p.n;
  }
  const coarse = o.label === "coarse";
  const dir = dirOf(files[0]);
  return {
    dataset,
    images,
    labels,
    coarseLabels,
    n,
    numClasses: coarse ? L.coarseClasses! : L.classes,
    classNames: coarse
      ? await readNames(dir, L.coarseMeta, L.coarseClasses)
      : await readNames(dir, L.meta, L.classes),
    shape: [...IMAGE_SHAPE],
    files,
    hash: hash.digest("hex"),
  };
}

let byteToUnit: Float32Array | null = null;

/** Copies image `i` of `ds` into `dst` as floats in [0,1] (bytes / 255). */
export function imageToFloat(ds: ImageSet, i: number, dst: Float32Array): void {
  const d = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const src = ds.images.subarray(i * d, (i + 1) * d);
  if (src instanceof Float32Array) {
    dst.set(src);
    return;
  }
  if (!byteToUnit) byteToUnit = Float32Array.from({ length: 256 }, (_, v) => v / 255);
  for (let k = 0; k < d; k++) dst[k] = byteToUnit[src[k]];
}

/** The float value of pixel byte `v` ([0,1], exactly `v / 255` rounded to float32). */
export function unitValue(v: number): number {
  return Math.fround(v / 255);
}

function checkIndex(ds: ImageSet, i: number): void {
  if (!(Number.isInteger(i) && i >= 0 && i < ds.labels.length)) {
    throw new Error(`dataset: index ${i} out of range (n=${ds.labels.length})`);
  }
}

/** Images `indices` as floats [B,C,H,W] in [0,1] and labels [B], on the CPU. */
export function gatherBatch(
  ds: ImageSet,
  indices: readonly number[],
): { x: Float32Array; y: Float32Array } {
  const d = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const x = new Float32Array(indices.length * d);
  const y = new Float32Array(indices.length);
  indices.forEach((i, j) => {
    checkIndex(ds, i);
    imageToFloat(ds, i, x.subarray(j * d, (j + 1) * d));
    y[j] = ds.labels[i];
  });
  return { x, y };
}

/** x [B,C,H,W] in [0,1] and y [B] (float class indices), uploaded. */
export function toTensorBatch(ds: ImageSet, indices: readonly number[]): { x: Tensor; y: Tensor } {
  if (indices.length === 0) throw new Error(`toTensorBatch: empty batch`);
  const { x, y } = gatherBatch(ds, indices);
  return {
    x: Tensor.fromData(x, [indices.length, ...ds.shape]),
    y: Tensor.fromData(y, [indices.length]),
  };
}
