// The body of conv2d_bwd_data.wgsl and conv2d_bwd_data_tex.wgsl: everything but how the
// operands are read (xv(i): vec4 i of the output-gradient rows, wv(i): vec4 i of the packed
// weight rows).
override WX: u32 = 8u;
override WY: u32 = 8u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32,
  c4: u32, // vec4s per pixel of GY (and per weight row)
  Hs: u32, Ws: u32, // ceil(H / SH), ceil(W / SW): pixels per phase along each axis
}
@group(0) @binding(2) var<storage, read_write> GX: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

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

fn threadsDone(q0: u32) -> bool {
  return q0 >= p.N * p.SH * p.SW * p.Hs * p.Ws;
}

fn put(_q: u32, px: Pixels, c0: u32, c: mat4x4f) {
  store(px, c0, c);
}

fn blockDone(q0: u32, c0: u32) -> bool {
  return threadsDone(q0) || c0 >= p.Cin;
}

//! include conv_blocks

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
          let pix = select(vec4f(0.0), xv(row + kc), inK);
          let chan = select(vec4f(0.0), wv(wrow + kc), inK);
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
