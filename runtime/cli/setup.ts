// `deno task setup`: makes a fresh machine ready, and is the first step of `deno task run`,
// `deno task test` and `.ci/run`, so there is one set-up path. It checks that WebGPU has an
// adapter on the platform's native backend (Vulkan on Linux; never wgpu's GL fallback),
// installs Mesa's software Vulkan driver through apt when it is missing and we are root (or
// prints the exact command when not), and checks the shipped data against its checksums.
//   deno task setup [--check] [--quiet]
//     --check  only report; install nothing (exit 1 when something is missing)
//     --quiet  print nothing when all is well

import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  type Backend,
  chooseBackend,
  GL_REFUSED,
  runtimeDir,
  VULKAN_APT_PACKAGES,
  VULKAN_INSTALL,
} from "../device.ts";
import { EMBEDDED_CIFAR10 } from "../data/defaults.ts";
import { verifyChecksum } from "../data/cifar.ts";

const APT_PACKAGES = VULKAN_APT_PACKAGES;
const PROBE_TIMEOUT_MS = 60_000;
const DENO_WANTED = "2.9";

export interface ProbeResult {
  backend: string;
  description: string | null;
  fallback: boolean;
  error?: string;
}

// Runs in a child process: wgpu picks its adapters once per process, so a probe made before
// the driver was installed would be stale in this one.
const PROBE = `
const a = await navigator.gpu?.requestAdapter();
console.log(JSON.stringify(a ? { description: a.info.description || a.info.device || "unknown",
  fallback: a.info.isFallbackAdapter === true } : { description: null, fallback: false }));`;

/** Asks a child Deno for an adapter on `backend` (default: the one the runtime will use). */
export async function probeAdapter(backend = chooseBackend()): Promise<ProbeResult> {
  const env: Record<string, string> = { DENO_WEBGPU_BACKEND: backend, NO_COLOR: "1" };
  if (Deno.build.os === "linux" && !Deno.env.get("XDG_RUNTIME_DIR")) {
    env.XDG_RUNTIME_DIR = runtimeDir(); // else Mesa's warning hides the real error
  }
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", "--no-config", PROBE],
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), // a hung driver must not hang every task
  });
  let out: Deno.CommandOutput;
  try {
    out = await cmd.output();
  } catch (e) {
    return {
      backend,
      description: null,
      fallback: false,
      error: `the adapter probe did not answer within ${PROBE_TIMEOUT_MS / 1000} s (${
        e instanceof Error ? e.message : e
      })`,
    };
  }
  if (out.signal) {
    return {
      backend,
      description: null,
      fallback: false,
      error: `the adapter probe was killed (${out.signal}) after ${PROBE_TIMEOUT_MS / 1000} s`,
    };
  }
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  try {
    return { backend, ...JSON.parse(text) };
  } catch {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    return { backend, description: null, fallback: false, error: err || `exit ${out.code}` };
  }
}

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

