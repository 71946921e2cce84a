// Adapter selection and device creation. One GPUDevice per process is the normal case;
// the engine (engine.ts) wraps it with the pipeline cache, buffer pool and command batching.
//
// The backend is chosen explicitly. Left alone, Deno's wgpu falls back to its OpenGL backend
// when no Vulkan driver is installed; over Mesa llvmpipe that adapter reports the same name
// as the Vulkan one but lacks features and exhausts memory in training. So the native
// backend of the platform (Vulkan on Linux) is requested through DENO_WEBGPU_BACKEND before
// the first adapter request, and the GL backend is refused with the fix in the message.

export type AdapterChoice = "auto" | "cpu" | "gpu";

/** wgpu backends Deno accepts in DENO_WEBGPU_BACKEND. */
export type Backend = "vulkan" | "metal" | "dx12" | "gl";

export interface AdapterReport {
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  /** The wgpu backend the adapter was requested on. */
  backend: Backend;
  isFallbackAdapter: boolean;
  /** The limits the device was created with (the adapter's maxima). */
  limits: Record<string, number>;
  features: string[];
}

export const SETUP_COMMAND = "deno task setup";

/** Mesa's software Vulkan driver and the loader, as Debian packages (setup installs them). */
export const VULKAN_APT_PACKAGES = ["mesa-vulkan-drivers", "libvulkan1"] as const;
export const VULKAN_INSTALL = `apt-get install -y ${VULKAN_APT_PACKAGES.join(" ")}`;

export const NO_ADAPTER_FIX =
  "No WebGPU adapter on the Vulkan backend. On a machine without a GPU install the software " +
  `Vulkan driver: \`${VULKAN_INSTALL}\` as root (or run ` +
  `\`${SETUP_COMMAND}\`, which does it), then rerun. With a GPU, install its Vulkan driver and ` +
  "the loader (libvulkan1). wgpu's OpenGL fallback is not used: it runs out of memory in training.";

export const GL_REFUSED =
  "DENO_WEBGPU_BACKEND asks for wgpu's OpenGL backend, which atop-gpu does not use (it lacks " +
  "shader-f16 and float32-filterable, has half the storage buffers, and exhausts memory in " +
  "training). Unset DENO_WEBGPU_BACKEND (or set it to vulkan) and install the Vulkan driver: " +
  `\`${VULKAN_INSTALL}\`.`;

/** The platform's native backend. */
export function nativeBackend(os: string = Deno.build.os): Backend {
  return os === "darwin" ? "metal" : os === "windows" ? "dx12" : "vulkan";
}

function envGet(key: string): string | undefined {
  try {
    return Deno.env.get(key);
  } catch {
    return undefined; // no --allow-env: nothing overridden
  }
}

/** The backend to request: DENO_WEBGPU_BACKEND when set (GL is refused), else the platform's
 * native one. Throws GL_REFUSED for any list that contains gl. */
export function chooseBackend(env: string | undefined = envGet("DENO_WEBGPU_BACKEND")): Backend {
  const wanted = (env ?? "").trim().toLowerCase();
  if (!wanted) return nativeBackend();
  const parts = wanted.split(/[,|\s]+/).filter(Boolean);
  if (parts.some((p) => p === "gl" || p === "opengl" || p === "gles")) {
    throw new Error(GL_REFUSED);
  }
  const known: Backend[] = ["vulkan", "metal", "dx12"];
  const aliases: Record<string, Backend> = { vk: "vulkan", mtl: "metal", d3d12: "dx12" };
  const b = parts.length === 1 ? (aliases[parts[0]] ?? parts[0]) : "";
  if (!known.includes(b as Backend)) {
    throw new Error(
      `DENO_WEBGPU_BACKEND: expected one of vulkan, metal, dx12, got "${env}"; unset it to use ` +
        `${nativeBackend()}`,
    );
  }
  return b as Backend;
}

let pinned: Backend | null = null;

