// The engine owns the GPUDevice and turns kernel launches into as few queue submissions as
// possible: dispatches are recorded into one open compute pass, their small parameter blocks
// are packed into arena chunks, uploads are recorded as copies from staging buffers in the same
// command buffer (so they never force a submit), and the batch is submitted only when a number
// must come back to the CPU, the caller asks (`flush`), or the batch is very large.

import { type AdapterChoice, type AdapterReport, createDevice } from "./device.ts";
import { BufferPool } from "./pool.ts";

export interface Dispatch {
  /** Shader file under shaders/ without `.wgsl`; also names the kernel in errors. */
  kernel: string;
  entry?: string;
  /** Values for the shader's `override` constants (workgroup size, op codes, flags). */
  constants?: Record<string, number>;
  /** Storage buffers in binding order 0..k-1; params (if any) are bound at binding k. */
  buffers: GPUBuffer[];
  /** Indices into `buffers` bound as their mirror texture instead (Engine.mirror): the shader
   * declares a `texture_storage_2d<rgba32float, read>` or `<rgba32float, write>` there. */
  textures?: number[];
  /** Parameter words (u32); use `f32bits` for float values. */
  params?: ArrayLike<number>;
  /** Binding of the params block (default: after the buffers; buffers from this index on
   * move one binding up). */
  paramsAt?: number;
  workgroups: [number, number?, number?];
  /** Floating-point operations of this launch (multiply-add = 2), for explain and benchmarks. */
  flops?: number;
  /** Generated WGSL (fused kernels); `kernel` then only names it. */
  code?: string;
  /** Recomputes `params` from host state when a captured graph replays this launch (values
   * that change from step to step, such as a learning rate: runtime/graph/capture.ts). */
  refresh?: () => ArrayLike<number>;
}

/** An upload in a recording and in a replay: its data as recorded, or recomputed (refresh). */
export interface RecordedUpload {
  t: "upload";
  buf: GPUBuffer;
  byteOffset: number;
  data: Uint8Array;
  refresh?: () => Float32Array | Uint32Array | Int32Array;
}

/** One entry of a recording (runtime/graph/capture.ts): what a step did, in order. */
export type Recorded =
  | {
    t: "dispatch";
    kernel: string;
    pipeline: GPUComputePipeline;
    layout: GPUBindGroupLayout;
    buffers: GPUBuffer[];
    /** The binding of each buffer. */
    bindings: number[];
    /** Indices of `buffers` bound as their mirror texture. */
    textures?: number[];
    /** The params block's binding, words and bytes (none: -1). */
    paramsBinding: number;
    params: Uint32Array;
    paramBytes: number;
    refresh?: () => ArrayLike<number>;
    workgroups: [number, number, number];
    /** The buffers it writes (read_write bindings). */
    writes: GPUBuffer[];
    flops: number;
  }
  | RecordedUpload
  | { t: "hook"; fn: () => void; owner?: object; key?: string }
  | { t: "readback" }
  | { t: "timed" }
  | { t: "copy" }
  | RecordedMirrorFill;

/** A copy of a buffer's first `vec4s` vec4s into its mirror texture (Engine.fillMirror). */
export interface RecordedMirrorFill {
  t: "mirror";
  buf: GPUBuffer;
  vec4s: number;
}

/** A captured graph ready to replay: launches with their bind groups built once. */
export interface ReplayPlan {
  name: string;
  steps: (
    | {
      t: "dispatch";
      kernel: string;
      pipeline: GPUComputePipeline;
      group: GPUBindGroup;
      workgroups: [number, number, number];
      /** Words recomputed at each replay, where they sit in the graph's parameter block. */
      refresh?: { offsetWords: number; n: number; fn: () => ArrayLike<number> };
    }
    | RecordedUpload
    | RecordedMirrorFill
    | { t: "hook"; fn: () => void }
  )[];
  /** The graph's own parameter block, and the launches whose words are recomputed. */
  params: GPUBuffer | null;
  paramData: Uint32Array<ArrayBuffer>;
  /** Buffers outside the graph that it writes (their readers are realized first). */
  externalWrites: GPUBuffer[];
  dispatches: number;
}

/** One launch seen by `Engine.trace`. */
export interface TracedDispatch {
  kernel: string;
  workgroups: [number, number, number];
  flops: number;
  /** Bytes of the buffers it binds (an upper bound on its memory traffic). */
  bytes: number;
}

const PARAM_ARENA_BYTES = 1 << 20;
/** Timed dispatches per submit in profiling mode. */
const PROFILE_SLOTS = 2048;
/** A submit bounds the work recorded but not yet started; large enough for a whole training
 * step or attack iteration, so that the caller decides where the submits go. */
