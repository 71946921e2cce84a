// Optimizers with PyTorch semantics (SGD with momentum/nesterov/dampening, Adam with L2,
// AdamW with decoupled decay). `step()` updates every parameter that has a gradient with a few
// multi-tensor dispatches (runtime/optim_kernel.ts), writing into the parameter's own storage
// (references to it stay valid) and into kept state tensors that live as long as the
// optimizer: memory stays flat over steps.

import { keep, Tensor } from "./tensor.ts";
import { assign } from "./ops/assign.ts";
import { words } from "./ops/util.ts";
import { launchUpdates, type OptimKind, type ParamUpdate } from "./optim_kernel.ts";
import { engine } from "./engine.ts";

type StateName = "momentum_buffer" | "exp_avg" | "exp_avg_sq";

function checkNumber(what: string, v: unknown, lo: number, hi = Infinity, hiOpen = false) {
  if (typeof v !== "number" || !(v >= lo && (hiOpen ? v < hi : v <= hi))) {
    const range = `[${lo}, ${hi}${hiOpen ? ")" : "]"}`;
    throw new Error(`${what} must be a number in ${range}, got ${v}`);
  }
}

/** Shared machinery: parameter list, learning rate, per-parameter state and step counts. */
abstract class Optimizer {
  readonly params: readonly Tensor[];
  /** Number of `step()` calls so far (restored by `loadState` for Adam/AdamW). */
  stepCount = 0;
  #lr = 0;
  /** Per-parameter state, kept tensors owned by the optimizer. */
  protected state: Map<StateName, Tensor>[];
  /** Per-parameter update counts (a parameter without a gradient is not counted). */
  protected steps: number[];

