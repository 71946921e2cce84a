// The CPU adapter's register-blocked entry points, shared by conv2d_fwd and conv2d_bwd_data
// (included): a thread owns 16 (or 4) pixels, in 4 groups of 4, x 16, 8 or 4 channels, as 4x4
// blocks (mat4x4f), and per kernel tap adds the products of its pixels' channels-last rows and
// its channels' weight rows, 4 channels (one vec4) at a time. Every variant adds each output's
// products in the same order (taps, then vec4s of channels), so all give the same bits.
// The including shader defines: xv(i) and wv(i) (vec4 i of the pixel rows and of the weight
// rows, from buffers or textures), Pixels, pixels(q), tapRows(px, ky, kx), zeroRow(),
// weightRows(c, t), put(q, px, c0, block) (stores pixels q.. / px, channels c0..) and
// blockDone(q0, c0).

// The loop bounds (kernel taps, vec4s per pixel row) as pipeline constants where the launch gives
// them (runtime/ops/conv.ts, its "+k" variants), else from the params (0): llvmpipe compiles a
// constant trip count into a different loop, faster for some layers and slower for others, so the
// tuner times both.
override TAPS_H: u32 = 0u;
override TAPS_W: u32 = 0u;
override ROW_VEC4S: u32 = 0u;

fn tapsH() -> u32 { return select(p.KH, TAPS_H, TAPS_H != 0u); }
fn tapsW() -> u32 { return select(p.KW, TAPS_W, TAPS_W != 0u); }
fn rowVec4s() -> u32 { return select(p.c4, ROW_VEC4S, ROW_VEC4S != 0u); }

/** The 4 pixel rows starting at r (vec4 k of each) as a mat4x4f, transposed: row i = pixel i. */
fn operand(r: vec4u, k: u32) -> mat4x4f {
  return transpose(mat4x4f(xv(r.x + k), xv(r.y + k), xv(r.z + k), xv(r.w + k)));
}

/** The 4 weight rows starting at r (vec4 k of each): column j = channel j. */
fn ws(r: vec4u, k: u32) -> mat4x4f {
  return mat4x4f(wv(r.x + k), wv(r.y + k), wv(r.z + k), wv(r.w + k));
}

/** Whether every row of a tap is the zero row (nothing to add; see conv2d_fwd.wgsl). */
fn padding4(r0: vec4u, r1: vec4u, r2: vec4u, r3: vec4u) -> bool {
  let z = vec4u(zeroRow());
  return all(r0 == z) && all(r1 == z) && all(r2 == z) && all(r3 == z);
}

@compute @workgroup_size(WX, WY)
fn tile16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 16u;
  if (blockDone(q0, c0)) { return; }
  let p0 = pixels(q0);
  let p1 = pixels(q0 + 4u);
  let p2 = pixels(q0 + 8u);
  let p3 = pixels(q0 + 12u);
  var a00: mat4x4f; var a01: mat4x4f; var a02: mat4x4f; var a03: mat4x4f;
  var a10: mat4x4f; var a11: mat4x4f; var a12: mat4x4f; var a13: mat4x4f;
  var a20: mat4x4f; var a21: mat4x4f; var a22: mat4x4f; var a23: mat4x4f;
  var a30: mat4x4f; var a31: mat4x4f; var a32: mat4x4f; var a33: mat4x4f;
  for (var ky = 0u; ky < tapsH(); ky++) {
    for (var kx = 0u; kx < tapsW(); kx++) {
      let t = ky * tapsW() + kx;
      let r0 = tapRows(p0, ky, kx);
      let r1 = tapRows(p1, ky, kx);
      let r2 = tapRows(p2, ky, kx);
      let r3 = tapRows(p3, ky, kx);
      if (padding4(r0, r1, r2, r3)) { continue; }
      let w0 = weightRows(c0, t);
      let w1 = weightRows(c0 + 4u, t);
      let w2 = weightRows(c0 + 8u, t);
      let w3 = weightRows(c0 + 12u, t);
      for (var k = 0u; k < rowVec4s(); k++) {
        let y0 = ws(w0, k);
        let y1 = ws(w1, k);
        let y2 = ws(w2, k);
        let y3 = ws(w3, k);
        var x = operand(r0, k);
        a00 += x * y0; a01 += x * y1; a02 += x * y2; a03 += x * y3;
        x = operand(r1, k);
        a10 += x * y0; a11 += x * y1; a12 += x * y2; a13 += x * y3;
        x = operand(r2, k);
        a20 += x * y0; a21 += x * y1; a22 += x * y2; a23 += x * y3;
        x = operand(r3, k);
        a30 += x * y0; a31 += x * y1; a32 += x * y2; a33 += x * y3;
      }
    }
  }
  put(q0, p0, c0, a00); put(q0, p0, c0 + 4u, a01);
  put(q0, p0, c0 + 8u, a02); put(q0, p0, c0 + 12u, a03);
  put(q0 + 4u, p1, c0, a10); put(q0 + 4u, p1, c0 + 4u, a11);
  put(q0 + 4u, p1, c0 + 8u, a12); put(q0 + 4u, p1, c0 + 12u, a13);
  put(q0 + 8u, p2, c0, a20); put(q0 + 8u, p2, c0 + 4u, a21);
  put(q0 + 8u, p2, c0 + 8u, a22); put(q0 + 8u, p2, c0 + 12u, a23);
  put(q0 + 12u, p3, c0, a30); put(q0 + 12u, p3, c0 + 4u, a31);
  put(q0 + 12u, p3, c0 + 8u, a32); put(q0 + 12u, p3, c0 + 12u, a33);
}