const MAX_DISPATCHES_PER_SUBMIT = 16384;
/** Staged upload bytes that force a submit (the staging buffers live until it). */
const MAX_STAGED_BYTES = 256 << 20;
/** Texels per row of a mirror texture (shaders/texel.wgsl). */
export const MIRROR_WIDTH = 4096;
/** Bind groups kept for reuse (a few steps' worth of distinct launches). */
const MAX_BIND_GROUPS = 16384;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** The bit pattern of a float, for packing into u32 params. */
export function f32bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** Splits a 1-D launch of `n` threads into a 2-D grid within the per-dimension limit.
 * Shaders recover the flat index as `gid.x + gid.y * nwg.x * WG`. */
export function grid1d(n: number, wg: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

const shaderCache = new Map<string, string>();
export function shaderSource(kernel: string): string {
  let src = shaderCache.get(kernel);
  if (src === undefined) {
    const url = new URL(`../shaders/${kernel}.wgsl`, import.meta.url);
    try {
      src = Deno.readTextFileSync(url);
    } catch (e) {
      throw new Error(`kernel ${kernel}: cannot read shader ${url.pathname}: ${e}`);
    }
    // Shared WGSL fragments: a line `//! include NAME` is replaced by shaders/NAME.wgsl.
    src = src.replace(/^\/\/! include (\w+)\s*$/gm, (_, name: string) => shaderSource(name));
    shaderCache.set(kernel, src);
  }
  return src;
}

export class GpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GpuError";
  }
}

export class Engine {
  readonly pool: BufferPool;
  #modules = new Map<string, GPUShaderModule>();
  #pipelines = new Map<string, GPUComputePipeline>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  /** Parameter arena chunks; chunk i is written once per batch, just before its submit. */
  #arenas: { buf: GPUBuffer; data: Uint32Array<ArrayBuffer> }[] = [];
  #arenaIndex = 0;
  #arenaUsed = 0;
  #staging: GPUBuffer[] = [];
  #stagedBytes = 0;
  #batchKernels: string[] = [];
  #pendingErrors: Promise<string | null>[] = [];
  #lost: string | null = null;
  #align: number;
  /** Counters for tests and benchmarks. */
  counters = {
    dispatches: 0,
    submits: 0,
    readbacks: 0,
    uploads: 0,
    pipelines: 0,
    /** Buffer-to-mirror-texture copies (fillMirror), not launches. */
    mirrorCopies: 0,
  };
  /** Called before a dispatch writes a buffer (a read_write binding) or an upload does, so
   * that values still pending on its old contents are computed first (runtime/graph/fuse.ts). */
  beforeWrite: ((buf: GPUBuffer) => void) | null = null;
  #writes = new Map<string, number[]>();
  #versions = new WeakMap<GPUBuffer, number>();
  #recording: Recorded[] | null = null;
  /** Recordings started so far: the current one's number while recording. */
  #recordings = 0;

  /** Records every launch, upload and replay hook from now on (the work still runs). */
  startRecording(): void {
    if (this.#recording) throw new Error("engine.startRecording: already recording");
    if (this.#trace) throw new Error("engine.startRecording: inside a trace");
    this.#recording = [];
    this.#recordings++;
  }

  /** Ends the recording and returns it. */
  stopRecording(): Recorded[] {
    const r = this.#recording;
    if (!r) throw new Error("engine.stopRecording: not recording");
    this.#recording = null;
    return r;
  }

  get recording(): boolean {
    return this.#recording !== null;
  }

  /** True inside `trace` (launches are listed, not run). */
  get tracing(): boolean {
    return this.#trace !== null;
  }

  /** Host work a captured graph must repeat at each replay (e.g. an optimizer's step count).
   * Outside a recording it does nothing: the caller has done that work already. `owner` (the
   * object whose state the hook advances) and `key` (what it was called with) must be the same
   * in the two recordings a graph is made from: a generator made inside the step, or draws for
   * other rows on each call, then leave the step eager instead of replaying stale state. */
  onReplay(fn: () => void, owner?: object, key?: string): void {
    this.#recording?.push({ t: "hook", fn, owner, key });
  }

  /** How many times a buffer has been written by a dispatch or an upload (for caches of
   * values derived from it, e.g. packed conv weights). */
  version(buf: GPUBuffer): number {
    return this.#versions.get(buf) ?? 0;
  }

  #wrote(buf: GPUBuffer): void {
    this.beforeWrite?.(buf);
    this.#versions.set(buf, (this.#versions.get(buf) ?? 0) + 1);
    for (const f of this.onWrite) f(buf);
  }

  /** Called after each write to a buffer is recorded (caches of values derived from it drop
   * them, e.g. packed conv weights, so that a graph bound to them is invalidated). */
  onWrite: ((buf: GPUBuffer) => void)[] = [];

  /** ATOP_PROFILE=1: every dispatch in its own timed pass; GPU time per kernel name. */
  #profile: {
    set: GPUQuerySet;
    names: string[];
    pending: Promise<void>[];
    totals: Map<string, { ms: number; n: number }>;
  } | null = null;

