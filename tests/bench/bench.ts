// Throughput benchmarks of the kernels and of whole training / attack steps.
//   deno task bench [--json out/bench.json] [--adapter auto|cpu|gpu] [--only a,b] [--quick]
// Each benchmark runs once to warm up (pipeline compilation, buffer pool), then is timed
// `reps` times; the median is reported. A timing ends when a tiny reduction of the result has
// been read back, so all GPU work of the repetition is included.

import { parseArgs } from "node:util";
import type { AdapterChoice } from "../../runtime/device.ts";
import { initEngine } from "../../runtime/engine.ts";
import { convStorage } from "../../runtime/ops/precision.ts";
import { keep, Tensor, tidy, tidyAsync } from "../../runtime/tensor.ts";
import { backward, grad } from "../../runtime/autograd.ts";
import * as ops from "../../runtime/ops/mod.ts";
import { createModel } from "../../runtime/models/mod.ts";
import { SGD } from "../../runtime/optim.ts";
import { classifierTarget } from "../../runtime/attacks/target.ts";
import { pgd } from "../../runtime/attacks/pgd.ts";
import { apgd } from "../../runtime/attacks/apgd.ts";
import { fabTargeted } from "../../runtime/attacks/fab.ts";
import { square } from "../../runtime/attacks/square.ts";
import { CompiledStep } from "../../runtime/graph/capture.ts";
import { engine } from "../../runtime/engine.ts";
import { writeJsonAtomic } from "../../runtime/io/atomic.ts";
import { Adam } from "../../runtime/optim.ts";
import { PatchDiscriminator, Purifier } from "../../runtime/models/mod.ts";
// A namespace import, so that this file still loads in an older tree without the helper
// (tests/bench/compare.ts runs it there; only the pre-training bench then refuses).
import * as purifierTraining from "../../runtime/train/purifier.ts";
import { ExampleDraws, Rng } from "../../runtime/rng.ts";
import { autoAttack } from "../../runtime/attacks/autoattack.ts";
import { rt1 } from "../../runtime/transforms.ts";
import { parseSpec } from "../../dsl/spec.ts";
import { resolveSpecInput } from "../../dsl/presets.ts";
import { buildModules, defenseTarget } from "../../dsl/compile.ts";
// Issue 12's workload (67d94fe's quick preset); compare.ts copies it into an old tree too.
import { spec as issue12Spec } from "./quick_67d94fe.ts";

interface Result {
  name: string;
  value: number;
  unit: string;
}

interface Bench {
  name: string;
  unit: string;
  /** Work per repetition, in `unit` x seconds (FLOPs / 1e9 for GFLOP/s, images for images/s). */
  work: number;
  /** Allocates inputs; returns one repetition (resolves when its GPU work is done; a
   * number it resolves to is the time in ms to report instead of the whole repetition's)
   * and a cleanup. */
  setup(): { rep: () => Promise<number | void>; cleanup: () => void };
  /** Included in the default run (false: only with --only). */
  default?: boolean;
  /** A count benchmark: `setup().rep` is one step or call; the value is the engine counter's
   * increase over it, not a speed. */
  count?: "dispatches" | "submits" | "readbacks";
  /** Untimed repetitions before the timed ones (default 1: pipelines compiled, pool filled; a
   * compiled step needs 3: its first call runs eagerly, the next two are recorded). */
  warmups?: number;
  /** Repetitions run before a count's (a compiled step is captured on its second and third
   * calls and replayed from the fourth). */
  countAfter?: number;
}

