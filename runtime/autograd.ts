// Reverse-mode autodiff over a dynamic graph (PyTorch style): each op result remembers a
// GradFn with its inputs; `backward` walks the graph from the loss in reverse topological
// order. Backward rules are themselves written with ops, run in no-grad mode.

import { keep, type Tensor, tidy } from "./tensor.ts";

export interface GradFn {
  /** Op name, shown in errors. */
  name: string;
  inputs: Tensor[];
  /** Returns one gradient per input (null where the input needs none). `needs[i]` says
   * whether input i requires a gradient, so rules can skip work. */
  backward(gy: Tensor, needs: boolean[]): (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording the graph (evaluation, optimizer updates, attacks' steps). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    const r = fn();
    if (r instanceof Promise) {
      throw new Error("noGrad(): the function returned a Promise; use noGradAsync");
    }
    return r;
  } finally {
    gradEnabled = prev;
  }
}

export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return await fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Attaches a backward rule to `out` when grad mode is on and an input requires grad. */
export function record(
  out: Tensor,
  name: string,
  inputs: Tensor[],
  backward: GradFn["backward"],
): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = { name, inputs, backward };
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: ResNet/WRN graphs are deep enough to threaten the JS call stack.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

// Filled by ops/elementwise.ts to avoid an import cycle (ops import this module).
export const gradOps: {
  add: (a: Tensor, b: Tensor) => Tensor;
  onesLike: (t: Tensor) => Tensor;
  zerosLike: (t: Tensor) => Tensor;
} = {
  add: () => {
    throw new Error("internal: ops not loaded (import mod.ts or runtime/ops/mod.ts)");
  },
  onesLike: () => {
    throw new Error("internal: ops not loaded (import mod.ts or runtime/ops/mod.ts)");
  },
  zerosLike: () => {
    throw new Error("internal: ops not loaded (import mod.ts or runtime/ops/mod.ts)");
  },
};

function run(
  root: Tensor,
  seed: Tensor | undefined,
  onLeaf: (leaf: Tensor, g: Tensor) => void,
  wanted?: Set<Tensor>,
): void {
  if (!root.requiresGrad) {
    throw new Error(
      `backward: ${root.describe()} does not require grad (no input of the computation ` +
        `requires grad, or it was computed under noGrad)`,
    );
  }
  if (!seed && root.size !== 1) {
    throw new Error(
      `backward: ${root.describe()} is not a scalar; pass the output gradient explicitly`,
    );
  }
  if (seed) seed.assertShape(root.shape, "backward: output gradient");
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    grads.set(root, seed ?? gradOps.onesLike(root));
    const order = topoOrder(root);
    // With wanted tensors (functional grad), only inputs on a path to one of them get
    // gradients: an attack's grad w.r.t. the image skips every weight-gradient kernel.
    let relevant: Set<Tensor> | null = null;
    if (wanted) {
      relevant = new Set();
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        if (wanted.has(t) || t.gradFn?.inputs.some((x) => relevant!.has(x))) relevant.add(t);
      }
    }
    for (const t of order) {
      const gy = grads.get(t);
      if (!gy) continue;
      grads.delete(t);
      const fn = t.gradFn;
      if (!fn || wanted?.has(t)) {
        onLeaf(t, gy);
        if (!fn) continue;
      }
      if (t.disposed) {
        throw new Error(
          `backward through ${fn.name}: ${t.describe()} was disposed before backward`,
        );
      }
      const needs = fn.inputs.map((x) => x.requiresGrad && (!relevant || relevant.has(x)));
      // Temporaries of the rule die here; only the returned gradients survive.
      const gxs = tidy(() => fn.backward(gy, needs));
      if (gy !== seed && !wanted?.has(t)) gy.dispose();
      fn.inputs.forEach((x, i) => {
        const g = gxs[i];
        if (!g || !needs[i]) {
          if (g && g !== gy) g.dispose();
          return;
        }
        g.assertShape(x.shape, `backward of ${fn.name}: gradient of input ${i}`);
        const prev = grads.get(x);
        if (prev) {
          grads.set(x, gradOps.add(prev, g));
          prev.dispose();
          g.dispose();
        } else grads.set(x, g);
      });
    }
  });
}

/** Accumulates d(root)/d(leaf) into `leaf.grad` for every leaf that requires grad. */
export function backward(root: Tensor, seed?: Tensor): void {
  run(root, seed, (leaf, g) => {
    if (leaf.grad) {
      const sum = keep(gradOps.add(leaf.grad, g));
      leaf.grad.dispose();
      g.dispose();
      leaf.grad = sum;
    } else leaf.grad = keep(g);
  });
}

/** Functional gradient: returns d(root)/d(x) for each x without touching `.grad`.
 * The results belong to the current scope. Inputs that do not influence root get zeros. */
export function grad(root: Tensor, xs: Tensor[], seed?: Tensor): Tensor[] {
  const wanted = new Set(xs);
  const out = new Map<Tensor, Tensor>();
  run(root, seed, (t, g) => {
    if (wanted.has(t)) out.set(t, g);
    else g.dispose();
  }, wanted);
  return xs.map((x) => out.get(x) ?? noGrad(() => gradOps.zerosLike(x)));
}
