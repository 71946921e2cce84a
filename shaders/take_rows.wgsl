// Row gather from two sources, for row selection in attack cascades without a CPU round trip:
// output row r is row Idx[r] of A when Idx[r] < nA, else row Idx[r] - nA of B (rows of D
// values). selectRows uses A alone; scatterRows takes each row from the original (A) or from
// its replacement (B). Each thread writes one element: no atomics.
override WG: u32 = 256u;

struct Params { n: u32, D: u32, nA: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> Idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let r = i / p.D;
  let j = i - r * p.D;
  let s = Idx[r];
  if (s < p.nA) {
    Y[i] = A[s * p.D + j];
  } else {
    Y[i] = B[(s - p.nA) * p.D + j];
  }
}
