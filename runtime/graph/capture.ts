// Graph capture and replay. A step function (forward, loss, backward and optimizer update; or one
// attack iteration) is run eagerly while the engine records every launch, upload and host hook.
// Once two consecutive recordings agree, the second becomes a graph: its temporary buffers are
// taken out of the pool and owned by the graph, its parameter words packed into one block and
// its bind groups built once. Later calls replay it: the inputs are copied into the graph's own
// input buffers, host hooks run (an optimizer's step count), words that depend on host state are
// recomputed (`Dispatch.refresh`: a learning rate), and the launches are recorded into the open
// batch. None of the step's JS runs: no autograd tape, no tensors, no expression building, no
// pipeline or bind-group lookups.
//
// What makes a replay valid is checked, not assumed. Between the two recordings that must agree:
// - every launch uses the same pipeline, workgroups and bindings, where a buffer is named by its
//   role: an input, an output, a buffer outside the graph (parameters, optimizer state: the same
//   object both times) or a temporary (the k-th distinct one the step touched);
// - every parameter word and uploaded value is equal, unless the launch refreshes it. A word that
//   changes (a step counter baked into a launch) leaves the step eager for good, with the launch
//   and the word named (`CompiledStep.reason`);
// - a temporary is written before it is read (a tensor made outside the step and disposed inside
//   it would otherwise be read stale), nothing is read back to the CPU, and no kernel was tuned.
// A buffer outside the graph that goes back to the pool or is destroyed invalidates the graph;
// the next call captures again.
//
// Memory: the temporaries are the pool's own reuse within one step (a tensor disposed in the step
// hands its buffer to the next of its size), so the graph holds one step's working set; `stats`
// reports its bytes and the peak of buffers live at once by liveness over the launches. WebGPU
// (wgpu) forbids binding one buffer as read-only and read-write storage in the same launch, so
// the plan stays a set of buffers rather than offsets in a single arena.
//
// ATOP_GRAPH=off (or ATOP_PROFILE=1, which times launches one by one) runs every step eagerly.

import { engine, type Recorded, type ReplayPlan } from "../engine.ts";
import { keep, Tensor, tensorsMade, tidy } from "../tensor.ts";
import { detach } from "../ops/elementwise.ts";

export type StepOutputs = Tensor | Tensor[] | Record<string, Tensor> | void;

