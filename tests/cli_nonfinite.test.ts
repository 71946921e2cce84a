// Weights with NaN or Inf are refused where they are loaded, naming the tensor, and NaN logits
// fail the evaluation instead of giving an accuracy (issue 11, item 4).

import { assert } from "./helpers/check.ts";
import { DATA_DIR, errorLine, FIXTURE, runCli } from "./helpers/cli.ts";
import { encodeSafetensors, readSafetensorsRaw } from "../runtime/io/safetensors.ts";
import { withTmp as withTmpDir } from "./helpers/tmp.ts";

const DATA = `${DATA_DIR}test_subset.bin`;

/** The fixture with `edit` applied to its tensors, written to `path`. */
async function edited(path: string, edit: (t: Map<string, Float32Array>) => void) {
  const { tensors, metadata } = await readSafetensorsRaw(FIXTURE);
  edit(new Map([...tensors].map(([k, t]) => [k, t.data])));
  await Deno.writeFile(path, encodeSafetensors(tensors, metadata ?? undefined));
}

const withTmp = (fn: (dir: string) => Promise<void>) => withTmpDir("atop-nan-", fn);

Deno.test("safetensors: a file with NaN or Inf values is refused, naming the tensor", async () => {
  await withTmp(async (dir) => {
    const path = `${dir}/w.safetensors`;
    const data = new Float32Array([1, 2, Infinity, NaN]);
    await Deno.writeFile(
      path,
      encodeSafetensors({ ok: { shape: [1], data: new Float32Array(1) }, w: { shape: [4], data } }),
    );
    await assert.rejects(
      readSafetensorsRaw(path),
      /w\.safetensors: tensor "w" holds 2 non-finite values \(Infinity at index 2 of 4\)/,
    );
  });
});

Deno.test("predict and attack: NaN weights are refused before any result is written", async () => {
  await withTmp(async (dir) => {
    const w = `${dir}/nan.safetensors`;
    await edited(w, (t) => {
      t.get("conv3.weight")![5] = NaN;
    });
    const want =
      /nan\.safetensors: tensor "conv3\.weight" holds 1 non-finite value \(NaN at index 5 of 18432\)/;
    let r = await runCli("runtime/cli/predict.ts", [
      ...["--arch", "smallcnn", "--weights", w, "--limit", "4", "--data", DATA],
      ...["--out", `${dir}/p.json`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), want);
    r = await runCli("runtime/cli/attack.ts", [
      ...["--arch", "smallcnn", "--weights", w, "--attack", "pgd", "--steps", "1"],
      ...["--limit", "4", "--data", DATA, "--out", `${dir}/r.json`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), want);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["nan.safetensors"]);
  });
});

Deno.test("predict and attack: finite weights that overflow to Inf logits fail the batch loudly", async () => {
  await withTmp(async (dir) => {
    const w = `${dir}/huge.safetensors`;
    // Finite, but the last layer's sums overflow float32.
    await edited(w, (t) => t.get("fc.weight")!.fill(3e38));
    const r = await runCli("runtime/cli/predict.ts", [
      ...["--arch", "smallcnn", "--weights", w, "--limit", "4", "--data", DATA],
      ...["--out", `${dir}/p.json`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      errorLine(r),
      /^predict: smallcnn on images 0\.\.3: the logits of example \d are (NaN|-?Infinity) .*no accuracy is reported$/,
    );
    assert.equal(await Deno.stat(`${dir}/p.json`).then(() => true, () => false), false);
    const a = await runCli("runtime/cli/attack.ts", [
      ...["--arch", "smallcnn", "--weights", w, "--attack", "pgd", "--steps", "1"],
      ...["--limit", "4", "--data", DATA, "--out", `${dir}/r.json`],
    ]);
    assert.equal(a.code, 1, a.stderr);
    assert.match(
      errorLine(a),
      /^attack: smallcnn, batch 0, clean images: the logits of example \d are (NaN|-?Infinity) /,
    );
    assert.equal(await Deno.stat(`${dir}/r.json`).then(() => true, () => false), false);
  });
});
