// GPU time per kernel of the quick preset's purifier pre-training steps, as the pipeline runs
// them (its transform, purifierSize, purifier and critic, loss terms):
// `ATOP_PROFILE=1 deno run -A tests/bench/profile_pretrain.ts [steps] [preset]`.
import { engine, initEngine } from "../../runtime/engine.ts";
import { parseSpec } from "../../dsl/spec.ts";
import { resolveSpecInput } from "../../dsl/presets.ts";
import { stageTerms, trainingTransform } from "../../dsl/run.ts";
import { purifierOptions } from "../../dsl/compile.ts";
import { PatchDiscriminator, Purifier } from "../../runtime/models/mod.ts";
import { trainPurifier } from "../../runtime/train/purifier.ts";
import { readCifar } from "../../runtime/data/mod.ts";

await initEngine();
const steps = Number(Deno.args[0] ?? 12);
const preset = (Deno.args[1] ?? "quick") as "quick";
const spec = parseSpec(resolveSpecInput({ name: "profile" }, preset));
const ps = spec.purifier;
if (ps.kind !== "deepfill") throw new Error("no purifier in this preset");
const s = spec.pretraining;
const train = await readCifar(new URL("../../data/cifar10/", import.meta.url).pathname, {
  split: "train",
});
const G = new Purifier(purifierOptions(spec));
const D = new PatchDiscriminator({ width: ps.discWidth, layers: ps.discLayers, seed: spec.seed });
const scale = (spec.purifierSize ?? spec.imageSize) / spec.imageSize;
const t0 = performance.now();
await trainPurifier({
  purifier: G,
  discriminator: D,
  train,
  transform: trainingTransform(spec, s),
  terms: stageTerms(spec.loss, "pretraining"),
  epochs: 1,
  batchSize: s.batchSize,
  lr: s.lr,
  seed: spec.seed,
  trainLimit: steps * s.batchSize,
  scale,
  ema: s.ema,
  quiet: true,
});
await engine().sync();
const ms = performance.now() - t0;
console.log(
  `${preset} pre-training: ${steps} steps of ${s.batchSize} in ${(ms / 1000).toFixed(1)} s`,
);
const prof = await engine().profileReport();
const total = prof.reduce((a, p) => a + p.ms, 0);
for (const p of prof.slice(0, 25)) {
  console.log(
    `  ${p.kernel.padEnd(34)} ${p.ms.toFixed(1).padStart(9)} ms ${
      (100 * p.ms / total).toFixed(1).padStart(5)
    }%  ${p.launches}`,
  );
}
