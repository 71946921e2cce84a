// Attacks on models whose optimum is known: a linear classifier (logits = W x + b), where the
// strongest Linf perturbation of a binary margin is eps*sign(w_diff) and the strongest L2 one
// eps*w_diff/||w_diff||, plus budget, bound, EOT and BPDA properties on a small MLP.

import { assert, gpu, rng } from "./helpers/check.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import {
  apgd,
  apgdCheckpoints,
  apgdTargeted,
  autoAttack,
  bpda,
  composeTarget,
  eotGradient,
  fabTargeted,
  fabUntargeted,
  fgsm,
  perturbationNorms,
  pgd,
  square,
  type Target,
} from "../runtime/attacks/mod.ts";
import {
  projectHyperplane,
  projectHyperplaneL2,
  projectHyperplaneLinf,
} from "../runtime/attacks/fab_projection.ts";
import { squareEta, squareL2Proposal, squarePSelection } from "../runtime/attacks/square.ts";
import { flowBox, flowSmoothnessLoss, stadv } from "../runtime/attacks/stadv.ts";
import { grad } from "../runtime/autograd.ts";

import { mlpTarget as sharedMlp } from "./helpers/targets.ts";

await gpu();

const C = 3, H = 5, W = 4, D = C * H * W;

function linearTarget(w: number[], b: number[], k: number): Target {
  const wt = Tensor.fromData(w, [k, D]);
  const bt = Tensor.fromData(b, [k]);
  return {
    name: "linear",
    numClasses: k,
    randomized: false,
    logits: (x) => ops.linear(ops.flatten(x), wt, bt),
  };
}

function mlpTarget(seed: number, k = 10, hidden = 24): Target {
  return sharedMlp(D, seed, k, hidden);
}

function images(n: number, r: () => number, lo = 0, hi = 1): Tensor {
  return Tensor.fromData(Array.from({ length: n * D }, () => lo + (hi - lo) * r()), [n, C, H, W]);
}

async function predict(t: Target, x: Tensor): Promise<number[]> {
  const z = t.logits(x);
  const v = await z.data();
  z.dispose();
  const k = t.numClasses, out: number[] = [];
  for (let i = 0; i < x.shape[0]; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (v[i * k + j] > v[i * k + b]) b = j;
    out.push(b);
  }
  return out;
}

/** A binary problem embedded in k classes (the others suppressed by -1e3 biases). */
function binaryProblem(seed: number, k: number, b0: number) {
  const r = rng(seed);
  const w: number[] = [];
  for (let c = 0; c < k; c++) for (let j = 0; j < D; j++) w.push(c < 2 ? r() - 0.5 : 0);
  const b = Array.from({ length: k }, (_, c) => (c === 0 ? b0 : c === 1 ? 0 : -1e3));
  const wd = Array.from({ length: D }, (_, j) => w[D + j] - w[j]); // w_1 - w_0
  return { target: linearTarget(w, b, k), wd, w, b };
}

Deno.test("PGD Linf and L2 reach the analytic optimum of a linear binary margin", async () => {
  const { target, wd } = binaryProblem(11, 2, 4); // never misclassified: best = max loss
  const r = rng(12);
  const x = images(3, r, 0.3, 0.7);
  const xs = await x.data();
  const labels = [0, 0, 0];
  const l2n = Math.hypot(...wd);
  const check = async (xAdv: Tensor, want: (i: number, j: number) => number, tol: number) => {
    const a = await xAdv.data();
    let worst = 0;
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < D; j++) {
        worst = Math.max(worst, Math.abs(a[i * D + j] - want(i, j)));
      }
    }
    assert.ok(worst <= tol, `max deviation from the optimum ${worst} > ${tol}`);
  };
  const eps = 8 / 255;
  const linf = await pgd({ target, x, labels }, { eps, steps: 10 });
  await check(linf.xAdv, (i, j) => xs[i * D + j] + eps * Math.sign(wd[j]), 1e-6);
  const ap = await apgd({ target, x, labels }, { eps, steps: 12 });
  await check(ap.xAdv, (i, j) => xs[i * D + j] + eps * Math.sign(wd[j]), 1e-6);
  const l2 = await pgd({ target, x, labels }, { norm: "l2", eps: 0.5, randomStart: false });
  await check(l2.xAdv, (i, j) => xs[i * D + j] + (0.5 * wd[j]) / l2n, 1e-5);
  // From a random start the orthogonal part decays geometrically; 60 steps leave < 1e-3.
  const l2r = await pgd({ target, x, labels }, { norm: "l2", eps: 0.5, steps: 60 });
  await check(l2r.xAdv, (i, j) => xs[i * D + j] + (0.5 * wd[j]) / l2n, 1e-3);
  const f = await fgsm({ target, x, labels }, { eps });
  await check(f.xAdv, (i, j) => xs[i * D + j] + eps * Math.sign(wd[j]), 1e-6);
});

