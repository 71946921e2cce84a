// Checkpoints record the run's settings and data hash; a resume with other ones is refused,
// naming the fields, and a resume says where it starts (issue 11, item 2).

import { assert, gpu } from "./helpers/check.ts";
import { DATA_DIR, errorLine, runCli } from "./helpers/cli.ts";
import { createModel, PatchDiscriminator, Purifier, type SmallCnn } from "../runtime/models/mod.ts";
import { trainClassifier } from "../runtime/train/classifier.ts";
import { trainPurifier } from "../runtime/train/purifier.ts";
import { saveCheckpoint } from "../runtime/train/checkpoint.ts";
import { readCifar } from "../runtime/data/mod.ts";
import { rt2 } from "../runtime/transforms.ts";
import { atopLoss } from "../dsl/spec.ts";
import { withTmp as withTmpDir } from "./helpers/tmp.ts";

await gpu();
const train = await readCifar(`${DATA_DIR}test_subset.bin`, { split: "train" });

function tiny(): SmallCnn {
  return createModel("smallcnn", { seed: 5, widths: [4, 8, 8, 8] }) as SmallCnn;
}

const withTmp = (fn: (dir: string) => Promise<void>) => withTmpDir("atop-resume-", fn);

const common = { train, epochs: 2, batchSize: 16, lr: 0.05, seed: 3, trainLimit: 32, quiet: true };

Deno.test("classifier: a checkpoint is resumed only with the settings and data it was made with", async () => {
  await withTmp(async (dir) => {
    const checkpoint = `${dir}/checkpoint.safetensors`;
    const run = async (over: Record<string, unknown>) => {
      const m = tiny();
      try {
        return await trainClassifier({ ...common, model: m, checkpoint, ...over });
      } finally {
        m.dispose();
      }
    };
    await run({ stopAfterSteps: 1 });
    const other = { ...train, hash: "ab".repeat(32) };
    for (
      const [over, want] of [
        [{ lr: 0.5 }, /other settings \(lr 0\.05 -> 0\.5\)/],
        [{ seed: 7, epochs: 3 }, /other settings \(epochs 2 -> 3, seed 3 -> 7\)/],
        [{ train: other }, /other settings \(data cef7d750c512 -> abababababab\)/],
      ] as const
    ) {
      await assert.rejects(run(over), (e: Error) => {
        assert.match(e.message, want);
        assert.match(e.message, /choose another --out, or delete .*checkpoint\.safetensors/);
        assert.equal(e.message.includes("\n"), false, "one line");
        return true;
      });
    }
    // The same settings resume, and say so.
    const lines: string[] = [];
    const log = console.error;
    console.error = (m: string) => lines.push(String(m));
    try {
      await run({ quiet: false, stopAfterSteps: 1 });
    } finally {
      console.error = log;
    }
    assert.ok(lines.some((l) => /^resuming from step 1 of 4 \(/.test(l)), lines.join("\n"));
  });
});

Deno.test("classifier: a checkpoint without recorded settings is not resumed blindly", async () => {
  await withTmp(async (dir) => {
    const checkpoint = `${dir}/checkpoint.safetensors`;
    const m = tiny();
    // What the previous version wrote: tensors and loop state, no settings.
    await saveCheckpoint(checkpoint, { modules: { model: m }, optimizers: {} }, { step: 1 });
    await assert.rejects(
      trainClassifier({ ...common, model: m, checkpoint }),
      /records no training settings .*delete .*checkpoint\.safetensors to start over/,
    );
    m.dispose();
  });
});

Deno.test("purifier: a resume with another learning rate is refused", async () => {
  await withTmp(async (dir) => {
    const checkpoint = `${dir}/checkpoint.safetensors`;
    const transform = (r: Parameters<typeof rt2>[0], x: Parameters<typeof rt2>[1]) =>
      rt2(r, x, { sigma: 0.25, missingRate: 0.25, blockSize: 4 });
    const run = async (lr: number) => {
      const purifier = new Purifier({ width: 4, dilations: [2], seed: 1 });
      const discriminator = new PatchDiscriminator({ width: 4, layers: 3, seed: 1 });
      try {
        await trainPurifier({
          purifier,
          discriminator,
          train,
          transform,
          terms: atopLoss(1, 0, 0).filter((t) => t.term !== "ce"),
          epochs: 1,
          batchSize: 4,
          lr,
          trainLimit: 8,
          checkpoint,
          stopAfterSteps: 1,
          quiet: true,
        });
      } finally {
        purifier.dispose();
        discriminator.dispose();
      }
    };
    await run(1e-3);
    await assert.rejects(run(2e-3), /other settings \(lr 0\.001 -> 0\.002\)/);
  });
});

Deno.test("deno task train: a finished --out rerun with other settings or data is refused", async () => {
  await withTmp(async (dir) => {
    const data = `${dir}/data.bin`, other = `${dir}/other.bin`;
    const bytes = await Deno.readFile(`${DATA_DIR}test_subset.bin`);
    await Deno.writeFile(data, bytes);
    bytes[1] ^= 1; // one pixel of the first image
    await Deno.writeFile(other, bytes);
    const args = (d: string, ...more: string[]) => [
      ...["--arch", "smallcnn", "--data", d, "--limit", "32", "--batch-size", "16"],
      ...["--epochs", "1", "--out", `${dir}/run`, ...more],
    ];
    let r = await runCli("runtime/cli/train.ts", args(data));
    assert.equal(r.code, 0, r.stderr);
    r = await runCli("runtime/cli/train.ts", args(other, "--seed", "7", "--lr", "0.5"));
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      errorLine(r),
      /^train: .*checkpoint\.safetensors: the checkpoint is from a run with other settings \(data [0-9a-f]{12} -> [0-9a-f]{12}, lr 0\.1 -> 0\.5, seed 0 -> 7\); .*choose another --out, or delete/,
    );
    r = await runCli("runtime/cli/train.ts", args(data));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resuming from step 2 of 2/);
  });
});
