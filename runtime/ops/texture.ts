// Mirror textures of packed operands (Engine.mirror): the CPU adapter's conv variants "tex:*"
// read their operands from them as read-only storage textures, a branch-free image load on
// llvmpipe (1.7x cheaper than a sampled texel fetch), instead of storage-buffer loads, each a loop
// over the SIMD lanes (BENCHMARKS.md, "Operands as textures", "Read-only storage textures").

import { engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

/** Copies t's values (t.size a multiple of 4: packed rows) into its buffer's mirror texture,
 * unless the mirror already holds them (filled since the buffer's last write: the forward's
 * packed input read again by the weight gradient, a frozen layer's packed weights). */
export function mirrorTensor(t: Tensor): void {
  const n = t.size / 4;
  if (!Number.isInteger(n)) throw new Error(`mirrorTensor: ${t.size} values are not whole vec4s`);
  const eng = engine();
  if (eng.mirrorCurrent(t.buffer, n)) return;
  // A copy command, or inside a timed section a launch that pays the fill in its pass.
  if (!eng.fillMirror(t.buffer, n)) {
    eng.dispatch({
      kernel: "texel_store",
      buffers: [t.buffer, t.buffer],
      textures: [1],
      params: [n],
      workgroups: grid1d(n, 64),
    });
  }
  eng.noteMirrorFilled(t.buffer, n);
}

/** Whether t's buffer fits a mirror texture on this device. */
export function canMirror(t: Tensor): boolean {
  return engine().canMirror(t.buffer.size);
}
