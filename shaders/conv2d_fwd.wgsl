// Direct (implicit-GEMM) 2-D convolution on channels-last operands:
//   X  [N*H*W + 1, c4 vec4s]    the input as NHWC with Cin padded to 4 (packRows4), plus a zero
//                               row that padding taps point at (so loads never branch),
//   Wt [Cout*KH*KW, c4 vec4s]   the weight as [Cout, KH, KW, Cin] with Cin padded,
//   Y  [N, Cout, Ho, Wo]        NCHW output.
// A thread owns a block of output pixels (flattened over n, oy, ox) x output channels and,
// per kernel tap, reads 4 input channels of each pixel and each weight row with one vec4
// load (on the CPU adapter every storage load is a loop over the SIMD lanes: the number of
// loads, not of FLOPs, sets the speed). A 4x4 block is a mat4x4f:
// (transpose(Xs) * Ws)[j][i] = dot(x_i, w_j) over 4 input channels.
// A tap whose rows are all the zero row (padding, e.g. a dilated kernel on a small map) is
// skipped: its products are zeros, and adding a zero to a sum that started at +0 never changes
// its bits, so the skip keeps every variant's result (for finite weights: an Inf or NaN weight
// times a padding zero is NaN, and variants skip over groups of 4 or 16 pixels).
// Entry points: tile16 (16 pixels x 16 channels, CPU adapter), tile16x8 and tile16x4 (16 pixels
// x 8 or 4 channels, for layers with few output channels, where tile16's block is mostly empty),
// tile4 (4 x 4) and tiled (4 x 4 per thread over operands staged in workgroup memory, GPUs).
override WX: u32 = 8u;
override WY: u32 = 8u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32,
  c4: u32, // vec4s per pixel of X (and per weight row)
  hasBias: u32,
}
@group(0) @binding(0) var<storage, read> X: array<vec4f>;
@group(0) @binding(1) var<storage, read> Wt: array<vec4f>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read> p: Params;

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

/** Whether every row of a tap is the zero row (nothing to add). */
fn padding4(r0: vec4u, r1: vec4u, r2: vec4u, r3: vec4u) -> bool {
  let z = vec4u(zeroRow());
  return all(r0 == z) && all(r1 == z) && all(r2 == z) && all(r3 == z);
}

/** Start (in vec4s) of the weight rows of channels c..c+3 (clamped) at tap t. */
fn weightRows(c: u32, t: u32) -> vec4u {
  let co = min(vec4u(c) + vec4u(0u, 1u, 2u, 3u), vec4u(p.Cout - 1u));
  return (co * (p.KH * p.KW) + t) * p.c4;
}

fn xs(r: vec4u, k: u32) -> mat4x4f {
  return transpose(mat4x4f(X[r.x + k], X[r.y + k], X[r.z + k], X[r.w + k]));
}

fn ws(r: vec4u, k: u32) -> mat4x4f {
  return mat4x4f(Wt[r.x + k], Wt[r.y + k], Wt[r.z + k], Wt[r.w + k]);
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

@compute @workgroup_size(WX, WY)
fn tile16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 16u;
  if (q0 >= p.N * p.Ho * p.Wo || c0 >= p.Cout) { return; }
  let p0 = pixels(q0);
  let p1 = pixels(q0 + 4u);
  let p2 = pixels(q0 + 8u);
  let p3 = pixels(q0 + 12u);
  var a00: mat4x4f; var a01: mat4x4f; var a02: mat4x4f; var a03: mat4x4f;
  var a10: mat4x4f; var a11: mat4x4f; var a12: mat4x4f; var a13: mat4x4f;
  var a20: mat4x4f; var a21: mat4x4f; var a22: mat4x4f; var a23: mat4x4f;
  var a30: mat4x4f; var a31: mat4x4f; var a32: mat4x4f; var a33: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let t = ky * p.KW + kx;
      let r0 = tapRows(p0, ky, kx);
      let r1 = tapRows(p1, ky, kx);
      let r2 = tapRows(p2, ky, kx);
      let r3 = tapRows(p3, ky, kx);
      if (padding4(r0, r1, r2, r3)) { continue; }
      let w0 = weightRows(c0, t);
      let w1 = weightRows(c0 + 4u, t);
      let w2 = weightRows(c0 + 8u, t);
      let w3 = weightRows(c0 + 12u, t);
      for (var k = 0u; k < p.c4; k++) {
        let y0 = ws(w0, k);
        let y1 = ws(w1, k);
        let y2 = ws(w2, k);
        let y3 = ws(w3, k);
        var x = xs(r0, k);
        a00 += x * y0; a01 += x * y1; a02 += x * y2; a03 += x * y3;
        x = xs(r1, k);
        a10 += x * y0; a11 += x * y1; a12 += x * y2; a13 += x * y3;
        x = xs(r2, k);
        a20 += x * y0; a21 += x * y1; a22 += x * y2; a23 += x * y3;
        x = xs(r3, k);
        a30 += x * y0; a31 += x * y1; a32 += x * y2; a33 += x * y3;
      }
    }
  }
  store(q0, c0, a00); store(q0, c0 + 4u, a01); store(q0, c0 + 8u, a02); store(q0, c0 + 12u, a03);
  store(q0 + 4u, c0, a10); store(q0 + 4u, c0 + 4u, a11);
  store(q0 + 4u, c0 + 8u, a12); store(q0 + 4u, c0 + 12u, a13);
  store(q0 + 8u, c0, a20); store(q0 + 8u, c0 + 4u, a21);
  store(q0 + 8u, c0 + 8u, a22); store(q0 + 8u, c0 + 12u, a23);
  store(q0 + 12u, c0, a30); store(q0 + 12u, c0 + 4u, a31);
  store(q0 + 12u, c0 + 8u, a32); store(q0 + 12u, c0 + 12u, a33);
}

