// What a conv block's loads cost on an adapter: a WGSL kernel with tile16's inner loop (P x C
// blocks of 4 pixels x 4 channels per thread, 9 taps, 64 input channels) whose operands come from
// storage buffers, a uniform buffer (weights), sampled or storage textures, or registers (no
// loads). BENCHMARKS.md, "Operands as textures" and "Read-only storage textures", has the figures.
//   deno run -A tests/bench/load_probe.ts [PxC:x:w ...]   e.g. 4x4:buf:buf 4x4:tex:tex 8x8:tex:tex
// x and w: buf (storage buffer), tex (sampled texture), stex (read-only storage texture), none
// (computed in registers); w also ubo.
const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("no WebGPU adapter");
const device = await adapter.requestDevice();
const K = 16, TAPS = 9, ROWS = 65536, WVEC = 4096;

function operandDecl(name: string, binding: number, mode: string, count: number): string {
  const at = `@group(0) @binding(${binding})`;
  if (mode === "stex") {
    return `${at} var ${name}: texture_storage_2d<rgba32float, read>;\n` +
      `fn ${name}l(i: u32) -> vec4f { return textureLoad(${name}, vec2u(i & 4095u, i >> 12u)); }`;
  }
  if (mode === "tex") {
    return `${at} var ${name}: texture_2d<f32>;\n` +
      `fn ${name}l(i: u32) -> vec4f { return textureLoad(${name}, vec2u(i & 4095u, i >> 12u), 0); }`;
  }
  if (mode === "ubo") {
    return `${at} var<uniform> ${name}: array<vec4f, ${count}>;\n` +
      `fn ${name}l(i: u32) -> vec4f { return ${name}[i]; }`;
  }
  if (mode === "none") return `fn ${name}l(i: u32) -> vec4f { return vec4f(f32(i)); }`;
  return `${at} var<storage, read> ${name}: array<vec4f>;\n` +
    `fn ${name}l(i: u32) -> vec4f { return ${name}[i]; }`;
}

function source(pg: number, cg: number, xm: string, wm: string): string {
  const lines = [
    operandDecl("X", 0, xm, 0),
    operandDecl("Wt", 1, wm, WVEC),
    "@group(0) @binding(2) var<storage, read_write> Y: array<f32>;",
    "fn ws(r: u32) -> mat4x4f { return mat4x4f(Wtl(r), Wtl(r + 1u), Wtl(r + 2u), Wtl(r + 3u)); }",
    `fn op(r: u32) -> mat4x4f { return transpose(mat4x4f(Xl(r), Xl(r + ${K}u), ` +
    `Xl(r + ${2 * K}u), Xl(r + ${3 * K}u))); }`,
    "@compute @workgroup_size(64)",
    "fn main(@builtin(global_invocation_id) gid: vec3u) {",
  ];
  for (let i = 0; i < pg; i++) {
    for (let j = 0; j < cg; j++) lines.push(`  var a${i}_${j}: mat4x4f;`);
  }
  lines.push(`  for (var t = 0u; t < ${TAPS}u; t++) {`);
  lines.push(`    let xb = ((gid.x * ${pg * 4}u + t * 7u) % ${ROWS}u) * ${K}u;`);
  lines.push(`    for (var k = 0u; k < ${K}u; k++) {`);
  lines.push(`      let wb = ((t * ${K}u + k) * ${cg * 4}u) % ${WVEC - 96}u;`);
  for (let j = 0; j < cg; j++) lines.push(`      let y${j} = ws(wb + ${4 * j}u);`);
  for (let i = 0; i < pg; i++) {
    lines.push(`      let x${i} = op(xb + k + ${i * 4 * K}u);`);
    for (let j = 0; j < cg; j++) lines.push(`      a${i}_${j} += x${i} * y${j};`);
  }
  lines.push("    }", "  }", "  var s: mat4x4f;");
  for (let i = 0; i < pg; i++) for (let j = 0; j < cg; j++) lines.push(`  s += a${i}_${j};`);
  lines.push("  Y[gid.x] = s[0].x + s[1].y + s[2].z + s[3].w;", "}");
  return lines.join("\n");
}

const threadsBase = 32768; // threads of a 16 x 16 block; bigger blocks get fewer (same FLOPs)
const X = device.createBuffer({ size: (ROWS + 256) * K * 16, usage: GPUBufferUsage.STORAGE });
const Xt = device.createTexture({
  size: [4096, Math.ceil(((ROWS + 256) * K) / 4096)],
  format: "rgba32float",
  usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING,
});
const Wb = device.createBuffer({ size: WVEC * 16, usage: GPUBufferUsage.STORAGE });
const Wu = device.createBuffer({ size: WVEC * 16, usage: GPUBufferUsage.UNIFORM });
const Wt = device.createTexture({
  size: [4096, 1],
  format: "rgba32float",
  usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING,
});
const Y = device.createBuffer({ size: threadsBase * 4, usage: GPUBufferUsage.STORAGE });

const configs = Deno.args.length
  ? Deno.args
  : ["4x4:none:none", "4x4:none:buf", "4x4:none:ubo", "4x4:buf:buf", "4x4:tex:buf", "4x4:tex:tex"];
for (const cfg of configs) {
  const [block, xm = "buf", wm = "buf"] = cfg.split(":");
  const [pg, cg] = block.split("x").map(Number);
  const threads = Math.floor((threadsBase * 16) / (pg * cg) / 64) * 64;
  const flops = threads * pg * 4 * cg * 4 * TAPS * K * 4 * 2;
  const module = device.createShaderModule({ code: source(pg, cg, xm, wm) });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const entries: GPUBindGroupEntry[] = [{ binding: 2, resource: { buffer: Y } }];
  if (xm !== "none") {
    entries.push({ binding: 0, resource: xm.endsWith("tex") ? Xt.createView() : { buffer: X } });
  }
  if (wm !== "none") {
    const r = wm.endsWith("tex") ? Wt.createView() : { buffer: wm === "ubo" ? Wu : Wb };
    entries.push({ binding: 1, resource: r });
  }
  const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(threads / 64);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    if (r > 0) best = Math.min(best, performance.now() - t0); // the first compiles
  }
  console.log(`${cfg}: ${best.toFixed(1)} ms, ${(flops / best / 1e6).toFixed(1)} GFLOP/s`);
}