  constructor(readonly name: string, params: Tensor[], lr: number) {
    if (!Array.isArray(params) || params.length === 0) {
      throw new Error(`${name}: params must be a non-empty array of tensors`);
    }
    const seen = new Set<GPUBuffer>();
    params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new Error(`${name}: params[${i}] is not a Tensor`);
      if (p.disposed) throw new Error(`${name}: params[${i}] (${p.describe()}) is disposed`);
      if (seen.has(p.buffer)) {
        throw new Error(
          `${name}: params[${i}] (${p.describe()}) shares storage with an earlier parameter; ` +
            `pass each parameter once`,
        );
      }
      seen.add(p.buffer);
    });
    this.params = [...params];
    this.state = params.map(() => new Map());
    this.steps = params.map(() => 0);
    this.lr = lr;
  }

  get lr(): number {
    return this.#lr;
  }

  set lr(v: number) {
    checkNumber(`${this.name}: lr`, v, 0);
    this.#lr = v;
  }

  /** The names of the state tensors this optimizer keeps per parameter. */
  protected abstract stateNames(): StateName[];
  /** The kernel family of this optimizer's updates. */
  protected abstract kind(): OptimKind;
  /** The update of parameter i (its gradient is present): buffers and parameter words. */
  protected abstract update(i: number, p: Tensor, g: Tensor, first: boolean): ParamUpdate;

  /** One update of every parameter whose `.grad` is set; no readback, no allocation after the
   * first step. */
  step(): void {
    const updates: ParamUpdate[] = [];
    const counted: number[] = [];
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      if (g.disposed) {
        throw new Error(`${this.name}.step: the gradient of params[${i}] is disposed`);
      }
      g.assertShape(p.shape, `${this.name}.step: gradient of params[${i}]`);
      const first = this.steps[i] === 0 || this.stateNames().some((s) => !this.state[i].has(s));
      for (const s of this.stateNames()) {
        if (!this.state[i].has(s)) this.state[i].set(s, keep(Tensor.empty(p.shape)));
      }
      this.steps[i]++;
      counted.push(i);
      if (p.size > 0) updates.push(this.update(i, p, g, first));
    });
    // A captured step replays the counts before its launches recompute their words (nothing
    // is allocated for it outside a recording).
    if (engine().recording) {
      engine().onReplay(
        () => {
          for (const i of counted) this.steps[i]++;
          this.stepCount++;
        },
        this,
        counted.join(","),
      );
    }
    launchUpdates(this.kind(), updates);
    this.stepCount++;
  }

  /** Drops every parameter's gradient (PyTorch's set_to_none), freeing its buffer. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Copies of the state for checkpoints: "<i>.<name>" for each state tensor, plus "<i>.step"
   * (0-d) for Adam/AdamW. The copies belong to the caller (current scope). */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.state.forEach((st, i) => {
      for (const [name, t] of st) {
        const c = Tensor.empty(t.shape);
        assign(c, t);
        out.set(`${i}.${name}`, c);
      }
      if (this.countsSteps() && st.size > 0) out.set(`${i}.step`, Tensor.scalar(this.steps[i]));
    });
    return out;
  }

  protected countsSteps(): boolean {
    return false;
  }

  /** Every per-parameter key suffix of the state map. */
  #fields(): string[] {
    return [...this.stateNames(), ...(this.countsSteps() ? ["step"] : [])];
  }

  /** Replaces the whole state with a map from `stateTensors()` (values are copied, the map's
   * tensors stay the caller's). Parameters without entries start fresh. Await it: the tensor
   * copies are recorded at once, the step counts are read back. */
  async loadState(map: Map<string, Tensor>): Promise<void> {
    const names = this.stateNames();
    const byParam = this.params.map(() => new Map<string, Tensor>());
    for (const [key, t] of map) {
      const m = /^(\d+)\.(\w+)$/.exec(key);
      const i = m ? Number(m[1]) : -1;
      const field = m?.[2] ?? "";
      const known = this.#fields().includes(field);
      if (!m || i >= this.params.length || !known) {
        throw new Error(
          `${this.name}.loadState: unexpected key "${key}"; expected "<i>.<name>" with i in ` +
            `0..${this.params.length - 1} and name one of ${this.#fields().join(", ")}`,
        );
      }
      if (!(t instanceof Tensor) || t.disposed) {
        throw new Error(`${this.name}.loadState: "${key}" is not a live tensor`);
      }
      t.assertShape(
        field === "step" ? [] : this.params[i].shape,
        `${this.name}.loadState "${key}"`,
      );
      byParam[i].set(field, t);
    }
    byParam.forEach((entries, i) => {
      if (entries.size === 0) return;
      const missing = this.#fields().filter((n) => !entries.has(n));
      if (missing.length) {
        const keys = missing.map((n) => `"${i}.${n}"`).join(", ");
        throw new Error(`${this.name}.loadState: parameter ${i} lacks ${keys}`);
      }
    });
    // Validated: replace the state.
    const stepTensors: [number, Tensor][] = [];
    byParam.forEach((entries, i) => {
      for (const t of this.state[i].values()) t.dispose();
      this.state[i] = new Map();
      this.steps[i] = 0;
      for (const n of names) {
        const t = entries.get(n);
        if (!t) continue;
        const own = keep(Tensor.empty(this.params[i].shape));
        assign(own, t);
        this.state[i].set(n, own);
      }
      const st = entries.get("step");
      if (st) stepTensors.push([i, st]);
      // SGD state carries no step count; a loaded momentum buffer means "not the first step".
      else if (entries.size > 0) this.steps[i] = 1;
    });
    for (const [i, t] of stepTensors) {
      const s = await t.item();
      if (!Number.isInteger(s) || s < 1) {
        throw new Error(`${this.name}.loadState: "${i}.step" must be a positive integer, got ${s}`);
      }
      this.steps[i] = s;
    }
    if (this.countsSteps()) this.stepCount = Math.max(0, ...this.steps);
  }

  /** Frees the optimizer state (the parameters are not touched). */
  dispose(): void {
    for (const st of this.state) {
      for (const t of st.values()) t.dispose();
      st.clear();
    }
    this.steps.fill(0);
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  dampening?: number;
}

