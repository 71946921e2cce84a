// Fresh-machine behaviour: the backend is chosen explicitly (Vulkan on Linux, never wgpu's GL
// fallback), a missing driver fails fast with the fix, `deno task setup` reports what it
// found, and the data shipped in data/cifar10/ is checksummed on every read.

import assert from "node:assert/strict";
import { join } from "node:path";
import { gpu } from "./helpers/check.ts";
import { engine } from "../runtime/engine.ts";
import { chooseBackend, GL_REFUSED, nativeBackend, NO_ADAPTER_FIX } from "../runtime/device.ts";
import { checkEmbeddedData } from "../runtime/cli/setup.ts";
import { EMBEDDED_CIFAR10, fullDataset, readCifar } from "../runtime/data/mod.ts";
import { defaultData } from "../dsl/cli.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Runs a Deno subcommand from the repository root with extra environment variables. */
async function deno(args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: r.code,
    seconds: (performance.now() - t0) / 1000,
    stderr: new TextDecoder().decode(r.stderr),
    stdout: new TextDecoder().decode(r.stdout),
  };
}

const PREDICT = [
  "run",
  "-A",
  "runtime/cli/predict.ts",
  ...["--arch", "smallcnn", "--weights", "tests/fixtures/smallcnn_subset.safetensors"],
  ...["--data", "data/cifar10/test_subset.bin", "--limit", "2", "--out", "/dev/null"],
];

Deno.test("backend: Vulkan by default on Linux; GL and unknown names refused", () => {
  assert.equal(nativeBackend("linux"), "vulkan");
  assert.equal(nativeBackend("darwin"), "metal");
  assert.equal(chooseBackend(""), nativeBackend());
  assert.equal(chooseBackend("  "), nativeBackend());
  assert.equal(chooseBackend("Vulkan"), "vulkan");
  assert.equal(chooseBackend("vk"), "vulkan");
  for (const gl of ["gl", "GL", "vulkan,gl", "opengl"]) {
    assert.throws(() => chooseBackend(gl), (e: Error) => e.message === GL_REFUSED, gl);
  }
  assert.throws(() => chooseBackend("webgl2"), /DENO_WEBGPU_BACKEND: expected one of vulkan/);
});

Deno.test("backend: the engine runs on the Vulkan backend and records it", async () => {
  await gpu();
  const a = engine().adapter;
  assert.equal(a.backend, "vulkan");
  assert.equal(Deno.env.get("DENO_WEBGPU_BACKEND"), "vulkan");
  // What the GL path cannot give (wgpu's GL backend has 16 storage buffers per stage).
  assert.ok(a.limits.maxStorageBuffersPerShaderStage > 16, JSON.stringify(a.limits));
});

Deno.test("backend: forcing the GL path fails within seconds with one line naming the fix", async () => {
  const r = await deno(PREDICT, { DENO_WEBGPU_BACKEND: "gl" });
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.seconds < 20, `took ${r.seconds.toFixed(1)} s`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0].includes("OpenGL backend"), r.stderr);
  assert.ok(lines[0].includes("apt-get install -y mesa-vulkan-drivers libvulkan1"), r.stderr);
  assert.ok(!r.stderr.includes("    at "), "no stack trace");
});

Deno.test("backend: no Vulkan driver fails within seconds naming the install command", async () => {
  // What a machine without mesa-vulkan-drivers looks like to the loader.
  const env = { VK_ICD_FILENAMES: "/nonexistent.json", VK_DRIVER_FILES: "/nonexistent.json" };
  const r = await deno(PREDICT, env);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.seconds < 20, `took ${r.seconds.toFixed(1)} s`);
  assert.ok(r.stderr.includes(NO_ADAPTER_FIX), r.stderr);
  // The set-up step reports the same machine as not ready, and how to fix it.
  const s = await deno(["run", "-A", "runtime/cli/setup.ts", "--check"], env);
  assert.equal(s.code, 1, s.stderr);
  assert.match(s.stderr, /no WebGPU adapter on the vulkan backend.*deno task setup/);
});

Deno.test("setup: --check on this machine finds the Vulkan adapter and the shipped data", async () => {
  const s = await deno(["run", "-A", "runtime/cli/setup.ts", "--check"]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, /setup: ok: deno 2\.9\.\d+, WebGPU on vulkan: \S.*checksums ok/);
  assert.equal(await checkEmbeddedData(), null);
});

Deno.test("data: the subset ships in data/cifar10 and is the default of the quick preset", async () => {
  assert.equal(await defaultData("quick", "cifar10"), EMBEDDED_CIFAR10);
  const train = await readCifar(EMBEDDED_CIFAR10, { split: "train" });
  const test = await readCifar(EMBEDDED_CIFAR10, { split: "test" });
  assert.equal(train.n, 5085);
  assert.equal(test.n, 512);
  assert.equal(train.hash, "9350d8ad5e080874998a7bfd36d95b7a52ce8d8c676c0061f7b47361669d6585");
  assert.equal(test.hash, "cef7d750c512f67b8890d0d04656e7dd3db97c256eb8fea25be67b1bdfdb794b");
});

Deno.test("data: a file that no longer matches SHA256SUMS is refused, naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["test_subset.bin", "SHA256SUMS"]) {
      await Deno.copyFile(join(EMBEDDED_CIFAR10, f), join(dir, f));
    }
    assert.equal((await readCifar(dir, { split: "test" })).n, 512);
    const path = join(dir, "test_subset.bin");
    const bytes = await Deno.readFile(path);
    bytes[5000] ^= 1; // one flipped bit in one pixel
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      () => readCifar(dir, { split: "test" }),
      (e: Error) =>
        e.message.startsWith(`${path}: sha256 `) && e.message.includes("does not match") &&
        e.message.includes("cef7d750c512f67b"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("data: the full dataset offline gives one message naming --data and the cache", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const offline = () => Promise.reject(new TypeError("error sending request: dns error"));
    await assert.rejects(
      () => fullDataset("cifar10", { cacheDir, fetch: offline, log: () => {} }),
      (e: Error) =>
        e.message.includes("Pass --data DIR") && e.message.includes(cacheDir) &&
        e.message.includes("cifar-10-binary.tar.gz") && !e.message.includes("\n"),
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
