// The body of conv2d_fwd.wgsl and conv2d_fwd_tex.wgsl: everything but how the operands are read
// (xv(i): vec4 i of the input rows, wv(i): vec4 i of the packed weight rows).
override WX: u32 = 8u;
override WY: u32 = 8u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32,
  c4: u32, // vec4s per pixel of X (and per weight row)
  hasBias: u32,
}
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

/** Output pixels q..q+3 (clamped) as their image start row in X and top-left input tap. */
struct Pixels { base: vec4i, iy: vec4i, ix: vec4i }

fn pixels(q: u32) -> Pixels {
  let hwo = p.Ho * p.Wo;
  let qs = min(vec4u(q) + vec4u(0u, 1u, 2u, 3u), vec4u(p.N * hwo - 1u));
  let n = qs / hwo;
  let r = qs - n * hwo;
  let oy = r / p.Wo;
  let ox = r - oy * p.Wo;
  return Pixels(
    vec4i(n * p.H * p.W),
    vec4i(oy * p.SH) - i32(p.PH),
    vec4i(ox * p.SW) - i32(p.PW),
  );
}

/** Start (in vec4s) of the X rows the 4 pixels read at tap (ky, kx); the zero row if padding. */
fn tapRows(px: Pixels, ky: u32, kx: u32) -> vec4u {
  let iy = px.iy + i32(ky * p.DH);
  let ix = px.ix + i32(kx * p.DW);
  let ok = (iy >= vec4i(0)) & (iy < vec4i(i32(p.H))) & (ix >= vec4i(0)) & (ix < vec4i(i32(p.W)));
  return select(vec4u(zeroRow()), vec4u(px.base + iy * i32(p.W) + ix) * p.c4, ok);
}

fn zeroRow() -> u32 {
  return p.N * p.H * p.W * p.c4;
}

/** Start (in vec4s) of the weight rows of channels c..c+3 (clamped) at tap t. */
fn weightRows(c: u32, t: u32) -> vec4u {
  let co = min(vec4u(c) + vec4u(0u, 1u, 2u, 3u), vec4u(p.Cout - 1u));
  return (co * (p.KH * p.KW) + t) * p.c4;
}

/** Writes block c: column j = channel c0+j, row i = pixel q0+i. */
fn store(q0: u32, c0: u32, c: mat4x4f) {
  let hwo = p.Ho * p.Wo;
  for (var j = 0u; j < 4u; j++) {
    let co = c0 + j;
    if (co < p.Cout) {
      var b = 0.0;
      if (p.hasBias != 0u) { b = Bias[co]; }
      for (var i = 0u; i < 4u; i++) {
        let q = q0 + i;
        if (q < p.N * hwo) {
          let n = q / hwo;
          Y[(n * p.Cout + co) * hwo + (q - n * hwo)] = c[j][i] + b;
        }
      }
    }
  }
}

fn put(q: u32, _px: Pixels, c0: u32, c: mat4x4f) {
  store(q, c0, c);
}

fn blockDone(q0: u32, c0: u32) -> bool {
  return q0 >= p.N * p.Ho * p.Wo || c0 >= p.Cout;
}

//! include conv_blocks

// tiled: for GPUs. A 16x16 workgroup computes 64 output pixels x 64 output channels; thread
// (lx, ly) owns pixels qb + lx + 16 i and channels cb + ly + 16 j (neighbouring threads store
// neighbouring pixels of one channel plane). Per kernel tap, slabs of 4 vec4s of input
// channels of the 64 pixels and of the 64 weight rows are staged in workgroup memory, one vec4
// per thread and operand; every output sums its dot products in the order of tile4.
//! include conv_tiled_slab

@compute @workgroup_size(16, 16)
fn tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let total = p.N * p.Ho * p.Wo;
  let qb = (wid.x + wid.z * nwg.x) * 64u;
  let cb = wid.y * 64u;
  // The pixel and weight row this thread stages, and its slab offset.
  let t = lid.y * 16u + lid.x;
  let lr = t / SLAB;
  let lk = t - lr * SLAB;
  let px = pixels(min(qb + lr, total - 1u)); // lane x is pixel qb + lr
  let co = min(cb + lr, p.Cout - 1u);
  var acc: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let row = tapRows(px, ky, kx).x;
      let wrow = (co * (p.KH * p.KW) + ky * p.KW + kx) * p.c4;
      for (var k0 = 0u; k0 < p.c4; k0 += SLAB) {
        let k = k0 + lk;
        let inK = k < p.c4;
        let kc = min(k, p.c4 - 1u);
        let pix = select(vec4f(0.0), xv(row + kc), inK);
        let chan = select(vec4f(0.0), wv(wrow + kc), inK);
        acc = slabProduct(acc, pix, chan, lr, lk, min(SLAB, p.c4 - k0), lid);
      }
    }
  }
  let hwo = p.Ho * p.Wo;
  for (var j = 0u; j < 4u; j++) {
    let c = cb + lid.y + 16u * j;
    if (c < p.Cout) {
      var b = 0.0;
      if (p.hasBias != 0u) { b = Bias[c]; }
      for (var i = 0u; i < 4u; i++) {
        let q = qb + lid.x + 16u * i;
        if (q < total) {
          let n = q / hwo;
          Y[(n * p.Cout + c) * hwo + (q - n * hwo)] = acc[j][i] + b;
        }
      }
    }
  }
}
