// Bilinear sampling of x [N,C,H,W] at per-output source points (PyTorch's F.grid_sample with
// mode='bilinear'), forward and both gradients, selected by the PASS override:
//   PASS 0 forward:     one thread per output (n, c, o), o = ho*Wo + wo.
//   PASS 1 input grad:  one thread per input ROW (n, c, iy). It zeroes its row, then visits every
//                       output of image n in scan order and adds the taps that land in the row.
//                       Each input element is written by exactly one thread in a fixed order, so
//                       there is no race, no atomic and the result is bit-identical run to run.
//                       A general grid has no bounded inverse footprint, so the scan over all
//                       Ho*Wo outputs is the price (cheap at CIFAR sizes: 1024 steps a thread).
//   PASS 2 point grad:  one thread per output point (n, o), summing over channels.
// Source points come from MODE:
//   MODE 0 grid: G is grid [N,Ho,Wo,2] in [-1,1] (x then y), unnormalized per ALIGN
//                (1: -1/1 are the centres of the corner pixels; 0: their outer edges).
//   MODE 1 flow: G is flow [N,2,H,W] in pixels (Ho=H, Wo=W); the point is (wo+dx, ho+dy).
// PAD 0 (zeros): taps outside the image read 0. PAD 1 (border): the point is clamped to
// [0, size-1]; like PyTorch the clamp's derivative is 0 on and beyond the border.
// Every pass binds all four data buffers (auto layouts); unused ones get a placeholder.
override WG: u32 = 256u;
override PASS: u32 = 0u;
override MODE: u32 = 0u;
override PAD: u32 = 0u;
override ALIGN: u32 = 0u;

struct Params { n: u32, N: u32, C: u32, H: u32, W: u32, Ho: u32, Wo: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> GY: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// A source point split into its top-left tap (x0, y0), fractions (dx, dy) and the derivatives
// of the pixel coordinates with respect to the grid/flow values (mx, my).
struct Pt { x0: i32, y0: i32, dx: f32, dy: f32, mx: f32, my: f32 }

fn unnormalize(g: f32, size: u32) -> vec2f {
  let s = f32(size);
  if (ALIGN == 1u) { return vec2f((g + 1.0) * 0.5 * (s - 1.0), 0.5 * (s - 1.0)); }
  return vec2f(((g + 1.0) * s - 1.0) * 0.5, 0.5 * s);
}

// Border padding: clamp into [0, size-1]; derivative 0 at and past either end (PyTorch).
fn clip(c: vec2f, size: u32) -> vec2f {
  let hi = f32(size) - 1.0;
  if (c.x <= 0.0) { return vec2f(0.0, 0.0); }
  if (c.x >= hi) { return vec2f(hi, 0.0); }
  return c;
}

// Splits a coordinate into (floor, fraction). Far-outside points are pulled to just outside
// the image first (all their taps stay outside, so value and gradient are unchanged) to keep
// the float->int conversion in range.
fn split(c: f32, size: u32) -> vec2f {
  let v = clamp(c, -2.0, f32(size) + 1.0);
  let f = floor(v);
  return vec2f(f, v - f);
}

fn point(n: u32, o: u32) -> Pt {
  var cx: vec2f;
  var cy: vec2f;
  if (MODE == 0u) {
    let at = (n * p.Ho * p.Wo + o) * 2u;
    cx = unnormalize(G[at], p.W);
    cy = unnormalize(G[at + 1u], p.H);
  } else {
    let hw = p.H * p.W;
    cx = vec2f(f32(o % p.Wo) + G[(n * 2u) * hw + o], 1.0);
    cy = vec2f(f32(o / p.Wo) + G[(n * 2u + 1u) * hw + o], 1.0);
  }
  if (PAD == 1u) {
    cx = clip(cx, p.W);
    cy = clip(cy, p.H);
  }
  let sx = split(cx.x, p.W);
  let sy = split(cy.x, p.H);
  return Pt(i32(sx.x), i32(sy.x), sx.y, sy.y, cx.y, cy.y);
}

fn tap(base: u32, xi: i32, yi: i32) -> f32 {
  if (xi < 0 || yi < 0 || xi >= i32(p.W) || yi >= i32(p.H)) { return 0.0; }
  return X[base + u32(yi) * p.W + u32(xi)];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let hw = p.H * p.W;
  let hwo = p.Ho * p.Wo;
  if (PASS == 0u) {
    let o = i % hwo;
    let plane = i / hwo;
    let t = point(plane / p.C, o);
    let base = plane * hw;
    let top = tap(base, t.x0, t.y0) * (1.0 - t.dx) + tap(base, t.x0 + 1, t.y0) * t.dx;
    let bot = tap(base, t.x0, t.y0 + 1) * (1.0 - t.dx) + tap(base, t.x0 + 1, t.y0 + 1) * t.dx;
    OUT[i] = top * (1.0 - t.dy) + bot * t.dy;
  } else if (PASS == 1u) {
    let row = i32(i % p.H);
    let plane = i / p.H;
    let n = plane / p.C;
    let rowBase = plane * hw + u32(row) * p.W;
    for (var x = 0u; x < p.W; x++) { OUT[rowBase + x] = 0.0; }
    for (var o = 0u; o < hwo; o++) {
      let t = point(n, o);
      var wy: f32;
      if (t.y0 == row) { wy = 1.0 - t.dy; } else if (t.y0 + 1 == row) { wy = t.dy; } else { continue; }
      let g = GY[plane * hwo + o] * wy;
      if (t.x0 >= 0 && t.x0 < i32(p.W)) {
        OUT[rowBase + u32(t.x0)] += g * (1.0 - t.dx);
      }
      if (t.x0 + 1 >= 0 && t.x0 + 1 < i32(p.W)) {
        OUT[rowBase + u32(t.x0 + 1)] += g * t.dx;
      }
    }
  } else {
    let o = i % hwo;
    let n = i / hwo;
    let t = point(n, o);
    var gx = 0.0;
    var gy = 0.0;
    for (var c = 0u; c < p.C; c++) {
      let base = (n * p.C + c) * hw;
      let v00 = tap(base, t.x0, t.y0);
      let v01 = tap(base, t.x0 + 1, t.y0);
      let v10 = tap(base, t.x0, t.y0 + 1);
      let v11 = tap(base, t.x0 + 1, t.y0 + 1);
      let g = GY[(n * p.C + c) * hwo + o];
      gx += g * ((1.0 - t.dy) * (v01 - v00) + t.dy * (v11 - v10));
      gy += g * ((1.0 - t.dx) * (v10 - v00) + t.dx * (v11 - v01));
    }
    if (MODE == 0u) {
      OUT[i * 2u] = gx * t.mx;
      OUT[i * 2u + 1u] = gy * t.my;
    } else {
      OUT[(n * 2u) * hw + o] = gx * t.mx;
      OUT[(n * 2u + 1u) * hw + o] = gy * t.my;
    }
  }
}