/** torch.optim.SGD: g += wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
 * g = nesterov ? g + momentum buf : buf; p -= lr g. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly dampening: number;

  constructor(params: Tensor[], opts: SGDOptions) {
    if (!opts || opts.lr === undefined) {
      throw new Error("SGD: options need a learning rate, e.g. new SGD(params, { lr: 0.1 })");
    }
    super("SGD", params, opts.lr);
    const { momentum = 0, nesterov = false, weightDecay = 0, dampening = 0 } = opts;
    checkNumber("SGD: momentum", momentum, 0);
    checkNumber("SGD: weightDecay", weightDecay, 0);
    checkNumber("SGD: dampening", dampening, 0, 1);
    if (nesterov && (momentum <= 0 || dampening !== 0)) {
      throw new Error("SGD: nesterov needs momentum > 0 and dampening = 0");
    }
    this.momentum = momentum;
    this.nesterov = nesterov;
    this.weightDecay = weightDecay;
    this.dampening = dampening;
  }

  protected stateNames(): StateName[] {
    return this.momentum !== 0 ? ["momentum_buffer"] : [];
  }

  protected kind(): OptimKind {
    return this.momentum !== 0 ? "sgd-momentum" : "sgd";
  }

  protected update(i: number, p: Tensor, g: Tensor, first: boolean): ParamUpdate {
    const buf = this.state[i].get("momentum_buffer");
    const n = p.size;
    // A replay is never a first step (the step is captured from its second call on).
    let once = first;
    return {
      n,
      buffers: [p.buffer, g.buffer, ...(buf ? [buf.buffer] : [])],
      words: () => {
        const f = once;
        once = false;
        return this.#words(n, f);
      },
    };
  }

  #words(n: number, first: boolean): number[] {
    return words(
      n,
      { f: this.lr },
      { f: this.weightDecay },
      first ? 1 : 0,
      { f: this.momentum },
      { f: 1 - this.dampening },
      this.nesterov ? 1 : 0,
      [0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
  }
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

class AdamBase extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;

  constructor(name: "Adam" | "AdamW", params: Tensor[], opts: AdamOptions, defaultWd: number) {
    const { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = defaultWd } = opts ?? {};
    super(name, params, lr);
    if (!Array.isArray(betas) || betas.length !== 2) {
      throw new Error(`${name}: betas must be a pair [beta1, beta2], got ${betas}`);
    }
    checkNumber(`${name}: betas[0]`, betas[0], 0, 1, true);
    checkNumber(`${name}: betas[1]`, betas[1], 0, 1, true);
    checkNumber(`${name}: eps`, eps, 0);
    checkNumber(`${name}: weightDecay`, weightDecay, 0);
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.weightDecay = weightDecay;
  }

  protected stateNames(): StateName[] {
    return ["exp_avg", "exp_avg_sq"];
  }

  protected override countsSteps(): boolean {
    return true;
  }

  protected kind(): OptimKind {
    return this.name === "AdamW" ? "adamw" : "adam";
  }

  protected update(i: number, p: Tensor, g: Tensor, first: boolean): ParamUpdate {
    const st = this.state[i];
    const n = p.size;
    let once = first;
    return {
      n,
      buffers: [p.buffer, g.buffer, st.get("exp_avg")!.buffer, st.get("exp_avg_sq")!.buffer],
      words: () => {
        const f = once;
        once = false;
        return this.#words(i, n, f);
      },
    };
  }

  #words(i: number, n: number, first: boolean): number[] {
    const [b1, b2] = this.betas;
    const t = this.steps[i];
    // Bias corrections in float64, as PyTorch computes them in Python floats.
    const stepSize = this.lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    return words(
      n,
      { f: this.lr },
      { f: this.weightDecay },
      first ? 1 : 0,
      [0, 0, 0],
      { f: 1 - this.lr * this.weightDecay },
      { f: 1 - b1 },
      { f: b2 },
      { f: 1 - b2 },
      { f: this.eps },
      { f: stepSize },
      { f: bc2Sqrt },
      [0, 0],
    );
  }
}

/** torch.optim.Adam (weight decay as L2 added to the gradient), no amsgrad. */
export class Adam extends AdamBase {
  constructor(params: Tensor[], opts: AdamOptions = {}) {
    super("Adam", params, opts, 0);
  }
}

/** torch.optim.AdamW: p *= 1 - lr wd, then the Adam step without L2. */
export class AdamW extends AdamBase {
  constructor(params: Tensor[], opts: AdamOptions = {}) {
    super("AdamW", params, opts, 1e-2);
  }
}
