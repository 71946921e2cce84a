// The body of conv2d_bwd_weight.wgsl and conv2d_bwd_weight_tex.wgsl: everything but how the
// operands are read (xat(i): vec4 i of the input rows, gat(i): vec4 i of the output-gradient rows).
override WG: u32 = 64u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32, NPER: u32,
  ci4: u32, co4: u32, // vec4s per pixel of X and of GY
}
@group(0) @binding(2) var<storage, read_write> GW: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

/** Output positions o in [lo, hi) whose input o*S - P + k*D lies in [0, size). */
fn validRange(k: u32, S: u32, P: u32, D: u32, size: u32, outSize: u32) -> vec2u {
  let a = i32(P) - i32(k * D); // o*S >= a
  let b = i32(size) - 1 + a; // o*S <= b
  if (b < 0) { return vec2u(0u, 0u); }
  let lo = select(0u, (u32(a) + S - 1u) / S, a > 0);
  let hi = min(outSize, u32(b) / S + 1u);
  return vec2u(min(lo, hi), hi); // empty, never lo > hi, when the tap reaches no output pixel
}

/** The thread's tap, channel blocks (in vec4s) and batch chunk; false if it has no work. */
struct Job { z: u32, tap: u32, ky: u32, kx: u32, co: u32, ci: u32, n0: u32, n1: u32 }

fn job(lane: u32, z: u32, co4s: u32, ci4s: u32) -> Job {
  let nci = (p.ci4 + ci4s - 1u) / ci4s;
  let kk = p.KH * p.KW;
  let tap = z % kk;
  let split = z / kk;
  let ky = tap / p.KW;
  return Job(z, tap, ky, tap - ky * p.KW, (lane / nci) * co4s, (lane % nci) * ci4s,
    split * p.NPER, min(p.N, (split + 1u) * p.NPER));
}

/** The CPU variants number their threads flat over (tap and batch chunk, channel block), so
 * that a workgroup holds several taps when a tap has fewer channel blocks than WG threads: on
 * llvmpipe an idle thread of a workgroup costs a large part of what a busy one does. The launch
 * is 2-D (grid1d): flat = gid.x + gid.y * nwg.x * WG. A thread past the last chunk has n0 >= N. */
fn flatJob(gid: vec3u, nwg: vec3u, co4s: u32, ci4s: u32) -> Job {
  let lanes = ((p.co4 + co4s - 1u) / co4s) * ((p.ci4 + ci4s - 1u) / ci4s);
  let flat = gid.x + gid.y * nwg.x * WG;
  return job(flat % lanes, flat / lanes, co4s, ci4s);
}

/** Outer product of 4 input channels x and 4 output channels g: [column co][row ci]. */
fn outer(x: vec4f, g: vec4f) -> mat4x4f {
  return mat4x4f(x * g.x, x * g.y, x * g.z, x * g.w);
}

