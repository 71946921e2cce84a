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
@group(0) @binding(3) var<uniform> p: Params;

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

/** This thread's pixels (lid + k WG, k < 32: the op keeps planes within 32 WG pixels) that
 * an entry touches, as bit k of a mask per colour: each half-sweep then visits only those, not
 * every pixel of its colour (the forward only the holes, a quarter of the plane under RT's
 * masks; the adjoint also their neighbours). */
fn ownPixels(plane: u32, lid: u32, adjoint: bool) -> vec2u {
  var bits = vec2u(0u, 0u);
  for (var k = 0u; lid + k * WG < p.H * p.W; k++) {
    let i = lid + k * WG;
    let q = pixelOf(plane, i);
    let touched = select(forwardTouches(q, i), adjointTouches(q, i), adjoint);
    if (touched) { bits[colourOf(q)] |= 1u << k; }
  }
  return bits;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let plane = planeOf(wid, nwg);
  if (plane >= p.planes) { return; }
  let own = ownPixels(plane, lid, false);
  load(plane, lid);
  for (var t = 0u; t < 2u * p.iters; t++) {
    var b = own[t & 1u];
    while (b != 0u) {
      let i = lid + firstTrailingBit(b) * WG;
      b &= b - 1u;
      let q = pixelOf(plane, i);
      f[i] = sorUpdate(q, i, inside(q.h, q.w));
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
  let own = ownPixels(plane, lid, true);
  load(plane, lid);
  for (var s = 0u; s <= 2u * p.iters; s++) {
    var b = own[s & 1u];
    while (b != 0u) {
      let i = lid + firstTrailingBit(b) * WG;
      b &= b - 1u;
      f[i] = adjointUpdate(pixelOf(plane, i), i, s);
    }
    workgroupBarrier();
  }
  store(plane, lid);
}
