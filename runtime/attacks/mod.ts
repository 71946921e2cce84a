// The attack API and every attack, one namespace.
export * from "./target.ts";
export * from "./common.ts";
export * from "./losses.ts";
export * from "./objective.ts";
export * from "./fgsm.ts";
export * from "./pgd.ts";
export * from "./apgd.ts";
export * from "./fab.ts";
export * from "./square.ts";
export * from "./autoattack.ts";
export * from "./stadv.ts";
