// Storage precision of the convolutions' operands. "f32" (the default) keeps every operand in
// float32. "f16" (ATOP_F16=1) stores the activations and weights that the conv kernels read as
// IEEE half floats (packed two to a u32 with pack2x16float, so no adapter feature is needed) and
// accumulates in float32; gradients stay float32, since half floats flush the small values a
// backward pass carries (below 6e-8) to zero. Off by default: it changes results (operands
// rounded to 11 significant bits, values beyond +-65504 saturated), so it is part of a run's
// stage keys and manifest. convTranspose2d stays float32 (its backward reads gradients).

export type ConvStorage = "f32" | "f16";

let current: ConvStorage | undefined;

function fromEnv(): ConvStorage {
  let v: string | undefined;
  try {
    v = Deno.env.get("ATOP_F16");
  } catch {
    v = undefined; // no --allow-env: the default
  }
  if (v === undefined || v === "" || v === "0") return "f32";
  if (v === "1") return "f16";
  throw new Error(`ATOP_F16: expected 1 (half-float conv operands) or 0, got "${v}"`);
}

/** The storage of conv operands for this process (ATOP_F16, read once). */
export function convStorage(): ConvStorage {
  return current ??= fromEnv();
}

/** Sets the storage for what follows (tests); undefined goes back to ATOP_F16. */
export function setConvStorage(s: ConvStorage | undefined): void {
  current = s;
}
