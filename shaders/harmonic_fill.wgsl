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

/** The plane lives at the start of workgroup memory, whatever its offset in X. */
fn value(base: u32, i: u32) -> f32 { return f[i]; }

/** This workgroup's plane, or p.planes past the last one. */
fn planeOf(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

fn load(plane: u32, lid: u32) {
  let hw = p.H * p.W;
  for (var i = lid; i < hw; i += WG) { f[i] = X[plane * hw + i]; }
  workgroupBarrier();
}

fn store(plane: u32, lid: u32) {
  let hw = p.H * p.W;
  for (var i = lid; i < hw; i += WG) { Y[plane * hw + i] = f[i]; }
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let plane = planeOf(wid, nwg);
  if (plane >= p.planes) { return; }
  load(plane, lid);
  for (var t = 0u; t < 2u * p.iters; t++) {
    for (var i = lid; i < p.H * p.W; i += WG) {
      let q = pixelOf(plane, i);
      if (colourOf(q) == (t & 1u) && isHole(q.mb, i)) {
        let c = inside(q.h, q.w);
        if (c > 0.0) { f[i] = sorUpdate(q, i, c); }
      }
    }
    workgroupBarrier();
  }
  store(plane, lid);
}

@compute @workgroup_size(WG)
fn grad(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let plane = planeOf(wid, nwg);
  if (plane >= p.planes) { return; }
  load(plane, lid);
  for (var s = 0u; s <= 2u * p.iters; s++) {
    for (var i = lid; i < p.H * p.W; i += WG) {
      let q = pixelOf(plane, i);
      if (colourOf(q) == (s & 1u)) { f[i] = adjointUpdate(q, i, s); }
    }
    workgroupBarrier();
  }
  store(plane, lid);
}
