// Adapter selection and device creation. One GPUDevice per process is the normal case;
// the engine (engine.ts) wraps it with the pipeline cache, buffer pool and command batching.

export type AdapterChoice = "auto" | "cpu" | "gpu";

export interface AdapterReport {
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  isFallbackAdapter: boolean;
  /** The limits the device was created with (the adapter's maxima). */
  limits: Record<string, number>;
  features: string[];
}

export const NO_ADAPTER_FIX =
  "No WebGPU adapter found. On a machine without a GPU install the software Vulkan driver: " +
  "`apt-get install -y mesa-vulkan-drivers libvulkan1` (then rerun). With a GPU, make sure its " +
  "Vulkan driver and loader (libvulkan1) are installed.";

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
      isFallbackAdapter: isSoftware(adapter),
      limits: limitsRecord(device.limits),
      features: [...device.features],
    },
  };
}
