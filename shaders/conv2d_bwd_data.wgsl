// Input gradient of a 2-D convolution (also the forward of a transposed convolution):
// gX[n,ci,iy,ix] = sum_{co,ky,kx} W[co,ci,ky,kx] * gY[n,co,oy,ox] with iy = oy*S - P + ky*D.
// Gather form (each thread owns its outputs, no atomics) on channels-last operands:
//   GY [N*Ho*Wo + 1, c4 vec4s]  gY as NHWC with Cout padded to 4, plus a zero row,
//   Wt [Cin*KH*KW, c4 vec4s]    W as [Cin, KH, KW, Cout] with Cout padded,
//   GX [N, Cin, H, W]           NCHW output.
// A thread owns a block of input pixels x input channels. Per tap, the source output pixel
// of each input pixel is found once (divisibility by the stride, range; the zero row
// otherwise); the inner loop over output channels is vec4 loads and dot products only (see
// conv2d_fwd.wgsl for why loads are what count on the CPU adapter).
// With a stride S, only 1/S^2 of the taps reach a given input pixel, and which ones depends
// on the pixel's phase (iy mod S, ix mod S). Pixels are therefore enumerated phase by phase
// (q -> phase, n, iy div S, ix div S; ragged phases leave holes that are skipped) so that a
// thread's pixels share their phase and taps that reach none of them are skipped.
// Entry points: tile16 (16 pixels x 16 channels, CPU adapter), tile16x8 and tile16x4 (16 pixels
// x 8 or 4 channels, for layers with few input channels), tile4 (4 x 4) and tiled (4 x 4 per
// thread over operands staged in workgroup memory, GPUs).
override WX: u32 = 8u;
override WY: u32 = 8u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32,
  c4: u32, // vec4s per pixel of GY (and per weight row)
  Hs: u32, Ws: u32, // ceil(H / SH), ceil(W / SW): pixels per phase along each axis
}
@group(0) @binding(0) var<storage, read> GY: array<vec4f>;
@group(0) @binding(1) var<storage, read> Wt: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> GX: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

/** Input pixels q..q+3 in phase order: start of their image in GY, padded coordinates,
 * whether they exist (not a hole or past the end) and their offset in an NCHW channel. */
struct Pixels { base: vec4i, ty: vec4i, tx: vec4i, real: vec4<bool>, at: vec4u }

fn pixels(q: u32) -> Pixels {
  let qs = vec4u(q) + vec4u(0u, 1u, 2u, 3u);
  let perImage = p.Hs * p.Ws;
  let perPhase = p.N * perImage;
  let ph = qs / perPhase;
  let r = qs - ph * perPhase;
  let n = r / perImage;
  let j = r - n * perImage;
  let py = ph / p.SW;
  let jy = j / p.Ws;
  let iy = jy * p.SH + py;
  let ix = (j - jy * p.Ws) * p.SW + (ph - py * p.SW);
  let real = (ph < vec4u(p.SH * p.SW)) & (iy < vec4u(p.H)) & (ix < vec4u(p.W));
  return Pixels(
    vec4i(n * p.Ho * p.Wo),
    vec4i(iy + p.PH),
    vec4i(ix + p.PW),
    real,
    n * p.Cin * p.H * p.W + iy * p.W + ix,
  );
}

/** Start (in vec4s) of the GY rows the 4 pixels receive from at tap (ky, kx). */
fn tapRows(px: Pixels, ky: u32, kx: u32) -> vec4u {
  let ty = px.ty - i32(ky * p.DH);
  let tx = px.tx - i32(kx * p.DW);
  let oy = ty / i32(p.SH);
  let ox = tx / i32(p.SW);
  let ok = px.real & (ty >= vec4i(0)) & (tx >= vec4i(0)) & (oy * i32(p.SH) == ty) &
    (ox * i32(p.SW) == tx) & (oy < vec4i(i32(p.Ho))) & (ox < vec4i(i32(p.Wo)));
  return select(vec4u(zeroRow()), vec4u(px.base + oy * i32(p.Wo) + ox) * p.c4, ok);
}

fn zeroRow() -> u32 {
  return p.N * p.Ho * p.Wo * p.c4;
}

/** Start (in vec4s) of the weight rows of input channels c..c+3 (clamped) at tap t. */
fn weightRows(c: u32, t: u32) -> vec4u {
  let ci = min(vec4u(c) + vec4u(0u, 1u, 2u, 3u), vec4u(p.Cin - 1u));
  return (ci * (p.KH * p.KW) + t) * p.c4;
}

fn gs(r: vec4u, k: u32) -> mat4x4f {
  return transpose(mat4x4f(GY[r.x + k], GY[r.y + k], GY[r.z + k], GY[r.w + k]));
}

fn ws(r: vec4u, k: u32) -> mat4x4f {
  return mat4x4f(Wt[r.x + k], Wt[r.y + k], Wt[r.z + k], Wt[r.w + k]);
}

/** Writes block c: column j = input channel c0+j, row i = pixel i of px. */
fn store(px: Pixels, c0: u32, c: mat4x4f) {
  let hw = p.H * p.W;
  for (var j = 0u; j < 4u; j++) {
    let ci = c0 + j;
    if (ci < p.Cin) {
      for (var i = 0u; i < 4u; i++) {
        if (px.real[i]) { GX[px.at[i] + ci * hw] = c[j][i]; }
      }
    }
  }
}

/** Whether every row of a tap is the zero row (nothing to add: see conv2d_fwd.wgsl). */
fn padding4(r0: vec4u, r1: vec4u, r2: vec4u, r3: vec4u) -> bool {
  let z = vec4u(zeroRow());
  return all(r0 == z) && all(r1 == z) && all(r2 == z) && all(r3 == z);
}

