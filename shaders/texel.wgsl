// Vec4 i of a buffer's mirror texture (Engine.mirror in runtime/engine.ts): texel
// (i % 4096, i / 4096).
fn texel(t: texture_storage_2d<rgba32float, read>, i: u32) -> vec4f {
  return textureLoad(t, vec2u(i & 4095u, i >> 12u));
}
