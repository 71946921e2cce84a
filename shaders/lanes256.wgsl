// A 256-lane reduction played by 32 threads (included by norm_stats and norm_bwd_stats): thread
// t holds lanes t + 32 r (r < R) in a Lanes value, and fold adds them as the tree's first three
// levels do (lane l + 128 into l, then l + 64, then l + 32), which leaves lane t's sum in thread t.
const WG: u32 = 32u;
const R: u32 = 8u;
struct Lanes { v: array<f32, 8> }

fn fold(a: Lanes) -> f32 {
  let b0 = a.v[0] + a.v[4];
  let b1 = a.v[1] + a.v[5];
  let b2 = a.v[2] + a.v[6];
  let b3 = a.v[3] + a.v[7];
  return (b0 + b2) + (b1 + b3);
}
