#!/usr/bin/env bash
# One call on a lent GPU (the device tool): the GPU bars of issues 12, 13 and 14 in one command,
# since a session has 15 minutes of device time and 10 per command. Run from the repo root:
#   bash tests/bench/device_check.sh [SECONDS]     (SECONDS: the whole budget, default 570;
#   give the device call timeout_s 600)
# with the device tool's `carry: [".gl", ".deno"]`. Prepared here (ignored folders, not in git):
#   .gl/    the Vulkan and GL loaders as .deb files (the device README's apt-get download line)
#   .deno/  deno.xz (this machine's Deno binary, xz -9), npm.tar.xz (DENO_DIR's npm/ with zod)
#           and torch_twin.py (the bench's shapes in PyTorch; Python stays out of the repo)
# Stages, each logged with its wall time, each writing under $OUT (the files that come back):
#   1. the adapter check (it must be the GPU, never a fallback);
#   2. the kernel and graph tests on the GPU adapter (the variants the CPU never takes);
#   3. `deno task bench --adapter gpu` on issues 12 and 13's benchmarks (conv and ResNet-18 again
#      with ATOP_F16=1), and the PyTorch twin on the same GPU, then tests/bench/device_summary.ts: ratios and shares of the fp32 peak;
#   4. the standard preset with what time is left: its log gives stage times and attack rates
#      even when it cannot finish (the preset is sized for about 10 minutes on a GPU).
set -u -o pipefail
BUDGET=${1:-570}
START=$(date +%s)
OUT=${OUT:-out/device}
mkdir -p "$OUT"
left() { echo $((BUDGET - ($(date +%s) - START))); }
# Seconds for a stage that must leave RESERVE seconds to the stages after it (at least 10).
limit() {
  local s=$(($(left) - $1))
  [ $s -lt 10 ] && s=10
  echo $s
}
log() { echo "[device_check +$(($(date +%s) - START))s] $*" | tee -a "$OUT/stages.log"; }

# 1. Loaders, Deno, zod; the adapter.
# (grep without -q: with pipefail, -q's early exit could fail ldconfig with SIGPIPE)
if [ -d .gl ] && ! ldconfig -p | grep libvulkan.so.1 >/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nv=/usr/local/nvidia/share
[ -f $nv/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=$nv/vulkan/icd.d/nvidia_icd.json
[ -f $nv/glvnd/egl_vendor.d/10_nvidia.json ] &&
  export __EGL_VENDOR_LIBRARY_FILENAMES=$nv/glvnd/egl_vendor.d/10_nvidia.json
if ! command -v deno >/dev/null && [ -f .deno/deno.xz ]; then
  mkdir -p /tmp/deno-bin
  xz -dc .deno/deno.xz >/tmp/deno-bin/deno 2>/dev/null ||
    python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.deno/deno.xz'),open('/tmp/deno-bin/deno','wb'))"
  chmod +x /tmp/deno-bin/deno
  export PATH=/tmp/deno-bin:$PATH
fi
if [ -f .deno/npm.tar.xz ]; then
  export DENO_DIR=/tmp/deno-dir
  mkdir -p $DENO_DIR
  tar xJf .deno/npm.tar.xz -C $DENO_DIR 2>/dev/null ||
    python3 -c "import tarfile;tarfile.open('.deno/npm.tar.xz').extractall('$DENO_DIR')"
fi
# ATOP_ADAPTER=cpu runs the plumbing here, on the software adapter.
export ATOP_ADAPTER=${ATOP_ADAPTER:-gpu} NO_COLOR=1
log "deno $(deno --version | head -1); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
# --check: install nothing (the machine has no network); a software adapter is no GPU.
deno run -A runtime/cli/setup.ts --check 2>&1 | tee "$OUT/setup.log" | tee -a "$OUT/stages.log"
if [ "${PIPESTATUS[0]}" != 0 ] ||
  { [ "$ATOP_ADAPTER" = gpu ] && grep -q "(software)" "$OUT/setup.log"; }; then
  log "setup: no GPU adapter; stopping"
  exit 1
fi

# 2. Kernel and graph tests on the GPU (the whole suite took 2:38 on the H100 in November, with
# fewer tests: these are the ones whose kernels have GPU-only variants).
log "tests on the GPU adapter"
timeout -k 10 $(limit 380) deno test -A tests/ops_*.test.ts tests/fusion.test.ts \
  tests/graph_capture.test.ts tests/tune.test.ts tests/determinism_memory.test.ts \
  tests/execution.test.ts >"$OUT/tests.log" 2>&1
code=$? # 124: stopped for time
log "tests: exit $code; $(grep -E '^(ok|FAILED) \|' "$OUT/tests.log" | tail -1)"

# 3. Benchmarks, ours and PyTorch's, on the same GPU.
log "bench"
timeout -k 10 $(limit 230) deno run -A tests/bench/bench.ts --adapter $ATOP_ADAPTER --quick \
  --json "$OUT/bench_gpu.json" --only matmul_1024_gflops,matmul_4096_gflops,\
conv3x3_c64_fwd_bwd_gflops,resnet18_train_step_images_per_s,pgd10_resnet18_images_per_s,\
resnet18_b128_train_step_images_per_s,pgd10_resnet18_b128_images_per_s,\
purifier_w8_pretrain_step_images_per_s,autoattack_rand_eot20_quick_defense_images_per_s,\
resnet18_train_step_dispatches,resnet18_train_step_submits,resnet18_train_step_readbacks,\
pgd10_resnet18_dispatches,pgd10_resnet18_submits,pgd10_resnet18_readbacks,\
apgd_ce100_resnet18_readbacks 2>&1 | tee "$OUT/bench.log"
log "bench: exit ${PIPESTATUS[0]}"
log "bench with half-float conv operands (ATOP_F16=1)"
ATOP_F16=1 timeout -k 10 $(limit 160) deno run -A tests/bench/bench.ts --adapter $ATOP_ADAPTER --quick \
  --json "$OUT/bench_gpu_f16.json" --only conv3x3_c64_fwd_bwd_gflops,\
resnet18_b128_train_step_images_per_s,pgd10_resnet18_b128_images_per_s 2>&1 | tee "$OUT/bench_f16.log"
log "bench (ATOP_F16=1): exit ${PIPESTATUS[0]}"
log "PyTorch twin"
if [ -f .deno/torch_twin.py ]; then
  timeout -k 5 90 python3 .deno/torch_twin.py cuda >"$OUT/torch_gpu.json" 2>"$OUT/torch_gpu.err"
fi
deno run -A tests/bench/device_summary.ts "$OUT/bench_gpu.json" "$OUT/torch_gpu.json" \
  "$OUT/bench.log" |
  tee "$OUT/summary.md"

# 4. The standard preset with the time left.
log "standard preset, $(limit 15) s"
timeout -k 5 $(limit 15) deno run -A pipelines/cifar10_atop.ts --preset standard \
  --adapter $ATOP_ADAPTER --out /tmp/std >"$OUT/standard.log" 2>&1
log "standard preset: exit $? (124: stopped for time)"
grep -E '^\[|cached|done|steps/s|it/s' "$OUT/standard.log" | tail -n 30
cp /tmp/std/*/report.md "$OUT/standard_report.md" 2>/dev/null
log "done"
