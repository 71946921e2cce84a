// Inpainting quality tables (runtime/eval/inpainting.ts, dsl/inpainting_eval.ts) on a few test
// images with a tiny, freshly initialised purifier.

import { assert, gpu } from "./helpers/check.ts";
import { type Classifier, createModel, Purifier } from "../runtime/models/mod.ts";
import { engine } from "../runtime/engine.ts";
import { gatherBatch, readCifar } from "../runtime/data/mod.ts";
import { imageQualityBatch } from "../runtime/metrics/image.ts";
import { purifierImages } from "../runtime/eval/inpainting.ts";
import {
  drawCase,
  evaluateInpainting,
  inpaintingMarkdown,
  inpaintingSettings,
} from "../dsl/inpainting_eval.ts";
import { parseSpec } from "../dsl/spec.ts";
import { evaluateDefenses } from "../dsl/evaluate.ts";

await gpu();
const DATA = new URL("../data/cifar10/", import.meta.url).pathname;
const test = await readCifar(DATA, { split: "test" });

Deno.test("inpainting settings follow the spec's transforms, AToP's defaults otherwise", () => {
  const clf = { arch: "smallcnn" as const };
  const rt2 = parseSpec({
    name: "a",
    classifier: clf,
    transform: [{ kind: "rt2", sigma: 0.1, missingRate: 0.5, blockSize: 8 }],
  });
  assert.deepEqual(inpaintingSettings(rt2), {
    rt1: { missingRate: 0.5, blockSize: 8 },
    rt2: { missingRate: 0.5, blockSize: 8, sigma: 0.1 },
  });
  const rt1 = parseSpec({ name: "b", classifier: clf, transform: [{ kind: "rt1" }] });
  assert.deepEqual(inpaintingSettings(rt1).rt2, { missingRate: 0.25, blockSize: 4, sigma: 0.25 });
});

