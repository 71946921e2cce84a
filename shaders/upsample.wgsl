// Resizing of planes [P, H, W] -> [P, Ho, Wo] (PyTorch's F.interpolate), selected by PASS:
//   PASS 0 nearest forward   (Ho = H*S, Wo = W*S): y[oh, ow] = x[oh / S, ow / S].
//   PASS 1 nearest backward  one thread per input: sum of its S x S output block.
//   PASS 2 bilinear forward  one thread per output.
//   PASS 3 bilinear backward one thread per input: it visits, in a fixed order, the outputs
//          whose taps can include it and adds their gradient times its weight. No atomics,
//          so results are bit-identical run to run.
// Bilinear source index per axis (ratio in RH/RW, computed on the host like PyTorch):
//   ALIGN 1: src = ratio * dst;  ALIGN 0: src = max(ratio * (dst + 0.5) - 0.5, 0).
// Taps i0 = floor(src) (at most size-1), i1 = min(i0 + 1, size-1), weights 1-l and l.
override WG: u32 = 256u;
override PASS: u32 = 0u;
override ALIGN: u32 = 0u;

struct Params { n: u32, H: u32, W: u32, Ho: u32, Wo: u32, S: u32, RH: f32, RW: f32 }
@group(0) @binding(0) var<storage, read> IN: array<f32>;
@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

struct Taps { i0: u32, i1: u32, l: f32 }

fn taps(dst: u32, size: u32, ratio: f32) -> Taps {
  var src: f32;
  if (ALIGN == 1u) { src = ratio * f32(dst); } else { src = max(ratio * (f32(dst) + 0.5) - 0.5, 0.0); }
  let i0 = min(u32(floor(src)), size - 1u);
  let i1 = min(i0 + 1u, size - 1u);
  return Taps(i0, i1, clamp(src - f32(i0), 0.0, 1.0));
}

// Weight of input index i in output dst along one axis (both taps may be i at the far edge).
fn weight(t: Taps, i: u32) -> f32 {
  return select(0.0, 1.0 - t.l, t.i0 == i) + select(0.0, t.l, t.i1 == i);
}

// Outputs whose taps can include input i: invert the source map at i-1 and i+1 with a margin
// of 2 for rounding; `weight` decides exactly. The last input is also tapped by every output
// mapped beyond it, so its range runs to the end.
fn span(i: u32, size: u32, out: u32, ratio: f32) -> vec2u {
  if (ratio <= 0.0) { return vec2u(0u, out); }
  var a: f32;
  var b: f32;
  if (ALIGN == 1u) {
    a = (f32(i) - 1.0) / ratio;
    b = (f32(i) + 1.0) / ratio;
  } else {
    a = (f32(i) - 0.5) / ratio - 0.5;
    b = (f32(i) + 1.5) / ratio - 0.5;
  }
  let lo = u32(clamp(floor(a) - 2.0, 0.0, f32(out)));
  var hi = u32(clamp(ceil(b) + 3.0, 0.0, f32(out)));
  if (i + 1u >= size) { hi = out; }
  return vec2u(lo, hi);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  if (PASS == 0u || PASS == 2u) {
    let ow = i % p.Wo;
    let oh = (i / p.Wo) % p.Ho;
    let base = (i / (p.Wo * p.Ho)) * p.H * p.W;
    if (PASS == 0u) {
      OUT[i] = IN[base + (oh / p.S) * p.W + ow / p.S];
      return;
    }
    let th = taps(oh, p.H, p.RH);
    let tw = taps(ow, p.W, p.RW);
    let top = IN[base + th.i0 * p.W + tw.i0] * (1.0 - tw.l) + IN[base + th.i0 * p.W + tw.i1] * tw.l;
    let bot = IN[base + th.i1 * p.W + tw.i0] * (1.0 - tw.l) + IN[base + th.i1 * p.W + tw.i1] * tw.l;
    OUT[i] = top * (1.0 - th.l) + bot * th.l;
    return;
  }
  // Backward: i runs over the input (gradient) elements; IN is the output gradient.
  let iw = i % p.W;
  let ih = (i / p.W) % p.H;
  let base = (i / (p.W * p.H)) * p.Ho * p.Wo;
  var acc = 0.0;
  if (PASS == 1u) {
    for (var a = 0u; a < p.S; a++) {
      for (var b = 0u; b < p.S; b++) {
        acc += IN[base + (ih * p.S + a) * p.Wo + iw * p.S + b];
      }
    }
  } else {
    let sh = span(ih, p.H, p.Ho, p.RH);
    let sw = span(iw, p.W, p.Wo, p.RW);
    for (var oh = sh.x; oh < sh.y; oh++) {
      let wh = weight(taps(oh, p.H, p.RH), ih);
      if (wh == 0.0) { continue; }
      var row = 0.0;
      for (var ow = sw.x; ow < sw.y; ow++) {
        let ww = weight(taps(ow, p.W, p.RW), iw);
        row += IN[base + oh * p.Wo + ow] * ww;
      }
      acc += row * wh;
    }
  }
  OUT[i] = acc;
}
