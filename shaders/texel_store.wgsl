// Copies vec4s 0..n-1 of a buffer into its mirror texture (Engine.mirror in runtime/engine.ts):
// vec4 i becomes texel (i % 4096, i / 4096). A launch rather than copyBufferToTexture, so that
// it sits in the compute pass with its readers (a tuner's timed pass included).
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4f>;
@group(0) @binding(1) var dst: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i < p.n) { textureStore(dst, vec2u(i & 4095u, i >> 12u), src[i]); }
}