Deno.test("APGD checkpoints follow p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)", () => {
  // The paper's schedule in exact integer hundredths: w_j = ceil(p_j N).
  const fromFormula = (n: number) => {
    const p = [0, 22];
    while (true) {
      const j = p.length - 1;
      const next = p[j] + Math.max(p[j] - p[j - 1] - 3, 6);
      if (Math.ceil((next * n) / 100) > n) break;
      p.push(next);
    }
    return p.map((v) => Math.ceil((v * n) / 100));
  };
  assert.deepEqual(apgdCheckpoints(100), [0, 22, 41, 57, 70, 80, 87, 93, 99]);
  assert.deepEqual(apgdCheckpoints(100), fromFormula(100));
  assert.deepEqual(apgdCheckpoints(1000), fromFormula(1000));
  assert.deepEqual(apgdCheckpoints(200), fromFormula(200));
});

Deno.test("every attack stays within eps and [0,1], on images touching the box", async () => {
  const target = mlpTarget(21);
  const r = rng(22);
  const n = 5;
  // A third of the pixels sit exactly on 0 or 1 so clipping binds.
  const raw = Array.from({ length: n * D }, () => {
    const u = r();
    return u < 0.15 ? 0 : u > 0.85 ? 1 : r();
  });
  const x = Tensor.fromData(raw, [n, C, H, W]);
  const labels = await predict(target, x);
  const runs: [string, "linf" | "l2", number, () => Promise<{ xAdv: Tensor }>][] = [
    ["fgsm", "linf", 0.03, () => fgsm({ target, x, labels }, { eps: 0.03 })],
    ["pgd", "linf", 0.03, () => pgd({ target, x, labels }, { eps: 0.03, steps: 5 })],
    ["pgd-l2", "l2", 0.4, () => pgd({ target, x, labels }, { norm: "l2", eps: 0.4, steps: 5 })],
    ["apgd-ce", "linf", 0.03, () => apgd({ target, x, labels }, { eps: 0.03, steps: 8 })],
    [
      "apgd-dlr-l2",
      "l2",
      0.4,
      () => apgd({ target, x, labels }, { norm: "l2", eps: 0.4, steps: 8, loss: "dlr" }),
    ],
    [
      "apgd-t",
      "linf",
      0.03,
      () => apgdTargeted({ target, x, labels }, { eps: 0.03, steps: 5, targets: 2 }),
    ],
    [
      "fab-t",
      "linf",
      0.1,
      () => fabTargeted({ target, x, labels }, { eps: 0.1, steps: 5, targets: 2 }),
    ],
    [
      "fab-t-l2",
      "l2",
      1,
      () => fabTargeted({ target, x, labels }, { norm: "l2", eps: 1, steps: 5, targets: 2 }),
    ],
    ["square", "linf", 0.03, () => square({ target, x, labels }, { eps: 0.03, queries: 30 })],
    [
      "square-l2",
      "l2",
      0.4,
      () => square({ target, x, labels }, { norm: "l2", eps: 0.4, queries: 30 }),
    ],
  ];
  for (const [name, norm, eps, run] of runs) {
    const { xAdv } = await run();
    const v = await xAdv.data();
    const nr = await perturbationNorms(xAdv, x);
    const worst = Math.max(...(norm === "linf" ? nr.linf : nr.l2));
    assert.ok(worst <= eps + 1e-6, `${name}: ${norm} norm ${worst} exceeds eps ${eps}`);
    assert.ok(v.every((t) => t >= 0 && t <= 1), `${name}: pixel outside [0,1]`);
    assert.ok(worst > 0, `${name}: no perturbation at all`);
    xAdv.dispose();
  }
  x.dispose();
});

Deno.test("larger eps is never weaker; success matches the analytic margin test", async () => {
  // Binary margins embedded in 4 classes: fooled at eps iff margin < eps * ||w_diff||_dual.
  const { target, wd, w, b } = binaryProblem(31, 4, 0.6);
  const r = rng(32);
  const n = 10;
  const x = images(n, r, 0.35, 0.65);
  const xs = await x.data();
  const labels = new Array(n).fill(0);
  const margin = Array.from({ length: n }, (_, i) => {
    let m = b[0] - b[1];
    for (let j = 0; j < D; j++) m += (w[j] - w[D + j]) * xs[i * D + j];
    return m;
  });
  const l1 = wd.reduce((s, v) => s + Math.abs(v), 0), l2 = Math.hypot(...wd);
  for (const norm of ["linf", "l2"] as const) {
    const grid = norm === "linf" ? [0.005, 0.01, 0.02, 0.04] : [0.1, 0.2, 0.4, 0.8];
    const dual = norm === "linf" ? l1 : l2;
    const attacks: [string, (eps: number) => Promise<{ fooled: boolean[] }>][] = [
      ["pgd", (eps) => pgd({ target, x, labels }, { norm, eps, steps: 6, stepSize: eps / 2 })],
      ["apgd-ce", (eps) => apgd({ target, x, labels }, { norm, eps, steps: 6 })],
      ["apgd-dlr", (eps) => apgd({ target, x, labels }, { norm, eps, steps: 6, loss: "dlr" })],
      ["apgd-t", (eps) => apgdTargeted({ target, x, labels }, { norm, eps, steps: 6 })],
      ["fab-t", (eps) => fabTargeted({ target, x, labels }, { norm, eps, steps: 8 })],
    ];
    let checked = 0;
    for (const [name, run] of attacks) {
      let prev: boolean[] | null = null;
      for (const eps of grid) {
        const { fooled } = await run(eps);
        for (let i = 0; i < n; i++) {
          const ratio = margin[i] / (eps * dual); // < 1: reachable
          if (Math.abs(ratio - 1) > 0.1) {
            assert.equal(fooled[i], ratio < 1, `${name} ${norm} eps=${eps} example ${i}`);
            checked++;
          }
          if (prev) assert.ok(!prev[i] || fooled[i], `${name} ${norm}: weaker at eps=${eps}`);
        }
        prev = fooled;
      }
    }
    assert.ok(checked > 80, `too few decisive cases (${checked})`);
  }
});

