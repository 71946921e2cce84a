// The projection step of FAB (Croce & Hein, ICML 2020): the smallest perturbation d (Linf or
// L2) that moves a point t onto the hyperplane w.z = b while staying in the box [0,1]^d. When
// the box does not reach the hyperplane, d moves every coordinate to the box bound on the
// side of the hyperplane (the closest one can get). Float64, one point at a time, O(d log d).

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
