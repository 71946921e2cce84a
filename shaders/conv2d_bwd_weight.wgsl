// Weight gradient of a 2-D convolution:
// gW[co,ci,ky,kx] = sum_{n,oy,ox} gY[n,co,oy,ox] * X[n,ci,oy*S-P+ky*D,ox*S-P+kx*D].
// Each thread owns a 4 (co) x 4 (ci) block for one tap (gid.z = split * KK + tap), so the
// padding check of a pixel is shared by its 4 input channels. The batch is split into
// SPLIT chunks written to separate partial planes (summed afterwards in a fixed order):
// more threads on a big GPU, and still no atomics.
override WX: u32 = 8u;
override WY: u32 = 8u;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32, NPER: u32,
}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read_write> GW: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

@compute @workgroup_size(WX, WY)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let ci0 = gid.x * 4u;
  let co0 = gid.y * 4u;
  if (ci0 >= p.Cin || co0 >= p.Cout) { return; }
  let kk = p.KH * p.KW;
  let tap = gid.z % kk;
  let split = gid.z / kk;
  let ky = tap / p.KW;
  let kx = tap - ky * p.KW;
  let hw = p.H * p.W;
  let hwo = p.Ho * p.Wo;
  var xc: vec4<u32>;
  var gc: vec4<u32>;
  for (var i = 0u; i < 4u; i++) {
    xc[i] = min(ci0 + i, p.Cin - 1u) * hw;
    gc[i] = min(co0 + i, p.Cout - 1u) * hwo;
  }
  var acc: array<vec4f, 4>;
  let nEnd = min(p.N, (split + 1u) * p.NPER);
  for (var n = split * p.NPER; n < nEnd; n++) {
    let xn = n * p.Cin * hw;
    let gn = n * p.Cout * hwo;
    for (var oy = 0u; oy < p.Ho; oy++) {
      let iy = i32(oy * p.SH + ky * p.DH) - i32(p.PH);
      if (iy < 0 || iy >= i32(p.H)) { continue; }
      let xr = xn + u32(iy) * p.W;
      let gr = gn + oy * p.Wo;
      for (var ox = 0u; ox < p.Wo; ox++) {
        let ix = i32(ox * p.SW + kx * p.DW) - i32(p.PW);
        if (ix < 0 || ix >= i32(p.W)) { continue; }
        let xo = xr + u32(ix);
        let go = gr + ox;
        let xv = vec4f(X[xc.x + xo], X[xc.y + xo], X[xc.z + xo], X[xc.w + xo]);
        let gv = vec4f(GY[gc.x + go], GY[gc.y + go], GY[gc.z + go], GY[gc.w + go]);
        acc[0] += gv.x * xv;
        acc[1] += gv.y * xv;
        acc[2] += gv.z * xv;
        acc[3] += gv.w * xv;
      }
    }
  }
  let base = split * p.Cout * p.Cin * kk;
  for (var j = 0u; j < 4u; j++) {
    let co = co0 + j;
    if (co < p.Cout) {
      for (var i = 0u; i < 4u; i++) {
        let ci = ci0 + i;
        if (ci < p.Cin) { GW[base + (co * p.Cin + ci) * kk + tap] = acc[j][i]; }
      }
    }
  }
}