  private constructor(readonly device: GPUDevice, readonly adapter: AdapterReport) {
    this.pool = new BufferPool(
      device,
      Math.min(device.limits.maxBufferSize, device.limits.maxStorageBufferBindingSize),
    );
    this.pool.onDestroy.push((buf) => this.#forgetBuffer(buf));
    this.#align = Math.max(
      device.limits.minStorageBufferOffsetAlignment,
      device.limits.minUniformBufferOffsetAlignment,
      32,
    );
    this.#newArena();
    let profiling = false;
    try {
      profiling = Deno.env.get("ATOP_PROFILE") === "1";
    } catch {
      // no --allow-env
    }
    if (profiling && device.features.has("timestamp-query")) {
      this.#profile = {
        set: device.createQuerySet({ type: "timestamp", count: 2 * PROFILE_SLOTS }),
        names: [],
        pending: [],
        totals: new Map(),
      };
    }
    device.lost.then((info) => {
      this.#lost = `${info.reason}: ${info.message}`;
    });
  }

  #newArena(): void {
    this.#arenas.push({
      buf: this.device.createBuffer({
        size: PARAM_ARENA_BYTES,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      }),
      data: new Uint32Array(PARAM_ARENA_BYTES / 4),
    });
  }

  static async create(choice: AdapterChoice = "auto"): Promise<Engine> {
    const { device, report } = await createDevice(choice);
    return new Engine(device, report);
  }

  #checkLost(kernel: string) {
    if (this.#lost !== null) {
      throw new GpuError(`GPU device lost (${this.#lost}) while running kernel ${kernel}`);
    }
  }

  /** Watches validation errors of an action and remembers them with the kernel's name. */
  #scoped<T>(what: string, action: () => T): T {
    this.device.pushErrorScope("validation");
    const out = action();
    this.#pendingErrors.push(
      this.device.popErrorScope().then((e) => e ? `${what}: ${e.message}` : null),
    );
    return out;
  }

  /** A short key per generated source (the source string itself is hashed once). */
  #codeIds = new Map<string, string>();
  #codeId(code: string): string {
    let id = this.#codeIds.get(code);
    if (id === undefined) this.#codeIds.set(code, id = `#${this.#codeIds.size}`);
    return id;
  }

  /** Binding indices a kernel writes (its read_write storage bindings). */
  #writtenBindings(kernel: string, code?: string): number[] {
    const key = code === undefined ? kernel : this.#codeId(code);
    let w = this.#writes.get(key);
    if (!w) {
      w = [...(code ?? shaderSource(kernel)).matchAll(
        /@binding\((\d+)\)\s*var<storage,\s*read_write>/g,
      )].map((m) => Number(m[1]));
      this.#writes.set(key, w);
    }
    return w;
  }

  pipeline(
    kernel: string,
    entry = "main",
    constants: Record<string, number> = {},
    source?: string,
  ) {
    const modKey = source === undefined ? kernel : this.#codeId(source);
    let ckey = "";
    for (const k in constants) ckey += `${k}=${constants[k]},`;
    const key = `${modKey}|${entry}|${ckey}`;
    let p = this.#pipelines.get(key);
    if (!p) {
      let mod = this.#modules.get(modKey);
      if (!mod) {
        const code = source ?? shaderSource(kernel);
        mod = this.#scoped(
          `kernel ${kernel} (shader compilation)`,
          () => this.device.createShaderModule({ code, label: kernel }),
        );
        this.#modules.set(modKey, mod);
      }
      const m = mod;
      p = this.#scoped(
        `kernel ${kernel} (pipeline ${entry} ${JSON.stringify(constants)})`,
        () =>
          this.device.createComputePipeline({
            label: kernel,
            layout: "auto",
            compute: { module: m, entryPoint: entry, constants },
          }),
      );
      this.#pipelines.set(key, p);
      this.counters.pipelines++;
    }
    return p;
  }

  dispatch(d: Dispatch): void {
    this.#checkLost(d.kernel);
    const pBind = d.params?.length ? (d.paramsAt ?? d.buffers.length) : Infinity;
    // The buffers it writes, kept for a recording.
    const writes: GPUBuffer[] | null = this.#recording ? [] : null;
    for (const b of this.#writtenBindings(d.kernel, d.code)) {
      const buf = d.buffers[b < pBind ? b : b - 1];
      if (!buf) continue;
      this.#wrote(buf);
      writes?.push(buf);
    }
    const pipeline = this.pipeline(d.kernel, d.entry, d.constants, d.code);
    if (this.#trace) {
      const [x, y = 1, z = 1] = d.workgroups;
      const bytes = d.buffers.reduce((a, b) => a + b.size, 0);
      this.#trace.push({ kernel: d.kernel, workgroups: [x, y, z], flops: d.flops ?? 0, bytes });
      return;
    }
    const nParams = d.params?.length ?? 0;
    const paramBytes = Math.max(16, Math.ceil((nParams * 4) / 16) * 16);
    const prof = this.#profile;
    if (
      this.#batchKernels.length >= MAX_DISPATCHES_PER_SUBMIT ||
      (prof && prof.names.length >= PROFILE_SLOTS)
    ) this.flush();
    let offsetWords = Math.ceil(this.#arenaUsed / this.#align) * this.#align / 4;
    if (offsetWords * 4 + paramBytes > PARAM_ARENA_BYTES) {
      // Next chunk of this batch (chunks are reused by later batches: each is rewritten on
      // the queue only after the submit that read it).
      this.#arenaIndex++;
      if (this.#arenaIndex === this.#arenas.length) this.#newArena();
      this.#arenaUsed = 0;
      offsetWords = 0;
    }
    this.#openPass();
    const pAt = d.paramsAt ?? d.buffers.length;
    const entries: GPUBindGroupEntry[] = d.buffers.map((buffer, i) => ({
      binding: i < pAt || nParams === 0 ? i : i + 1,
      resource: d.textures?.includes(i) ? this.mirror(buffer).view : { buffer },
    }));
    if (nParams > 0) {
      const arena = this.#arenas[this.#arenaIndex];
      arena.data.set(d.params!, offsetWords);
      entries.push({
        binding: pAt,
        resource: { buffer: arena.buf, offset: offsetWords * 4, size: paramBytes },
      });
      this.#arenaUsed = offsetWords * 4 + paramBytes;
    }
    let layout = this.#layouts.get(pipeline);
    if (!layout) this.#layouts.set(pipeline, layout = pipeline.getBindGroupLayout(0));
    const bindGroup = this.#bindGroup(layout, entries, d.kernel);
    const [x, y = 1, z = 1] = d.workgroups;
    if (this.#recording && writes) {
      this.#recording.push({
        t: "dispatch",
        kernel: d.kernel,
        pipeline,
        layout,
        buffers: [...d.buffers],
        bindings: entries.slice(0, d.buffers.length).map((e) => e.binding),
        textures: d.textures,
        paramsBinding: nParams > 0 ? pAt : -1,
        params: Uint32Array.from(d.params ?? []),
        paramBytes: nParams > 0 ? paramBytes : 0,
        refresh: d.refresh,
        workgroups: [x, y, z],
        writes,
        flops: d.flops ?? 0,
      });
    }
    if (prof && !this.#inTimed) {
      // One pass per dispatch, its start and end time stamped.
      this.#pass!.end();
      const k = prof.names.length;
      prof.names.push(d.kernel.replace(/\(\d+\)/, ""));
      this.#pass = this.#encoder!.beginComputePass({
        timestampWrites: {
          querySet: prof.set,
          beginningOfPassWriteIndex: 2 * k,
          endOfPassWriteIndex: 2 * k + 1,
        },
      });
    }
    const pass = this.#pass!;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (prof && !this.#inTimed) {
      pass.end();
      this.#pass = this.#encoder!.beginComputePass();
    }
    this.#batchKernels.push(d.kernel);
    this.counters.dispatches++;
  }

  /** ATOP_DEBUG=1: an error scope per bind group names the failing kernel; otherwise one scope
   * covers a whole batch (a scope per dispatch costs as much as the dispatch on a GPU). */
  #debug = (() => {
    try {
      return Deno.env.get("ATOP_DEBUG") === "1";
    } catch {
      return false;
    }
  })();
  #batchScope = false;
  #layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();

  /** Bind groups by (layout, buffers and params range). A step records the same launches on the
   * same pooled buffers and arena offsets every time, so most of them repeat. Creating one per
   * dispatch left their native memory to the JS garbage collector: RSS moved by ~100 MB over
   * 1,000 small training steps, depending on when V8 collected. LRU-capped; a destroyed buffer's
   * entries go with it (BufferPool.onDestroy). */
  #bindGroups = new Map<string, { group: GPUBindGroup; ids: number[] }>();
  #groupsByBuffer = new Map<number, Set<string>>();
  #ids = new WeakMap<object, number>();
  #nextId = 1;
  /** Bind groups created and reused, for tests and benchmarks. */
  bindGroupStats = { created: 0, reused: 0 };

  /** Bind groups held for reuse now. */
  get cachedBindGroups(): number {
    return this.#bindGroups.size;
  }

  #id(o: object): number {
    let id = this.#ids.get(o);
    if (id === undefined) this.#ids.set(o, id = this.#nextId++);
    return id;
  }

  #bindGroup(layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[], kernel: string) {
    const ids: number[] = [];
    let key = `${this.#id(layout)}`;
    for (const e of entries) {
      const owner = this.#mirrorOf.get(e.resource as GPUTextureView);
      if (owner) {
        // A mirror texture: named by its buffer, whose destruction ends both.
        const id = this.#id(owner);
        ids.push(id);
        key += `|${e.binding}:t${id}`;
        continue;
      }
      const r = e.resource as GPUBufferBinding;
      const id = this.#id(r.buffer);
      ids.push(id);
      key += `|${e.binding}:${id}:${r.offset ?? 0}:${r.size ?? -1}`;
    }
    const hit = this.#bindGroups.get(key);
    if (hit) {
      // Most recently used last.
      this.#bindGroups.delete(key);
      this.#bindGroups.set(key, hit);
      this.bindGroupStats.reused++;
      return hit.group;
    }
    const make = () => this.device.createBindGroup({ layout, entries });
    const group = this.#debug ? this.#scoped(`kernel ${kernel} (bind group)`, make) : make();
    this.#bindGroups.set(key, { group, ids });
    for (const id of ids) {
      let s = this.#groupsByBuffer.get(id);
      if (!s) this.#groupsByBuffer.set(id, s = new Set());
      s.add(key);
    }
    this.bindGroupStats.created++;
    if (this.#bindGroups.size > MAX_BIND_GROUPS) {
      const oldest = this.#bindGroups.keys().next().value!;
      this.#dropGroup(oldest);
    }
    return group;
  }

  #dropGroup(key: string): void {
    const e = this.#bindGroups.get(key);
    if (!e) return;
    this.#bindGroups.delete(key);
    for (const id of e.ids) {
      const keys = this.#groupsByBuffer.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.#groupsByBuffer.delete(id);
    }
  }

  /** Mirror textures by buffer, and their views' buffers (bind-group keys). */
  #mirrors = new Map<GPUBuffer, { tex: GPUTexture; view: GPUTextureView }>();
  #mirrorOf = new WeakMap<GPUTextureView, GPUBuffer>();

  /** Whether a buffer of `bytes` fits a mirror texture on this device. */
  canMirror(bytes: number): boolean {
    return Math.ceil(bytes / 16 / MIRROR_WIDTH) <= this.device.limits.maxTextureDimension2D;
  }

  /** The rgba32float texture that mirrors a buffer: vec4 i of the buffer is texel
   * (i % MIRROR_WIDTH, i / MIRROR_WIDTH) (shaders/texel.wgsl). It holds what the last
   * `texel_store` launch over the buffer wrote (runtime/ops/texture.ts), not the buffer's
   * current contents. On the CPU adapter a read-only storage-texture load is a branch-free
   * gather, where a storage-buffer load is a loop over the SIMD lanes, so kernels that load much
   * read their operands here.
   * Lives as long as the buffer. */
  mirror(buf: GPUBuffer): { tex: GPUTexture; view: GPUTextureView } {
    let m = this.#mirrors.get(buf);
    if (!m) {
      const texels = Math.floor(buf.size / 16);
      if (!this.canMirror(buf.size)) {
        throw new Error(`engine.mirror: a ${buf.size}-byte buffer exceeds the texture limits`);
      }
      const [w, h] = [Math.min(MIRROR_WIDTH, texels), Math.ceil(texels / MIRROR_WIDTH)];
      const tex = this.device.createTexture({
        size: [w, h],
        format: "rgba32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING |
          GPUTextureUsage.COPY_DST,
      });
      // Written whole once, so that wgpu never has to clear it before its first use. While the
      // tex variants were new, llvmpipe's timestamps read ~0 ms per pass (the tuner then chose
      // the slowest conv variants); a texture clear is the suspect (llvmpipe stamps into a render
      // scene once a framebuffer is set), not proven: it did not recur either way.
      this.device.queue.writeTexture({ texture: tex }, new Uint8Array(w * h * 16), {
        bytesPerRow: w * 16,
        rowsPerImage: h,
      }, [w, h]);
      m = { tex, view: tex.createView() };
      this.#mirrors.set(buf, m);
      this.#mirrorOf.set(m.view, buf);
    }
    return m;
  }

  /** Copies buf's first `vec4s` vec4s into its mirror texture with a copy command (llvmpipe
   * copies rows with memcpy, where a `texel_store` launch loads each vec4 through a loop over
   * the SIMD lanes), in order with the recorded work, and returns true; false inside a timed
   * section or a trace, where the caller launches `texel_store` instead (a timed candidate pays
   * its fills inside its timed pass). The caller notes the fill (noteMirrorFilled). */
  fillMirror(buf: GPUBuffer, vec4s: number): boolean {
    if (this.#inTimed || this.#trace) return false;
    this.#recording?.push({ t: "mirror", buf, vec4s });
    this.#copyToMirror(buf, vec4s);
    return true;
  }

  #copyToMirror(buf: GPUBuffer, vec4s: number): void {
    const { tex } = this.mirror(buf);
    const enc = this.#outsidePass();
    const rows = Math.floor(vec4s / MIRROR_WIDTH), rest = vec4s - rows * MIRROR_WIDTH;
    const bytesPerRow = MIRROR_WIDTH * 16;
    if (rows > 0) {
      enc.copyBufferToTexture({ buffer: buf, bytesPerRow }, { texture: tex }, [
        MIRROR_WIDTH,
        rows,
      ]);
    }
    if (rest > 0) {
      enc.copyBufferToTexture(
        { buffer: buf, offset: rows * bytesPerRow, bytesPerRow },
        { texture: tex, origin: [0, rows] },
        [rest, 1],
      );
    }
    this.counters.mirrorCopies++;
  }

  /** Per buffer: its write version when its mirror was last filled, the vec4s filled, and the
   * recording that filled it (0: none). */
  #mirrorFills = new WeakMap<GPUBuffer, { version: number; vec4s: number; recording: number }>();

  /** Whether buf's mirror texture holds its current first `vec4s` vec4s: filled since the
   * buffer's last write (every write goes through a dispatch, an upload, a copy or a replay,
   * each of which bumps the version). Inside a timed section never: a timed candidate pays its
   * copies as the first reader of a fresh operand does. Inside a recording only when filled in
   * that recording: a replay repeats the fill, while one made before could be stale by then
   * (and the two recordings a graph is made from must launch the same). */
  mirrorCurrent(buf: GPUBuffer, vec4s: number): boolean {
    if (this.#inTimed || !this.#mirrors.has(buf)) return false;
    const f = this.#mirrorFills.get(buf);
    if (f === undefined || f.version !== this.version(buf) || f.vec4s < vec4s) return false;
    return !this.#recording || f.recording === this.#recordings;
  }

  /** Records that a launch just recorded fills the first `vec4s` vec4s of buf's mirror from its
   * current contents (not in a trace, whose launches do not run). */
  noteMirrorFilled(buf: GPUBuffer, vec4s: number): void {
    if (this.#trace) return;
    const recording = this.#recording ? this.#recordings : 0;
    this.#mirrorFills.set(buf, { version: this.version(buf), vec4s, recording });
  }

  /** Forgets the bind groups that name a buffer about to be destroyed. */
  #forgetBuffer(buf: GPUBuffer): void {
    const m = this.#mirrors.get(buf);
    if (m) {
      this.#mirrors.delete(buf);
      m.tex.destroy();
    }
    const id = this.#ids.get(buf);
    if (id === undefined) return;
    const keys = this.#groupsByBuffer.get(id);
    if (!keys) return;
    this.#groupsByBuffer.delete(id);
    for (const k of keys) this.#dropGroup(k);
  }

  /** The open batch's encoder with no compute pass open, for a copy command in order with the
   * launches recorded so far. */
  #outsidePass(): GPUCommandEncoder {
    this.#openPass();
    this.#pass!.end();
    this.#pass = null;
    return this.#encoder!;
  }

  #openPass(): void {
    if (!this.#encoder) {
      this.#encoder = this.device.createCommandEncoder();
      if (!this.#debug) {
        this.device.pushErrorScope("validation");
        this.#batchScope = true;
      }
    }
    if (!this.#pass) this.#pass = this.#encoder.beginComputePass();
  }

  #trace: TracedDispatch[] | null = null;

  /** Launches recorded so far by the running `trace` (0 outside one). */
  get tracedCount(): number {
    return this.#trace?.length ?? 0;
  }

  /** Runs `fn` recording its launches instead of executing them (shaders are still compiled
   * and buffers allocated, so shapes and memory are real; values are not). For `--explain`. */
  trace<T>(fn: () => T): { result: T; dispatches: TracedDispatch[] } {
    if (this.#trace) throw new Error("engine.trace: already tracing");
    this.flush();
    this.#trace = [];
    try {
      const result = fn();
      return { result, dispatches: this.#trace };
    } finally {
      this.#trace = null;
    }
  }

  /** Submits the recorded batch (plus optional extra commands such as a readback copy). */
  flush(extra?: (enc: GPUCommandEncoder) => void): void {
    if (!this.#encoder && !extra) return;
    const kernels = this.#batchKernels;
    this.#batchKernels = [];
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder();
    this.#pass?.end();
    const enc = this.#encoder;
    this.#encoder = null;
    this.#pass = null;
    for (let i = 0; i <= this.#arenaIndex; i++) {
      const words = i < this.#arenaIndex ? PARAM_ARENA_BYTES / 4 : this.#arenaUsed / 4;
      const a = this.#arenas[i];
      if (words > 0) this.device.queue.writeBuffer(a.buf, 0, a.data, 0, words);
    }
    this.#arenaIndex = 0;
    this.#arenaUsed = 0;
    extra?.(enc);
    const prof = this.#profile;
    let resolved: GPUBuffer | null = null;
    const profNames = prof?.names ?? [];
    if (prof && profNames.length > 0) {
      resolved = this.device.createBuffer({
        size: profNames.length * 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      enc.resolveQuerySet(prof.set, 0, 2 * profNames.length, resolved, 0);
      prof.names = [];
    }
    const afterTimed = this.#resolveTimed(enc);
    const names = [...new Set(kernels)].join(", ") || "copy";
    this.#scoped(`submit of [${names}]`, () => this.device.queue.submit([enc.finish()]));
    if (this.#batchScope) {
      this.#batchScope = false;
      this.#pendingErrors.push(
        this.device.popErrorScope().then((e) =>
          e
            ? `a batch of [${names}]: ${e.message} (rerun with ATOP_DEBUG=1 to name the kernel)`
            : null
        ),
      );
    }
    this.counters.submits++;
    if (prof && resolved) this.#collectProfile(prof, resolved, profNames);
    afterTimed?.();
    for (const b of this.#staging) b.destroy();
    this.#staging = [];
    this.#stagedBytes = 0;
    this.pool.afterSubmit();
  }

  #collectProfile(
    prof: NonNullable<Engine["profileState"]>,
    resolved: GPUBuffer,
    names: string[],
  ): void {
    const bytes = names.length * 16;
    const read = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(resolved, 0, read, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    prof.pending.push(
      read.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigUint64Array(read.getMappedRange());
        names.forEach((name, k) => {
          const e = prof.totals.get(name) ?? { ms: 0, n: 0 };
          e.ms += Number(t[2 * k + 1] - t[2 * k]) / 1e6;
          e.n++;
          prof.totals.set(name, e);
        });
        read.unmap();
        read.destroy();
        resolved.destroy();
      }),
    );
  }

  /** Timed sections of the open batch (engine.timed), resolved after its submit. */
  #timedSet: GPUQuerySet | null = null;
  #timedSlots: ((ms: number) => void)[] = [];
  #inTimed = false;

  /** Runs `record` (which records dispatches) inside its own timestamped pass; resolves to
   * the GPU milliseconds of those dispatches once they have run, or null without the
   * timestamp-query feature (the dispatches are recorded either way). */
  timed(record: () => void): Promise<number | null> {
    this.#recording?.push({ t: "timed" });
    if (!this.device.features.has("timestamp-query") || this.#trace || this.#inTimed) {
      record();
      return Promise.resolve(null);
    }
    if (this.#timedSlots.length >= PROFILE_SLOTS) this.flush();
    this.#timedSet ??= this.device.createQuerySet({ type: "timestamp", count: 2 * PROFILE_SLOTS });
    this.#openPass();
    this.#pass!.end();
    const k = this.#timedSlots.length;
    this.#pass = this.#encoder!.beginComputePass({
      timestampWrites: {
        querySet: this.#timedSet,
        beginningOfPassWriteIndex: 2 * k,
        endOfPassWriteIndex: 2 * k + 1,
      },
    });
    const done = new Promise<number>((resolve) => this.#timedSlots.push(resolve));
    this.#inTimed = true;
    try {
      record();
    } finally {
      this.#inTimed = false;
      this.#pass!.end();
      this.#pass = this.#encoder!.beginComputePass();
    }
    return done;
  }

  /** Resolves the timed sections of the batch being submitted (called by flush). */
  #resolveTimed(enc: GPUCommandEncoder): (() => void) | null {
    const slots = this.#timedSlots;
    if (slots.length === 0 || !this.#timedSet) return null;
    this.#timedSlots = [];
    const bytes = slots.length * 16;
    const resolved = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const read = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.resolveQuerySet(this.#timedSet, 0, 2 * slots.length, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, read, 0, bytes);
    // After the submit: map and hand out the times.
    return () => {
      read.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigUint64Array(read.getMappedRange());
        slots.forEach((resolve, k) => resolve(Number(t[2 * k + 1] - t[2 * k]) / 1e6));
        read.unmap();
        read.destroy();
        resolved.destroy();
      });
    };
  }

  get profileState() {
    return this.#profile;
  }

  /** GPU time per kernel name since the start (ATOP_PROFILE=1), longest first. */
  async profileReport(reset = false): Promise<{ kernel: string; ms: number; launches: number }[]> {
    const prof = this.#profile;
    if (!prof) return [];
    this.flush();
    await Promise.all(prof.pending);
    prof.pending = [];
    const out = [...prof.totals.entries()].map(([kernel, e]) => ({
      kernel,
      ms: e.ms,
      launches: e.n,
    })).sort((a, b) => b.ms - a.ms);
    if (reset) prof.totals.clear();
    return out;
  }

  /** Waits for all submitted work and turns any recorded validation error into an exception. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.#throwPending();
  }

  async #throwPending() {
    const pending = this.#pendingErrors;
    this.#pendingErrors = [];
    const errors = (await Promise.all(pending)).filter((e): e is string => e !== null);
    this.#checkLost(this.#batchKernels[0] ?? "(none)");
    if (errors.length) throw new GpuError(`WebGPU validation error in ${errors.join("\n")}`);
  }

  /** Uploads data into a buffer, in order with the recorded work. With nothing recorded it is
   * a plain queue write. Otherwise queue.writeBuffer would run before the unsubmitted commands
   * (which may still read the recycled buffer), so the data goes into a staging buffer and is
   * copied in the command stream; no submit is forced. */
  upload(
    buf: GPUBuffer,
    data: Float32Array | Uint32Array | Int32Array,
    byteOffset = 0,
    refresh?: () => Float32Array | Uint32Array | Int32Array,
  ): void {
    this.#wrote(buf);
    this.#recording?.push({
      t: "upload",
      buf,
      byteOffset,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
      refresh,
    });
    this.#stage(buf, data, byteOffset);
  }

  #stage(
    buf: GPUBuffer,
    data: Float32Array | Uint32Array | Int32Array | Uint8Array,
    byteOffset = 0,
  ) {
    this.counters.uploads++;
    if (!this.#encoder) {
      this.device.queue.writeBuffer(buf, byteOffset, data as Float32Array<ArrayBuffer>);
      return;
    }
    if (this.#stagedBytes + data.byteLength > MAX_STAGED_BYTES) {
      this.flush();
      this.device.queue.writeBuffer(buf, byteOffset, data as Float32Array<ArrayBuffer>);
      return;
    }
    const size = Math.ceil(data.byteLength / 4) * 4;
    const staging = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.MAP_WRITE,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    staging.unmap();
    this.#pass?.end();
    this.#pass = null;
    this.#encoder.copyBufferToBuffer(staging, 0, buf, byteOffset, size);
    this.#staging.push(staging);
    this.#stagedBytes += size;
  }

  /** Alignment of parameter blocks inside a buffer (bytes). */
  get paramAlign(): number {
    return this.#align;
  }

  /** Records a buffer-to-buffer copy in order with the recorded work. */
  copy(src: GPUBuffer, dst: GPUBuffer, bytes: number, srcOffset = 0, dstOffset = 0): void {
    if (bytes === 0) return;
    // Not replayed: a recorded step that copies this way is left eager (capture.ts).
    this.#recording?.push({ t: "copy" });
    this.#wrote(dst);
    this.#outsidePass().copyBufferToBuffer(
      src,
      srcOffset,
      dst,
      dstOffset,
      Math.ceil(bytes / 4) * 4,
    );
  }

  /** Records a captured graph (runtime/graph/capture.ts) into the open batch: host hooks and
   * refreshed words first, then the launches and uploads in their captured order. No JS of the
   * step runs and no bind group is built. */
  replay(plan: ReplayPlan): void {
    this.#checkLost(plan.name);
    if (this.#recording || this.#trace) {
      throw new Error(`graph ${plan.name}: cannot replay inside a recording or a trace`);
    }
    // Values still pending on buffers the graph overwrites are computed before it runs.
    for (const b of plan.externalWrites) this.#wrote(b);
    // Host work in captured order: a hook may advance what a later refresh reads.
    const fresh: (Float32Array | Uint32Array | Int32Array | null)[] = [];
    let lo = Infinity, hi = -1;
    for (const s of plan.steps) {
      if (s.t === "hook") s.fn();
      else if (s.t === "upload") fresh.push(s.refresh ? s.refresh() : null);
      if (s.t !== "dispatch" || !s.refresh) continue;
      const r = s.refresh;
      const w = r.fn();
      if (w.length !== r.n) {
        throw new Error(`graph ${plan.name}: a refreshed launch changed its parameter count`);
      }
      for (let i = 0; i < r.n; i++) {
        const v = w[i] >>> 0;
        if (plan.paramData[r.offsetWords + i] !== v) {
          plan.paramData[r.offsetWords + i] = v;
          lo = Math.min(lo, r.offsetWords + i);
          hi = Math.max(hi, r.offsetWords + i);
        }
      }
    }
    if (hi >= lo && plan.params) {
      this.#stage(plan.params, plan.paramData.subarray(lo, hi + 1), lo * 4);
    }
    if (this.#batchKernels.length + plan.dispatches > MAX_DISPATCHES_PER_SUBMIT) this.flush();
    let u = 0;
    for (const s of plan.steps) {
      if (s.t === "hook") continue;
      if (s.t === "upload") {
        const data = fresh[u++] ?? s.data;
        this.#stage(s.buf, data, s.byteOffset);
        continue;
      }
      if (s.t === "mirror") {
        this.#copyToMirror(s.buf, s.vec4s);
        continue;
      }
      this.#openPass();
      const pass = this.#pass!;
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, s.group);
      pass.dispatchWorkgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
      this.#batchKernels.push(s.kernel);
      this.counters.dispatches++;
    }
  }

  async readback(buf: GPUBuffer, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    this.#recording?.push({ t: "readback" });
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.flush((enc) => enc.copyBufferToBuffer(buf, byteOffset, staging, 0, size));
    this.counters.readbacks++;
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      await this.#throwPending();
      throw e;
    }
    const out = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    await this.#throwPending();
    return out;
  }
}

let current: Engine | null = null;
let creating: Promise<Engine> | null = null;

/** Initializes the process-wide engine (idempotent for the same choice). */
export function initEngine(choice: AdapterChoice = "auto"): Promise<Engine> {
  if (current) return Promise.resolve(current);
  creating ??= Engine.create(choice).then((e) => (current = e));
  return creating;
}

export function engine(): Engine {
  if (!current) {
    throw new Error("GPU engine not initialized: call `await initEngine()` before using tensors");
  }
  return current;
}