Deno.test("FAB-T finds the minimal adversarial distance of a linear binary model", async () => {
  const { target, wd, w, b } = binaryProblem(41, 4, 0.3);
  const r = rng(42);
  const n = 6;
  const x = images(n, r, 0.4, 0.6);
  const xs = await x.data();
  const margin = Array.from({ length: n }, (_, i) => {
    let m = b[0] - b[1];
    for (let j = 0; j < D; j++) m += (w[j] - w[D + j]) * xs[i * D + j];
    return m;
  });
  // The clean prediction is the label; the other binary class is the closest target.
  const labels = margin.map((m) => (m > 0 ? 0 : 1));
  for (const norm of ["linf", "l2"] as const) {
    const res = await fabTargeted({ target, x, labels }, { norm, eps: 10, steps: 20 });
    const nr = await perturbationNorms(res.xAdv, x);
    const dual = norm === "linf" ? wd.reduce((s, v) => s + Math.abs(v), 0) : Math.hypot(...wd);
    for (let i = 0; i < n; i++) {
      const best = Math.abs(margin[i]) / dual;
      const got = norm === "linf" ? nr.linf[i] : nr.l2[i];
      assert.ok(res.fooled[i], `${norm} example ${i} not fooled`);
      assert.ok(got >= best * (1 - 1e-4), `${norm} ${i}: ${got} below the minimum ${best}`);
      assert.ok(got <= best * 1.06, `${norm} ${i}: ${got} far above the minimum ${best}`);
    }
  }
});

Deno.test("untargeted FAB finds the closest boundary of a linear 4-class model", async () => {
  // Logits z = W x + b: the distance to the boundary with class k is |f_k| / ||w_k - w_y||_dual,
  // f_k = z_k - z_y, and the minimal adversarial is the smallest of them (boxes aside).
  const r = rng(45);
  const k = 4;
  const w = Array.from({ length: k * D }, () => (r() - 0.5) * 0.4);
  const b = Array.from({ length: k }, () => (r() - 0.5) * 0.2);
  const target = linearTarget(w, b, k);
  const n = 6;
  const x = images(n, r, 0.45, 0.55);
  const xs = await x.data();
  const labels = await predict(target, x);
  for (const norm of ["linf", "l2"] as const) {
    const res = await fabUntargeted({ target, x, labels }, { norm, eps: 10, steps: 20 });
    const nr = await perturbationNorms(res.xAdv, x);
    for (let i = 0; i < n; i++) {
      const y = labels[i];
      let best = Infinity;
      for (let c = 0; c < k; c++) {
        if (c === y) continue;
        let f = b[c] - b[y], dual = 0;
        for (let j = 0; j < D; j++) {
          const wd = w[c * D + j] - w[y * D + j];
          f += wd * xs[i * D + j];
          dual = norm === "linf" ? dual + Math.abs(wd) : dual + wd * wd;
        }
        best = Math.min(best, Math.abs(f) / (norm === "linf" ? dual : Math.sqrt(dual)));
      }
      const got = norm === "linf" ? nr.linf[i] : nr.l2[i];
      assert.ok(res.fooled[i], `${norm} example ${i} not fooled`);
      assert.ok(got >= best * (1 - 1e-4), `${norm} ${i}: ${got} below the minimum ${best}`);
      assert.ok(got <= best * 1.06, `${norm} ${i}: ${got} far above the minimum ${best}`);
    }
    res.xAdv.dispose();
  }
  x.dispose();
});

