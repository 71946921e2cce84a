// conv2d_bwd_weight.wgsl with the input stored as half floats (half_pack.wgsl); the output
// gradient stays float32 (runtime/ops/precision.ts), the sums are float32.
@group(0) @binding(0) var<storage, read> X: array<vec2u>;
@group(0) @binding(1) var<storage, read> GY: array<vec4f>;
//! include half
fn xat(i: u32) -> vec4f { return halfVec4(X[i]); }
fn gat(i: u32) -> vec4f { return GY[i]; }
//! include conv2d_bwd_weight_body
