// Bilinear resampling at arbitrary points: gridSample (PyTorch's F.grid_sample, mode 'bilinear')
// and flowWarp (per-pixel displacement in pixels, used by the StAdv attack). Both run the three
// passes of shaders/grid_sample.wgsl: forward, image gradient and point gradient. The image
// gradient is a gather (one thread per input row scanning the outputs in a fixed order), not a
// scatter-add, so it needs no float atomics and is bit-identical run to run.

import { record } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { launch1d, words } from "./util.ts";

export type GridPadding = "zeros" | "border";

export interface GridSampleOptions {
  /** true: grid -1 / 1 are the centres of the corner pixels; false (default): their outer edges. */
  alignCorners?: boolean;
  /** 'zeros' (default): outside taps read 0; 'border': points are clamped into the image. */
  padding?: GridPadding;
}

interface Geometry {
  N: number;
  C: number;
  H: number;
  W: number;
  Ho: number;
  Wo: number;
}

const MODE_GRID = 0, MODE_FLOW = 1;

function launchPass(
  pass: 0 | 1 | 2,
  mode: number,
  pad: number,
  align: number,
  g: Geometry,
  bufs: { x: GPUBuffer; pts: GPUBuffer; gy: GPUBuffer; out: GPUBuffer },
  threads: number,
): void {
  launch1d(
    "grid_sample",
    threads,
    [bufs.x, bufs.pts, bufs.gy, bufs.out],
    words(threads, g.N, g.C, g.H, g.W, g.Ho, g.Wo),
    { PASS: pass, MODE: mode, PAD: pad, ALIGN: align },
  );
}

/** Shared forward + backward for both point sources (`pts` is the grid or the flow). */
function sampleOp(
  name: string,
  x: Tensor,
  pts: Tensor,
  mode: number,
  pad: number,
  align: number,
  g: Geometry,
): Tensor {
  const y = Tensor.empty([g.N, g.C, g.Ho, g.Wo]);
  // The forward reads no output gradient: the point buffer stands in for that binding.
  launchPass(0, mode, pad, align, g, {
    x: x.buffer,
    pts: pts.buffer,
    gy: pts.buffer,
    out: y.buffer,
  }, y.size);
  return record(y, name, [x, pts], (gy, needs) => {
    let gx: Tensor | null = null, gp: Tensor | null = null;
    if (needs[0]) {
      gx = Tensor.empty(x.shape);
      // The image gradient does not read x: the point buffer stands in for it.
      launchPass(1, mode, pad, align, g, {
        x: pts.buffer,
        pts: pts.buffer,
        gy: gy.buffer,
        out: gx.buffer,
      }, g.N * g.C * g.H);
    }
    if (needs[1]) {
      gp = Tensor.empty(pts.shape);
      launchPass(2, mode, pad, align, g, {
        x: x.buffer,
        pts: pts.buffer,
        gy: gy.buffer,
        out: gp.buffer,
      }, g.N * g.Ho * g.Wo);
    }
    return [gx, gp];
  });
}

/** Samples x [N,C,H,W] bilinearly at grid [N,Ho,Wo,2] -> [N,C,Ho,Wo], exactly like PyTorch's
 * F.grid_sample(x, grid, mode='bilinear', padding_mode, align_corners): grid[..., 0] is the
 * horizontal coordinate and grid[..., 1] the vertical one, both in [-1, 1]. Gradients flow to
 * x and to the grid. */
export function gridSample(x: Tensor, grid: Tensor, o: GridSampleOptions = {}): Tensor {
  if (x.ndim !== 4) {
    throw new Error(`gridSample: x must be a 4-d NCHW tensor, got shape [${x.shape}]`);
  }
  if (grid.ndim !== 4 || grid.shape[3] !== 2) {
    throw new Error(`gridSample: grid must be [N,Ho,Wo,2] (x, y in [-1,1]), got [${grid.shape}]`);
  }
  if (grid.shape[0] !== x.shape[0]) {
    throw new Error(
      `gridSample: grid batch ${grid.shape[0]} differs from x batch ${x.shape[0]} ` +
        `(x [${x.shape}], grid [${grid.shape}])`,
    );
  }
  const padding = o.padding ?? "zeros";
  if (padding !== "zeros" && padding !== "border") {
    throw new Error(
      `gridSample: padding must be 'zeros' or 'border', got ${JSON.stringify(o.padding)}`,
    );
  }
  const alignCorners = o.alignCorners ?? false;
  if (typeof alignCorners !== "boolean") {
    throw new Error(
      `gridSample: alignCorners must be a boolean, got ${JSON.stringify(alignCorners)}`,
    );
  }
  const [N, C, H, W] = x.shape;
  const g = { N, C, H, W, Ho: grid.shape[1], Wo: grid.shape[2] };
  return sampleOp(
    "gridSample",
    x,
    grid,
    MODE_GRID,
    padding === "border" ? 1 : 0,
    alignCorners ? 1 : 0,
    g,
  );
}

/** Warps x [N,C,H,W] by a flow [N,2,H,W] in pixels: output (i, j) is x sampled bilinearly at
 * column j + flow[n,0,i,j] and row i + flow[n,1,i,j], reading 0 outside the image.
 * Gradients flow to x and to the flow. */
export function flowWarp(x: Tensor, flow: Tensor): Tensor {
  if (x.ndim !== 4) {
    throw new Error(`flowWarp: x must be a 4-d NCHW tensor, got shape [${x.shape}]`);
  }
  const [N, C, H, W] = x.shape;
  if (
    flow.ndim !== 4 || flow.shape[0] !== N || flow.shape[1] !== 2 || flow.shape[2] !== H ||
    flow.shape[3] !== W
  ) {
    throw new Error(
      `flowWarp: flow must be [N,2,H,W] = [${N},2,${H},${W}] (channel 0 = dx, 1 = dy, in ` +
        `pixels) for x [${x.shape}], got [${flow.shape}]`,
    );
  }
  return sampleOp("flowWarp", x, flow, MODE_FLOW, 0, 1, { N, C, H, W, Ho: H, Wo: W });
}
