// Per-launch kernel time of one conv variant on one layer: the forward, input gradient and weight
// gradient of a 3x3, padding 1 convolution, each kernel timed alone (ATOP_PROFILE=1), best of the
// repetitions. For comparing variants (BENCHMARKS.md, "constant loop bounds"):
//   ATOP_PROFILE=1 deno run -A tests/bench/conv_variants.ts VARIANT BATCH CHANNELS SIZE [REPS]
//   e.g. ATOP_PROFILE=1 deno run -A tests/bench/conv_variants.ts tex:tile16+k 64 64 32 8
// The weight gradient runs the variant's block without "+k" (it has none) and 16x8 -> 16.

import { parseArgs } from "node:util";
import { engine, initEngine } from "../../runtime/engine.ts";
import { type Tensor, tidy } from "../../runtime/tensor.ts";
import { grad } from "../../runtime/autograd.ts";
import * as ops from "../../runtime/ops/mod.ts";
import { forceVariant } from "../../runtime/tune/tuner.ts";
import { Rng } from "../../runtime/rng.ts";

const { positionals } = parseArgs({ args: Deno.args, allowPositionals: true });
const [variant, ...nums] = positionals;
const [N, C, S, reps = 5] = nums.map(Number);
if (!variant || ![N, C, S, reps].every((v) => Number.isInteger(v) && v > 0)) {
  console.error(
    "usage: ATOP_PROFILE=1 deno run -A tests/bench/conv_variants.ts VARIANT BATCH " +
      "CHANNELS SIZE [REPS]  (e.g. tex:tile16+k 64 64 32 8)",
  );
  Deno.exit(2);
}
if (Deno.env.get("ATOP_PROFILE") !== "1") {
  console.error("conv_variants: set ATOP_PROFILE=1 (each kernel is timed in its own pass)");
  Deno.exit(2);
}
await initEngine();
forceVariant("conv2d_fwd", variant);
forceVariant("conv2d_bwd_data", variant);
forceVariant("conv2d_bwd_weight", variant.replace("+k", "").replace("tile16x8", "tile16"));
const rng = new Rng(1);
const x = rng.uniform([N, C, S, S]);
const w = rng.uniform([C, C, 3, 3]);
x.requiresGrad = w.requiresGrad = true;
const best = new Map<string, number>();
for (let r = 0; r < reps; r++) {
  const outs: Tensor[] = tidy(() => {
    const y = ops.conv2d(x, w, null, { padding: 1 });
    return grad(ops.sum(ops.mul(y, y)), [x, w]);
  });
  for (const t of outs) await t.data();
  outs.forEach((t) => t.dispose());
  for (const e of await engine().profileReport(true)) {
    const ms = e.ms / e.launches;
    if (e.kernel.startsWith("conv2d")) best.set(e.kernel, Math.min(best.get(e.kernel) ?? ms, ms));
  }
}
const gflop = (2 * N * C * C * 9 * S * S) / 1e9;
for (const [k, ms] of [...best].sort()) {
  console.log(
    `${k.padEnd(24)} ${ms.toFixed(1).padStart(8)} ms  ${(gflop / ms * 1e3).toFixed(1)} GFLOP/s`,
  );
}
