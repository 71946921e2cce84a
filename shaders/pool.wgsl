// 2-D max / average pooling forward over planes of x [N*C, H, W], one thread per output.
// Windows start at (oh*SH - PH, ow*SW - PW); positions outside the input are padding:
// -inf for max (never chosen), 0 for average, which divides by KH*KW (count_include_pad).
// MODE 0 (max) scans the window row by row and keeps the first maximum (a NaN wins, like
// PyTorch), storing its in-plane index ih*W+iw in Arg for the backward pass.
// MODE 1 (average) leaves Arg untouched.
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params {
  n: u32, H: u32, W: u32, Ho: u32, Wo: u32,
  KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32,
}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read_write> Arg: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let ow = i % p.Wo;
  let oh = (i / p.Wo) % p.Ho;
  let plane = i / (p.Wo * p.Ho);
  let base = plane * p.H * p.W;
  let h0 = i32(oh * p.SH) - i32(p.PH);
  let w0 = i32(ow * p.SW) - i32(p.PW);
  var best = bitcast<f32>(0xff800000u); // -inf
  var arg = -1;
  var acc = 0.0;
  for (var kh = 0; kh < i32(p.KH); kh++) {
    let ih = h0 + kh;
    if (ih < 0 || ih >= i32(p.H)) { continue; }
    for (var kw = 0; kw < i32(p.KW); kw++) {
      let iw = w0 + kw;
      if (iw < 0 || iw >= i32(p.W)) { continue; }
      let at = ih * i32(p.W) + iw;
      let v = X[base + u32(at)];
      if (MODE == 0u) {
        if (arg < 0 || v > best || v != v) {
          best = v;
          arg = at;
        }
      } else {
        acc += v;
      }
    }
  }
  if (MODE == 0u) {
    Y[i] = best;
    Arg[i] = f32(arg);
  } else {
    Y[i] = acc / f32(p.KH * p.KW);
  }
}
