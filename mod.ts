// Public API of atop-gpu.
export { type AdapterChoice, type AdapterReport, createDevice } from "./runtime/device.ts";
export { Engine, engine, f32bits, GpuError, initEngine } from "./runtime/engine.ts";
export { type PoolStats } from "./runtime/pool.ts";
export { keep, liveTensors, type Shape, Tensor, tidy, tidyAsync } from "./runtime/tensor.ts";
export { backward, grad, isGradEnabled, noGrad, noGradAsync } from "./runtime/autograd.ts";
export * as ops from "./runtime/ops/mod.ts";
