// Spectral normalization (Miyato et al. 2018) as in PyTorch's spectral_norm: one power
// iteration per training call refines the kept vector u (in place, no gradient), then
// w / sigma with sigma = u^T W v, differentiated through W only (u and v are constants).
// Eval mode recomputes v = normalize(W^T u) from the kept u instead of storing v.

import { noGrad } from "../autograd.ts";
import type { Tensor } from "../tensor.ts";
import { assign } from "./assign.ts";
import { matmul } from "./matmul.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";
import { add, div, mul, sqrt, square } from "./elementwise.ts";

export interface SpectralNormOptions {
  training: boolean;
  iterations?: number;
  eps?: number;
}

function normalize(v: Tensor, eps: number): Tensor {
  // v / max(||v||, eps), like F.normalize.
  const n = sqrt(sum(square(v)));
  return div(v, add(n, eps));
}

/** w [out, ...] normalized by its largest singular value; u [out] is the kept power-iteration
 * state (updated in place when training). */
export function spectralNorm(w: Tensor, u: Tensor, o: SpectralNormOptions): Tensor {
  const out = w.shape[0];
  if (w.ndim < 2) throw new Error(`spectralNorm: weight must be at least 2-d, got [${w.shape}]`);
  if (u.ndim !== 1 || u.shape[0] !== out) {
    throw new Error(
      `spectralNorm: u has shape [${u.shape}], expected [${out}] (weight [${w.shape}])`,
    );
  }
  const eps = o.eps ?? 1e-12;
  const iterations = o.training ? (o.iterations ?? 1) : 0;
  const wm = reshape(w, [out, w.size / out]);
  const v = noGrad(() => {
    const wd = wm.view(wm.shape);
    let uu = u.view([1, out]);
    let vv = normalize(matmul(uu, wd), eps); // [1, in]
    for (let i = 0; i < iterations; i++) {
      uu = normalize(reshape(matmul(wd, reshape(vv, [vv.size, 1])), [1, out]), eps);
      vv = normalize(matmul(uu, wd), eps);
    }
    if (iterations > 0) assign(u, reshape(uu, [out]));
    return vv;
  });
  // sigma = u^T W v with gradient through W.
  const wv = reshape(matmul(wm, reshape(v, [v.size, 1])), [out]);
  const sigma = sum(mul(u, wv));
  return div(w, sigma);
}
