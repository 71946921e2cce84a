// Datasets: the CIFAR binary format (real subset, synthetic round trips, every error), the
// directory layouts, tar/gzip, the verified download path with an injected fetch, and the
// training loader (determinism, coverage, resume, crop/flip against an independent check).

import { assert, gpu, rng } from "./helpers/check.ts";
import {
  CIFAR_SOURCES,
  type CifarDataset,
  DataLoader,
  encodeCifar,
  ensureCifar,
  epochPermutation,
  gunzip,
  gzip,
  parseCifar,
  readCifar,
  readTar,
  safeRelativePath,
  toTensorBatch,
  writeTar,
} from "../runtime/data/mod.ts";
import { gatherImages, parseCifarBin, readCifarBin } from "../runtime/eval/data.ts";
import { md5Hex, sha256Hex } from "../runtime/io/hash.ts";
import { withTmp as withTmpDir } from "./helpers/tmp.ts";

const DATA = new URL("../data/cifar10/", import.meta.url).pathname;
const te = new TextEncoder();

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

function synthetic(n: number, seed: number, classes = 10) {
  const r = rng(seed + 1);
  return {
    images: randomBytes(n * 3072, seed),
    labels: Uint8Array.from({ length: n }, () => Math.floor(r() * classes)),
  };
}

const withTmp = (fn: (dir: string) => Promise<void>) => withTmpDir("atop-data-test-", fn);