/** Deterministic pseudo-random values in [lo, hi) (mulberry32), so runs see the same data. */
function randomData(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

function randomTensor(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  return keep(Tensor.fromData(randomData(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape));
}

/** Waits for every kernel that produced `ts` by reading back one number depending on all. */
async function finish(...ts: Tensor[]): Promise<void> {
  await tidyAsync(async () => {
    let s = ops.sum(ts[0]);
    for (const t of ts.slice(1)) s = ops.add(s, ops.sum(t));
    await s.data();
  });
}

function labels(n: number, k: number, seed: number): number[] {
  return Array.from(randomData(n, seed), (u) => Math.min(k - 1, Math.floor(u * k)));
}

/** An n x n x n product; 4096 is issue 13's GPU figure (not in the default run: about 8 s a
 * repetition on the CPU adapter). */
function matmulBench(n: number, inDefault = true): Bench {
  return {
    name: `matmul_${n}_gflops`,
    unit: "GFLOP/s",
    work: (2 * n * n * n) / 1e9,
    default: inDefault,
    setup() {
      const a = randomTensor([n, n], 1), b = randomTensor([n, n], 2);
      return {
        rep: () => tidyAsync(() => finish(ops.matmul(a, b))),
        cleanup: () => [a, b].forEach((t) => t.dispose()),
      };
    },
  };
}

type ConvPart = "fwd_bwd" | "fwd" | "bwd_data" | "bwd_weight";

/** 3x3 convolution, padding 1, batch 64, 64 -> 64 channels, 32x32. */
function convBench(part: ConvPart): Bench {
  const N = 64, C = 64, H = 32, W = 32;
  const passFlops = 2 * N * C * C * 9 * H * W;
  return {
    name: `conv3x3_c64_${part}_gflops`,
    unit: "GFLOP/s",
    work: ((part === "fwd_bwd" ? 3 : 1) * passFlops) / 1e9,
    default: part === "fwd_bwd",
    setup() {
      const x = randomTensor([N, C, H, W], 3);
      const w = randomTensor([C, C, 3, 3], 4, -0.05, 0.05);
      x.requiresGrad = part === "fwd_bwd" || part === "bwd_data";
      w.requiresGrad = part === "fwd_bwd" || part === "bwd_weight";
      const seed = keep(ops.ones([N, C, H, W]));
      const rep = () =>
        tidyAsync(async () => {
          if (part === "fwd") return await finish(ops.conv2d(x, w, null, { padding: 1 }));
          const y = ops.conv2d(x, w, null, { padding: 1 });
          const wrt = part === "fwd_bwd" ? [x, w] : part === "bwd_data" ? [x] : [w];
          if (part === "fwd_bwd") return await finish(...grad(y, wrt, seed));
          await finish(y); // time the backward kernel alone
          const t0 = performance.now();
          await finish(...grad(y, wrt, seed));
          return performance.now() - t0;
        });
      return { rep, cleanup: () => [x, w, seed].forEach((t) => t.dispose()) };
    },
  };
}

/** `tag`: a name part for a second batch size (issue 12's GPU figures are at batch 128). */
function trainBench(arch: string, batch: number, tag = "", inDefault = true): Bench {
  return {
    name: `${arch}${tag}_train_step_images_per_s`,
    unit: "images/s",
    work: batch,
    default: inDefault,
    warmups: 3,
    setup() {
      const parts = trainStepParts(arch, batch);
      // Compiled as the trainer compiles it (ATOP_GRAPH=off: eager).
      const step = new CompiledStep(`bench ${arch}`, parts.body);
      const rep = async () => {
        const [loss] = step.run(...parts.inputs);
        await finish(loss, parts.probe);
        loss.dispose();
      };
      return {
        rep,
        cleanup: () => {
          step.dispose();
          parts.dispose();
        },
      };
    },
  };
}

/** A classifier training step (SGD with momentum; the update after the graph's scope), with
 * its inputs: the benches' and tests/bench/graph_ab.ts's. */
export function trainStepParts(arch: string, batch: number) {
  const model = createModel(arch, { seed: 1 });
  model.train();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = randomTensor([batch, 3, 32, 32], 5, 0, 1);
  const y = keep(Tensor.fromData(labels(batch, 10, 6), [batch]));
  const body = (x: Tensor, y: Tensor): Tensor[] => {
    const loss = tidy(() => {
      const l = ops.crossEntropy(model.forward(x), y);
      backward(l);
      return l;
    });
    opt.step();
    opt.zeroGrad();
    return [loss];
  };
  return {
    body,
    inputs: [x, y] as [Tensor, Tensor],
    /** A weight, read with the loss so that the update is included in a timing. */
    probe: model.parameters()[0],
    dispose: () => {
      [x, y].forEach((t) => t.dispose());
      opt.dispose();
      model.dispose();
    },
  };
}

function pgdBench(arch: string, batch: number, tag = "", inDefault = true): Bench {
  return {
    name: `pgd10_${arch}${tag}_images_per_s`,
    unit: "images/s",
    work: batch,
    default: inDefault,
    setup() {
      const model = createModel(arch, { seed: 1 });
      const target = classifierTarget(model);
      const x = randomTensor([batch, 3, 32, 32], 7, 0, 1);
      const lab = labels(batch, 10, 8);
      const rep = async () => {
        const r = await pgd({ target, x, labels: lab }, { steps: 10, eps: 8 / 255 });
        await finish(r.xAdv);
        r.xAdv.dispose();
      };
      return {
        rep,
        cleanup: () => {
          x.dispose();
          model.dispose();
        },
      };
    },
  };
}

/** Engine counters over one step or call (machine-independent). Steps are followed by a flush
 * so that their recorded work counts as the submit it is; the bench's own readbacks (the
 * `finish` of speed benchmarks) are not part of a count repetition. */
function trainStep(arch: string, batch: number) {
  const model = createModel(arch, { seed: 1 });
  model.train();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = randomTensor([batch, 3, 32, 32], 5, 0, 1);
  const y = keep(Tensor.fromData(labels(batch, 10, 6), [batch]));
  const compiled = new CompiledStep(`count ${arch}`, (x: Tensor, y: Tensor) => {
    // The update runs after the scope: unread forward intermediates are dropped, not computed
    // before the in-place write.
    tidy(() => backward(ops.crossEntropy(model.forward(x), y)));
    opt.step();
    opt.zeroGrad();
  });
  const step = () => {
    compiled.run(x, y);
    engine().flush();
    return Promise.resolve();
  };
  return {
    rep: step,
    cleanup: () => {
      [x, y].forEach((t) => t.dispose());
      compiled.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

type CountedAttack = "pgd10" | "apgd_ce100" | "fab_t20" | "square1000";

function attackCall(which: CountedAttack, arch: string, batch: number) {
  const model = createModel(arch, { seed: 1 });
  const target = classifierTarget(model);
  const x = randomTensor([batch, 3, 32, 32], 7, 0, 1);
  const lab = labels(batch, 10, 8);
  const rep = async () => {
    const input = { target, x, labels: lab, attackAll: true };
    const r = which === "pgd10"
      ? await pgd(input, { steps: 10, eps: 8 / 255 })
      : which === "apgd_ce100"
      ? await apgd(input, { steps: 100, loss: "ce" })
      : which === "fab_t20"
      ? await fabTargeted(input, { steps: 20, targets: 2 })
      : await square(input, { queries: 1000, eps: 4 / 255 });
    engine().flush();
    r.xAdv.dispose();
  };
  return { rep, cleanup: () => [x, model].forEach((t) => t.dispose()) };
}

function countBench(
  name: string,
  count: NonNullable<Bench["count"]>,
  unit: string,
  make: () => { rep: () => Promise<void>; cleanup: () => void },
  isDefault = true,
  countAfter = 0,
): Bench {
  return { name, unit, work: 1, count, default: isDefault, setup: make, countAfter };
}

const COUNT_BENCHES: Bench[] = [
  ...(["dispatches", "submits", "readbacks"] as const).map((c) =>
    countBench(
      `resnet18_train_step_${c}`,
      c,
      "per step",
      () => trainStep("resnet18", 32),
      true,
      3,
    )
  ),
  ...(["dispatches", "submits", "readbacks"] as const).map((c) =>
    countBench(`pgd10_resnet18_${c}`, c, "per call", () => attackCall("pgd10", "resnet18", 32))
  ),
  // 100 ResNet-18 forward+backward passes: minutes on a CPU adapter, so only with --only.
  countBench(
    "apgd_ce100_resnet18_readbacks",
    "readbacks",
    "per call",
    () => attackCall("apgd_ce100", "resnet18", 32),
    false,
  ),
  // FAB-T (20 steps, 2 targets) and Square (Linf 4/255, 1000 queries) on an untrained small
  // CNN: their readbacks per call (state on the GPU), with --only.
  ...(["fab_t20", "square1000"] as const).map((a) =>
    countBench(
      `${a}_smallcnn_readbacks`,
      "readbacks",
      "per call",
      () => attackCall(a, "smallcnn", 32),
      false,
    )
  ),
];

function criticThenGeneratorLoss(): typeof purifierTraining.criticThenGeneratorLoss {
  const step = purifierTraining.criticThenGeneratorLoss;
  if (!step) {
    throw new Error(
      "this tree has no criticThenGeneratorLoss: compare it with --bench 1447207 (that bench " +
        "inlines the step)",
    );
  }
  return step;
}

/** A purifier pre-training step as the trainer runs it: RT1 on a batch, one generator forward,
 * critic step, generator step (L1 coarse + fine + 0.01 hinge GAN), Adam on both; DeepFill
 * width 8, batch 16. */
function purifierStepBench(batch: number): Bench {
  return {
    name: "purifier_w8_pretrain_step_images_per_s",
    unit: "images/s",
    work: batch,
    default: true,
    warmups: 3,
    setup() {
      const parts = pretrainStepParts(batch);
      // The trainer's step (runtime/train/purifier.ts), compiled as the trainer compiles it.
      const step = new CompiledStep("bench pretrain", parts.body);
      const rep = async () => {
        const [dl, gl] = step.run(parts.x);
        await finish(dl, gl);
        for (const t of [dl, gl]) t.dispose();
      };
      return {
        rep,
        cleanup: () => {
          step.dispose();
          parts.dispose();
        },
      };
    },
  };
}

/** The pre-training step of purifierStepBench, with its input (also tests/bench/graph_ab.ts's). */
export function pretrainStepParts(batch: number) {
  const G = new Purifier({ width: 8, dilations: [2, 4], seed: 1, prefill: "pushpull" });
  const D = new PatchDiscriminator({ width: 8, layers: 3, seed: 1 });
  G.train();
  D.train();
  const optG = new Adam(G.parameters(), { lr: 1e-3, betas: [0.5, 0.999] });
  const optD = new Adam(D.parameters(), { lr: 1e-3, betas: [0.5, 0.999] });
  const dParams = D.parameters();
  const x = randomTensor([batch, 3, 32, 32], 9, 0, 1);
  const rng = new Rng(1, 2);
  const body = (x: Tensor): Tensor[] => {
    const { image, mask } = rt1(rng, x, { missingRate: 0.25, blockSize: 4 });
    const { dLoss, total } = criticThenGeneratorLoss()(
      { G, D, optD, dParams },
      { image, mask, real: x },
      (out) => ({
        total: ops.add(
          ops.add(ops.l1Loss(out.coarse, x), ops.l1Loss(out.fine, x)),
          ops.scale(ops.hingeGanLossG(D.score(out.fine, mask)), 0.01),
        ),
      }),
    );
    optG.step();
    optG.zeroGrad();
    return [dLoss, total];
  };
  return {
    body,
    x,
    dispose: () => {
      x.dispose();
      optG.dispose();
      optD.dispose();
      G.dispose();
      D.dispose();
    },
  };
}

/** AutoAttack "rand" (APGD-CE + APGD-DLR, EOT 20) through issue 12's defense, the quick preset's
 * of 67d94fe, pinned in quick_67d94fe.ts so that the comparison with that tree measures one
 * workload (the quick preset has since moved its purifier to 64x64): RT2 -> width-8 purifier with
 * push-pull prefill at 32x32 -> smallcnn, random weights, Linf 8/255, on `batch` images with
 * `steps` iterations per attack: one repetition is 2 * (steps + 1) * 20 forward+backward passes
 * per image. */
function autoAttackRandBench(batch: number, steps: number): Bench {
  return {
    name: `autoattack_rand_eot20_quick_defense_images_per_s`,
    unit: "images/s",
    work: batch,
    default: false,
    setup() {
      // Every field is set by the workload, so the preset under it contributes nothing.
      const spec = parseSpec(resolveSpecInput(issue12Spec, "paper"));
      const ps = spec.purifier;
      if (ps.kind !== "deepfill") throw new Error("bench: the quick preset has no purifier");
      const purifier = new Purifier({
        width: ps.width,
        dilations: ps.dilations,
        prefill: ps.prefill,
        seed: 1,
      });
      const modules = buildModules(spec, purifier);
      const target = defenseTarget({
        spec,
        modules,
        variant: { transform: true, purifier: true },
        rng: new Rng(spec.seed, 0xe7a1),
        draws: new ExampleDraws(spec.seed, 0xe7a1),
      });
      const x = randomTensor([batch, 3, 32, 32], 11, 0, 1);
      const lab = labels(batch, 10, 12);
      const indices = Array.from({ length: batch }, (_, i) => i);
      const rep = async () => {
        target.resetDraws?.(indices);
        const r = await autoAttack(
          { target, x, labels: lab, indices, attackAll: true },
          { version: "rand", steps, eot: 20 },
        );
        await finish(r.xAdv);
        r.xAdv.dispose();
      };
      return {
        rep,
        cleanup: () => {
          x.dispose();
          purifier.dispose();
          modules.classifier.dispose();
        },
      };
    },
  };
}

const BENCHES: Bench[] = [
  matmulBench(1024),
  matmulBench(4096, false),
  convBench("fwd_bwd"),
  convBench("fwd"),
  convBench("bwd_data"),
  convBench("bwd_weight"),
  trainBench("resnet18", 32),
  pgdBench("resnet18", 32),
  // Issue 12's GPU targets (batch 128; minutes on the CPU adapter, so only with --only).
  trainBench("resnet18", 128, "_b128", false),
  pgdBench("resnet18", 128, "_b128", false),
  trainBench("smallcnn", 128),
  purifierStepBench(16),
  autoAttackRandBench(4, 2),
  ...COUNT_BENCHES,
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Counter results of one repetition, shared by the count benchmarks of the same step (they
 * differ only in the counter reported, so the step runs once for all three). */
const countCache = new Map<string, Record<string, number>>();

async function measureCount(b: Bench): Promise<{ value: number; notes: string }> {
  const key = b.name.replace(/_(dispatches|submits|readbacks)$/, "");
  let delta = countCache.get(key);
  if (!delta) {
    const { rep, cleanup } = b.setup();
    try {
      // No warm-up: a count does not depend on compiled pipelines or a filled pool. Nor on the
      // tuner's choice (every variant is one launch), but a shape timed for the first time
      // launches each candidate twice more: the defaults run instead (ATOP_TUNE=off).
      const eng = engine();
      const tune = Deno.env.get("ATOP_TUNE");
      Deno.env.set("ATOP_TUNE", "off");
      let before = { ...eng.counters };
      let t0 = 0;
      try {
        for (let i = 0; i < (b.countAfter ?? 0); i++) await rep();
        await eng.sync();
        before = { ...eng.counters };
        t0 = performance.now();
        await rep();
      } finally {
        if (tune === undefined) Deno.env.delete("ATOP_TUNE");
        else Deno.env.set("ATOP_TUNE", tune);
      }
      const ms = performance.now() - t0;
      await eng.sync();
      const after = eng.counters as Record<string, number>;
      delta = Object.fromEntries(
        Object.keys(before).map((k) => [k, after[k] - (before as Record<string, number>)[k]]),
      );
      delta.ms = ms;
      countCache.set(key, delta);
    } finally {
      cleanup();
    }
  }
  return {
    value: delta[b.count!],
    notes: `dispatches ${delta.dispatches}, submits ${delta.submits}, readbacks ` +
      `${delta.readbacks}, uploads ${delta.uploads}, mirror copies ${delta.mirrorCopies ?? 0} in ${
        delta.ms.toFixed(0)
      } ms`,
  };
}

async function measure(b: Bench, reps: number): Promise<{ value: number; notes: string }> {
  if (b.count) return await measureCount(b);
  const { rep, cleanup } = b.setup();
  try {
    const timed = async () => {
      const t0 = performance.now();
      const own = await rep();
      return typeof own === "number" ? own : performance.now() - t0;
    };
    // Warm-up: compiles pipelines, fills the buffer pool, captures compiled steps.
    for (let i = 0; i < (b.warmups ?? 1); i++) await timed();
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) ms.push(await timed());
    const med = median(ms);
    return {
      value: b.work / (med / 1000),
      notes: `median ${med.toFixed(1)} ms of ${reps} (min ${Math.min(...ms).toFixed(1)}, ` +
        `max ${Math.max(...ms).toFixed(1)})`,
    };
  } finally {
    cleanup();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

function parseCli() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "string" },
      adapter: { type: "string", default: "auto" },
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      "deno task bench [--json FILE] [--adapter auto|cpu|gpu] [--only name1,name2] [--quick]\n" +
        `benchmarks: ${BENCHES.map((b) => b.name).join(", ")}\n` +
        "(the single-kernel conv benchmarks and apgd_ce100_resnet18_readbacks run only when " +
        "named in --only)",
    );
    Deno.exit(0);
  }
  const adapter = values.adapter as AdapterChoice;
  if (!["auto", "cpu", "gpu"].includes(adapter)) {
    throw new Error(`--adapter must be auto, cpu or gpu, got "${values.adapter}"`);
  }
  let selected = BENCHES.filter((b) => b.default);
  if (values.only) {
    const names = values.only.split(",").map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
    if (unknown.length) {
      throw new Error(
        `--only: unknown benchmark(s) ${unknown.join(", ")}; ` +
          `choose from ${BENCHES.map((b) => b.name).join(", ")}`,
      );
    }
    selected = BENCHES.filter((b) => names.includes(b.name));
  }
  return { adapter, selected, json: values.json, reps: values.quick ? 3 : 5 };
}

async function main() {
  const { adapter, selected, json, reps } = parseCli();
  const eng = await initEngine(adapter);
  const loadBefore = Deno.loadavg();
  console.log(
    `adapter: ${eng.adapter.description} (${eng.adapter.vendor} ${eng.adapter.architecture}, ` +
      `${eng.adapter.backend})` +
      `  deno ${Deno.version.deno}  load ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`,
  );
  const results: Result[] = [];
  const rows = [["name", "value", "unit", "notes"]];
  for (const b of selected) {
    const { value, notes } = await measure(b, reps);
    const shown = b.count ? String(value) : value.toPrecision(4);
    results.push({ name: b.name, value: Number(shown), unit: b.unit });
    rows.push([b.name, shown, b.unit, notes]);
    console.log(`${b.name}: ${shown} ${b.unit}  ${notes}`);
    // ATOP_PROFILE=1: GPU time per kernel over this benchmark (warm-up and repetitions).
    const prof = typeof eng.profileReport === "function" ? await eng.profileReport(true) : [];
    if (prof.length) {
      const total = prof.reduce((a, p) => a + p.ms, 0);
      for (const p of prof.slice(0, Number(Deno.env.get("ATOP_PROFILE_TOP") ?? 12))) {
        console.log(
          `    ${p.kernel.padEnd(32)} ${p.ms.toFixed(1).padStart(9)} ms ` +
            `${(100 * p.ms / total).toFixed(1).padStart(5)}%  ${p.launches} launches`,
        );
      }
    }
  }
  await eng.sync();
  console.log("\n" + table(rows));
  const loadAfter = Deno.loadavg();
  console.log(`load average before ${loadBefore.join(" ")}, after ${loadAfter.join(" ")}`);
  if (json) {
    await writeJsonAtomic(json, {
      adapter: eng.adapter,
      conv_storage: convStorage(),
      deno: Deno.version,
      date: new Date().toISOString(),
      loadavg: { before: loadBefore, after: loadAfter },
      results,
    });
    console.log(`wrote ${json}`);
  }
}

if (import.meta.main) await main();
