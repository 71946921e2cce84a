// conv2d_bwd_data.wgsl with the weights stored as half floats (half_pack.wgsl); the output
// gradient stays float32 (runtime/ops/precision.ts), the sums are float32.
@group(0) @binding(0) var<storage, read> GY: array<vec4f>;
@group(0) @binding(1) var<storage, read> Wt: array<vec2u>;
//! include half
fn xv(i: u32) -> vec4f { return GY[i]; }
fn wv(i: u32) -> vec4f { return halfVec4(Wt[i]); }
//! include conv2d_bwd_data_body
