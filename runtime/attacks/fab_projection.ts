// The projection step of FAB (Croce & Hein, ICML 2020): the smallest perturbation d (Linf or
// L2) that moves a point t onto the hyperplane w.z = b while staying in the box [0,1]^d. When
// the box does not reach the hyperplane, d moves every coordinate to the box bound on the
// side of the hyperplane (the closest one can get).
// projectHyperplane runs it on the GPU for a batch of rows (shaders/fab_project.wgsl), as FAB
// does; the float64 functions below, one point at a time in O(d log d), are its reference.

import { engine, grid1d } from "../engine.ts";
import { Tensor } from "../tensor.ts";
import { words } from "../ops/util.ts";
import type { Norm } from "./common.ts";

/** Per row r of t and w ([n, ...], the same shape) and c = w_r.t_r - b_r ([n], how far t_r is
 * from the hyperplane w_r.z = b_r, passed rather than b so that the caller can compute it
 * without cancellation): the smallest step d (Linf or L2) with w_r.(t_r + d_r) = b_r and
 * t_r + d_r in [0,1], or every coordinate at the box bound on the hyperplane's side when the
 * box does not reach it. No gradient (attack bookkeeping). */
export function projectHyperplane(norm: Norm, t: Tensor, w: Tensor, c: Tensor): Tensor {
  const n = t.shape[0] ?? 0;
  if (w.shape.join() !== t.shape.join() || c.shape.join() !== String(n)) {
    throw new Error(
      `projectHyperplane: expected t and w of one shape [n, ...] and c [n], got [${t.shape}], [${w.shape}], [${c.shape}]`,
    );
  }
  const out = Tensor.empty(t.shape);
  if (out.size === 0) return out;
  const d = t.size / n;
  engine().dispatch({
    kernel: "fab_project",
    constants: { WG: 256 },
    buffers: [t.buffer, w.buffer, c.buffer, out.buffer],
    params: words(n, d, norm === "l2" ? 1 : 0),
    // One workgroup per row.
    workgroups: grid1d(n, 1),
  });
  return out;
}

export function projectHyperplaneLinf(
  t: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
): Float64Array {
  const n = t.length;
  const d = new Float64Array(n);
  let c = -b;
  for (let i = 0; i < n; i++) c += w[i] * t[i];
  if (c === 0) return d;
  // Move w.z by -c: coordinate i moves in direction dir_i with room p_i and gain |w_i|.
  const s = c > 0 ? -1 : 1;
  const need = Math.abs(c);
  const dir = new Int8Array(n);
  const room = new Float64Array(n);
  const idx: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (w[i] === 0) continue;
    dir[i] = w[i] > 0 ? s : -s;
    room[i] = dir[i] > 0 ? 1 - t[i] : t[i];
    total += Math.abs(w[i]) * room[i];
    idx.push(i);
  }
  if (total <= need) {
    for (const i of idx) d[i] = dir[i] * room[i];
    return d;
  }
  // g(delta) = sum |w_i| min(delta, room_i) is increasing and piecewise linear: walk the rooms
  // in increasing order until g reaches `need`.
  idx.sort((a, b2) => room[a] - room[b2]);
  let wRest = 0;
  for (const i of idx) wRest += Math.abs(w[i]);
  let done = 0; // sum of |w| room over saturated coordinates
  let delta = 0;
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j];
    const gHere = done + room[i] * wRest;
    if (gHere >= need) {
      delta = (need - done) / wRest;
      break;
    }
    done += Math.abs(w[i]) * room[i];
    wRest -= Math.abs(w[i]);
  }
  for (const i of idx) d[i] = dir[i] * Math.min(delta, room[i]);
  return d;
}

export function projectHyperplaneL2(
  t: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
): Float64Array {
  const n = t.length;
  const d = new Float64Array(n);
  let c = -b;
  for (let i = 0; i < n; i++) c += w[i] * t[i];
  if (c === 0) return d;
  // KKT: d_i = clip(mu * v_i, lo_i, hi_i) with v = sign(-c) w, mu >= 0 solving v.d = |c|.
  const s = c > 0 ? -1 : 1;
  const need = Math.abs(c);
  const v = new Float64Array(n);
  const bound = new Float64Array(n); // the bound coordinate i reaches as mu grows
  const brk = new Float64Array(n); // mu at which it gets there
  const idx: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    v[i] = s * w[i];
    if (v[i] === 0) continue;
    bound[i] = v[i] > 0 ? 1 - t[i] : -t[i];
    brk[i] = bound[i] / v[i];
    total += v[i] * bound[i];
    idx.push(i);
  }
  if (total <= need) {
    for (const i of idx) d[i] = bound[i];
    return d;
  }
  idx.sort((a, b2) => brk[a] - brk[b2]);
  let vv = 0; // sum of v_i^2 over unsaturated coordinates
  for (const i of idx) vv += v[i] * v[i];
  let done = 0; // sum of v_i bound_i over saturated coordinates
  let mu = 0;
  for (const i of idx) {
    if (done + brk[i] * vv >= need) {
      mu = (need - done) / vv;
      break;
    }
    done += v[i] * bound[i];
    vv -= v[i] * v[i];
  }
  for (const i of idx) d[i] = Math.min(mu, brk[i]) * v[i];
  return d;
}
