// Multi-tensor optimizer kernels: one dispatch updates a group of parameters instead of one
// dispatch per parameter. The update math lives once, in shaders/optim.wgsl; this file generates
// the loads and stores for a group of K parameters with the state buffers the optimizer uses.
// Thread i updates element i of every parameter of the group that has one (K guarded updates in
// a row), so the grid is as long as the group's largest parameter. (A thread per element of the
// parameters laid end to end, choosing its parameter by a switch, ran every case's loads masked
// on llvmpipe, a loop over the SIMD lanes each: 3x the time of one dispatch per parameter.)
// Groups are as large as the adapter's storage buffer limit allows; their boundaries are chosen
// so that little of each grid is idle (launchUpdates).

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
      body = `var s = 0.0;\nif (q.first == 0u) { s = S0_${j}[i]; }\n` +
        `let r = sgd_update(P${j}[i], G${j}[i], s, q);\nP${j}[i] = r.x;\nS0_${j}[i] = r.y;`;
    } else {
      body = `var s1 = 0.0;\nvar s2 = 0.0;\n` +
        `if (q.first == 0u) { s1 = S0_${j}[i]; s2 = S1_${j}[i]; }\n` +
        `let r = adam_update(P${j}[i], G${j}[i], s1, s2, q, ${kind === "adamw"});\n` +
        `P${j}[i] = r.x;\nS0_${j}[i] = r.y;\nS1_${j}[i] = r.z;`;
    }
    cases.push(
      `  if (i < Q[${j}].n) {\n    let q = Q[${j}];\n    ${body.replaceAll("\n", "\n    ")}\n  }`,
    );
  }
  code = `// multi-tensor ${kind} update of ${k} parameters (runtime/optim_kernel.ts)
${shaderSource("optim")}
${binds.join("\n")}
@group(0) @binding(${k * per}) var<uniform> Q: array<Params, ${k}>;
override WG: u32 = ${WG}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // Element i of each parameter that has one.
  let i = gid.x + gid.y * nwg.x * WG;
${cases.join("\n")}
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

/** What a masked-off update costs against a real one on llvmpipe (its loads and stores still
 * loop over the SIMD lanes): the cost model of `partition`. */
const IDLE_COST = 0.25;

/** Splits sizes (ascending) into as few groups of at most k as there must be, ceil(m / k), at
 * the boundaries that minimise the work: a group runs max(size) threads per member, and a
 * thread past a member's end still pays IDLE_COST of its update. A fixed function of the sizes
 * (ties go to the earliest boundary). Returns each group's end index (exclusive). */
export function partition(sizes: number[], k: number): number[] {
  const m = sizes.length;
  const groups = Math.ceil(m / k);
  const prefix = [0];
  for (const n of sizes) prefix.push(prefix[prefix.length - 1] + n);
  const cost = (a: number, b: number) => {
    const sum = prefix[b] - prefix[a];
    return sum + IDLE_COST * ((b - a) * sizes[b - 1] - sum);
  };
  // best[g][e]: least cost of the first e sizes in g groups; from[g][e]: that split's last start.
  const best = Array.from({ length: groups + 1 }, () => new Array(m + 1).fill(Infinity));
  const from = Array.from({ length: groups + 1 }, () => new Array(m + 1).fill(0));
  best[0][0] = 0;
  for (let g = 1; g <= groups; g++) {
    for (let e = 1; e <= m; e++) {
      for (let a = Math.max(0, e - k); a < e; a++) {
        const c = best[g - 1][a] + cost(a, e);
        if (c < best[g][e]) {
          best[g][e] = c;
          from[g][e] = a;
        }
      }
    }
  }
  const ends: number[] = [];
  for (let g = groups, e = m; g > 0; e = from[g][e], g--) ends.unshift(e);
  return ends;
}

/** Records the updates, grouped by size (partition) so a group's parameters have similar
 * lengths. The grouping is a fixed function of the sizes, and it does not change the result:
 * every element's update is the same arithmetic. */
export function launchUpdates(kind: OptimKind, updates: ParamUpdate[]): void {
  const order = updates.map((_, i) => i).sort((a, b) => updates[a].n - updates[b].n || a - b);
  let at = 0;
  for (const end of partition(order.map((i) => updates[i].n), groupSize(kind))) {
    const group = order.slice(at, end).map((i) => updates[i]);
    at = end;
    const groupWords = () => group.flatMap((u) => u.words());
    engine().dispatch({
      kernel: `optim:${kind}x${group.length}`,
      code: kernelCode(kind, group.length),
      constants: { WG },
      buffers: group.flatMap((u) => u.buffers),
      params: groupWords(),
      refresh: engine().recording ? groupWords : undefined,
      workgroups: grid1d(group[group.length - 1].n, WG),
    });
  }
}
