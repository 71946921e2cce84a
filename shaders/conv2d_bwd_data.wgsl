// Input gradient of a 2-D convolution (also the forward of a transposed convolution):
// gX[n,ci,iy,ix] = sum_{co,ky,kx} W[co,ci,ky,kx] * gY[n,co,oy,ox] with iy = oy*S - P + ky*D.
// Gather form (each thread owns its outputs, no atomics): a TCI x 4 block, 4 input channels
// for 4 consecutive input pixels. Per tap, the source output pixel of each input pixel is
// found once (divisibility by the stride, range); the inner loop runs over output channels.
override WX: u32 = 8u;
override WY: u32 = 8u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32,
}
@group(0) @binding(0) var<storage, read> GY: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> GX: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

@compute @workgroup_size(WX, WY)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let hw = p.H * p.W;
  let P = p.N * hw;
  let q0 = (gid.x + gid.z * nwg.x * WX) * 4u;
  let c0 = gid.y * 4u;
  if (q0 >= P || c0 >= p.Cin) { return; }
  let hwo = p.Ho * p.Wo;
  let kk = p.KH * p.KW;
  let wco = p.Cin * kk;
  var gbase: array<u32, 4>;
  var ty0: array<i32, 4>;
  var tx0: array<i32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let q = min(q0 + i, P - 1u);
    let n = q / hw;
    let r = q - n * hw;
    let iy = r / p.W;
    let ix = r - iy * p.W;
    gbase[i] = n * p.Cout * hwo;
    ty0[i] = i32(iy + p.PH);
    tx0[i] = i32(ix + p.PW);
  }
  var wbase: array<u32, 4>;
  for (var j = 0u; j < 4u; j++) { wbase[j] = min(c0 + j, p.Cin - 1u) * kk; }
  var acc: array<vec4f, 4>;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      var off: vec4<u32>;
      var ok: vec4<bool>;
      for (var i = 0u; i < 4u; i++) {
        let ty = ty0[i] - i32(ky * p.DH);
        let tx = tx0[i] - i32(kx * p.DW);
        let oy = ty / i32(p.SH);
        let ox = tx / i32(p.SW);
        ok[i] = ty >= 0 && tx >= 0 && oy * i32(p.SH) == ty && ox * i32(p.SW) == tx &&
          oy < i32(p.Ho) && ox < i32(p.Wo);
        off[i] = select(0u, gbase[i] + u32(oy) * p.Wo + u32(ox), ok[i]);
      }
      let tap = ky * p.KW + kx;
      for (var co = 0u; co < p.Cout; co++) {
        let go = co * hwo;
        let gv = select(vec4f(0.0),
          vec4f(GY[off.x + go], GY[off.y + go], GY[off.z + go], GY[off.w + go]), ok);
        let wo = co * wco + tap;
        acc[0] += Wt[wbase[0] + wo] * gv;
        acc[1] += Wt[wbase[1] + wo] * gv;
        acc[2] += Wt[wbase[2] + wo] * gv;
        acc[3] += Wt[wbase[3] + wo] * gv;
      }
    }
  }
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j;
    if (c < p.Cin) {
      for (var i = 0u; i < 4u; i++) {
        let q = q0 + i;
        if (q < P) {
          let n = q / hw;
          GX[(n * p.Cin + c) * hw + (q - n * hw)] = acc[j][i];
        }
      }
    }
  }
}