export interface GraphStats {
  /** Launches, uploads and host hooks per replay. */
  dispatches: number;
  uploads: number;
  hooks: number;
  /** Launches whose parameter words are recomputed at each replay. */
  refreshed: number;
  /** The graph's own buffers (inputs, outputs, temporaries) and their bytes. */
  buffers: number;
  bytes: number;
  /** The most bytes of the graph's own buffers live at one point of the step. */
  peakBytes: number;
  /** Buffers outside the graph it reads or writes (weights, optimizer state). */
  externals: number;
  externalBytes: number;
  bindGroups: number;
  flops: number;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

let enabled = env("ATOP_GRAPH") !== "off" && env("ATOP_PROFILE") !== "1";

/** Calls by how they ran, over the process (tests and benchmarks). */
export const graphCounters = { eager: 0, recorded: 0, replayed: 0, captured: 0 };

/** Turns graph replay on or off (tests compare both); returns the previous setting. */
export function setGraphs(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

export function graphsEnabled(): boolean {
  return enabled;
}

// ---------------------------------------------------------------------------------------------
// Invalidation: graphs by the outside buffers they name.

const byExternal = new Map<GPUBuffer, Set<Graph>>();
let hooked = false;
function watch(g: Graph): void {
  if (!hooked) {
    hooked = true;
    const drop = (buf: GPUBuffer) => {
      const gs = byExternal.get(buf);
      if (!gs) return;
      byExternal.delete(buf);
      for (const x of gs) x.invalidate(); // a buffer outside the graph was freed
    };
    engine().pool.onRelease.push(drop);
    engine().pool.onDestroy.push(drop);
  }
  for (const b of g.externals) {
    let s = byExternal.get(b);
    if (!s) byExternal.set(b, s = new Set());
    s.add(g);
  }
}
function unwatch(g: Graph): void {
  for (const b of g.externals) {
    const s = byExternal.get(b);
    s?.delete(g);
    if (s?.size === 0) byExternal.delete(b);
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs as a flat list and back.

type Layout = { kind: "none" } | { kind: "one" } | { kind: "list"; n: number } | {
  kind: "record";
  keys: string[];
};

function flatten(o: StepOutputs, what: string): { layout: Layout; list: Tensor[] } {
  if (o === undefined) return { layout: { kind: "none" }, list: [] };
  if (o instanceof Tensor) return { layout: { kind: "one" }, list: [o] };
  if (Array.isArray(o)) {
    o.forEach((t, i) => {
      if (!(t instanceof Tensor)) throw new Error(`${what}: output ${i} is not a Tensor`);
    });
    return { layout: { kind: "list", n: o.length }, list: [...o] };
  }
  if (o !== null && typeof o === "object") {
    const keys = Object.keys(o);
    for (const k of keys) {
      if (!(o[k] instanceof Tensor)) throw new Error(`${what}: output "${k}" is not a Tensor`);
    }
    return { layout: { kind: "record", keys }, list: keys.map((k) => o[k]) };
  }
  throw new Error(`${what}: a step returns a Tensor, an array or a record of tensors, or nothing`);
}

function unflatten<O extends StepOutputs>(layout: Layout, list: Tensor[]): O {
  switch (layout.kind) {
    case "none":
      return undefined as O;
    case "one":
      return list[0] as O;
    case "list":
      return list as O;
    case "record":
      return Object.fromEntries(layout.keys.map((k, i) => [k, list[i]])) as O;
  }
}

function copyOf(t: Tensor): Tensor {
  const c = Tensor.empty(t.shape);
  engine().copy(t.buffer, c.buffer, t.size * 4);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Recordings and their comparison.

interface Attempt {
  rec: Recorded[];
  inputs: Tensor[];
  outputs: Tensor[];
  layout: Layout;
  /** Role of every buffer the recording names. */
  roles: Map<GPUBuffer, string>;
}

function roleMap(rec: Recorded[], inputs: Tensor[], outputs: Tensor[]): Map<GPUBuffer, string> {
  const pool = engine().pool;
  const roles = new Map<GPUBuffer, string>();
  inputs.forEach((t, i) => roles.set(t.rawBuffer, `in${i}`));
  outputs.forEach((t, i) => {
    if (!roles.has(t.rawBuffer)) roles.set(t.rawBuffer, `out${i}`);
  });
  let tmp = 0;
  const name = (b: GPUBuffer) => {
    if (roles.has(b)) return;
    roles.set(b, pool.isFree(b) ? `tmp${tmp++}` : "ext");
  };
  for (const r of rec) {
    if (r.t === "dispatch") r.buffers.forEach(name);
    else if (r.t === "upload" || r.t === "mirror") name(r.buf);
  }
  return roles;
}

/** Why two recordings of a step cannot stand for each other, or null. `fatal`: a value that
 * changes from call to call (retrying will not help). */
function difference(a: Attempt, b: Attempt): { why: string; fatal: boolean } | null {
  const role = (at: Attempt, buf: GPUBuffer) => at.roles.get(buf)!;
  const same = (x: GPUBuffer, y: GPUBuffer) => {
    const rx = role(a, x), ry = role(b, y);
    return rx === ry && (rx !== "ext" || x === y);
  };
  if (a.rec.length !== b.rec.length) {
    return { why: `the step recorded ${a.rec.length} then ${b.rec.length} entries`, fatal: false };
  }
  for (let i = 0; i < a.rec.length; i++) {
    const x = a.rec[i], y = b.rec[i];
    if (x.t !== y.t) return { why: `entry ${i} is a ${x.t} then a ${y.t}`, fatal: false };
    if (x.t === "dispatch" && y.t === "dispatch") {
      const at = `launch ${i} (${y.kernel})`;
      if (x.pipeline !== y.pipeline) return { why: `${at} changed its pipeline`, fatal: false };
      if (x.workgroups.some((v, k) => v !== y.workgroups[k])) {
        return { why: `${at} changed its workgroups`, fatal: false };
      }
      if (
        x.buffers.length !== y.buffers.length || x.paramsBinding !== y.paramsBinding ||
        x.buffers.some((bx, k) => !same(bx, y.buffers[k]) || x.bindings[k] !== y.bindings[k])
      ) return { why: `${at} bound other buffers`, fatal: false };
      if (x.params.length !== y.params.length) {
        return { why: `${at} changed its parameter count`, fatal: false };
      }
      if (y.refresh) {
        const w = y.refresh();
        if (w.length !== y.params.length || y.params.some((v, k) => v !== w[k] >>> 0)) {
          return {
            why: `${at}: its refresh does not give the words it launched with`,
            fatal: false,
          };
        }
        continue;
      }
      for (let k = 0; k < x.params.length; k++) {
        if (x.params[k] !== y.params[k]) {
          return {
            why: `${at}: parameter word ${k} changed between calls (${x.params[k]} -> ` +
              `${y.params[k]}), a value set on the host each call; pass it as an input tensor ` +
              `or give the launch a refresh`,
            fatal: true,
          };
        }
      }
    } else if (x.t === "mirror" && y.t === "mirror") {
      if (!same(x.buf, y.buf) || x.vec4s !== y.vec4s) {
        return { why: `mirror fill ${i} copied another buffer`, fatal: false };
      }
    } else if (x.t === "upload" && y.t === "upload") {
      const at = `upload ${i}`;
      if (!same(x.buf, y.buf) || x.byteOffset !== y.byteOffset || x.data.length !== y.data.length) {
        return { why: `${at} wrote another buffer`, fatal: false };
      }
      if (!y.refresh && x.data.some((v, k) => v !== y.data[k])) {
        return {
          why: `${at} uploaded other values (data made on the host each call); pass it as an ` +
            `input tensor`,
          fatal: true,
        };
      }
      if (y.refresh) {
        const d = y.refresh();
        const b = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
        if (b.length !== y.data.length || b.some((v, k) => v !== y.data[k])) {
          return { why: `${at}: its refresh does not give the data it uploaded`, fatal: false };
        }
      }
    } else if (x.t === "hook" && y.t === "hook") {
      // The same object advanced with the same arguments: a generator made inside the step, or
      // draws for other rows each call, would replay stale state.
      if (x.owner !== y.owner || x.key !== y.key) {
        return {
          why: `host hook ${i} advances ${
            x.owner !== y.owner ? "another object" : "other rows"
          } on each call`,
          fatal: false,
        };
      }
    }
  }
  return null;
}

/** Why a recording cannot be replayed at all, or null. */
function unreplayable(at: Attempt): string | null {
  const written = new Set<GPUBuffer>();
  for (let i = 0; i < at.rec.length; i++) {
    const r = at.rec[i];
    if (r.t === "readback") return "the step reads a value back to the CPU";
    if (r.t === "copy") return "the step copies buffers with engine.copy (not replayed)";
    const into = r.t === "upload" ? [r.buf] : r.t === "dispatch" ? r.writes : [];
    for (const b of into) {
      const role = at.roles.get(b)!;
      // Eager execution writes the caller's tensor; a replay would write the graph's copy.
      if (role.startsWith("in")) return `the step writes its input ${role.slice(2)} in place`;
    }
    if (r.t === "upload") written.add(r.buf);
    if (r.t === "mirror" && at.roles.get(r.buf)!.startsWith("tmp") && !written.has(r.buf)) {
      return `mirror fill ${i} reads a buffer the step did not write first: a tensor made ` +
        `outside the step and disposed in it; pass it as an input`;
    }
    if (r.t !== "dispatch") continue;
    const writes = new Set(r.writes);
    for (const b of r.buffers) {
      const role = at.roles.get(b)!;
      if (role.startsWith("tmp") && !written.has(b) && !writes.has(b)) {
        return `launch ${i} (${r.kernel}) reads a buffer the step did not write first: a ` +
          `tensor made outside the step and disposed in it; pass it as an input`;
      }
    }
    for (const b of r.writes) written.add(b);
  }
  for (const [i, t] of at.inputs.entries()) {
    if (t.disposed) return `the step disposed its input ${i}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// A captured graph.

class Graph {
  readonly externals: GPUBuffer[];
  readonly plan: ReplayPlan;
  readonly stats: GraphStats;
  #owned: GPUBuffer[] = [];
  valid = true;

  constructor(name: string, readonly at: Attempt) {
    const eng = engine();
    const pool = eng.pool;
    const rec = at.rec;
    // The step's temporaries become the graph's; inputs and outputs already are (kept tensors).
    const ext = new Set<GPUBuffer>();
    const owned = new Set<GPUBuffer>();
    for (const [b, role] of at.roles) {
      if (role === "ext") ext.add(b);
      else if (role.startsWith("tmp")) {
        pool.claim(b);
        this.#owned.push(b);
        owned.add(b);
      } else owned.add(b);
    }
    this.externals = [...ext];
    // One parameter block for every launch.
    const alignWords = eng.paramAlign / 4;
    let words = 0;
    const offsets: number[] = [];
    for (const r of rec) {
      if (r.t !== "dispatch" || r.paramsBinding < 0) {
        offsets.push(-1);
        continue;
      }
      words = Math.ceil(words / alignWords) * alignWords;
      offsets.push(words);
      words += r.paramBytes / 4;
    }
    const paramData = new Uint32Array(Math.max(4, words));
    let params: GPUBuffer | null = null;
    if (words > 0) {
      rec.forEach((r, i) => {
        if (r.t === "dispatch" && r.paramsBinding >= 0) paramData.set(r.params, offsets[i]);
      });
      params = eng.device.createBuffer({
        size: paramData.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `graph ${name} params`,
      });
      eng.device.queue.writeBuffer(params, 0, paramData);
    }
    const steps: ReplayPlan["steps"] = [];
    const externalWrites = new Set<GPUBuffer>();
    let dispatches = 0, uploads = 0, hooks = 0, refreshed = 0, flops = 0;
    rec.forEach((r, i) => {
      if (r.t === "hook") {
        hooks++;
        steps.push({ t: "hook", fn: r.fn });
      } else if (r.t === "upload") {
        uploads++;
        if (ext.has(r.buf)) externalWrites.add(r.buf);
        steps.push(r);
      } else if (r.t === "mirror") {
        steps.push(r);
      } else if (r.t === "dispatch") {
        dispatches++;
        flops += r.flops;
        for (const b of r.writes) if (ext.has(b)) externalWrites.add(b);
        const entries: GPUBindGroupEntry[] = r.buffers.map((buffer, k) => ({
          binding: r.bindings[k],
          resource: r.textures?.includes(k) ? eng.mirror(buffer).view : { buffer },
        }));
        if (r.paramsBinding >= 0) {
          entries.push({
            binding: r.paramsBinding,
            resource: { buffer: params!, offset: offsets[i] * 4, size: r.paramBytes },
          });
        }
        const group = eng.device.createBindGroup({ layout: r.layout, entries });
        if (r.refresh) refreshed++;
        steps.push({
          t: "dispatch",
          kernel: r.kernel,
          pipeline: r.pipeline,
          group,
          workgroups: r.workgroups,
          refresh: r.refresh
            ? { offsetWords: offsets[i], n: r.params.length, fn: r.refresh }
            : undefined,
        });
      }
    });
    this.plan = {
      name,
      steps,
      params,
      paramData,
      externalWrites: [...externalWrites],
      dispatches,
    };
    // Liveness of the graph's own buffers over the step: inputs from its start, outputs to its end.
    const first = new Map<GPUBuffer, number>(), last = new Map<GPUBuffer, number>();
    const touch = (b: GPUBuffer, i: number) => {
      if (!owned.has(b)) return;
      if (!first.has(b)) first.set(b, i);
      last.set(b, i);
    };
    at.inputs.forEach((t) => touch(t.rawBuffer, -1));
    rec.forEach((r, i) => {
      if (r.t === "dispatch") r.buffers.forEach((b) => touch(b, i));
      else if (r.t === "upload" || r.t === "mirror") touch(r.buf, i);
    });
    at.outputs.forEach((t) => touch(t.rawBuffer, rec.length));
    const delta = new Map<number, number>();
    for (const [b, f] of first) {
      delta.set(f, (delta.get(f) ?? 0) + b.size);
      const l = last.get(b)! + 1;
      delta.set(l, (delta.get(l) ?? 0) - b.size);
    }
    let live = 0, peak = 0;
    for (const k of [...delta.keys()].sort((x, y) => x - y)) {
      live += delta.get(k)!;
      peak = Math.max(peak, live);
    }
    let bytes = 0;
    for (const b of owned) bytes += b.size;
    this.stats = {
      dispatches,
      uploads,
      hooks,
      refreshed,
      buffers: owned.size,
      bytes,
      peakBytes: peak,
      externals: ext.size,
      externalBytes: [...ext].reduce((s, b) => s + b.size, 0),
      bindGroups: dispatches, // one per launch, built here
      flops,
    };
    watch(this);
  }

  invalidate(): void {
    this.valid = false;
  }

  replay(inputs: Tensor[]): Tensor[] {
    const eng = engine();
    inputs.forEach((t, i) => eng.copy(t.buffer, this.at.inputs[i].rawBuffer, t.size * 4));
    eng.replay(this.plan);
    return this.at.outputs.map(copyOf);
  }

  dispose(): void {
    unwatch(this);
    const pool = engine().pool;
    for (const b of this.#owned) pool.unclaim(b);
    this.#owned = [];
    for (const t of this.at.inputs) t.dispose();
    for (const t of this.at.outputs) t.dispose();
    if (this.plan.params) pool.destroyLater(this.plan.params);
    this.valid = false;
  }
}

// ---------------------------------------------------------------------------------------------
// The user-facing step.

export interface CompileOptions {
  /** Part of the cache key beside the input shapes (e.g. a warm-up phase that changes the
   * step's structure). */
  key?: () => string;
  /** Recordings tried before the step is left eager (default 8). */
  attempts?: number;
  /** Print why a step stays eager (default true). */
  warn?: boolean;
  /** Run every call eagerly (a step whose JS has host effects a replay would skip, such as an
   * attack on a target not declared replay-safe). */
  eager?: boolean;
}

/** Graphs (and pending recordings) a step keeps at once, most recently used first. */
const MAX_GRAPHS = 4;

interface Slot {
  calls: number;
  attempts: number;
  last: Attempt | null;
  graph: Graph | null;
  eager: string | null;
  recaptures: number;
}

/** A step function compiled by capture: the first call runs eagerly (optimizer state, kernel
 * choices and caches settle), the next ones record until two recordings agree, and every call
 * after that replays the graph. Results are bit-identical to eager execution: the replay runs
 * the same kernels with the same words on the same values. */
export class CompiledStep<O extends StepOutputs> {
  #slots = new Map<string, Slot>();

  constructor(
    readonly name: string,
    readonly fn: (...inputs: Tensor[]) => O,
    readonly opts: CompileOptions = {},
  ) {}

  #key(inputs: Tensor[]): string {
    return inputs.map((t) => `[${t.shape}]`).join("") + "|" + (this.opts.key?.() ?? "");
  }

  /** Runs the step on `inputs` (not modified, not disposed). The outputs are new tensors owned
   * by the caller's scope. */
  run(...inputs: Tensor[]): O {
    inputs.forEach((t, i) => {
      if (!(t instanceof Tensor) || t.disposed) {
        throw new Error(`${this.name}: input ${i} is not a live tensor`);
      }
    });
    // Inside another step's recording, or a trace (explain), a step is part of the outer work.
    const eng = engine();
    if (eng.recording || eng.tracing) return this.#call(inputs, false);
    const key = this.#key(inputs);
    let slot = this.#slots.get(key);
    if (slot) this.#slots.delete(key); // most recently used last
    else slot = { calls: 0, attempts: 0, last: null, graph: null, eager: null, recaptures: 0 };
    this.#slots.set(key, slot);
    // Shapes that stopped coming (an attack's batch shrinking as rows are fooled) give their
    // buffers back: at most MAX_GRAPHS graphs per step.
    let held = 0;
    for (const [k, s] of [...this.#slots].reverse()) {
      if (!s.graph && !s.last) continue;
      if (++held <= MAX_GRAPHS || k === key) continue;
      s.graph?.dispose();
      s.graph = null;
      this.#drop(s.last);
      s.last = null;
      s.calls = 0;
      s.attempts = 0;
    }
    slot.calls++;
    if (!enabled || this.opts.eager || slot.eager !== null || slot.calls === 1) {
      return this.#eager(inputs);
    }
    if (slot.graph && !slot.graph.valid) {
      slot.recaptures++;
      slot.graph.dispose();
      slot.graph = null;
      if (slot.recaptures > 3) {
        this.#leaveEager(slot, `the graph was invalidated ${slot.recaptures} times (${key})`);
        return this.#eager(inputs);
      }
    }
    if (slot.graph) {
      const g = slot.graph;
      graphCounters.replayed++;
      return unflatten(g.at.layout, g.replay(inputs));
    }
    return this.#capture(slot, inputs);
  }

  #eager(inputs: Tensor[]): O {
    graphCounters.eager++;
    return this.#call(inputs, false);
  }

  /** Runs the step in a scope; outputs made before the call (an input, a parameter) come back
   * as copies, so the caller owns every output in every mode. `realize`: compute them now. */
  #call(inputs: Tensor[], realize: boolean, heldBefore?: Set<GPUBuffer>): O {
    const before = tensorsMade();
    return tidy(() => {
      const { layout, list } = flatten(this.fn(...inputs), this.name);
      // In a recording, also a new view of an older buffer (a reshaped parameter): the graph
      // must own its outputs' buffers.
      const fresh = list.map((t) => t.id < before || heldBefore?.has(t.rawBuffer) ? detach(t) : t);
      if (realize) { for (const t of fresh) void t.buffer; }
      return unflatten<O>(layout, fresh);
    });
  }

  #leaveEager(slot: Slot, why: string): void {
    slot.eager = why;
    this.#drop(slot.last);
    slot.last = null;
    if (this.opts.warn !== false) {
      console.error(`[graph] ${this.name} runs eagerly: ${why}`);
    }
  }

  #drop(at: Attempt | null): void {
    if (!at) return;
    for (const t of at.inputs) t.dispose();
    for (const t of at.outputs) t.dispose();
  }

  #capture(slot: Slot, inputs: Tensor[]): O {
    // No free buffer is evicted (destroyed) between the recording and the claim of its
    // temporaries.
    engine().pool.pauseEviction(true);
    try {
      return this.#record(slot, inputs);
    } finally {
      engine().pool.pauseEviction(false);
    }
  }

  #record(slot: Slot, inputs: Tensor[]): O {
    const eng = engine();
    slot.attempts++;
    graphCounters.recorded++;
    const own = inputs.map((t) => keep(copyOf(t)));
    let out: O | undefined;
    const heldBefore = eng.pool.liveSnapshot();
    eng.startRecording();
    try {
      // Pending outputs are computed inside the recording; the graph owns their buffers.
      out = this.#call(own, true, heldBefore);
    } catch (e) {
      eng.stopRecording();
      for (const t of own) t.dispose();
      throw e;
    }
    const rec = eng.stopRecording();
    const { layout, list } = flatten(out!, this.name);
    const outputs = list.map((t) => keep(t));
    const at: Attempt = { rec, inputs: own, outputs, layout, roles: roleMap(rec, own, outputs) };
    // The caller's copies are made after the temporaries are claimed (a copy could otherwise
    // take one of them from the pool).
    const result = () => unflatten<O>(layout, outputs.map(copyOf));
    const bad = unreplayable(at);
    if (bad) {
      const r = result();
      this.#drop(at);
      this.#leaveEager(slot, bad);
      return r;
    }
    const diff = slot.last ? difference(slot.last, at) : { why: "first recording", fatal: false };
    const tuning = rec.some((r) => r.t === "timed");
    if (diff === null && !tuning) {
      slot.graph = new Graph(this.name, at);
      this.#drop(slot.last);
      slot.last = null;
      graphCounters.captured++;
      return result();
    }
    const r = result();
    if (diff?.fatal) {
      this.#drop(at);
      this.#leaveEager(slot, diff.why);
      return r;
    }
    this.#drop(slot.last);
    slot.last = at;
    const limit = this.opts.attempts ?? 8;
    if (slot.attempts >= limit) {
      this.#leaveEager(
        slot,
        `${limit} recordings never agreed (last difference: ${
          tuning ? "a kernel was being tuned" : diff!.why
        })`,
      );
    }
    return r;
  }

  /** How the last call ran, for tests and explain. */
  state(...inputs: Tensor[]): "eager" | "capturing" | "replay" {
    const slot = this.#slots.get(this.#key(inputs));
    if (!slot || slot.eager !== null || !enabled || this.opts.eager) return "eager";
    return slot.graph?.valid ? "replay" : "capturing";
  }

  /** Why the step stays eager for these input shapes (null: it compiles). */
  reason(...inputs: Tensor[]): string | null {
    return this.#slots.get(this.#key(inputs))?.eager ?? null;
  }

  /** The captured graph's figures for these input shapes (null before capture). */
  stats(...inputs: Tensor[]): GraphStats | null {
    const g = this.#slots.get(this.#key(inputs))?.graph;
    return g?.valid ? g.stats : null;
  }

  /** Frees every graph's buffers (they go back to the pool). */
  dispose(): void {
    for (const s of this.#slots.values()) {
      s.graph?.dispose();
      this.#drop(s.last);
    }
    this.#slots.clear();
  }
}
