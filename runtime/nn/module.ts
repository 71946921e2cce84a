// Modules hold named parameters, buffers and children; names join with "." exactly like a
// PyTorch state dict, so checkpoints written by PyTorch (safetensors) load unchanged.

import { keep, Tensor } from "../tensor.ts";
import { assign } from "../ops/assign.ts";
import { noGrad } from "../autograd.ts";

export interface LoadOptions {
  /** Fail on missing or unexpected keys (default true). */
  strict?: boolean;
}

/** Keys PyTorch writes that carry no value for us (BatchNorm's int64 step counter). */
const IGNORED_SUFFIXES = [".num_batches_tracked"];

export abstract class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Registers a trainable tensor (kept alive, requires grad). */
  protected param(name: string, data: Float32Array, shape: number[]): Tensor {
    const t = keep(Tensor.fromData(data, shape));
    t.requiresGrad = true;
    t.name = name;
    this.#params.set(name, t);
    return t;
  }

  /** Registers non-trainable state saved in checkpoints (running statistics, power-iteration u). */
  protected buffer(name: string, data: Float32Array, shape: number[]): Tensor {
    const t = keep(Tensor.fromData(data, shape));
    t.name = name;
    this.#buffers.set(name, t);
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, t] of this.#params) out.push([prefix + k, t]);
    for (const [k, c] of this.#children) out.push(...c.namedParameters(`${prefix}${k}.`));
    return out;
  }

  namedBuffers(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, t] of this.#buffers) out.push([prefix + k, t]);
    for (const [k, c] of this.#children) out.push(...c.namedBuffers(`${prefix}${k}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  numParameters(): number {
    return this.parameters().reduce((a, t) => a + t.size, 0);
  }

  /** Parameters and buffers by state-dict name (the live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Copies values into this module's tensors. Errors name the key and both shapes. */
  loadStateDict(
    state: Map<string, Tensor | { shape: readonly number[]; data: Float32Array }>,
    o: LoadOptions = {},
  ) {
    const strict = o.strict ?? true;
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter(
      (k) => !own.has(k) && !IGNORED_SUFFIXES.some((s) => k.endsWith(s)),
    );
    if (strict && (missing.length || unexpected.length)) {
      const show = (xs: string[]) =>
        xs.slice(0, 8).join(", ") + (xs.length > 8 ? `, ... (${xs.length})` : "");
      throw new Error(
        `loadStateDict: ${missing.length ? `missing keys: ${show(missing)}` : ""}` +
          `${missing.length && unexpected.length ? "; " : ""}` +
          `${unexpected.length ? `unexpected keys: ${show(unexpected)}` : ""}` +
          ` (is the checkpoint for this architecture? pass strict: false to load a subset)`,
      );
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const src = state.get(k);
        if (!src) continue;
        if (src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i])) {
          throw new Error(
            `loadStateDict: ${k} has shape [${src.shape}] in the checkpoint, model expects [${t.shape}]`,
          );
        }
        if (src instanceof Tensor) assign(t, src);
        else {
          const up = Tensor.fromData(src.data, t.shape);
          assign(t, up);
          up.dispose();
        }
      }
    });
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this.#children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter and buffer (the module is unusable afterwards). */
  dispose(): void {
    for (const t of this.stateDict().values()) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

/** Runs children in order; children are named "0", "1", ... like nn.Sequential. */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers.map((m, i) => this.child(String(i), m));
  }
  forward(x: Tensor): Tensor {
    for (const m of this.layers) x = m.forward(x);
    return x;
  }
}

/** A module without state wrapping a function (activation, pooling). */
export class Lambda extends Module {
  constructor(readonly fn: (x: Tensor) => Tensor) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}
