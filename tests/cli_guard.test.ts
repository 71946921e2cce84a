// No command writes over one of its own inputs (issue 11, item 1): not by the same path, not
// through a symbolic or hard link, and no output directory contains an input.

import { assert } from "./helpers/check.ts";
import { DATA_DIR, errorLine, FIXTURE, runCli } from "./helpers/cli.ts";
import { isSameFile, refuseOutputDir, refuseOverwrite } from "../runtime/io/guard.ts";
import { sha256Hex } from "../runtime/io/hash.ts";
import { withTmp as withTmpDir, writeStubManifest } from "./helpers/tmp.ts";

const withTmp = (fn: (dir: string) => Promise<void>) => withTmpDir("atop-guard-", fn);

const digest = async (p: string) => await sha256Hex(await Deno.readFile(p));

Deno.test("guard: same path, symbolic link and hard link are the same file", async () => {
  await withTmp(async (dir) => {
    const data = `${dir}/data.bin`;
    await Deno.writeTextFile(data, "x");
    await Deno.symlink(data, `${dir}/soft.bin`);
    await Deno.link(data, `${dir}/hard.bin`);
    const inputs = [{ flag: "--data", path: data }];
    for (
      const [out, how] of [
        [data, /is the same file as --data/],
        [`${dir}/./sub/../data.bin`, /is the same file as --data/],
        [`${dir}/soft.bin`, /through a symbolic link/],
        [`${dir}/hard.bin`, /a hard link/],
      ] as const
    ) {
      await assert.rejects(
        refuseOverwrite([{ flag: "--out", path: out }], inputs),
        (e: Error) => how.test(e.message) && /^--out .*choose another --out$/.test(e.message),
      );
    }
    // An input given through a link is protected at its target too.
    await assert.rejects(
      refuseOverwrite([{ flag: "--out", path: data }], [{
        flag: "--data",
        path: `${dir}/soft.bin`,
      }]),
      /--out .* --data .*soft\.bin/,
    );
    await refuseOverwrite([{ flag: "--out", path: `${dir}/new/p.json` }], inputs);
    assert.equal(await isSameFile(`${dir}/hard.bin`, data), true);
    assert.equal(await isSameFile(`${dir}/other.bin`, data), false);
  });
});

Deno.test("guard: an output directory may not be or contain an input", async () => {
  await withTmp(async (dir) => {
    await Deno.mkdir(`${dir}/data`);
    const data = `${dir}/data/train.bin`;
    await Deno.writeTextFile(data, "x");
    await Deno.symlink(`${dir}/data`, `${dir}/link`);
    const inputs = [{ flag: "--data", path: data }];
    for (const out of [`${dir}/data`, dir, `${dir}/link`, `${dir}/link/`]) {
      await assert.rejects(
        refuseOutputDir({ flag: "--out", path: out }, inputs),
        /^Error: --out .* contains --data .*train\.bin: .*choose another --out$/,
      );
    }
    await refuseOutputDir({ flag: "--out", path: `${dir}/data/run` }, inputs);
    await refuseOutputDir({ flag: "--out", path: `${dir}/run/a/b` }, inputs);
  });
});

Deno.test("predict: --out equal to --data (or a link to it) is refused and the data kept", async () => {
  await withTmp(async (dir) => {
    const data = `${dir}/data.bin`;
    await Deno.copyFile(`${DATA_DIR}test_subset.bin`, data);
    await Deno.symlink(data, `${dir}/link.bin`);
    const before = await digest(data);
    for (const out of [data, `${dir}/link.bin`]) {
      const r = await runCli("runtime/cli/predict.ts", [
        ...["--arch", "smallcnn", "--weights", FIXTURE, "--limit", "4", "--data", data],
        ...["--out", out],
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        errorLine(r),
        /^predict: --out .* is the same file (\(through a symbolic link\) )?as --data .*data\.bin/,
      );
      assert.equal(await digest(data), before, "the dataset was overwritten");
    }
    // Any other --out still works.
    const r = await runCli("runtime/cli/predict.ts", [
      ...["--arch", "smallcnn", "--weights", FIXTURE, "--limit", "4", "--data", data],
      ...["--out", `${dir}/p.json`],
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/p.json`)).n, 4);
  });
});

Deno.test("attack: --out or --grid on --weights or the --run's files are refused, inputs kept", async () => {
  await withTmp(async (dir) => {
    const w = `${dir}/w.safetensors`;
    await Deno.copyFile(FIXTURE, w);
    const before = await digest(w);
    const base = [
      ...["--arch", "smallcnn", "--weights", w, "--attack", "pgd", "--steps", "1"],
      ...["--limit", "4", "--data", `${DATA_DIR}test_subset.bin`],
    ];
    let r = await runCli("runtime/cli/attack.ts", [...base, "--out", w]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /^attack: --out .*w\.safetensors is the same file as --weights/);
    assert.equal(await digest(w), before, "the weights were overwritten");
    r = await runCli("runtime/cli/attack.ts", [...base, "--out", `${dir}/r.json`, "--grid", w]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      errorLine(r),
      /^attack: --grid .* is the same file as --weights .*choose another --grid$/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["w.safetensors"]);
    // A pipeline run's stage weights are inputs of an attack on it.
    const stage = `${dir}/run/classifier-0123`;
    await Deno.mkdir(stage, { recursive: true });
    await Deno.writeTextFile(`${dir}/run/manifest.json`, JSON.stringify({ stages: {} }));
    await Deno.copyFile(FIXTURE, `${stage}/classifier.safetensors`);
    r = await runCli("runtime/cli/attack.ts", [
      ...["--pipeline", "pipelines/ci_tiny.ts", "--run", `${dir}/run`, "--attack", "pgd"],
      ...["--data", `${DATA_DIR}test_subset.bin`, "--out", `${stage}/classifier.safetensors`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      errorLine(r),
      /^attack: --out .* is the same file as --run .*classifier\.safetensors/,
    );
  });
});

Deno.test("train and pipeline runs: an --out that contains the --data file is refused", async () => {
  await withTmp(async (dir) => {
    await Deno.symlink(`${DATA_DIR}test_subset.bin`, `${dir}/test_subset.bin`);
    await Deno.symlink(`${DATA_DIR}train_subset.bin`, `${dir}/train_subset.bin`);
    let r = await runCli("runtime/cli/train.ts", [
      ...["--arch", "smallcnn", "--data", `${dir}/test_subset.bin`, "--out", dir],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /^train: --out .* contains --data .*test_subset\.bin/);
    r = await runCli("pipelines/ci_tiny.ts", ["--data", dir, "--out", dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /--out .* contains --data .*_subset\.bin.*choose another --out$/);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["test_subset.bin", "train_subset.bin"], "something was written");
  });
});

Deno.test("merge and repro: --out may not replace a shard or contain the manifest", async () => {
  await withTmp(async (dir) => {
    const shard = `${dir}/a.json`;
    await Deno.writeTextFile(shard, "{}");
    let r = await runCli("runtime/cli/merge.ts", ["--out", shard, shard]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /^merge: --out .*a\.json is the same file as SHARD .*a\.json/);
    assert.equal(await Deno.readTextFile(shard), "{}");
    const manifest = `${dir}/manifest.json`;
    await writeStubManifest(manifest);
    r = await runCli("runtime/cli/repro.ts", [manifest, "--out", dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /^repro: --out .* contains MANIFEST .*manifest\.json/);
  });
});
