// Packed float32 rows to half floats: vec4 i of S becomes two u32 words of D, each holding two
// IEEE binary16 values (pack2x16float: no shader-f16 feature needed). The conv kernels' "_h"
// variants read them back with unpack2x16float and accumulate in float32
// (runtime/ops/precision.ts).
override WG: u32 = 256u;
struct Params { n: u32 } // vec4s
@group(0) @binding(0) var<storage, read> S: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> D: array<vec2u>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < p.n) {
    // pack2x16float of a value beyond the half range is indeterminate: saturate instead.
    let v = clamp(S[i], vec4f(-65504.0), vec4f(65504.0));
    D[i] = vec2u(pack2x16float(v.xy), pack2x16float(v.zw));
  }
}