Deno.test("inpainting tables: baselines and purifier rows on fixed RT1/RT2 draws", async () => {
  const purifier = new Purifier({ width: 4, dilations: [2], seed: 3 });
  const settings = {
    rt1: { missingRate: 0.25, blockSize: 4 },
    rt2: { missingRate: 0.25, blockSize: 4, sigma: 0.25 },
  };
  const n = 8;
  const report = await evaluateInpainting({
    settings,
    test,
    purifiers: [{ label: "purifier", purifier }],
    seed: 5,
    n,
  });
  assert.equal(report.n, n);
  const [t1, t2] = report.tables;
  assert.deepEqual(t1.rows.map((r) => r.method), [
    "transformed",
    "mean fill",
    "diffusion fill",
    "purifier coarse",
    "purifier refined",
  ]);
  assert.deepEqual(t2.rows.map((r) => r.method), [
    "transformed",
    "mean fill",
    "diffusion fill",
    "blur + diffusion",
    "purifier coarse",
    "purifier refined",
  ]);
  for (const t of report.tables) {
    for (const r of t.rows) {
      for (const v of Object.values(r)) if (typeof v === "number") assert.ok(Number.isFinite(v));
    }
  }
  // RT1 keeps the known pixels exactly: the hole metrics alone see the zeros, and the fills
  // beat the zeros on the holes.
  const [zeros, mean, diffusion] = t1.rows;
  const { x } = gatherBatch(test, Array.from({ length: n }, (_, i) => i));
  const c1 = await drawCase("rt1", settings, x, [n, 3, 32, 32], 5);
  // Per image: the mean clean value over the holes, then averaged over the images.
  let holes = 0, l1 = 0;
  for (let i = 0; i < n; i++) {
    let h = 0, abs = 0;
    for (let p = 0; p < 1024; p++) {
      if (!c1.mask[i * 1024 + p]) continue;
      h++;
      for (let c = 0; c < 3; c++) abs += x[(i * 3 + c) * 1024 + p];
    }
    holes += h;
    l1 += abs / (3 * h) / n;
  }
  assert.ok(Math.abs(holes / (n * 1024) - 0.25) < 0.08, `hole fraction ${holes / (n * 1024)}`);
  assert.ok(Math.abs(zeros.l1_holes! - l1) < 1e-9, `l1 of zeros ${zeros.l1_holes} vs ${l1}`);
  assert.ok(mean.psnr_holes! > zeros.psnr_holes! + 3, `mean fill ${mean.psnr_holes}`);
  assert.ok(diffusion.psnr_holes! > mean.psnr_holes!, `diffusion ${diffusion.psnr_holes}`);
  // RT2: denoising the known pixels beats diffusion fill of the noisy image over the whole image.
  assert.ok(t2.rows[3].psnr > t2.rows[2].psnr, `blur ${t2.rows[3].psnr} vs ${t2.rows[2].psnr}`);
  // The purifier rows are the metrics of its outputs on the same draw, and the draws are fixed.
  const out = await purifierImages(purifier, c1.image, c1.mask, c1.shape);
  assert.deepEqual(t1.rows[4], {
    method: "purifier refined",
    ...imageQualityBatch(out.fine, x, c1.mask, c1.shape).mean,
  });
  const again = await evaluateInpainting({ settings, test, purifiers: [], seed: 5, n });
  assert.deepEqual(again.tables[1].rows, t2.rows.slice(0, 4));
  const md = inpaintingMarkdown(report).join("\n");
  assert.match(md, /## Inpainting quality \(RT1 \/ RT2\)/);
  assert.match(md, /\| RT2 \| blur \+ diffusion \| \d+\.\d\d \| \d\.\d{3} \|/);
  purifier.dispose();
});

Deno.test("pipeline report: report.json and report.md carry both purifiers' inpainting tables", async () => {
  const pretrained = new Purifier({ width: 4, dilations: [2], seed: 1 });
  const atop = new Purifier({ width: 4, dilations: [2], seed: 2 });
  const spec = parseSpec({
    name: "inpainting_report",
    classifier: { arch: "smallcnn" },
    transform: [{ kind: "rt2" }],
    evaluation: {
      limit: 4,
      eotDraws: 1,
      attacks: [{ attack: "pgd", norm: "linf", eps: 8 / 255, steps: 1 }],
    },
  });
  const inpainting = await evaluateInpainting({
    settings: inpaintingSettings(spec),
    test,
    purifiers: [{ label: "purifier", purifier: pretrained }, { label: "atop", purifier: atop }],
    seed: 0,
    n: 4,
  });
  assert.deepEqual(inpainting.tables[0].rows.map((r) => r.method).slice(3), [
    "purifier coarse",
    "purifier refined",
    "atop coarse",
    "atop refined",
  ]);
  const dir = await Deno.makeTempDir();
  const classifier = createModel(
    "smallcnn",
    { seed: 1, widths: [4, 8, 8, 8] } as never,
  ) as Classifier;
  // One cheap attack on the bare classifier and the transform alone; the inpainting figures
  // are passed in.
  const evaluate = (sub: string, figures?: typeof inpainting) =>
    evaluateDefenses({
      spec,
      classifier,
      pretrained: null,
      atop: null,
      test,
      threat: "classifier-only",
      dir: `${dir}/${sub}`,
      log: () => {},
      adapter: engine().adapter,
      quiet: true,
      ...(figures ? { inpainting: figures } : {}),
    });
  const report = await evaluate("a", inpainting);
  assert.deepEqual(report.inpainting, inpainting);
  const json = JSON.parse(await Deno.readTextFile(`${dir}/a/report.json`));
  assert.deepEqual(json.inpainting, JSON.parse(JSON.stringify(inpainting)));
  const md = await Deno.readTextFile(`${dir}/a/report.md`);
  assert.match(md, /## Inpainting quality \(RT1 \/ RT2\)/);
  assert.match(md, /\| RT1 \| atop refined \| [0-9.]+ \|/);
  assert.match(md, /\| RT2 \| purifier coarse \| [0-9.]+ \|/);
  const none = await evaluate("b");
  assert.equal(none.inpainting, null);
  assert.doesNotMatch(await Deno.readTextFile(`${dir}/b/report.md`), /Inpainting quality/);
  for (const m of [pretrained, atop, classifier]) m.dispose();
  await Deno.remove(dir, { recursive: true });
});