@compute @workgroup_size(WX, WY)
fn tile16x8(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 8u;
  if (blockDone(q0, c0)) { return; }
  let p0 = pixels(q0);
  let p1 = pixels(q0 + 4u);
  let p2 = pixels(q0 + 8u);
  let p3 = pixels(q0 + 12u);
  var a00: mat4x4f; var a01: mat4x4f; var a10: mat4x4f; var a11: mat4x4f;
  var a20: mat4x4f; var a21: mat4x4f; var a30: mat4x4f; var a31: mat4x4f;
  for (var ky = 0u; ky < tapsH(); ky++) {
    for (var kx = 0u; kx < tapsW(); kx++) {
      let t = ky * tapsW() + kx;
      let r0 = tapRows(p0, ky, kx);
      let r1 = tapRows(p1, ky, kx);
      let r2 = tapRows(p2, ky, kx);
      let r3 = tapRows(p3, ky, kx);
      if (padding4(r0, r1, r2, r3)) { continue; }
      let w0 = weightRows(c0, t);
      let w1 = weightRows(c0 + 4u, t);
      for (var k = 0u; k < rowVec4s(); k++) {
        let y0 = ws(w0, k);
        let y1 = ws(w1, k);
        var x = operand(r0, k);
        a00 += x * y0; a01 += x * y1;
        x = operand(r1, k);
        a10 += x * y0; a11 += x * y1;
        x = operand(r2, k);
        a20 += x * y0; a21 += x * y1;
        x = operand(r3, k);
        a30 += x * y0; a31 += x * y1;
      }
    }
  }
  put(q0, p0, c0, a00); put(q0, p0, c0 + 4u, a01);
  put(q0 + 4u, p1, c0, a10); put(q0 + 4u, p1, c0 + 4u, a11);
  put(q0 + 8u, p2, c0, a20); put(q0 + 8u, p2, c0 + 4u, a21);
  put(q0 + 12u, p3, c0, a30); put(q0 + 12u, p3, c0 + 4u, a31);
}

@compute @workgroup_size(WX, WY)
fn tile16x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 16u;
  let c0 = gid.y * 4u;
  if (blockDone(q0, c0)) { return; }
  let p0 = pixels(q0);
  let p1 = pixels(q0 + 4u);
  let p2 = pixels(q0 + 8u);
  let p3 = pixels(q0 + 12u);
  var a0: mat4x4f; var a1: mat4x4f; var a2: mat4x4f; var a3: mat4x4f;
  for (var ky = 0u; ky < tapsH(); ky++) {
    for (var kx = 0u; kx < tapsW(); kx++) {
      let r0 = tapRows(p0, ky, kx);
      let r1 = tapRows(p1, ky, kx);
      let r2 = tapRows(p2, ky, kx);
      let r3 = tapRows(p3, ky, kx);
      if (padding4(r0, r1, r2, r3)) { continue; }
      let w = weightRows(c0, ky * tapsW() + kx);
      for (var k = 0u; k < rowVec4s(); k++) {
        let y = ws(w, k);
        a0 += operand(r0, k) * y;
        a1 += operand(r1, k) * y;
        a2 += operand(r2, k) * y;
        a3 += operand(r3, k) * y;
      }
    }
  }
  put(q0, p0, c0, a0); put(q0 + 4u, p1, c0, a1); put(q0 + 8u, p2, c0, a2); put(q0 + 12u, p3, c0, a3);
}

@compute @workgroup_size(WX, WY)
fn tile4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q0 = (gid.x + gid.z * nwg.x * WX) * 4u;
  let c0 = gid.y * 4u;
  if (blockDone(q0, c0)) { return; }
  let px = pixels(q0);
  var acc: mat4x4f;
  for (var ky = 0u; ky < tapsH(); ky++) {
    for (var kx = 0u; kx < tapsW(); kx++) {
      let r = tapRows(px, ky, kx);
      if (all(r == vec4u(zeroRow()))) { continue; }
      let w = weightRows(c0, ky * tapsW() + kx);
      for (var k = 0u; k < rowVec4s(); k++) {
        acc += operand(r, k) * ws(w, k);
      }
    }
  }
  put(q0, px, c0, acc);
}
