// conv2d_fwd.wgsl with both operands stored as half floats (half_pack.wgsl) and float32 sums:
// the "_h" kernel of ATOP_F16=1 (runtime/ops/precision.ts).
@group(0) @binding(0) var<storage, read> X: array<vec2u>;
@group(0) @binding(1) var<storage, read> Wt: array<vec2u>;
//! include half
fn xv(i: u32) -> vec4f { return halfVec4(X[i]); }
fn wv(i: u32) -> vec4f { return halfVec4(Wt[i]); }
//! include conv2d_fwd_body
