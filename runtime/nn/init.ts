// Seeded CPU initialisation of parameters (PyTorch's default schemes). Initial values are
// drawn on the CPU once and uploaded, so they are identical on every adapter.

/** splitmix32: small, fast, good enough for initial weights; seeded per model. */
export class InitRng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let z = (this.#s = (this.#s + 0x9e3779b9) >>> 0);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  }
  uniform(n: number, lo: number, hi: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.next();
    return a;
  }
  normal(n: number, std: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.max(this.next(), 1e-12), v = this.next();
      a[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
    return a;
  }
}

/** kaiming_uniform_(a = sqrt(5)) as in nn.Conv2d / nn.Linear: U(-1/sqrt(fan_in), +). */
export function defaultWeight(rng: InitRng, n: number, fanIn: number): Float32Array {
  const b = 1 / Math.sqrt(fanIn);
  return rng.uniform(n, -b, b);
}

/** kaiming_normal_(mode='fan_out', relu) as used by ResNet/WRN reference code. */
export function kaimingNormalFanOut(rng: InitRng, n: number, fanOut: number): Float32Array {
  return rng.normal(n, Math.sqrt(2 / fanOut));
}
