// All ops, one namespace. Each file holds one family of kernels.
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./matmul.ts";
export * from "./shape.ts";
export * from "./conv.ts";
export { type ConvStorage, convStorage, setConvStorage } from "./precision.ts";
export * from "./norm.ts";
export * from "./assign.ts";
export * from "./spectral.ts";
export * from "./layout.ts";
export * from "./loss.ts";
export * from "./pool.ts";
export * from "./sample.ts";
export * from "./upsample.ts";
export * from "./stencil.ts";
export * from "./gate.ts";