/** Pins the backend for this process before the first adapter request (wgpu reads the
 * variable when it creates its instance, once). */
function pinBackend(): Backend {
  if (pinned) return pinned;
  const b = chooseBackend();
  try {
    Deno.env.set("DENO_WEBGPU_BACKEND", b);
  } catch {
    throw new Error(
      "cannot select the WebGPU backend without --allow-env; run through `deno task` (which " +
        "grants it) or add --allow-env",
    );
  }
  ensureRuntimeDir();
  pinned = b;
  return b;
}

/** Mesa's Vulkan WSI complains on every instance without XDG_RUNTIME_DIR (containers, CI);
 * give it a private one, as a login session would. */
function ensureRuntimeDir(): void {
  try {
    if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return;
    Deno.env.set("XDG_RUNTIME_DIR", runtimeDir());
  } catch {
    // Only a warning from the driver is at stake.
  }
}

/** A private runtime directory under /tmp for processes started without a login session. */
export function runtimeDir(): string {
  const dir = `/tmp/xdg-runtime-${Deno.uid() ?? 0}`;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(dir, 0o700);
  } catch {
    // Mesa only warns without it.
  }
  return dir;
}

function limitsRecord(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // GPUSupportedLimits exposes getters on the prototype, so plain Object.keys finds nothing.
  for (const key in limits) {
    const v = (limits as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") out[key] = v;
  }
  return out;
}

function isSoftware(adapter: GPUAdapter): boolean {
  const info = adapter.info;
  const desc = `${info.description} ${info.vendor} ${info.architecture}`.toLowerCase();
  return (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader|software/.test(desc);
}

/** Picks an adapter: `auto` prefers a hardware GPU and falls back to software. */
export async function requestAdapter(choice: AdapterChoice): Promise<GPUAdapter> {
  pinBackend();
  if (!("gpu" in navigator) || !navigator.gpu) {
    throw new Error(`navigator.gpu is not available in this runtime. ${NO_ADAPTER_FIX}`);
  }
  const hw = choice === "cpu"
    ? null
    : await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (choice === "gpu") {
    if (!hw || isSoftware(hw)) {
      throw new Error(
        `--adapter gpu: no hardware GPU adapter found` +
          (hw ? ` (only the software adapter "${hw.info.description}")` : "") +
          `. Use --adapter auto or --adapter cpu to run on the software adapter.`,
      );
    }
    return hw;
  }
  if (hw && !isSoftware(hw)) return hw;
  const sw = hw ?? await navigator.gpu.requestAdapter({ forceFallbackAdapter: true }) ??
    await navigator.gpu.requestAdapter();
  if (!sw) throw new Error(NO_ADAPTER_FIX);
  return sw;
}

export async function createDevice(
  choice: AdapterChoice,
): Promise<{ device: GPUDevice; report: AdapterReport }> {
  const adapter = await requestAdapter(choice);
  // Ask for the adapter's maxima: the defaults (128 MiB bindings, 8 storage buffers) are too
  // small for WRN-sized activations and for kernels with many inputs.
  const requiredLimits: Record<string, number> = {};
  const adapterLimits = limitsRecord(adapter.limits);
  for (
    const key of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxStorageBuffersPerShaderStage",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY",
      "maxComputeWorkgroupSizeZ",
      "maxComputeWorkgroupsPerDimension",
      "maxBindGroups",
    ]
  ) {
    if (adapterLimits[key] !== undefined) requiredLimits[key] = adapterLimits[key];
  }
  const wanted: GPUFeatureName[] = [];
  if (adapter.features.has("timestamp-query")) wanted.push("timestamp-query");
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: wanted });
  const info = adapter.info;
  return {
    device,
    report: {
      description: info.description || info.device || "unknown",
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      backend: pinBackend(),
      isFallbackAdapter: isSoftware(adapter),
      limits: limitsRecord(device.limits),
      features: [...device.features],
    },
  };
}
