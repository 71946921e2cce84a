// Float32 NCHW tensors living in pooled GPU buffers, with scoped lifetimes: every tensor made
// inside `tidy`/`tidyAsync` is released when the scope ends unless it is returned or kept.
// This is what keeps GPU memory flat over thousands of training steps.

import { engine } from "./engine.ts";
import type { GradFn } from "./autograd.ts";

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: Shape, what = "shape"): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`${what}: expected non-negative integer dimensions, got [${shape}]`);
    }
  }
}

const scopes: Set<Tensor>[] = [];

/** A pooled buffer shared by a tensor and its reshaped views; released with the last one. */
class Storage {
  refs = 1;
  constructor(readonly buf: GPUBuffer) {}
}
let liveCount = 0;
let nextId = 0;

/** A value not computed yet (a fused elementwise expression, runtime/graph/fuse.ts): its
 * buffer is allocated, and filled when something reads it. */
export interface Pending {
  /** Dispatches the kernel that fills the buffer; clears `tensor.pending`. */
  realize(): void;
  /** Forgets the expression (the tensor is disposed before anything read it). */
  drop(): void;
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly size: number;
  #storage: Storage | null;
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward` (kept outside scopes). */
  grad: Tensor | null = null;
  /** How this tensor was computed, for reverse mode. Null for leaves and no-grad results. */
  gradFn: GradFn | null = null;
  kept = false;
  name?: string;
  /** Set while the value is a fused expression not yet computed. */
  pending: Pending | null = null;

  /** Wraps a buffer (normally from the pool). Prefer `Tensor.empty` and the ops. */
  constructor(shape: Shape, buf: GPUBuffer | Storage) {
    checkShape(shape);
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
    if (buf instanceof Storage) {
      buf.refs++;
      this.#storage = buf;
    } else this.#storage = new Storage(buf);
    liveCount++;
    scopes.at(-1)?.add(this);
  }

  static empty(shape: Shape): Tensor {
    checkShape(shape);
    const bytes = Math.max(4, shapeSize(shape) * 4);
    return new Tensor(shape, engine().pool.acquire(bytes));
  }

  static fromData(data: ArrayLike<number>, shape: Shape): Tensor {
    checkShape(shape);
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new Error(
        `Tensor.fromData: data has ${data.length} values but shape [${shape}] needs ${n}`,
      );
    }
    const t = Tensor.empty(shape);
    if (n > 0) {
      engine().upload(t.buffer, data instanceof Float32Array ? data : Float32Array.from(data));
    }
    return t;
  }

  static scalar(v: number): Tensor {
    return Tensor.fromData([v], []);
  }

  get buffer(): GPUBuffer {
    if (!this.#storage) throw new Error(`${this.describe()} used after it was disposed`);
    if (this.pending) this.pending.realize();
    return this.#storage.buf;
  }

  /** The buffer without computing a pending value (for the fuser, which fills it). */
  get rawBuffer(): GPUBuffer {
    if (!this.#storage) throw new Error(`${this.describe()} used after it was disposed`);
    return this.#storage.buf;
  }

  /** A new tensor of another shape over the same buffer (no copy). Used by `reshape`. */
  view(shape: Shape): Tensor {
    checkShape(shape);
    if (shapeSize(shape) !== this.size) {
      throw new Error(`reshape: cannot view ${this.describe()} as [${shape}] (size differs)`);
    }
    if (!this.#storage) throw new Error(`${this.describe()} used after it was disposed`);
    if (this.pending) this.pending.realize();
    return new Tensor(shape, this.#storage);
  }

  get disposed(): boolean {
    return this.#storage === null;
  }

  get ndim(): number {
    return this.shape.length;
  }

  describe(): string {
    return `tensor${this.name ? ` "${this.name}"` : ""} #${this.id} [${this.shape}]`;
  }

  dispose(): void {
    if (!this.#storage) return;
    if (this.pending) this.pending.drop();
    if (--this.#storage.refs === 0) engine().pool.release(this.#storage.buf);
    this.#storage = null;
    this.gradFn = null;
    liveCount--;
    for (const s of scopes) s.delete(this);
  }

  /** Reads the values back to the CPU (submits pending work). */
  async data(): Promise<Float32Array> {
    if (this.size === 0) return new Float32Array(0);
    return new Float32Array(await engine().readback(this.buffer, this.size * 4));
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item(): ${this.describe()} has ${this.size} values`);
    return (await this.data())[0];
  }

  /** Throws a shape-mismatch error naming `what` unless the shape is exactly `shape`. */
  assertShape(shape: Shape, what: string): void {
    if (shape.length !== this.shape.length || shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(`${what}: expected shape [${shape}], got [${this.shape}]`);
    }
  }
}

/** Keeps a tensor alive past the end of every enclosing scope (parameters, optimizer state). */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  for (const s of scopes) s.delete(t);
  return t;
}

/** Collects tensors inside a (possibly nested) result value. */
function collectTensors(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value instanceof Tensor) {
    out.add(value);
    return;
  }
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) { for (const v of value) collectTensors(v, out, seen); }
  else if (value instanceof Map) { for (const v of value.values()) collectTensors(v, out, seen); }
  else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, seen);
  }
}

function endScope(scope: Set<Tensor>, result: unknown): void {
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  scopes.pop();
  for (const t of scope) {
    if (survivors.has(t) || t.kept) {
      scopes.at(-1)?.add(t);
    } else t.dispose();
  }
}

/** Runs `fn` and disposes every tensor it created except those in its result. */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    endScope(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    throw new Error("tidy(): the function returned a Promise; use tidyAsync for async work");
  }
  endScope(scope, result);
  return result;
}

/** Async variant of `tidy`. Scopes are a stack, so do not interleave two of them. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    if (scopes.at(-1) === scope) endScope(scope, undefined);
    throw e;
  }
  if (scopes.at(-1) !== scope) {
    throw new Error("tidyAsync(): scopes were interleaved (two async scopes ran concurrently)");
  }
  endScope(scope, result);
  return result;
}

/** Tensors created so far (ids are given in order: a tensor with a smaller id is older). */
export function tensorsMade(): number {
  return nextId;
}

export function liveTensors(): number {
  return liveCount;
}
