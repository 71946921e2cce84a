// Outputs per thread along each side of a matmul / conv block. The CPU adapter runs each thread
// as a SIMD lane and every storage load as a loop over the lanes, so it wants few loads per
// multiply-add (16x16 blocks); GPUs usually want few registers (4x4). ATOP_TILE=4|16 overrides
// the choice, to measure both on a new adapter (`ATOP_TILE=16 deno task bench`).

import { engine } from "../engine.ts";

let override: 4 | 16 | null | undefined;

function envTile(): 4 | 16 | null {
  if (override !== undefined) return override;
  let v: string | undefined;
  try {
    v = Deno.env.get("ATOP_TILE");
  } catch {
    v = undefined; // no --allow-env: use the adapter default
  }
  if (v === undefined || v === "") override = null;
  else if (v === "4" || v === "16") override = Number(v) as 4 | 16;
  else throw new Error(`ATOP_TILE: expected 4 or 16, got "${v}"`);
  return override;
}

export function blockTile(): 4 | 16 {
  return envTile() ?? (engine().adapter.isFallbackAdapter ? 16 : 4);
}
