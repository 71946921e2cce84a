// Multi-tensor optimizer kernels: one dispatch updates a group of parameters (one grid row
// each), instead of one dispatch per parameter. The update math lives once, in
// shaders/optim.wgsl; this file generates the loads and stores for a group of K parameters
// with the state buffers the optimizer uses. Groups are as large as the adapter's storage
// buffer limit allows.

import { engine, grid1d, shaderSource } from "./engine.ts";

export type OptimKind = "sgd" | "sgd-momentum" | "adam" | "adamw";

export interface ParamUpdate {
  /** Parameter, gradient, then the state buffers of the kind (momentum / exp_avg, exp_avg_sq). */
  buffers: GPUBuffer[];
  /** The 16 words of the Params struct, computed from the optimizer's state at the time of the
   * call (a captured step calls it again at each replay: learning rate, bias corrections). */
  words: () => number[];
  n: number;
}

const WG = 256;

function statesOf(kind: OptimKind): number {
  return kind === "sgd" ? 0 : kind === "sgd-momentum" ? 1 : 2;
}

const codes = new Map<string, string>();

function kernelCode(kind: OptimKind, k: number): string {
  const key = `${kind}/${k}`;
  let code = codes.get(key);
  if (code) return code;
  const ns = statesOf(kind);
  const per = 2 + ns;
  const binds: string[] = [];
  const cases: string[] = [];
  for (let j = 0; j < k; j++) {
    const b = j * per;
    binds.push(
      `@group(0) @binding(${b}) var<storage, read_write> P${j}: array<f32>;`,
      `@group(0) @binding(${b + 1}) var<storage, read> G${j}: array<f32>;`,
    );
    for (let s = 0; s < ns; s++) {
      binds.push(
        `@group(0) @binding(${b + 2 + s}) var<storage, read_write> S${s}_${j}: array<f32>;`,
      );
    }
    let body: string;
    if (kind === "sgd") {
      body = `P${j}[i] = sgd_update(P${j}[i], G${j}[i], 0.0, q).x;`;
    } else if (kind === "sgd-momentum") {
      body = `var s = 0.0;\n      if (q.first == 0u) { s = S0_${j}[i]; }\n` +
        `      let r = sgd_update(P${j}[i], G${j}[i], s, q);\n` +
        `      P${j}[i] = r.x;\n      S0_${j}[i] = r.y;`;
    } else {
      body = `var s1 = 0.0;\n      var s2 = 0.0;\n` +
        `      if (q.first == 0u) { s1 = S0_${j}[i]; s2 = S1_${j}[i]; }\n` +
        `      let r = adam_update(P${j}[i], G${j}[i], s1, s2, q, ${kind === "adamw"});\n` +
        `      P${j}[i] = r.x;\n      S0_${j}[i] = r.y;\n      S1_${j}[i] = r.z;`;
    }
    cases.push(`    case ${j}u: {\n      ${body}\n    }`);
  }
  code = `// multi-tensor ${kind} update of ${k} parameters (runtime/optim_kernel.ts)
${shaderSource("optim")}
${binds.join("\n")}
@group(0) @binding(${k * per}) var<storage, read> Q: array<Params>;
override WG: u32 = ${WG}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // One thread per element of the group's parameters laid end to end: parameter k owns the
  // threads from its offset (pad0) on.
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= Q[${k - 1}].pad0 + Q[${k - 1}].n) { return; }
  var k = 0u;
  for (var j = 1u; j < ${k}u; j++) {
    if (t >= Q[j].pad0) { k = j; }
  }
  let q = Q[k];
  let i = t - q.pad0;
  switch k {
${cases.join("\n")}
    default: {}
  }
}
`;
  codes.set(key, code);
  return code;
}

let groupCap = 16;
/** Caps the parameters per dispatch (tests force 1 to compare with the grouped kernels);
 * returns the previous cap. */
export function setGroupCap(n: number): number {
  const prev = groupCap;
  groupCap = n;
  return prev;
}

/** Parameters per dispatch on this adapter. */
export function groupSize(kind: OptimKind): number {
  const limit = engine().device.limits.maxStorageBuffersPerShaderStage;
  return Math.max(1, Math.min(groupCap, Math.floor((limit - 1) / (2 + statesOf(kind)))));
}

/** Records the updates, grouped by size so a group's rows have similar lengths (the grid is
 * as wide as its largest parameter). The grouping is a fixed function of the sizes, so the
 * result does not depend on it: every element's update is the same arithmetic. */
export function launchUpdates(kind: OptimKind, updates: ParamUpdate[]): void {
  const k = groupSize(kind);
  const order = updates.map((_, i) => i).sort((a, b) => updates[a].n - updates[b].n || a - b);
  for (let at = 0; at < order.length; at += k) {
    const group = order.slice(at, at + k).map((i) => updates[i]);
    // Offsets of each parameter's first thread, in the Params pad0 word.
    const groupWords = () => {
      let offset = 0;
      const params: number[] = [];
      for (const u of group) {
        const w = u.words();
        w[14] = offset;
        offset += u.n;
        params.push(...w);
      }
      return params;
    };
    const params = groupWords();
    const offset = group.reduce((s, u) => s + u.n, 0);
    engine().dispatch({
      kernel: `optim:${kind}x${group.length}`,
      code: kernelCode(kind, group.length),
      constants: { WG },
      buffers: group.flatMap((u) => u.buffers),
      params,
      refresh: engine().recording ? groupWords : undefined,
      workgroups: grid1d(offset, WG),
    });
  }
}