fn threadsDone(q0: u32) -> bool {
  return q0 >= p.N * p.SH * p.SW * p.Hs * p.Ws;
}

@compute @workgroup_size(WX, WY)
fn tile16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 16u;
  if (threadsDone(q0) || c0 >= p.Cin) { return; }
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
        var g = gs(r0, k);
        a00 += g * y0; a01 += g * y1; a02 += g * y2; a03 += g * y3;
        g = gs(r1, k);
        a10 += g * y0; a11 += g * y1; a12 += g * y2; a13 += g * y3;
        g = gs(r2, k);
        a20 += g * y0; a21 += g * y1; a22 += g * y2; a23 += g * y3;
        g = gs(r3, k);
        a30 += g * y0; a31 += g * y1; a32 += g * y2; a33 += g * y3;
      }
    }
  }
  store(p0, c0, a00); store(p0, c0 + 4u, a01); store(p0, c0 + 8u, a02); store(p0, c0 + 12u, a03);
  store(p1, c0, a10); store(p1, c0 + 4u, a11); store(p1, c0 + 8u, a12); store(p1, c0 + 12u, a13);
  store(p2, c0, a20); store(p2, c0 + 4u, a21); store(p2, c0 + 8u, a22); store(p2, c0 + 12u, a23);
  store(p3, c0, a30); store(p3, c0 + 4u, a31); store(p3, c0 + 8u, a32); store(p3, c0 + 12u, a33);
}

@compute @workgroup_size(WX, WY)
fn tile16x8(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 8u;
  if (threadsDone(q0) || c0 >= p.Cin) { return; }
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
        var g = gs(r0, k);
        a00 += g * y0; a01 += g * y1;
        g = gs(r1, k);
        a10 += g * y0; a11 += g * y1;
        g = gs(r2, k);
        a20 += g * y0; a21 += g * y1;
        g = gs(r3, k);
        a30 += g * y0; a31 += g * y1;
      }
    }
  }
  store(p0, c0, a00); store(p0, c0 + 4u, a01); store(p1, c0, a10); store(p1, c0 + 4u, a11);
  store(p2, c0, a20); store(p2, c0 + 4u, a21); store(p3, c0, a30); store(p3, c0 + 4u, a31);
}

@compute @workgroup_size(WX, WY)
fn tile16x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 4u;
  if (threadsDone(q0) || c0 >= p.Cin) { return; }
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
        a0 += gs(r0, k) * y;
        a1 += gs(r1, k) * y;
        a2 += gs(r2, k) * y;
        a3 += gs(r3, k) * y;
      }
    }
  }
  store(p0, c0, a0); store(p1, c0, a1); store(p2, c0, a2); store(p3, c0, a3);
}

@compute @workgroup_size(WX, WY)
fn tile4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 4u;
  let c0 = gid.y * 4u;
  if (threadsDone(q0) || c0 >= p.Cin) { return; }
  let px = pixels(q0);
  var acc: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let r = tapRows(px, ky, kx);
      if (all(r == vec4u(zeroRow()))) { continue; }
      let w = weightRows(c0, ky * p.KW + kx);
      for (var k = 0u; k < p.c4; k++) {
        acc += gs(r, k) * ws(w, k);
      }
    }
  }
  store(px, c0, acc);
}

// tiled: for GPUs, as conv2d_fwd's tiled: 64 input pixels (in phase order) x 64 input channels
// per 16x16 workgroup; thread (lx, ly) owns pixels q0 + lx + 16 i and channels c0 + ly + 16 j.
// A tap that reaches none of the workgroup's pixels is skipped by the whole workgroup (a flag
// in workgroup memory, read uniformly), so strided convolutions skip what tile4 skips.
//! include conv_tiled_slab
var<workgroup> reached: u32;

@compute @workgroup_size(16, 16)
fn tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let qb = (wid.x + wid.z * nwg.x) * 64u;
  let cb = wid.y * 64u;
  let t = lid.y * 16u + lid.x;
  let lr = t / SLAB;
  let lk = t - lr * SLAB;
  let px = pixels(qb + lr); // lane x is pixel qb + lr (not real past the end)
  let ci = min(cb + lr, p.Cin - 1u);
  let zero = zeroRow();
  if (t == 0u) { reached = 0u; }
  workgroupBarrier();
  var acc: mat4x4f;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      let row = tapRows(px, ky, kx).x;
      if (row != zero) { reached = 1u; }
      if (workgroupUniformLoad(&reached) != 0u) {
        let wrow = (ci * (p.KH * p.KW) + ky * p.KW + kx) * p.c4;
        for (var k0 = 0u; k0 < p.c4; k0 += SLAB) {
          let k = k0 + lk;
          let inK = k < p.c4;
          let kc = min(k, p.c4 - 1u);
          let pix = select(vec4f(0.0), GY[row + kc], inK);
          let chan = select(vec4f(0.0), Wt[wrow + kc], inK);
          acc = slabProduct(acc, pix, chan, lr, lk, min(SLAB, p.c4 - k0), lid);
        }
      }
      workgroupBarrier();
      if (t == 0u) { reached = 0u; }
      workgroupBarrier();
    }
  }
  let hw = p.H * p.W;
  for (var i = 0u; i < 4u; i++) {
    let pi = pixels(qb + lid.x + 16u * i);
    if (pi.real.x) {
      for (var j = 0u; j < 4u; j++) {
        let c = cb + lid.y + 16u * j;
        if (c < p.Cin) { GX[pi.at.x + c * hw] = acc[j][i]; }
      }
    }
  }
}