async function rejectsWith(p: Promise<unknown>, ...parts: (string | RegExp)[]) {
  await assert.rejects(p, (e: Error) => {
    for (const s of parts) {
      const ok = typeof s === "string" ? e.message.includes(s) : s.test(e.message);
      if (!ok) throw new Error(`message "${e.message}" lacks ${s}`);
    }
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// CIFAR format

Deno.test("cifar: the shipped CIFAR-10 test subset (512 real images)", async () => {
  const path = `${DATA}test_subset.bin`;
  const raw = await Deno.readFile(path);
  const ds = await readCifar(path, { dataset: "cifar10", split: "test" });
  assert.equal(ds.n, 512);
  assert.equal(ds.images.length, 512 * 3072);
  assert.equal(ds.numClasses, 10);
  assert.ok(ds.labels.every((l) => l <= 9));
  assert.equal(new Set(ds.labels).size, 10, "all ten classes appear in 512 images");
  assert.deepEqual(ds.classNames?.slice(0, 3), ["airplane", "automobile", "bird"]);
  assert.equal(ds.hash, "cef7d750c512f67b8890d0d04656e7dd3db97c256eb8fea25be67b1bdfdb794b");
  // Record 7 verbatim: label byte, then the R, G, B planes.
  assert.equal(ds.labels[7], raw[7 * 3073]);
  assert.deepEqual(ds.images.subarray(7 * 3072, 8 * 3072), raw.subarray(7 * 3073 + 1, 8 * 3073));
  // The directory form finds <split>_subset.bin.
  const viaDir = await readCifar(DATA, { split: "test" });
  assert.equal(viaDir.hash, ds.hash);
  // The evaluation reader delegates here and scales bytes to [0,1] when gathering.
  const ev = await readCifarBin(path);
  const g = gatherImages(ev, [7]);
  assert.equal(g[0], Math.fround(raw[7 * 3073 + 1] / 255));
  assert.equal(g[3071], Math.fround(raw[8 * 3073 - 1] / 255));
});

Deno.test("cifar: synthetic CIFAR-10 and CIFAR-100 files round trip", async () => {
  await withTmp(async (dir) => {
    const a = synthetic(5, 1);
    await Deno.writeFile(`${dir}/c10.bin`, encodeCifar(a.images, a.labels, { dataset: "cifar10" }));
    const ds = await readCifar(`${dir}/c10.bin`, { dataset: "cifar10" });
    assert.deepEqual(ds.images, a.images);
    assert.deepEqual(ds.labels, a.labels);
    assert.equal(ds.coarseLabels, null);
    assert.equal(ds.classNames, null);

    const b = synthetic(4, 2, 100);
    const coarse = Uint8Array.from([3, 19, 0, 7]);
    const bytes = encodeCifar(b.images, b.labels, { dataset: "cifar100", coarseLabels: coarse });
    assert.equal(bytes.length, 4 * 3074);
    assert.equal(bytes[3074], 19, "coarse label byte first");
    assert.equal(bytes[3075], b.labels[1], "fine label byte second");
    await Deno.writeFile(`${dir}/c100.bin`, bytes);
    const fine = await readCifar(`${dir}/c100.bin`, { dataset: "cifar100" });
    assert.deepEqual(fine.labels, b.labels);
    assert.deepEqual(fine.coarseLabels, coarse);
    assert.deepEqual(fine.images, b.images);
    assert.equal(fine.numClasses, 100);
    // Without a dataset name, the record size tells CIFAR-100 from CIFAR-10.
    assert.equal((await readCifar(`${dir}/c100.bin`)).dataset, "cifar100");
    assert.equal((await readCifar(`${dir}/c10.bin`)).dataset, "cifar10");
    const sup = await readCifar(`${dir}/c100.bin`, { dataset: "cifar100", label: "coarse" });
    assert.deepEqual(sup.labels, coarse);
    assert.equal(sup.numClasses, 20);
    assert.equal(sup.hash, await sha256Hex(bytes));
  });
});

Deno.test("cifar: truncated, mislabelled and foreign files are rejected clearly", async () => {
  const a = synthetic(4, 3);
  const good = encodeCifar(a.images, a.labels, { dataset: "cifar10" });
  assert.throws(
    () => parseCifar(good.subarray(0, 10000), { dataset: "cifar10", file: "x.bin" }),
    (e: Error) =>
      e.message.includes("x.bin") && e.message.includes("size 10000 is not a multiple of 3073") &&
      e.message.includes("3 whole records and 781 trailing bytes"),
  );
  const bad = good.slice();
  bad[2 * 3073] = 12; // record 2's label byte
  assert.throws(
    () => parseCifar(bad, { dataset: "cifar10", file: "x.bin" }),
    /x\.bin: record 2 has label 12, but CIFAR-10 has 10 classes/,
  );
  const c100 = encodeCifar(synthetic(2, 4, 100).images, [5, 99], { dataset: "cifar100" });
  assert.throws(() => parseCifar(c100, { dataset: "cifar10" }), /is the dataset "cifar100"\?/);
  const badCoarse = c100.slice();
  badCoarse[3074] = 20;
  assert.throws(
    () => parseCifar(badCoarse, { dataset: "cifar100" }),
    /record 1 has coarse label 20/,
  );
  assert.throws(() => parseCifar(new Uint8Array(0), { dataset: "cifar10" }), /empty file/);
  const gz = await gzip(good.subarray(0, 100));
  assert.throws(() => parseCifar(gz, { dataset: "cifar10" }), /gzip archive/);
  const pickle = new Uint8Array(50).fill(1);
  pickle.set([0x80, 0x02]);
  assert.throws(() => parseCifar(pickle, { dataset: "cifar10" }), /Python pickle/);
  assert.throws(
    () => parseCifar(good, { dataset: "cifar1000" as "cifar10" }),
    /expected "cifar10" or "cifar100"/,
  );
  await withTmp(async (dir) => {
    await Deno.writeFile(`${dir}/t.bin`, good.subarray(0, 5000));
    await rejectsWith(readCifar(`${dir}/t.bin`), `${dir}/t.bin`, "size 5000", "3073");
    await rejectsWith(readCifarBin(`${dir}/t.bin`), "--data", "size 5000");
    // The evaluation parser keeps its name and checks the same way.
    assert.throws(() => parseCifarBin(good.subarray(1), "eval.bin"), /eval\.bin: size 12291/);
  });
});

Deno.test("cifar: directory layouts (batches dir, its parent, CIFAR-100) and missing files", async () => {
  await withTmp(async (dir) => {
    const b10 = `${dir}/cifar-10-batches-bin`;
    await Deno.mkdir(b10);
    const parts = [1, 2, 3, 4, 5, 6].map((i) => synthetic(i, 10 * i));
    for (let i = 0; i < 5; i++) {
      const p = parts[i];
      await Deno.writeFile(
        `${b10}/data_batch_${i + 1}.bin`,
        encodeCifar(p.images, p.labels, { dataset: "cifar10" }),
      );
    }
    await Deno.writeFile(
      `${b10}/test_batch.bin`,
      encodeCifar(parts[5].images, parts[5].labels, { dataset: "cifar10" }),
    );
    const names = "airplane automobile bird cat deer dog frog horse ship truck".split(" ");
    await Deno.writeTextFile(`${b10}/batches.meta.txt`, names.join("\n") + "\n\n");
    const train = await readCifar(dir, { dataset: "cifar10", split: "train" });
    assert.equal(train.n, 1 + 2 + 3 + 4 + 5);
    assert.deepEqual(train.files, [1, 2, 3, 4, 5].map((i) => `${b10}/data_batch_${i}.bin`));
    assert.deepEqual(train.labels.subarray(1, 3), parts[1].labels, "batches concatenated in order");
    assert.deepEqual(train.images.subarray(3072 * 10), parts[4].images);
    assert.deepEqual(train.classNames, names);
    const test = await readCifar(b10, { split: "test" });
    assert.equal(test.n, 6);
    assert.equal(test.dataset, "cifar10");

    await Deno.remove(`${b10}/data_batch_3.bin`);
    await rejectsWith(
      readCifar(dir, { dataset: "cifar10", split: "train" }),
      "no CIFAR-10 train data",
      `${b10}/data_batch_3.bin`,
      `${dir}/data_batch_1.bin`,
      "train_subset.bin",
    );
    await rejectsWith(readCifar(`${dir}/nope`), `${dir}/nope`, "no such file");

    // CIFAR-100 is recognised from its layout when no dataset is given.
    const b100 = `${dir}/c100/cifar-100-binary`;
    await Deno.mkdir(b100, { recursive: true });
    const t = synthetic(3, 7, 100);
    await Deno.writeFile(
      `${b100}/test.bin`,
      encodeCifar(t.images, t.labels, { dataset: "cifar100" }),
    );
    await Deno.writeFile(
      `${b100}/train.bin`,
      encodeCifar(t.images, t.labels, { dataset: "cifar100" }),
    );
    const fine = Array.from({ length: 100 }, (_, i) => `class${i}`);
    await Deno.writeTextFile(`${b100}/fine_label_names.txt`, fine.join("\n"));
    const ds = await readCifar(`${dir}/c100`, { split: "test" });
    assert.equal(ds.dataset, "cifar100");
    assert.deepEqual(ds.labels, t.labels);
    assert.deepEqual(ds.classNames, fine);
  });
});

Deno.test("toTensorBatch: [B,3,32,32] floats in [0,1] and float labels", async () => {
  await gpu();
  const a = synthetic(4, 5);
  const ds = parseCifar(encodeCifar(a.images, a.labels, { dataset: "cifar10" }), {
    dataset: "cifar10",
  });
  const set = {
    images: ds.images,
    labels: ds.labels,
    shape: [3, 32, 32] as [number, number, number],
  };
  const { x, y } = toTensorBatch(set, [2, 0]);
  assert.deepEqual(x.shape, [2, 3, 32, 32]);
  assert.deepEqual(y.shape, [2]);
  const xv = await x.data();
  for (const k of [0, 1, 1023, 1024, 3071]) {
    assert.equal(xv[k], Math.fround(a.images[2 * 3072 + k] / 255));
    assert.equal(xv[3072 + k], Math.fround(a.images[k] / 255));
  }
  assert.deepEqual([...await y.data()], [a.labels[2], a.labels[0]]);
  x.dispose();
  y.dispose();
  assert.throws(() => toTensorBatch(set, [4]), /index 4 out of range \(n=4\)/);
});

// ---------------------------------------------------------------------------------------------
// tar, gzip, download

Deno.test("tar: ustar write/read with long names (GNU and pax), dirs, and corruption", async () => {
  const long = "d/" + "x".repeat(120) + ".bin";
  for (const mode of ["gnu", "pax"] as const) {
    const tar = writeTar([
      { name: "top", type: "directory" },
      { name: "top/a.txt", data: te.encode("hello") },
      { name: long, data: new Uint8Array(600).fill(7) },
      { name: "empty", data: new Uint8Array(0) },
    ], { longNames: mode });
    assert.equal(tar.length % 512, 0);
    const es = readTar(tar);
    assert.deepEqual(es.map((e) => [e.name, e.type, e.size]), [
      ["top", "directory", 0],
      ["top/a.txt", "file", 5],
      [long, "file", 600],
      ["empty", "file", 0],
    ]);
    assert.equal(new TextDecoder().decode(es[1].data), "hello");
    assert.ok(es[2].data.every((b) => b === 7));
    assert.equal(es[1].mode, 0o644);
  }
  const tar = writeTar([{ name: "f", data: new Uint8Array(1000) }]);
  const bad = tar.slice();
  bad[10] ^= 1;
  assert.throws(() => readTar(bad), /header at byte 0 has a bad checksum/);
  assert.throws(
    () => readTar(tar.subarray(0, 1024)),
    /entry "f" needs 1000 bytes .* \(truncated\)/,
  );
  assert.throws(() => safeRelativePath("../etc/passwd"), /refusing/);
  assert.throws(() => safeRelativePath("/abs"), /refusing/);
  assert.equal(safeRelativePath("./a//b/"), "a/b");
  const z = await gzip(tar);
  assert.deepEqual(await gunzip(z), tar);
  await assert.rejects(gunzip(z.subarray(0, z.length - 10), "t.gz"), /t\.gz: gzip data is corrupt/);
  await assert.rejects(gunzip(tar, "t.gz"), /t\.gz: not a gzip file/);
});

/** A tiny CIFAR-10 archive laid out like the official one. */
async function tinyArchive() {
  const files = [];
  const batches: Uint8Array[] = [];
  for (const name of [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat(["test_batch.bin"])) {
    const s = synthetic(2, name.length + batches.length);
    const bytes = encodeCifar(s.images, s.labels, { dataset: "cifar10" });
    batches.push(bytes);
    files.push({ name: `cifar-10-batches-bin/${name}`, data: bytes });
  }
  files.push({
    name: "cifar-10-batches-bin/batches.meta.txt",
    data: te.encode("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"),
  });
  const gz = await gzip(writeTar([{ name: "cifar-10-batches-bin", type: "directory" }, ...files]));
  return { gz, batches };
}

function fetcher(
  body: Uint8Array,
  calls: string[],
  status = 200,
): (url: string) => Promise<Response> {
  return (url: string) => {
    calls.push(url);
    return Promise.resolve(
      new Response(status === 200 ? body as Uint8Array<ArrayBuffer> : "not found", {
        status,
        headers: { "content-length": String(body.length) },
      }),
    );
  };
}

Deno.test("ensureCifar: downloads, verifies MD5, unpacks atomically, then uses the cache", async () => {
  assert.equal(CIFAR_SOURCES.cifar10.md5, "c32a1d4ab5d03f1284b67883e8d87530");
  assert.equal(CIFAR_SOURCES.cifar100.md5, "03b5dce01913d631647c71ecec9e9cb8");
  const { gz, batches } = await tinyArchive();
  await withTmp(async (cache) => {
    const calls: string[] = [];
    const logs: string[] = [];
    const source = {
      url: "https://mirror.test/c10.tar.gz",
      md5: md5Hex(gz),
      archive: "c10.tar.gz",
    };
    const dir = await ensureCifar("cifar10", {
      cacheDir: cache,
      fetch: fetcher(gz, calls),
      source,
      log: (m) => logs.push(m),
    });
    assert.equal(dir, `${cache}/cifar-10-batches-bin`);
    assert.deepEqual(calls, [source.url]);
    assert.deepEqual(await Deno.readFile(`${dir}/data_batch_3.bin`), batches[2]);
    assert.deepEqual(await Deno.readFile(`${dir}/test_batch.bin`), batches[5]);
    // Only the dataset remains: no archive, temp or staging files.
    assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name), ["cifar-10-batches-bin"]);
    const train = await readCifar(cache, { split: "train" });
    assert.equal(train.n, 10);
    assert.equal(train.classNames?.[9], "j");
    // Second call: no network.
    assert.equal(
      await ensureCifar("cifar10", { cacheDir: cache, fetch: fetcher(gz, calls), source }),
      dir,
    );
    assert.equal(calls.length, 1);
    assert.ok(logs.some((l) => l.includes("downloading https://mirror.test/c10.tar.gz")));
  });
});

Deno.test("ensureCifar: checksum mismatch is caught before extraction and leaves nothing", async () => {
  const { gz } = await tinyArchive();
  await withTmp(async (cache) => {
    const calls: string[] = [];
    const wrong = {
      url: "https://mirror.test/c10.tar.gz",
      md5: "0".repeat(32),
      archive: "c10.tar.gz",
    };
    // Corrupt gzip AND wrong checksum: the checksum error comes first, so nothing was unpacked.
    const corrupt = gz.slice(0, gz.length - 20);
    await rejectsWith(
      ensureCifar("cifar10", {
        cacheDir: cache,
        fetch: fetcher(corrupt, calls),
        source: wrong,
        log: () => {},
      }),
      "checksum mismatch for https://mirror.test/c10.tar.gz",
      `expected MD5 ${"0".repeat(32)}, got ${md5Hex(corrupt)}`,
      `${corrupt.length} bytes`,
    );
    assert.deepEqual([...Deno.readDirSync(cache)], [], "temp file deleted, nothing extracted");
    // HTTP errors and network failures.
    await rejectsWith(
      ensureCifar("cifar10", {
        cacheDir: cache,
        fetch: fetcher(gz, calls, 404),
        source: wrong,
        log: () => {},
      }),
      "HTTP 404",
    );
    await rejectsWith(
      ensureCifar("cifar10", {
        cacheDir: cache,
        fetch: () => Promise.reject(new TypeError("dns error")),
        source: wrong,
        log: () => {},
      }),
      "dns error",
      "offline?",
      `${cache}/c10.tar.gz`,
    );
    // An archive placed by hand is checked too.
    await Deno.writeFile(`${cache}/c10.tar.gz`, gz);
    await rejectsWith(
      ensureCifar("cifar10", {
        cacheDir: cache,
        fetch: fetcher(gz, calls),
        source: wrong,
        log: () => {},
      }),
      `MD5 ${md5Hex(gz)} does not match`,
    );
    // ...and used without the network when it matches (and kept, since the user put it there).
    const ok = { ...wrong, md5: md5Hex(gz) };
    const before = calls.length;
    const dir = await ensureCifar("cifar10", {
      cacheDir: cache,
      fetch: fetcher(gz, calls),
      source: ok,
      log: () => {},
    });
    assert.equal(calls.length, before);
    assert.equal((await readCifar(dir, { split: "test" })).n, 2);
    assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name).sort(), [
      "c10.tar.gz",
      "cifar-10-batches-bin",
    ]);
    // An archive without the expected files.
    await withTmp(async (other) => {
      const empty = await gzip(writeTar([{ name: "readme.txt", data: te.encode("hi") }]));
      await rejectsWith(
        ensureCifar("cifar10", {
          cacheDir: other,
          fetch: fetcher(empty, calls),
          source: { ...ok, md5: md5Hex(empty) },
          log: () => {},
        }),
        "did not contain cifar-10-batches-bin/",
        "data_batch_1.bin",
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------
// DataLoader

function imageSet(n: number, seed: number) {
  const s = synthetic(n, seed);
  return { images: s.images, labels: s.labels, shape: [3, 32, 32] as [number, number, number] };
}

Deno.test("DataLoader: every index once per epoch, deterministic per (seed, epoch)", () => {
  const ds = imageSet(37, 11);
  const mk = (seed: number, dropLast = false) =>
    new DataLoader(ds, { batchSize: 8, shuffle: true, seed, dropLast });
  const a = mk(3), b = mk(3), c = mk(4);
  assert.equal(a.numBatches(), 5);
  assert.equal(mk(3, true).numBatches(), 4);
  const epoch = (l: DataLoader, e: number) =>
    Array.from({ length: l.numBatches() }, (_, i) => l.batchIndices(e, i));
  const e0 = epoch(a, 0);
  assert.deepEqual(e0.map((x) => x.length), [8, 8, 8, 8, 5]);
  assert.deepEqual(e0.flat().sort((x, y) => x - y), Array.from({ length: 37 }, (_, i) => i));
  assert.deepEqual(epoch(b, 0), e0, "same seed and epoch, same order");
  assert.notDeepEqual(epoch(a, 1), e0, "a new order every epoch");
  assert.notDeepEqual(epoch(c, 0), e0, "seed changes the order");
  assert.deepEqual(epoch(a, 1).flat().sort((x, y) => x - y), e0.flat().sort((x, y) => x - y));
  const plain = new DataLoader(ds, { batchSize: 10 });
  assert.deepEqual(plain.batchIndices(5, 3), [30, 31, 32, 33, 34, 35, 36]);
  const limited = new DataLoader(ds, { batchSize: 4, shuffle: true, limit: 9, dropLast: true });
  assert.equal(limited.numBatches(), 2);
  assert.ok(epoch(limited, 0).flat().every((i) => i < 9));
  // Shuffles are close to uniform: where element 0 lands over many epochs.
  const counts = new Array(5).fill(0);
  for (let e = 0; e < 5000; e++) counts[epochPermutation(5, 9, e).indexOf(0)]++;
  assert.ok(counts.every((k) => Math.abs(k - 1000) < 130), `positions of 0: ${counts}`);
  assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be an integer >= 1/);
  assert.throws(() => new DataLoader(ds, { batchSize: 64, dropLast: true }), /larger than the 37/);
  assert.throws(() => a.batchIndices(0, 5), /batch 5 out of range/);
  assert.throws(() => new DataLoader(ds, { batchSize: 2, augment: { crop: -1 } }), /augment.crop/);
});

/** Independent reference: build the zero-padded image, take the window, mirror the rows. */
function reference(img: Uint8Array, pad: number, top: number, left: number, flip: boolean) {
  const P = 32 + 2 * pad;
  const padded = new Float32Array(3 * P * P);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        padded[(c * P + y + pad) * P + x + pad] = img[(c * 32 + y) * 32 + x] / 255;
      }
    }
  }
  const out = new Float32Array(3072);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) {
      const row = Array.from({ length: 32 }, (_, x) => padded[(c * P + y + top) * P + x + left]);
      if (flip) row.reverse();
      out.set(row, (c * 32 + y) * 32);
    }
  }
  return out;
}

Deno.test("DataLoader: pad-4 crop and flip match an independent CPU reference", () => {
  const ds = imageSet(64, 21);
  const l = new DataLoader(ds, {
    batchSize: 16,
    shuffle: true,
    seed: 5,
    augment: { crop: 4, flip: true },
  });
  const tops = new Set<number>(), lefts = new Set<number>();
  let flips = 0, matched = 0;
  for (let b = 0; b < l.numBatches(); b++) {
    const { x, y, indices } = l.batchArrays(2, b);
    indices.forEach((ex, j) => {
      assert.equal(y[j], ds.labels[ex]);
      const got = x.subarray(j * 3072, (j + 1) * 3072);
      const img = ds.images.subarray(ex * 3072, (ex + 1) * 3072);
      const p = l.augmentParams(2, b * 16 + j)!;
      assert.deepEqual(got, reference(img, 4, p.top, p.left, p.flip));
      tops.add(p.top);
      lefts.add(p.left);
      flips += p.flip ? 1 : 0;
      // Without trusting augmentParams: the output is one of the 81 x 2 possible views.
      if (j === 0) {
        let found = false;
        for (let t = 0; t <= 8 && !found; t++) {
          for (let le = 0; le <= 8 && !found; le++) {
            for (const f of [false, true]) {
              if (reference(img, 4, t, le, f).every((v, k) => v === got[k])) found = true;
            }
          }
        }
        assert.ok(found, `example ${ex} is not a pad-4 crop/flip of its image`);
        matched++;
      }
    });
  }
  assert.equal(matched, 4);
  assert.equal(tops.size, 9, "all 9 vertical offsets occur");
  assert.equal(lefts.size, 9);
  assert.ok(flips > 16 && flips < 48, `${flips} of 64 flipped`);
  // Same (seed, epoch) gives the same views; another epoch different ones.
  assert.deepEqual(l.batchArrays(2, 1).x, l.batchArrays(2, 1).x);
  const other = new DataLoader(ds, {
    batchSize: 16,
    shuffle: false,
    seed: 5,
    augment: { crop: 4, flip: true },
  });
  assert.notDeepEqual(other.batchArrays(2, 0).x, other.batchArrays(3, 0).x);
  // No augmentation: exactly bytes / 255.
  const none = new DataLoader(ds, { batchSize: 3 }).batchArrays(0, 1);
  for (let k = 0; k < 3 * 3072; k++) {
    assert.equal(none.x[k], Math.fround(ds.images[3 * 3072 + k] / 255));
  }
  // Flip only: a mirror image.
  const fl = new DataLoader(ds, { batchSize: 64, augment: { flip: true } });
  const fx = fl.batchArrays(0, 0).x;
  for (let j = 0; j < 64; j++) {
    const p = fl.augmentParams(0, j)!;
    assert.deepEqual([p.top, p.left], [0, 0]);
    const img = ds.images.subarray(j * 3072, (j + 1) * 3072);
    assert.deepEqual(fx.subarray(j * 3072, (j + 1) * 3072), reference(img, 0, 0, 0, p.flip));
  }
});

Deno.test("DataLoader: uploaded batches, resumable from a batch index", async () => {
  await gpu();
  const ds: CifarDataset = {
    ...imageSet(21, 31),
    dataset: "cifar10",
    coarseLabels: null,
    n: 21,
    numClasses: 10,
    classNames: null,
    files: [],
    hash: "",
  };
  const mk = () =>
    new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 8, augment: { crop: 4, flip: true } });
  const full: { x: Float32Array; y: Float32Array; indices: number[] }[] = [];
  for await (const b of mk().batches(1)) {
    assert.deepEqual(b.x.shape, [b.indices.length, 3, 32, 32]);
    full.push({ x: await b.x.data(), y: await b.y.data(), indices: b.indices });
    b.x.dispose();
    b.y.dispose();
  }
  assert.deepEqual(full.map((b) => b.indices.length), [4, 4, 4, 4, 4, 1]);
  const resumed = [];
  for await (const b of mk().batches(1, 3)) {
    resumed.push({ x: await b.x.data(), y: await b.y.data(), indices: b.indices });
    b.x.dispose();
    b.y.dispose();
  }
  assert.deepEqual(
    resumed,
    full.slice(3),
    "a fresh loader resumed at batch 3 yields the same tail",
  );
  const l = mk();
  assert.deepEqual(full[2].x, l.batchArrays(1, 2).x);
  const it = l.batches(0, 7);
  await assert.rejects(it.next(), /startBatch 7 out of range \(0\.\.6\)/);
});