@compute @workgroup_size(WX, WY)
fn tile16x8(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 8u;
  if (q0 >= p.N * p.Ho * p.Wo || c0 >= p.Cout) { return; }
  let p0 = pixels(q0);
  let p1 = pixels(q0 + 4u);
  let p2 = pixels(q0 + 8u);
  let p3 = pixels(q0 + 12u);
  var a00: mat4x4f; var a01: mat4x4f; var a10: mat4x4f; var a11: mat4x4f;
  var a20: mat4x4f; var a21: mat4x4f; var a30: mat4x4f; var a31: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let t = ky * p.KW + kx;
      let r0 = tapRows(p0, ky, kx);
      let r1 = tapRows(p1, ky, kx);
      let r2 = tapRows(p2, ky, kx);
      let r3 = tapRows(p3, ky, kx);
      if (padding4(r0, r1, r2, r3)) { continue; }
      let w0 = weightRows(c0, t);
      let w1 = weightRows(c0 + 4u, t);
      for (var k = 0u; k < p.c4; k++) {
        let y0 = ws(w0, k);
        let y1 = ws(w1, k);
        var x = xs(r0, k);
        a00 += x * y0; a01 += x * y1;
        x = xs(r1, k);
        a10 += x * y0; a11 += x * y1;
        x = xs(r2, k);
        a20 += x * y0; a21 += x * y1;
        x = xs(r3, k);
        a30 += x * y0; a31 += x * y1;
      }
    }
  }
  store(q0, c0, a00); store(q0, c0 + 4u, a01); store(q0 + 4u, c0, a10); store(q0 + 4u, c0 + 4u, a11);
  store(q0 + 8u, c0, a20); store(q0 + 8u, c0 + 4u, a21);
  store(q0 + 12u, c0, a30); store(q0 + 12u, c0 + 4u, a31);
}

@compute @workgroup_size(WX, WY)
fn tile16x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 4u;
  if (q0 >= p.N * p.Ho * p.Wo || c0 >= p.Cout) { return; }
  let p0 = pixels(q0);
  let p1 = pixels(q0 + 4u);
  let p2 = pixels(q0 + 8u);
  let p3 = pixels(q0 + 12u);
  var a0: mat4x4f; var a1: mat4x4f; var a2: mat4x4f; var a3: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let r0 = tapRows(p0, ky, kx);
      let r1 = tapRows(p1, ky, kx);
      let r2 = tapRows(p2, ky, kx);
      let r3 = tapRows(p3, ky, kx);
      if (padding4(r0, r1, r2, r3)) { continue; }
      let w = weightRows(c0, ky * p.KW + kx);
      for (var k = 0u; k < p.c4; k++) {
        let y = ws(w, k);
        a0 += xs(r0, k) * y;
        a1 += xs(r1, k) * y;
        a2 += xs(r2, k) * y;
        a3 += xs(r3, k) * y;
      }
    }
  }
  store(q0, c0, a0); store(q0 + 4u, c0, a1); store(q0 + 8u, c0, a2); store(q0 + 12u, c0, a3);
}

@compute @workgroup_size(WX, WY)
fn tile4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 4u;
  let c0 = gid.y * 4u;
  if (q0 >= p.N * p.Ho * p.Wo || c0 >= p.Cout) { return; }
  let px = pixels(q0);
  var acc: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let r = tapRows(px, ky, kx);
      if (all(r == vec4u(zeroRow()))) { continue; }
      let w = weightRows(c0, ky * p.KW + kx);
      for (var k = 0u; k < p.c4; k++) {
        acc += xs(r, k) * ws(w, k);
      }
    }
  }
  store(q0, c0, acc);
}


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
        let pix = select(vec4f(0.0), X[row + kc], inK);
        let chan = select(vec4f(0.0), Wt[wrow + kc], inK);
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