async function hasCommand(name: string): Promise<boolean> {
  try {
    const r = await new Deno.Command("sh", {
      args: ["-c", `command -v ${name}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success;
  } catch {
    return false;
  }
}

async function apt(args: string[], log: (m: string) => void): Promise<void> {
  log(`setup: apt-get ${args.join(" ")}`);
  const r = await new Deno.Command("apt-get", {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    const tail = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(`apt-get ${args.join(" ")} failed (exit ${r.code}): ${tail}`);
  }
}

/** Whether dpkg already has every package of APT_PACKAGES. */
async function packagesInstalled(): Promise<boolean> {
  if (!(await hasCommand("dpkg-query"))) return false;
  const r = await new Deno.Command("dpkg-query", {
    args: ["-W", "-f=${Status}\\n", ...APT_PACKAGES],
    stdout: "piped",
    stderr: "null",
  }).output();
  const lines = new TextDecoder().decode(r.stdout).trim().split("\n");
  return r.success && lines.length === APT_PACKAGES.length &&
    lines.every((l) => l.endsWith("install ok installed"));
}

/** Installs the software Vulkan driver when possible; returns what to tell the user otherwise. */
async function installVulkan(log: (m: string) => void): Promise<string | null> {
  const cmd = VULKAN_INSTALL;
  if (Deno.build.os !== "linux") {
    return `no WebGPU adapter on ${chooseBackend()}: install your GPU's driver`;
  }
  if (!(await hasCommand("apt-get"))) {
    return `no Vulkan driver: install Mesa's Vulkan drivers (lavapipe) and the Vulkan loader ` +
      `with your package manager (Debian/Ubuntu: ${cmd})`;
  }
  if (await packagesInstalled()) {
    return `${APT_PACKAGES.join(" and ")} are installed, yet Vulkan finds no device: check ` +
      `VK_ICD_FILENAMES / VK_DRIVER_FILES (unset them to use Mesa's lavapipe)`;
  }
  if (!isRoot()) return `no Vulkan driver: run \`sudo apt-get update && sudo ${cmd}\`, then rerun`;
  await apt(["update", "-q"], log);
  await apt(["install", "-y", "-q", ...APT_PACKAGES], log);
  return null;
}

/** Checks the data shipped in the repository against data/cifar10/SHA256SUMS. */
export async function checkEmbeddedData(): Promise<string | null> {
  const sums = join(EMBEDDED_CIFAR10, "SHA256SUMS");
  let names: string[];
  try {
    names = (await Deno.readTextFile(sums)).split("\n")
      .map((l) => /^[0-9a-f]{64}\s+\*?(\S.*)$/.exec(l.trim())?.[1])
      .filter((n): n is string => !!n);
  } catch {
    return `${sums} is missing: the repository's data folder is incomplete (git checkout -- data)`;
  }
  for (const n of names) {
    const f = join(EMBEDDED_CIFAR10, n);
    try {
      await verifyChecksum(f, await Deno.readFile(f));
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  }
  return null;
}

export interface SetupOptions {
  /** Report only; install nothing. */
  check?: boolean;
  log?: (m: string) => void;
}

/** Returns the adapter found and null, or a one-line problem with its fix. */
export async function setup(
  o: SetupOptions = {},
): Promise<{ probe: ProbeResult | null; problem: string | null }> {
  const log = o.log ?? ((m: string) => console.error(m));
  let backend: Backend;
  try {
    backend = chooseBackend();
  } catch (e) {
    return { probe: null, problem: e instanceof Error ? e.message : GL_REFUSED };
  }
  let probe = await probeAdapter(backend);
  if (!probe.description) {
    if (o.check) {
      return {
        probe,
        problem: `no WebGPU adapter on the ${backend} backend` +
          `${probe.error ? ` (${probe.error})` : ""}; \`deno task setup\` installs the software ` +
          `driver (${APT_PACKAGES.join(" ")})`,
      };
    }
    log(`setup: no WebGPU adapter on ${backend}; installing the software Vulkan driver`);
    const why = await installVulkan(log);
    if (why) return { probe, problem: why };
    probe = await probeAdapter(backend);
    if (!probe.description) {
      return {
        probe,
        problem: `installed ${APT_PACKAGES.join(" ")}, but there is still no adapter on ` +
          `${backend}${probe.error ? ` (${probe.error})` : ""}; check VK_ICD_FILENAMES / ` +
          `VK_DRIVER_FILES`,
      };
    }
  }
  const data = await checkEmbeddedData();
  if (data) return { probe, problem: data };
  return { probe, problem: null };
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      check: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (v.help) {
    console.log("usage: deno task setup [--check] [--quiet]");
    Deno.exit(0);
  }
  try {
    const ver = Deno.version.deno;
    if (!ver.startsWith(`${DENO_WANTED}.`)) {
      console.error(`setup: warning: Deno ${ver}; this project is tested on ${DENO_WANTED}.x`);
    }
    const { probe, problem } = await setup({ check: v.check });
    if (problem) {
      console.error(`setup: ${problem}`);
      Deno.exit(1);
    }
    if (!v.quiet) {
      console.error(
        `setup: ok: deno ${ver}, WebGPU on ${probe!.backend}: ${probe!.description}` +
          `${probe!.fallback ? " (software)" : ""}; data ${EMBEDDED_CIFAR10} checksums ok`,
      );
    }
  } catch (e) {
    console.error(`setup: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