/** Writes block c: column j = output channel co0+j, row i = input channel ci0+i. */
fn store(z: u32, tap: u32, co0: u32, ci0: u32, c: mat4x4f) {
  let kk = p.KH * p.KW;
  let base = (z / kk) * p.Cout * p.Cin * kk;
  for (var j = 0u; j < 4u; j++) {
    let co = co0 + j;
    if (co < p.Cout) {
      for (var i = 0u; i < 4u; i++) {
        let ci = ci0 + i;
        if (ci < p.Cin) { GW[base + (co * p.Cin + ci) * kk + tap] = c[j][i]; }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn tile16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let jb = flatJob(gid, nwg, 4u, 4u);
  if (jb.n0 >= p.N) { return; }
  let ry = validRange(jb.ky, p.SH, p.PH, p.DH, p.H, p.Ho);
  let rx = validRange(jb.kx, p.SW, p.PW, p.DW, p.W, p.Wo);
  // Channel vec4s of the block (clamped to the last one; duplicates are not stored).
  let g = min(vec4u(jb.co) + vec4u(0u, 1u, 2u, 3u), vec4u(p.co4 - 1u));
  let x = min(vec4u(jb.ci) + vec4u(0u, 1u, 2u, 3u), vec4u(p.ci4 - 1u));
  var a00: mat4x4f; var a01: mat4x4f; var a02: mat4x4f; var a03: mat4x4f;
  var a10: mat4x4f; var a11: mat4x4f; var a12: mat4x4f; var a13: mat4x4f;
  var a20: mat4x4f; var a21: mat4x4f; var a22: mat4x4f; var a23: mat4x4f;
  var a30: mat4x4f; var a31: mat4x4f; var a32: mat4x4f; var a33: mat4x4f;
  let xstep = p.SW * p.ci4;
  for (var n = jb.n0; n < jb.n1; n++) {
    for (var oy = ry.x; oy < ry.y; oy++) {
      let iy = oy * p.SH + jb.ky * p.DH - p.PH;
      let ix = rx.x * p.SW + jb.kx * p.DW - p.PW;
      var go = ((n * p.Ho + oy) * p.Wo + rx.x) * p.co4;
      var xo = ((n * p.H + iy) * p.W + ix) * p.ci4;
      for (var ox = rx.x; ox < rx.y; ox++) {
        let g0 = gat(go + g.x);
        let g1 = gat(go + g.y);
        let g2 = gat(go + g.z);
        let g3 = gat(go + g.w);
        var v = xat(xo + x.x);
        a00 += outer(v, g0); a01 += outer(v, g1); a02 += outer(v, g2); a03 += outer(v, g3);
        v = xat(xo + x.y);
        a10 += outer(v, g0); a11 += outer(v, g1); a12 += outer(v, g2); a13 += outer(v, g3);
        v = xat(xo + x.z);
        a20 += outer(v, g0); a21 += outer(v, g1); a22 += outer(v, g2); a23 += outer(v, g3);
        v = xat(xo + x.w);
        a30 += outer(v, g0); a31 += outer(v, g1); a32 += outer(v, g2); a33 += outer(v, g3);
        go += p.co4;
        xo += xstep;
      }
    }
  }
  let co = jb.co * 4u;
  let ci = jb.ci * 4u;
  store(jb.z, jb.tap, co, ci, a00); store(jb.z, jb.tap, co + 4u, ci, a01);
  store(jb.z, jb.tap, co + 8u, ci, a02); store(jb.z, jb.tap, co + 12u, ci, a03);
  store(jb.z, jb.tap, co, ci + 4u, a10); store(jb.z, jb.tap, co + 4u, ci + 4u, a11);
  store(jb.z, jb.tap, co + 8u, ci + 4u, a12); store(jb.z, jb.tap, co + 12u, ci + 4u, a13);
  store(jb.z, jb.tap, co, ci + 8u, a20); store(jb.z, jb.tap, co + 4u, ci + 8u, a21);
  store(jb.z, jb.tap, co + 8u, ci + 8u, a22); store(jb.z, jb.tap, co + 12u, ci + 8u, a23);
  store(jb.z, jb.tap, co, ci + 12u, a30); store(jb.z, jb.tap, co + 4u, ci + 12u, a31);
  store(jb.z, jb.tap, co + 8u, ci + 12u, a32); store(jb.z, jb.tap, co + 12u, ci + 12u, a33);
}

@compute @workgroup_size(WG)
fn tile4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let jb = flatJob(gid, nwg, 1u, 1u);
  if (jb.n0 >= p.N) { return; }
  let ry = validRange(jb.ky, p.SH, p.PH, p.DH, p.H, p.Ho);
  let rx = validRange(jb.kx, p.SW, p.PW, p.DW, p.W, p.Wo);
  var acc: mat4x4f;
  let xstep = p.SW * p.ci4;
  for (var n = jb.n0; n < jb.n1; n++) {
    for (var oy = ry.x; oy < ry.y; oy++) {
      let iy = oy * p.SH + jb.ky * p.DH - p.PH;
      let ix = rx.x * p.SW + jb.kx * p.DW - p.PW;
      var go = ((n * p.Ho + oy) * p.Wo + rx.x) * p.co4 + jb.co;
      var xo = ((n * p.H + iy) * p.W + ix) * p.ci4 + jb.ci;
      for (var ox = rx.x; ox < rx.y; ox++) {
        acc += outer(xat(xo), gat(go));
        go += p.co4;
        xo += xstep;
      }
    }
  }
  store(jb.z, jb.tap, jb.co * 4u, jb.ci * 4u, acc);
}

@compute @workgroup_size(WG)
fn tile16x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let jb = flatJob(gid, nwg, 4u, 1u);
  if (jb.n0 >= p.N) { return; }
  let ry = validRange(jb.ky, p.SH, p.PH, p.DH, p.H, p.Ho);
  let rx = validRange(jb.kx, p.SW, p.PW, p.DW, p.W, p.Wo);
  let g = min(vec4u(jb.co) + vec4u(0u, 1u, 2u, 3u), vec4u(p.co4 - 1u));
  var a0: mat4x4f; var a1: mat4x4f; var a2: mat4x4f; var a3: mat4x4f;
  let xstep = p.SW * p.ci4;
  for (var n = jb.n0; n < jb.n1; n++) {
    for (var oy = ry.x; oy < ry.y; oy++) {
      let iy = oy * p.SH + jb.ky * p.DH - p.PH;
      let ix = rx.x * p.SW + jb.kx * p.DW - p.PW;
      var go = ((n * p.Ho + oy) * p.Wo + rx.x) * p.co4;
      var xo = ((n * p.H + iy) * p.W + ix) * p.ci4 + jb.ci;
      for (var ox = rx.x; ox < rx.y; ox++) {
        let v = xat(xo);
        a0 += outer(v, gat(go + g.x));
        a1 += outer(v, gat(go + g.y));
        a2 += outer(v, gat(go + g.z));
        a3 += outer(v, gat(go + g.w));
        go += p.co4;
        xo += xstep;
      }
    }
  }
  let co = jb.co * 4u;
  let ci = jb.ci * 4u;
  store(jb.z, jb.tap, co, ci, a0); store(jb.z, jb.tap, co + 4u, ci, a1);
  store(jb.z, jb.tap, co + 8u, ci, a2); store(jb.z, jb.tap, co + 12u, ci, a3);
}

// tiled: for GPUs. A 16x16 workgroup owns one tap and batch chunk (z) and a block of 16 x 16
// channel vec4s (64 output x 64 input channels); thread (lx, ly) owns input channel vec4
// cib + lx and output channel vec4 cob + ly. The tap's valid output pixels (n, oy, ox in the
// box tile4 walks, in the same order) are staged 16 at a time in workgroup memory: each
// thread loads one vec4 of X and one of GY, 16 neighbouring threads one pixel's channels.
const PIX = 16u;
var<workgroup> sX: array<vec4f, 256>; // [pixel][ci vec4]
var<workgroup> sG: array<vec4f, 256>; // [pixel][co vec4]

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let nci = (p.ci4 + 15u) / 16u;
  let cob = (wid.x / nci) * 16u;
  let cib = (wid.x % nci) * 16u;
  let jb = job(0u, wid.y, 1u, 1u); // the tap and batch chunk (channels come from the block)
  let ry = validRange(jb.ky, p.SH, p.PH, p.DH, p.H, p.Ho);
  let rx = validRange(jb.kx, p.SW, p.PW, p.DW, p.W, p.Wo);
  let ny = ry.y - ry.x;
  let nx = rx.y - rx.x;
  let count = (jb.n1 - jb.n0) * ny * nx;
  // What this thread stages: pixel sp of each slab, channel vec4 sc of X and of GY.
  let t = lid.y * 16u + lid.x;
  let sp = t / 16u;
  let sc = t - sp * 16u;
  let xc = cib + sc;
  let gc = cob + sc;
  var acc: mat4x4f;
  for (var v0 = 0u; v0 < count; v0 += PIX) {
    let v = v0 + sp;
    var xv = vec4f(0.0);
    var gv = vec4f(0.0);
    if (v < count) {
      let n = jb.n0 + v / (ny * nx);
      let r = v % (ny * nx);
      let oy = ry.x + r / nx;
      let ox = rx.x + r % nx;
      let iy = oy * p.SH + jb.ky * p.DH - p.PH;
      let ix = ox * p.SW + jb.kx * p.DW - p.PW;
      if (xc < p.ci4) { xv = xat(((n * p.H + iy) * p.W + ix) * p.ci4 + xc); }
      if (gc < p.co4) { gv = gat(((n * p.Ho + oy) * p.Wo + ox) * p.co4 + gc); }
    }
    sX[t] = xv;
    sG[t] = gv;
    workgroupBarrier();
    let pn = min(PIX, count - v0);
    for (var q = 0u; q < pn; q++) {
      acc += outer(sX[q * 16u + lid.x], sG[q * 16u + lid.y]);
    }
    workgroupBarrier();
  }
  if (cob + lid.y < p.co4 && cib + lid.x < p.ci4) {
    store(wid.y, jb.tap, (cob + lid.y) * 4u, (cib + lid.x) * 4u, acc);
  }
}
