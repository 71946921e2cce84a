// Red-black SOR on the holes of each image plane, the whole plane held in workgroup memory so
// that every sweep of every iteration runs in one launch (a barrier between half-sweeps).
// One workgroup per plane of X [planes, H, W]; the mask M [planes / C, H, W] (1 = hole) is
// shared by a sample's C channels. Entry `main`: Y = the fill after `iters` iterations, known
// pixels unchanged. Entry `grad`: the adjoint, X = the output gradient, Y = the gradient of
// the initial fill (the half-sweeps transposed, in reverse order). The op sets the plane size.
override WG: u32 = 256u;
const PLANE: u32 = PLANE_WORDSu;

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> M: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

//! include harmonic_common

var<workgroup> f: array<f32, PLANE>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let plane = wid.x + wid.y * nwg.x;
  if (plane >= p.planes) { return; }
  let hw = p.H * p.W;
  let base = plane * hw;
  let mb = (plane / p.C) * hw;
  for (var i = lid; i < hw; i += WG) { f[i] = X[base + i]; }
  workgroupBarrier();
  for (var t = 0u; t < 2u * p.iters; t++) {
    let col = t & 1u;
    for (var i = lid; i < hw; i += WG) {
      let h = i / p.W;
      let w = i - h * p.W;
      if (((h + w) & 1u) == col && isHole(mb, i)) {
        let c = inside(h, w);
        if (c > 0.0) {
          var up = 0.0; var down = 0.0; var left = 0.0; var right = 0.0;
          if (h > 0u) { up = f[i - p.W]; }
          if (h + 1u < p.H) { down = f[i + p.W]; }
          if (w > 0u) { left = f[i - 1u]; }
          if (w + 1u < p.W) { right = f[i + 1u]; }
          f[i] = (1.0 - p.omega) * f[i] + p.omega * (((up + down) + (left + right)) / c);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = lid; i < hw; i += WG) { Y[base + i] = f[i]; }
}

/** omega * g_k / c_k of neighbour k when it is a hole (it was updated from pixel i). */
fn share(mb: u32, k: u32, h: u32, w: u32) -> f32 {
  if (!isHole(mb, k)) { return 0.0; }
  let c = inside(h, w);
  if (c == 0.0) { return 0.0; }
  return p.omega * (f[k] / c);
}

@compute @workgroup_size(WG)
fn grad(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let plane = wid.x + wid.y * nwg.x;
  if (plane >= p.planes) { return; }
  let hw = p.H * p.W;
  let base = plane * hw;
  let mb = (plane / p.C) * hw;
  for (var i = lid; i < hw; i += WG) { f[i] = X[base + i]; }
  workgroupBarrier();
  // Phase s writes the pixels of colour s mod 2: first the scaling of half-sweep 2K - s
  // (its own holes), then the shares that half-sweep 2K - 1 - s sent from the other colour.
  let last = 2u * p.iters;
  for (var s = 0u; s <= last; s++) {
    let col = s & 1u;
    for (var i = lid; i < hw; i += WG) {
      let h = i / p.W;
      let w = i - h * p.W;
      if (((h + w) & 1u) == col) {
        var g = f[i];
        if (s > 0u && isHole(mb, i) && inside(h, w) > 0.0) { g = (1.0 - p.omega) * g; }
        if (s < last) {
          var up = 0.0; var down = 0.0; var left = 0.0; var right = 0.0;
          if (h > 0u) { up = share(mb, i - p.W, h - 1u, w); }
          if (h + 1u < p.H) { down = share(mb, i + p.W, h + 1u, w); }
          if (w > 0u) { left = share(mb, i - 1u, h, w - 1u); }
          if (w + 1u < p.W) { right = share(mb, i + 1u, h, w + 1u); }
          g = g + ((up + down) + (left + right));
        }
        f[i] = g;
      }
    }
    workgroupBarrier();
  }
  for (var i = lid; i < hw; i += WG) { Y[base + i] = f[i]; }
}
