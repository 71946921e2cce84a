// The gated activation of DeepFillv2's gated convolution, act(features) * sigmoid(gate), over
// one tensor whose channel halves are the features and the gate: the output of ONE conv with
// both weight sets stacked (runtime/nn/layers.ts GatedConv2d), so the input is packed and
// mirrored once and narrow layers fill tile16's 16-channel blocks. One kernel forward, one
// backward writing both halves' gradients. The activation and the sigmoid are the op table's
// expressions and derivatives (runtime/ops/table.ts), not written again here.

import { engine, grid1d } from "../engine.ts";
import { Tensor } from "../tensor.ts";
import { record } from "../autograd.ts";
import { PRELUDE, UNARY, type UnaryName, type UnaryOp } from "./table.ts";
import { words } from "./util.ts";

export type GateActivation = "relu" | "elu" | "lrelu" | "tanh" | "none";

/** Each activation as an op of the table with its scalar (elu's alpha, leaky relu's slope). */
const ACTS: Record<GateActivation, { op: UnaryName; a: number }> = {
  relu: { op: "relu", a: 0 },
  elu: { op: "elu", a: 1 },
  lrelu: { op: "leakyRelu", a: 0.2 },
  tanh: { op: "tanh", a: 0 },
  none: { op: "copy", a: 0 },
};

const WG = 64;
const codes = new Map<string, string>();

/** The op table's expression with x for the operand and the params' `a` for the scalar. */
function expr(template: string, x: string): string {
  return template.replaceAll("{0}", x).replaceAll("{a}", "p.a");
}

/** Forward ("fwd": O = act(f) * sigm(g)) or backward ("bwd": from the output gradient O, the
 * gradients of f and g into G) over i < n = N*C*HW, f at (i / half) * 2 half + i % half. */
function kernelCode(act: GateActivation, dir: "fwd" | "bwd"): string {
  const key = `${act}/${dir}`;
  const cached = codes.get(key);
  if (cached) return cached;
  const u: UnaryOp = UNARY[ACTS[act].op];
  const s: UnaryOp = UNARY.sigmoid;
  const body = dir === "fwd"
    ? `O[i] = (${expr(u.fwd, "f")}) * (${expr(s.fwd, "g")});`
    : `let go = O[i];\n  G[at] = go * (${expr(s.fwd, "g")}) * (${expr(u.deriv!, "f")});\n` +
      `  G[at + p.half] = go * (${expr(u.fwd, "f")}) * (${expr(s.deriv!, "g")});`;
  const code = `// gated activation, ${act}, ${dir} (runtime/ops/gate.ts)
${PRELUDE}
struct Params { n: u32, half: u32, a: f32 }
@group(0) @binding(0) var<storage, read> Y: array<f32>;
@group(0) @binding(1) var<storage, ${dir === "fwd" ? "read_write" : "read"}> O: array<f32>;
${dir === "bwd" ? "@group(0) @binding(2) var<storage, read_write> G: array<f32>;" : ""}
@group(0) @binding(${dir === "fwd" ? 2 : 3}) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  let s = i / p.half;
  let at = i + s * p.half;
  let f = Y[at];
  let g = Y[at + p.half];
  ${body}
}
`;
  codes.set(key, code);
  return code;
}

/** act(y[:, :C]) * sigmoid(y[:, C:]) for y [N, 2C, ...]: [N, C, ...]. */
export function gatedActivation(y: Tensor, act: GateActivation): Tensor {
  if (y.ndim < 2 || y.shape[1] % 2 !== 0) {
    throw new Error(
      `gatedActivation: input [${y.shape}] needs an even channel count (features, then gate)`,
    );
  }
  if (!(act in ACTS)) {
    throw new Error(`gatedActivation: unknown activation "${act}"; one of ${Object.keys(ACTS)}`);
  }
  const shape = [...y.shape];
  shape[1] /= 2;
  const out = Tensor.empty(shape);
  const n = out.size;
  if (n === 0) return out;
  const half = n / shape[0];
  const params = words(n, half, { f: ACTS[act].a });
  engine().dispatch({
    kernel: `gate:${act}`,
    code: kernelCode(act, "fwd"),
    buffers: [y.buffer, out.buffer],
    params,
    workgroups: grid1d(n, WG),
  });
  return record(out, "gatedActivation", [y], (go) => {
    const gy = Tensor.empty([...y.shape]);
    engine().dispatch({
      kernel: `gate:${act}:grad`,
      code: kernelCode(act, "bwd"),
      buffers: [y.buffer, go.buffer, gy.buffer],
      params,
      workgroups: grid1d(n, WG),
    });
    return [gy];
  });
}
