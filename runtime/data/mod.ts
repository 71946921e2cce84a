// Datasets: CIFAR-10/100 binary batches, the download cache, tar/gzip, the training loader.
export * from "./cifar.ts";
export * from "./download.ts";
export * from "./loader.ts";
export * from "./tar.ts";
export * from "./defaults.ts";
