// The device call's summary (tests/bench/device_summary.ts): shares of the fp32 peak and ratios
// to PyTorch against issues 12 and 13's bars.
import assert from "node:assert/strict";
import { fp32Peak, markdown, resultsFromLog, summarize } from "./bench/device_summary.ts";

Deno.test("device summary: peaks by adapter name, shares and ratios against their bars", () => {
  assert.equal(fp32Peak("NVIDIA H100 80GB HBM3"), 66_900);
  assert.equal(fp32Peak("NVIDIA H100 PCIe"), 51_200);
  assert.equal(fp32Peak("NVIDIA H200"), 66_900);
  assert.equal(fp32Peak("llvmpipe (LLVM 15.0.6, 256 bits)"), null);
  const rows = summarize("NVIDIA H100 80GB HBM3", {
    matmul_4096_gflops: 20_000, // 29.9%: over 25%
    conv3x3_c64_fwd_bwd_gflops: 15_000, // 22.4%: under 30%
    resnet18_b128_train_step_images_per_s: 900,
    pgd10_resnet18_b128_images_per_s: 100,
    resnet18_train_step_submits: 1,
    pgd10_resnet18_readbacks: 2,
  }, { resnet18_b128_train_step_images_per_s: 1500, pgd10_resnet18_b128_images_per_s: 250 });
  const by = Object.fromEntries(rows.map((r) => [r.name, r]));
  assert.equal(by.matmul_4096_gflops.pass, true);
  assert.equal(by.matmul_4096_gflops.measure, "29.9% of fp32 peak");
  assert.equal(by.conv3x3_c64_fwd_bwd_gflops.pass, false);
  assert.equal(by.resnet18_b128_train_step_images_per_s.pass, true); // 0.6x
  assert.equal(by.pgd10_resnet18_b128_images_per_s.pass, false); // 0.4x
  assert.equal(by.resnet18_train_step_submits.pass, true);
  assert.equal(by.pgd10_resnet18_readbacks.pass, false);
  assert.equal(by.apgd_ce100_resnet18_readbacks.pass, null); // not measured: no verdict
  // An unknown adapter gives no share, so no verdict on the peak bars.
  const cpu = summarize("llvmpipe", { matmul_4096_gflops: 30 }, {});
  assert.equal(cpu.find((r) => r.name === "matmul_4096_gflops")!.pass, null);
  assert.match(
    markdown("NVIDIA H100 80GB HBM3", rows),
    /\| conv3x3_c64_fwd_bwd_gflops \| 15000 \|.*\| no \|/,
  );
});

Deno.test("device summary: results read from the bench's printed lines when it had no JSON", () => {
  const log = "adapter: NVIDIA H200 (4318 , vulkan)  deno 2.9.6  load 0.1\n" +
    "matmul_4096_gflops: 17.5 GFLOP/s  median 7.8 ms of 3\n" +
    "    conv2d_fwd                 12.0 ms  3.0%  4 launches\n" +
    "pgd10_resnet18_readbacks: 1 per call  dispatches 1365\n";
  assert.deepEqual(resultsFromLog(log), { matmul_4096_gflops: 17.5, pgd10_resnet18_readbacks: 1 });
});