Deno.test("FAB hyperplane projections match a bisection reference", () => {
  const r = rng(51);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(r() * 30);
    const t = Array.from({ length: n }, () => r());
    const w = Array.from({ length: n }, () => (r() < 0.1 ? 0 : r() - 0.5));
    let wt = 0;
    for (let i = 0; i < n; i++) wt += w[i] * t[i];
    const b = wt + (r() - 0.5) * n * 0.3;
    for (const norm of ["linf", "l2"] as const) {
      const d = norm === "linf" ? projectHyperplaneLinf(t, w, b) : projectHyperplaneL2(t, w, b);
      // Reference: the same optimality conditions solved by bisection on the multiplier.
      const c = wt - b, s = c > 0 ? -1 : 1;
      const at = (m: number) =>
        t.map((ti, i) => {
          if (w[i] === 0) return 0;
          const lo = -ti, hi = 1 - ti;
          const v = norm === "linf" ? m * Math.sign(s * w[i]) : m * s * w[i];
          return Math.min(hi, Math.max(lo, v));
        });
      const gain = (dd: number[]) => dd.reduce((acc, v, i) => acc + w[i] * v, 0);
      let lo = 0, hi = 1e6;
      for (let it = 0; it < 200; it++) {
        const mid = (lo + hi) / 2;
        if (Math.abs(gain(at(mid))) >= Math.abs(c)) hi = mid;
        else lo = mid;
      }
      const want = at(hi);
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(d[i] - want[i]) < 1e-7, `${norm} trial ${trial} coord ${i}`);
        assert.ok(t[i] + d[i] >= -1e-12 && t[i] + d[i] <= 1 + 1e-12, "box violated");
      }
    }
  }
});

Deno.test("FAB's GPU projection matches the float64 one, row by row", async () => {
  // Rows of 1 to 3,072 coordinates (CIFAR), a share of zero normals, hyperplanes the box
  // reaches and ones it does not, and a row with w = 0 and b = 0 (already on it: d = 0).
  const r = rng(52);
  const sizes = [1, 7, 30, 257, 3072];
  for (const norm of ["linf", "l2"] as const) {
    for (const d of sizes) {
      const n = 5;
      const t = Float32Array.from({ length: n * d }, () => r());
      const w = Float32Array.from({ length: n * d }, () => (r() < 0.1 ? 0 : r() - 0.5));
      const b = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let wt = 0, wa = 0;
        for (let j = 0; j < d; j++) {
          wt += w[i * d + j] * t[i * d + j];
          wa += Math.abs(w[i * d + j]);
        }
        // Rows 0-2 reachable (a step of a few % of the box), row 3 far outside, row 4 zero.
        b[i] = i < 3 ? wt + (r() - 0.5) * 0.2 * wa : i === 3 ? wt + 2 * wa : 0;
        if (i === 4) w.fill(0, i * d, (i + 1) * d);
      }
      // c = w.t - b per row (float64, as FAB computes it without cancellation).
      const c = b.map((bi, i) => {
        let wt = 0;
        for (let j = 0; j < d; j++) wt += w[i * d + j] * t[i * d + j];
        return wt - bi;
      });
      const out = tidy(() =>
        projectHyperplane(
          norm,
          Tensor.fromData(t, [n, d]),
          Tensor.fromData(w, [n, d]),
          Tensor.fromData(c, [n]),
        )
      );
      const got = await out.data();
      out.dispose();
      for (let i = 0; i < n; i++) {
        const ti = Float64Array.from(t.subarray(i * d, (i + 1) * d));
        const wi = Float64Array.from(w.subarray(i * d, (i + 1) * d));
        const want = norm === "linf"
          ? projectHyperplaneLinf(ti, wi, b[i])
          : projectHyperplaneL2(ti, wi, b[i]);
        let scale = 1e-3, err = 0;
        for (let j = 0; j < d; j++) {
          scale = Math.max(scale, Math.abs(want[j]));
          err = Math.max(err, Math.abs(got[i * d + j] - want[j]));
        }
        assert.ok(
          err <= 1e-5 * scale, // float32 sums: 4e-7 seen
          `${norm} d=${d} row ${i}: max error ${err} against max |d| ${scale}`,
        );
      }
    }
  }
});

Deno.test("FAB's GPU projection is scale-free: normals of 1e-20 or 1e20 give the same step", async () => {
  // In float32, w^2 (the L2 case) under- or overflows at these scales unless each row is
  // rescaled; the step itself does not depend on the scale of (w, c).
  const r = rng(53);
  const d = 40;
  const t = Float32Array.from({ length: d }, () => r());
  const w = Float32Array.from({ length: d }, () => r() - 0.5);
  let wt = 0, wa = 0;
  for (let j = 0; j < d; j++) {
    wt += w[j] * t[j];
    wa += Math.abs(w[j]);
  }
  const c = 0.05 * wa; // reachable: a few % of the box
  for (const norm of ["linf", "l2"] as const) {
    const want = (norm === "linf" ? projectHyperplaneLinf : projectHyperplaneL2)(
      Float64Array.from(t),
      Float64Array.from(w),
      wt - c,
    );
    for (const scale of [1e-20, 1, 1e20]) {
      const out = tidy(() =>
        projectHyperplane(
          norm,
          Tensor.fromData(t, [1, d]),
          Tensor.fromData(w.map((v) => v * scale), [1, d]),
          Tensor.fromData([c * scale], [1]),
        )
      );
      const got = await out.data();
      out.dispose();
      const err = Math.max(...Array.from(got, (v, j) => Math.abs(v - want[j])));
      const big = Math.max(...Array.from(want, Math.abs));
      assert.ok(err <= 1e-5 * big, `${norm} scale ${scale}: error ${err} of ${big}`);
    }
  }
});

