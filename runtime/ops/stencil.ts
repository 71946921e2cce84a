// Fixed stencils on image planes: the 4-neighbour sum (the Jacobi step of diffusion fills),
// one kernel instead of a pad and four shifted slices.

import { record } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, WG, words } from "./util.ts";
import { engine, grid1d, shaderSource } from "../engine.ts";
import { unaryRaw } from "./pointwise.ts";

function neighbourSumRaw(x: Tensor): Tensor {
  const [, , H, W] = x.shape;
  const y = Tensor.empty(x.shape);
  launch1d("stencil", x.size, [x.buffer, y.buffer], words(x.size, H, W));
  return y;
}

/** y[n,c,h,w] = x[h-1,w] + x[h+1,w] + x[h,w-1] + x[h,w+1] for x [N,C,H,W], neighbours outside
 * the image counting 0. Self-adjoint: the gradient is the same sum of the output gradient. */
export function neighbourSum4(x: Tensor): Tensor {
  if (x.ndim !== 4) throw new Error(`neighbourSum4: x must be NCHW, got shape [${x.shape}]`);
  return record(neighbourSumRaw(x), "neighbourSum4", [x], (gy) => [neighbourSumRaw(gy)]);
}

/** Where harmonicFill runs: "workgroup" keeps each plane in workgroup memory (one launch for
 * all sweeps), "global" launches one phase at a time (planes of any size); "auto" picks
 * workgroup when the plane fits the adapter's workgroup memory and has at most 32 * WG pixels
 * (8,192: 64x128; the per-thread pixel masks are one u32). */
export type HarmonicPath = "auto" | "workgroup" | "global";

export interface HarmonicOptions {
  /** Red-black iterations (each one half-sweep per colour). */
  iterations: number;
  /** Over-relaxation factor in (0, 2); 1 is Gauss-Seidel. */
  omega: number;
  path?: HarmonicPath;
}

function harmonicRaw(
  x: Tensor,
  mask: Tensor,
  o: HarmonicOptions,
  entry: "main" | "grad",
): Tensor {
  const [N, C, H, W] = x.shape;
  const planes = N * C, hw = H * W;
  if (x.size === 0) return Tensor.empty(x.shape);
  const params = (phase: number) => words(planes, C, H, W, o.iterations, { f: o.omega }, phase);
  const eng = engine();
  // The workgroup path holds the plane in workgroup memory and gives each thread at most 32
  // pixels (one bit each of a mask, harmonic_fill.wgsl).
  const fits = hw * 4 <= eng.device.limits.maxComputeWorkgroupStorageSize && hw <= 32 * WG;
  const path = o.path ?? "auto";
  if (path === "workgroup" && !fits) {
    throw new Error(
      `harmonicFill: a ${H}x${W} plane does not fit workgroup memory (or 32 pixels a thread); use path "global"`,
    );
  }
  if (path === "workgroup" || (path === "auto" && fits)) {
    const y = Tensor.empty(x.shape);
    // One generated source per plane size (the workgroup array's length is a constant).
    const code = shaderSource("harmonic_fill").replace("PLANE_WORDSu", `${hw}u`);
    eng.dispatch({
      kernel: "harmonic_fill",
      entry,
      code,
      constants: { WG },
      buffers: [x.buffer, mask.buffer, y.buffer],
      params: params(0),
      workgroups: grid1d(planes, 1),
    });
    return y;
  }
  const y = unaryRaw("copy", x);
  const phases = entry === "main" ? 2 * o.iterations : 2 * o.iterations + 1;
  for (let s = 0; s < phases; s++) {
    launch1d("harmonic_step", planes * hw, [mask.buffer, y.buffer], params(s), {}, entry);
  }
  return y;
}

/** Harmonic (Laplace) hole filling: `iterations` red-black SOR sweeps of x [N,C,H,W] on the
 * holes of mask [N,1,H,W] (1 = hole): each hole pixel moves towards the mean of its neighbours
 * inside the image, known pixels stay fixed. From a good start (push-pull) a few dozen
 * over-relaxed iterations reach what thousands of Jacobi sweeps do. Linear in x, so the
 * gradient is the transposed sweeps; the mask gets none. */
export function harmonicFill(x: Tensor, mask: Tensor, o: HarmonicOptions): Tensor {
  if (x.ndim !== 4) throw new Error(`harmonicFill: x must be NCHW, got shape [${x.shape}]`);
  const [N, , H, W] = x.shape;
  mask.assertShape([N, 1, H, W], "harmonicFill: mask");
  if (!Number.isInteger(o.iterations) || o.iterations < 0) {
    throw new Error(`harmonicFill: iterations must be an integer >= 0, got ${o.iterations}`);
  }
  if (!(o.omega > 0 && o.omega < 2)) {
    throw new Error(`harmonicFill: omega must lie in (0, 2), got ${o.omega}`);
  }
  return record(
    harmonicRaw(x, mask, o, "main"),
    "harmonicFill",
    [x, mask],
    (gy, needs) => [needs[0] ? harmonicRaw(gy, mask, o, "grad") : null, null],
  );
}
