// CIFAR-100 data on a 10-class model is refused before any GPU work, naming the data and the
// model, instead of reporting 0% accuracy or blaming the weights (issue 11, item 3).

import { assert } from "./helpers/check.ts";
import { errorLine, FIXTURE, runCli } from "./helpers/cli.ts";
import { encodeCifar } from "../runtime/data/cifar.ts";
import { parseSpec } from "../dsl/spec.ts";

async function withCifar100(fn: (dir: string, file: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "atop-c100-" });
  try {
    const n = 4;
    const images = Uint8Array.from({ length: n * 3072 }, (_, i) => (i * 7) % 256);
    const file = `${dir}/c100.bin`;
    await Deno.writeFile(
      file,
      encodeCifar(images, [17, 42, 3, 99], { dataset: "cifar100", coarseLabels: [1, 2, 3, 4] }),
    );
    await fn(dir, file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const MISMATCH =
  /--data .*c100\.bin is CIFAR-100 \(3074-byte records, 100 classes\) but --weights .*smallcnn_subset\.safetensors \(smallcnn\) has 10 classes: give CIFAR-10 data or a model trained on CIFAR-100/;

Deno.test("predict: CIFAR-100 data with 10-class weights names both, not the weights alone", async () => {
  await withCifar100(async (dir, file) => {
    const r = await runCli("runtime/cli/predict.ts", [
      ...["--arch", "smallcnn", "--weights", FIXTURE, "--data", file, "--out", `${dir}/p.json`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    const line = errorLine(r);
    assert.match(line, /^predict: /);
    assert.match(line, MISMATCH);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["c100.bin"]);
  });
});

Deno.test("attack: CIFAR-100 data with a CIFAR-10 classifier fails instead of reporting 0%", async () => {
  await withCifar100(async (dir, file) => {
    const base = [
      ...["--arch", "smallcnn", "--weights", FIXTURE, "--attack", "pgd", "--steps", "1"],
      ...["--data", file, "--out", `${dir}/r.json`],
    ];
    let r = await runCli("runtime/cli/attack.ts", base);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /^attack: /);
    assert.match(errorLine(r), MISMATCH);
    // Forcing the other format is refused by the record size, naming the file.
    r = await runCli("runtime/cli/attack.ts", [...base, "--dataset", "cifar10"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r), /c100\.bin: size 12296 is not a multiple of 3073.*"cifar100"\?/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["c100.bin"]);
    // A defense module's class count is checked before the evaluation writes its state.
    const mod = `${dir}/defense.ts`;
    await Deno.writeTextFile(
      mod,
      `export default { buildTarget: () => Promise.resolve({ name: "d", numClasses: 10, ` +
        `randomized: false, logits: () => { throw new Error("logits called"); } }) };\n`,
    );
    r = await runCli("runtime/cli/attack.ts", [
      ...["--pipeline", mod, "--attack", "pgd", "--data", file, "--out", `${dir}/r.json`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      errorLine(r),
      /^attack: --data .* is CIFAR-100 .* but --pipeline .*defense\.ts has 10 classes/,
    );
    assert.equal(await Deno.stat(`${dir}/r.state.jsonl`).then(() => true, () => false), false);
  });
});

Deno.test("spec: the classifier's class count must match the dataset", () => {
  assert.throws(
    () => parseSpec({ name: "t", dataset: "cifar100", classifier: { arch: "smallcnn" } }),
    /classifier\.numClasses: expected 100 for dataset "cifar100", got 10/,
  );
  parseSpec({ name: "t", dataset: "cifar100", classifier: { arch: "smallcnn", numClasses: 100 } });
});