Deno.test("Square never exceeds its query budget, counted per example", async () => {
  const r = rng(61);
  const inner = mlpTarget(62);
  let rows = 0;
  const target: Target = {
    ...inner,
    logits: (x) => {
      rows += x.shape[0];
      return inner.logits(x);
    },
  };
  const n = 6;
  const x = images(n, r);
  const labels = await predict(inner, x);
  for (
    const [norm, eps, queries, restarts] of [["linf", 0.01, 40, 2], ["l2", 0.05, 25, 1]] as const
  ) {
    rows = 0;
    const res = await square({ target, x, labels }, { norm, eps, queries, restarts });
    const q = res.queries!;
    // Every counted query is a forward pass; a fooled example rides along in the batch (not
    // counted: it cannot change its result) until the run's next checkpoint, 256 at most.
    const counted = q.reduce((a, b) => a + b, 0);
    assert.ok(rows >= counted, `${rows} forward rows for ${counted} queries`);
    const fooledCount = res.fooled.filter((f) => f).length;
    assert.ok(rows <= counted + 256 * restarts * fooledCount, `${rows} rows: uncounted waste`);
    // As the reference: a clean check, then per restart an initial point and `queries`
    // iterations.
    const most = 1 + restarts * (queries + 1);
    assert.ok(Math.max(...q) <= most, `max queries ${Math.max(...q)}`);
    // Examples never fooled spend exactly the whole budget.
    res.fooled.forEach((f, i) => {
      if (!f) assert.equal(q[i], most, `example ${i}`);
    });
    assert.ok(res.fooled.some((f) => !f), "need at least one robust example");
  }
  // The p schedule halves at the reference breakpoints (scaled by queries/10000).
  assert.equal(squarePSelection(10, 0.8, 10000, true), 0.8);
  assert.equal(squarePSelection(11, 0.8, 10000, true), 0.4);
  assert.equal(squarePSelection(51, 0.8, 10000, true), 0.2);
  assert.equal(squarePSelection(8001, 0.8, 10000, true), 0.8 / 512);
  assert.equal(squarePSelection(6, 0.8, 5000, true), 0.4); // 6/5000*10000 = 12 > 10
  assert.equal(squarePSelection(6, 0.8, 5000, false), 0.8);
});

Deno.test("attack results do not depend on the batch layout", async () => {
  const target = mlpTarget(71);
  const r = rng(72);
  const x = images(6, r);
  const xs = await x.data();
  const labels = await predict(target, x);
  const half = (rows: number[]) =>
    Tensor.fromData(rows.flatMap((i) => Array.from(xs.subarray(i * D, (i + 1) * D))), [
      rows.length,
      C,
      H,
      W,
    ]);
  for (
    const run of [
      (inp: Parameters<typeof pgd>[0]) => pgd(inp, { eps: 0.03, steps: 4 }),
      (inp: Parameters<typeof pgd>[0]) => apgd(inp, { eps: 0.03, steps: 6 }),
      (inp: Parameters<typeof pgd>[0]) => square(inp, { eps: 0.03, queries: 15 }),
    ]
  ) {
    const full = await (await run({ target, x, labels })).xAdv.data();
    const rowsA = [4, 0, 2], rowsB = [1, 5, 3];
    for (const rows of [rowsA, rowsB]) {
      const sub = await run({
        target,
        x: half(rows),
        labels: rows.map((i) => labels[i]),
        indices: rows,
      });
      const v = await sub.xAdv.data();
      rows.forEach((i, j) => {
        for (let t = 0; t < D; t++) {
          assert.equal(v[j * D + t], full[i * D + t], `row ${i} differs when batched differently`);
        }
      });
    }
  }
});

Deno.test("EOT gradient equals the mean of single-draw gradients", async () => {
  const inner = mlpTarget(81);
  const r = rng(82);
  const x = images(3, r);
  const labels = Tensor.fromData([1, 2, 3], [3]);
  // A randomized target with a known noise sequence (draw k adds noise_k, then scales).
  const noise = [0, 1, 2, 3].map(() => images(3, r, -0.2, 0.2));
  let call = 0;
  const target: Target = {
    name: "noisy",
    numClasses: 10,
    randomized: true,
    logits: (xx) => inner.logits(ops.mul(ops.add(xx, noise[call++ % 4]), 1.5)),
  };
  const loss = (z: Tensor) => {
    const m = ops.max(z, 1);
    return ops.sub(m, ops.sum(ops.mul(z, 0.1), 1)); // any per-example loss
  };
  void labels;
  call = 0;
  const e = eotGradient(target, x, loss, 4);
  const got = await e.grad.data();
  const want = new Float64Array(x.size);
  for (let k = 0; k < 4; k++) {
    call = k;
    const g = tidy(() => {
      const xa = ops.detach(x);
      xa.requiresGrad = true;
      return grad(ops.sum(loss(target.logits(xa))), [xa])[0];
    });
    const v = await g.data();
    for (let i = 0; i < v.length; i++) want[i] += v[i] / 4;
  }
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `entry ${i}`);
  }
  // And the draws really differ (otherwise the test would be vacuous).
  call = 0;
  const g0 = eotGradient(target, x, loss, 1);
  const a = await g0.grad.data();
  assert.ok(a.some((v, i) => Math.abs(v - got[i]) > 1e-4), "draws did not differ");
});

