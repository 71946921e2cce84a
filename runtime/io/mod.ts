// File I/O: atomic writes, safetensors checkpoints, PNG images, progress lines, hashes.
export * from "./atomic.ts";
export * from "./hash.ts";
export * from "./png.ts";
export * from "./progress.ts";
export * from "./safetensors.ts";
