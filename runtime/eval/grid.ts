// PNG grid of clean / adversarial / purified images (one row per example, one column per
// kind, 2-pixel gaps). The encoder lives in runtime/io/png.ts.

export { encodePngRgb, imageGridPng } from "../io/png.ts";