Deno.test("BPDA passes gradients through a non-differentiable quantizer", async () => {
  const clf = mlpTarget(91);
  const r = rng(92);
  const x = images(2, r);
  // 4-level quantization built from step (no gradient).
  const quant = (t: Tensor) =>
    ops.scale(ops.add(ops.add(ops.step(t, 0.25), ops.step(t, 0.5)), ops.step(t, 0.75)), 1 / 3);
  const loss = (z: Tensor) => ops.sum(ops.mul(z, z), 1);
  const inputGrad = (t: Target, at: Tensor) =>
    tidy(() => {
      const xa = ops.detach(at);
      xa.requiresGrad = true;
      const l = loss(t.logits(xa));
      return l.requiresGrad ? grad(ops.sum(l), [xa])[0] : ops.zerosLike(at);
    });
  const plain = composeTarget({ name: "quant", apply: quant }, clf);
  const g0 = await inputGrad(plain, x).data();
  assert.ok(g0.every((v) => v === 0), "quantizer should block gradients without BPDA");

  const ident = composeTarget(bpda(quant), clf);
  const got = await inputGrad(ident, x).data();
  const q = quant(x);
  const want = await inputGrad(clf, q).data();
  assert.ok(want.some((v) => v !== 0));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-6);

  // With a surrogate: the backward is the surrogate's vector-Jacobian product.
  const sur = (t: Tensor) => ops.sigmoid(ops.scale(ops.sub(t, 0.5), 4));
  const withSur = composeTarget(bpda(quant, sur), clf);
  const got2 = await inputGrad(withSur, x).data();
  const want2 = await tidy(() => {
    const xa = ops.detach(x);
    xa.requiresGrad = true;
    // chain rule: dL/dq at q = quant(x), times d sur/dx (elementwise)
    const qa = ops.detach(q);
    qa.requiresGrad = true;
    const gq = grad(ops.sum(loss(clf.logits(qa))), [qa])[0];
    const gs = grad(ops.sum(ops.mul(sur(xa), ops.detach(gq))), [xa])[0];
    return gs;
  }).data();
  for (let i = 0; i < want2.length; i++) {
    assert.ok(Math.abs(got2[i] - want2[i]) < 1e-6 * (1 + Math.abs(want2[i])), `surrogate ${i}`);
  }
});

Deno.test("AutoAttack cascade runs only on robust points and is never weaker than APGD-CE", async () => {
  const target = mlpTarget(101);
  const r = rng(102);
  const x = images(8, r);
  const labels = await predict(target, x);
  labels[0] = (labels[0] + 1) % 10; // one clean error
  const eps = 0.02;
  const aa = await autoAttack({ target, x, labels }, { eps, steps: 6, queries: 30, targets: 3 });
  assert.equal(aa.cleanCorrect[0], false);
  assert.equal(aa.fooled[0], true);
  assert.deepEqual(aa.perAttack.map((a) => a.name), ["apgd-ce", "apgd-t", "fab-t", "square"]);
  // Robust sets shrink monotonically along the cascade.
  let prev = aa.cleanCorrect;
  for (const a of aa.perAttack) {
    a.robust.forEach((v, i) => assert.ok(!v || prev[i], `${a.name} revived example ${i}`));
    prev = a.robust;
  }
  const ce = await apgd({ target, x, labels }, { eps, steps: 6 });
  ce.fooled.forEach((f, i) => assert.ok(!f || aa.fooled[i], `example ${i}`));
  // Reported successes are real: re-classify.
  const p = await predict(target, aa.xAdv);
  aa.fooled.forEach((f, i) => assert.equal(f, p[i] !== labels[i], `example ${i}`));
  const nr = await perturbationNorms(aa.xAdv, x);
  assert.ok(Math.max(...nr.linf) <= eps + 1e-6);
});

Deno.test("AutoAttack plus and custom lists run the reference's components in order", async () => {
  const target = mlpTarget(103);
  const r = rng(104);
  const x = images(6, r);
  const labels = await predict(target, x);
  const eps = 0.02;
  const opts = { eps, steps: 4, queries: 20, targets: 2 };
  const plus = await autoAttack({ target, x, labels }, { ...opts, version: "plus" });
  assert.deepEqual(
    plus.perAttack.map((a) => a.name),
    ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
  );
  // Five APGD-CE restarts start where one does, so plus is never weaker than standard's first.
  const ce = await apgd({ target, x, labels }, { eps, steps: 4 });
  ce.fooled.forEach((f, i) => assert.ok(!f || plus.fooled[i], `example ${i}`));
  const custom = await autoAttack({ target, x, labels }, {
    ...opts,
    version: "custom",
    attacks: ["square", "fab"],
  });
  assert.deepEqual(custom.perAttack.map((a) => a.name), ["square", "fab"]);
  const p = await predict(target, custom.xAdv);
  custom.fooled.forEach((f, i) => assert.equal(f, p[i] !== labels[i], `example ${i}`));
  await assert.rejects(
    () => autoAttack({ target, x, labels }, { ...opts, version: "custom" }),
    /custom version needs its `attacks` list/,
  );
  for (const t of [plus.xAdv, ce.xAdv, custom.xAdv, x]) t.dispose();
});

Deno.test("StAdv flow smoothness loss matches a float64 reference, value and gradient", async () => {
  const r = rng(111);
  for (const [n, h, w] of [[1, 1, 5], [2, 3, 4], [1, 5, 2], [3, 6, 7]]) {
    const vals = Array.from({ length: n * 2 * h * w }, () => (r() - 0.5) * 2);
    const eps = 1e-8;
    // sum over pixels p and 4-neighbours q of sqrt(||f_p - f_q||^2 + eps)
    const ref = (f: ArrayLike<number>) => {
      const out: number[] = [];
      for (let b = 0; b < n; b++) {
        let s = 0;
        const at = (c: number, y: number, x: number) => f[((b * 2 + c) * h + y) * w + x];
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            for (const [dy, dx] of [[0, 1], [0, -1], [1, 0], [-1, 0]]) {
              const yy = y + dy, xx = x + dx;
              if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
              const a = at(0, y, x) - at(0, yy, xx), c = at(1, y, x) - at(1, yy, xx);
              s += Math.sqrt(a * a + c * c + eps);
            }
          }
        }
        out.push(s);
      }
      return out;
    };
    const f = Tensor.fromData(vals, [n, 2, h, w]);
    f.requiresGrad = true;
    const loss = flowSmoothnessLoss(f, eps);
    const got = await loss.data();
    const want = ref(vals);
    for (let b = 0; b < n; b++) {
      assert.ok(Math.abs(got[b] - want[b]) <= 1e-4 * Math.abs(want[b]) + 1e-6, `[${n},${h},${w}]`);
    }
    // Gradient of the total against central differences of the float64 reference.
    const g = await grad(ops.sum(loss), [f])[0].data();
    for (let i = 0; i < vals.length; i += 3) {
      const hh = 1e-4;
      const p = vals.slice(), m = vals.slice();
      p[i] += hh;
      m[i] -= hh;
      const fd = (ref(p).reduce((a, b) => a + b) - ref(m).reduce((a, b) => a + b)) / (2 * hh);
      assert.ok(Math.abs(g[i] - fd) <= 1e-3 * (1 + Math.abs(fd)), `grad ${i}: ${g[i]} vs ${fd}`);
    }
  }
});

// The reference's L2 proposal (square.py, attack_single_run, L2 branch), written as its tensor
// expressions over one example: norms_window_1, norms_windows and the new deltas' scale are
// [c,1,1] per-channel norms, norms_image is the whole image's.
function squareL2ProposalRef(
  delta: Float64Array,
  c: number,
  h: number,
  w: number,
  s: number,
  [vh, vw, vh2, vw2]: number[],
  eta: Float64Array,
  signs: number[],
  eps: number,
): Float64Array {
  const at = (ch: number, r: number, q: number) => ch * h * w + r * w + q;
  const out = Float64Array.from(delta);
  const normsImage = Math.sqrt(delta.reduce((a, v) => a + v * v, 0));
  const newDeltas: number[][] = [];
  for (let ch = 0; ch < c; ch++) {
    let w1 = 0, wins = 0;
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < w; q++) {
        const in1 = r >= vh && r < vh + s && q >= vw && q < vw + s;
        const in2 = r >= vh2 && r < vh2 + s && q >= vw2 && q < vw2 + s;
        const v = delta[at(ch, r, q)];
        if (in1) w1 += v * v;
        if (in1 || in2) wins += v * v; // mask_image = max(mask1, mask2)
      }
    }
    const nd: number[] = [];
    for (let r = 0; r < s; r++) {
      for (let q = 0; q < s; q++) {
        nd.push(
          eta[r * s + q] * signs[ch] + delta[at(ch, vh + r, vw + q)] / (1e-12 + Math.sqrt(w1)),
        );
      }
    }
    const n2 = Math.sqrt(nd.reduce((a, v) => a + v * v, 0));
    const scale = Math.sqrt(Math.max(eps * eps - normsImage * normsImage, 0) / c + wins);
    newDeltas.push(nd.map((v) => (v / (1e-12 + n2)) * scale));
  }
  for (let ch = 0; ch < c; ch++) {
    for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) out[at(ch, vh2 + r, vw2 + q)] = 0;
  }
  for (let ch = 0; ch < c; ch++) {
    for (let r = 0; r < s; r++) {
      for (let q = 0; q < s; q++) out[at(ch, vh + r, vw + q)] = newDeltas[ch][r * s + q];
    }
  }
  return out;
}

Deno.test("Square L2: the window proposal uses per-channel norms, as the reference", async () => {
  const r = rng(77);
  const c = 3, h = 12, w = 12, s = 5, eps = 0.5;
  for (
    const [trial, windows] of [[0, [1, 2, 6, 4]], [1, [3, 3, 4, 5]], [2, [0, 7, 7, 0]]] as const
  ) {
    // Channels with very different energy: an all-channel norm would rescale them alike.
    const delta = new Float64Array(c * h * w);
    for (let i = 0; i < delta.length; i++) {
      const ch = Math.floor(i / (h * w));
      delta[i] = (r() - 0.5) * 0.02 * (1 + 10 * ch * ch);
    }
    const eta = squareEta(s, trial === 1);
    const signs = [1, -1, trial === 2 ? -1 : 1];
    const d32 = Float64Array.from(Float32Array.from(delta));
    const want = squareL2ProposalRef(d32, c, h, w, s, [...windows], eta, signs, eps);
    // The GPU proposal's inputs: window masks and the eta pattern placed in window 1.
    const [vh, vw, vh2, vw2] = windows;
    const mask = (a: number, b: number) =>
      Array.from({ length: h * w }, (_, q) => {
        const y = Math.floor(q / w), x = q % w;
        return y >= a && y < a + s && x >= b && x < b + s ? 1 : 0;
      });
    const etaImg = new Float32Array(h * w);
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < s; j++) etaImg[(vh + i) * w + vw + j] = eta[i * s + j];
    }
    const proposal = tidy(() =>
      squareL2Proposal(
        Tensor.fromData(Float32Array.from(delta), [1, c, h, w]),
        Tensor.fromData(mask(vh, vw), [1, 1, h, w]),
        Tensor.fromData(mask(vh2, vw2), [1, 1, h, w]),
        Tensor.fromData(etaImg, [1, 1, h, w]),
        Tensor.fromData(signs, [1, c, 1, 1]),
        eps,
      )
    );
    const got = await proposal.data();
    proposal.dispose();
    for (let i = 0; i < got.length; i++) {
      assert.ok(
        Math.abs(got[i] - want[i]) <= 2e-6 * (1 + Math.abs(want[i])),
        `trial ${trial} at ${i}: ${got[i]} vs ${want[i]}`,
      );
    }
  }
});

Deno.test("StAdv: the flow stays within its bound and inside the image (border, no zeros)", async () => {
  const r = rng(91);
  const target = mlpTarget(92);
  const n = 6;
  // W = 4: a bound of 0.05 normalised units is 0.1 px. Adam at lr 1 would move far without it.
  const x = images(n, r, 0.2, 0.9);
  const labels = await predict(target, x);
  const res = await stadv({ target, x, labels }, { steps: 6, lr: 1, bound: 0.05 });
  const xs = await x.data(), xa = await res.xAdv.data();
  let moved = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        for (let q = 0; q < W; q++) {
          // Under 1 px of displacement a warped pixel is a convex combination of its 3x3
          // neighbourhood: never outside its range, never darkened by zeros from outside.
          let lo = Infinity, hi = -Infinity;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const yy = Math.min(H - 1, Math.max(0, y + dy)),
                qq = Math.min(W - 1, Math.max(0, q + dx));
              const v = xs[((i * C + c) * H + yy) * W + qq];
              lo = Math.min(lo, v);
              hi = Math.max(hi, v);
            }
          }
          const v = xa[((i * C + c) * H + y) * W + q];
          assert.ok(
            v >= lo - 1e-6 && v <= hi + 1e-6,
            `pixel ${i},${c},${y},${q}: ${v} not in [${lo}, ${hi}]`,
          );
          if (Math.abs(v - xs[((i * C + c) * H + y) * W + q]) > 1e-4) moved++;
        }
      }
    }
  }
  assert.ok(moved > 0, "StAdv did not move anything");
  // A constant image stays constant: border handling brings in no zeros from outside.
  const flat = Tensor.fromData(new Array(2 * D).fill(0.6), [2, C, H, W]);
  const fl = await stadv({ target, x: flat, labels: [0, 1] }, { steps: 4, lr: 1, bound: 0.5 });
  const fv = await fl.xAdv.data();
  assert.ok(
    fv.every((v) => Math.abs(v - 0.6) < 1e-5),
    `constant image changed: ${Math.min(...fv)}`,
  );
  // The box: within the bound, and sample positions inside the image.
  const box = flowBox(H, W, 0.05);
  const lo = await box.lo.data(), hi = await box.hi.data();
  assert.equal(lo[0], -0); // dx at column 0 cannot go left
  assert.ok(Math.abs(hi[0] - 0.05) < 1e-7);
  assert.ok(Math.abs(hi[W - 1]) < 1e-7); // the last column cannot go right
  assert.ok(lo.every((v) => v >= -0.05 - 1e-7) && hi.every((v) => v <= 0.05 + 1e-7));
  for (const t of [x, res.xAdv, flat, fl.xAdv, box.lo, box.hi]) t.dispose();
});
