// Execution without syncs: uploads recorded in the command stream (no submit, ordered with the
// work before and after them), GPU row selection, attacks that read back once per run, and
// training scalars read back in groups. Counts come from the engine's own counters.

import { assert, gpu, rng } from "./helpers/check.ts";
import { engine } from "../runtime/engine.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import {
  apgd,
  eotGradient,
  pgd,
  scatterRows,
  selectRows,
  stackedImages,
  stadv,
  type Target,
} from "../runtime/attacks/mod.ts";
import { protocolPredict } from "../runtime/eval/verdict.ts";
import { ExampleDraws } from "../runtime/rng.ts";
import { ScalarLog } from "../runtime/train/scalars.ts";

import { mlpTarget as sharedMlp } from "./helpers/targets.ts";

await gpu();

const C = 3, H = 4, W = 4, D = C * H * W;

function mlpTarget(seed: number, k = 10, hidden = 16): Target {
  return sharedMlp(D, seed, k, hidden);
}

function images(n: number, seed: number): Tensor {
  const r = rng(seed);
  return Tensor.fromData(Array.from({ length: n * D }, () => r()), [n, C, H, W]);
}

/** Counter increases over fn (its work flushed and finished). */
async function counted<T>(fn: () => Promise<T>) {
  const eng = engine();
  await eng.sync();
  const before = { ...eng.counters };
  const out = await fn();
  eng.flush();
  const c = eng.counters;
  const delta = {
    submits: c.submits - before.submits,
    readbacks: c.readbacks - before.readbacks,
    uploads: c.uploads - before.uploads,
    dispatches: c.dispatches - before.dispatches,
  };
  await eng.sync();
  return { out, delta };
}

Deno.test("an upload behind recorded work is ordered with it and forces no submit", async () => {
  const a = Tensor.fromData([1, 2, 3, 4], [4]);
  const { out, delta } = await counted(() => {
    // Recorded, not submitted: reads a's first contents.
    const before = ops.scale(a, 10);
    engine().upload(a.buffer, Float32Array.from([5, 6, 7, 8]));
    const after = ops.scale(a, 10);
    return Promise.resolve({ before, after });
  });
  assert.equal(delta.submits, 1, "only the final flush submits");
  assert.equal(delta.uploads, 1);
  assert.deepEqual(Array.from(await out.before.data()), [10, 20, 30, 40]);
  assert.deepEqual(Array.from(await out.after.data()), [50, 60, 70, 80]);
  // A recycled buffer: a tensor made from data after the old owner's pending reads.
  const { out: r2 } = await counted(() => {
    const t = Tensor.fromData([1, 1, 1, 1], [4]);
    const y = ops.add(t, 1);
    t.dispose();
    const u = Tensor.fromData([9, 9, 9, 9], [4]); // may reuse t's buffer
    const z = ops.add(u, 1);
    return Promise.resolve({ y, z, u });
  });
  assert.deepEqual(Array.from(await r2.y.data()), [2, 2, 2, 2]);
  assert.deepEqual(Array.from(await r2.z.data()), [10, 10, 10, 10]);
  for (const t of [a, out.before, out.after, r2.y, r2.z, r2.u]) t.dispose();
});

Deno.test("row selection and scatter run on the GPU and match a CPU gather", async () => {
  const x = images(5, 3);
  const src = images(2, 4);
  const xs = await x.data(), ss = await src.data();
  const { out, delta } = await counted(() =>
    Promise.resolve(tidy(() => {
      const sel = selectRows(x, [4, 0, 4]);
      const sc = scatterRows(x, [1, 3], src);
      return { sel, sc };
    }))
  );
  assert.equal(delta.readbacks, 0);
  const sel = await out.sel.data(), sc = await out.sc.data();
  [4, 0, 4].forEach((r, i) =>
    assert.deepEqual(sel.subarray(i * D, (i + 1) * D), xs.subarray(r * D, (r + 1) * D))
  );
  for (let r = 0; r < 5; r++) {
    const want = r === 1
      ? ss.subarray(0, D)
      : r === 3
      ? ss.subarray(D, 2 * D)
      : xs.subarray(r * D, (r + 1) * D);
    assert.deepEqual(sc.subarray(r * D, (r + 1) * D), want, `row ${r}`);
  }
  assert.throws(() => selectRows(x, [5]), /row index 5 is outside 0\.\.4/);
  for (const t of [x, src, out.sel, out.sc]) t.dispose();
});

Deno.test("PGD reads back once and submits once per run; APGD and StAdv once per run", async () => {
  const target = mlpTarget(7);
  const x = images(6, 8);
  const labels = [0, 1, 2, 3, 4, 5];
  const p = await counted(() => pgd({ target, x, labels }, { steps: 10, eps: 0.05 }));
  assert.equal(p.delta.readbacks, 1, `pgd readbacks ${p.delta.readbacks}`);
  assert.ok(p.delta.submits <= 2, `pgd submits ${p.delta.submits}`);
  // Restarts run only on the rows still robust: one readback per restart at most.
  const p3 = await counted(() => pgd({ target, x, labels }, { steps: 5, restarts: 3, eps: 0.01 }));
  assert.ok(p3.delta.readbacks <= 3, `pgd 3 restarts: readbacks ${p3.delta.readbacks}`);
  const a = await counted(() =>
    apgd({ target, x, labels, attackAll: true }, { steps: 30, eps: 0.05 })
  );
  assert.equal(a.delta.readbacks, 1, `apgd readbacks ${a.delta.readbacks}`);
  assert.ok(a.delta.submits <= 2, `apgd submits ${a.delta.submits}`);
  // Without attackAll the clean pass decides the rows: one more readback.
  const a2 = await counted(() => apgd({ target, x, labels }, { steps: 30, eps: 0.05 }));
  assert.ok(a2.delta.readbacks <= 2, `apgd with clean pass: readbacks ${a2.delta.readbacks}`);
  const sa = await counted(() => stadv({ target, x: images(6, 8), labels }, { steps: 6 }));
  assert.equal(sa.delta.readbacks, 1, `stadv readbacks ${sa.delta.readbacks}`);
  sa.out.lossBest!.forEach((l, i) => assert.ok(l >= sa.out.lossStart![i], `stadv row ${i}`));
  sa.out.xAdv.dispose();
  // The GPU bookkeeping keeps the attack's contract: within eps, never weaker than the start.
  const r = a.out;
  const d = await ops.sub(r.xAdv, x).data();
  assert.ok(d.every((v) => Math.abs(v) <= 0.05 + 1e-6));
  r.lossBest!.forEach((l, i) => assert.ok(l >= r.lossStart![i], `row ${i}`));
  for (const t of [x, p.out.xAdv, p3.out.xAdv, a.out.xAdv, a2.out.xAdv]) t.dispose();
});

Deno.test("training scalars: many steps, one readback, values in order", async () => {
  const log = new ScalarLog<"a" | "b">();
  const { out, delta } = await counted(async () => {
    for (let s = 0; s < 20; s++) {
      tidy(() => {
        const a = ops.sum(Tensor.fromData([s, 1], [2]));
        log.push(s, s % 2 ? { a } : { a, b: ops.scale(a, 2) });
      });
    }
    return await log.read();
  });
  assert.equal(delta.readbacks, 1);
  assert.equal(out.length, 20);
  out.forEach((e, s) => {
    assert.equal(e.tag, s);
    assert.equal(e.values.a, s + 1);
    assert.equal(e.values.b, s % 2 ? undefined : 2 * (s + 1));
  });
  assert.equal(log.pending, 0);
});

/** The MLP on x plus Gaussian noise keyed by (example, call): a randomized defense. */
function noisyTarget(seed: number): Target {
  const inner = mlpTarget(5);
  const draws = new ExampleDraws(seed, 7);
  return {
    name: "noisy",
    numClasses: 10,
    randomized: true,
    logits: (x, rows) => {
      const n = x.shape[0];
      const r = draws.next(rows ?? Array.from({ length: n }, (_, i) => i));
      return inner.logits(ops.add(x, r.normal(x.shape, 0, 0.3)));
    },
    resetDraws: (rows, scope) => draws.reset(rows, scope),
  };
}

Deno.test("EOT draws stacked into one pass equal K sequential passes (same draws)", async () => {
  const target = noisyTarget(3);
  const x = images(4, 9);
  const rows = [10, 11, 12, 13];
  const y = Tensor.fromData([1, 2, 3, 4], [4]);
  const lossFn = (z: Tensor) => ops.crossEntropy(z, y, { reduction: "none" });
  const run = async (batchImages: number) => {
    target.resetDraws!(rows);
    const e = tidy(() => eotGradient(target, x, lossFn, 5, rows, { batchImages }));
    const out = { g: await e.grad.data(), l: await e.loss.data(), z: await e.lastLogits.data() };
    for (const t of Object.values(e)) t.dispose();
    return out;
  };
  const eng = engine();
  const c0 = eng.counters.dispatches;
  const seq = await run(0);
  const c1 = eng.counters.dispatches;
  const stacked = await run(1000);
  const c2 = eng.counters.dispatches;
  const chunked = await run(8); // 2 draws per pass: 3 passes
  // A target whose images are large stacks fewer of them: half the binding limit over its
  // per-image bytes (here 2 images, so no draws are stacked for a batch of 4).
  target.bytesPerImage = engine().pool.maxBinding / 4;
  assert.equal(stackedImages(target, 1000), 2);
  assert.equal(stackedImages(target, 0), 0, "0 still means one pass per draw");
  const c3 = eng.counters.dispatches;
  const bounded = await run(1000);
  const c4 = eng.counters.dispatches;
  assert.ok(c4 - c3 > c2 - c1, `bounded ${c4 - c3} dispatches vs stacked ${c2 - c1}`);
  delete target.bytesPerImage;
  for (const r of [stacked, chunked, bounded]) {
    assert.deepEqual(r.z, seq.z, "the last draw's logits are the same draw");
    r.g.forEach((v, i) => assert.ok(Math.abs(v - seq.g[i]) <= 1e-6 + 1e-5 * Math.abs(seq.g[i])));
    r.l.forEach((v, i) => assert.ok(Math.abs(v - seq.l[i]) <= 1e-6 + 1e-5 * Math.abs(seq.l[i])));
  }
  assert.ok(c2 - c1 < (c1 - c0) / 2, `stacked ${c2 - c1} dispatches vs sequential ${c1 - c0}`);
  // Votes: stacked passes give the same majority as the draws one by one.
  target.resetDraws!(rows);
  const v1 = await protocolPredict(target, x, rows, 7);
  target.resetDraws!(rows);
  const one: number[][] = [];
  for (let k = 0; k < 7; k++) {
    const z = tidy(() => target.logits(x, rows));
    const zz = await z.data();
    z.dispose();
    one.push(Array.from({ length: 4 }, (_, i) => {
      let b = 0;
      for (let c = 1; c < 10; c++) if (zz[i * 10 + c] > zz[i * 10 + b]) b = c;
      return b;
    }));
  }
  v1.forEach((p, i) => {
    const counts = new Array(10).fill(0);
    for (const o of one) counts[o[i]]++;
    assert.equal(counts[p], Math.max(...counts), `row ${i}: vote ${p} is a most frequent class`);
  });
  for (const t of [x, y]) t.dispose();
});

Deno.test("a validation error surfaces at the next sync, naming the batch's kernels", async () => {
  const eng = engine();
  const a = Tensor.fromData([1, 2, 3, 4], [4]);
  // The stencil kernel binds two buffers and its params; give it one buffer.
  eng.dispatch({ kernel: "stencil", buffers: [a.buffer], params: [4, 2, 2], workgroups: [1] });
  await assert.rejects(() => eng.sync(), /stencil/);
  // The engine keeps working after the error.
  const b = ops.add(a, 1);
  assert.deepEqual(Array.from(await b.data()), [2, 3, 4, 5]);
  a.dispose();
  b.dispose();
});

Deno.test("bind groups repeat across identical steps and go with destroyed buffers", async () => {
  const eng = engine();
  const x = images(8, 41);
  const w = Tensor.fromData(Array.from({ length: 10 * D }, (_, i) => Math.sin(i)), [D, 10]);
  const step = () => tidy(() => ops.sum(ops.relu(ops.matmul(ops.reshape(x, [8, D]), w))));
  const run = async () => {
    const before = { ...eng.bindGroupStats };
    const y = step();
    const v = await y.item();
    y.dispose();
    return {
      v,
      created: eng.bindGroupStats.created - before.created,
      reused: eng.bindGroupStats.reused - before.reused,
    };
  };
  await run();
  const a = await run();
  const b = await run();
  // The same launches on the same pooled buffers and params offsets: nothing new by the third.
  assert.equal(b.created, 0, `third identical step created ${b.created} bind groups`);
  assert.ok(b.reused > 0, "no bind group was reused");
  assert.equal(b.v, a.v);
  // Destroying the free buffers drops their bind groups: the next step binds new buffers and
  // still computes the same value (a stale group would fail validation at the sync).
  await eng.sync();
  const held = eng.cachedBindGroups;
  eng.pool.trim();
  assert.ok(eng.cachedBindGroups < held, "bind groups of destroyed buffers are still held");
  const c = await run();
  assert.ok(c.created > 0, "no bind group was created for the new buffers");
  assert.equal(c.v, a.v);
  x.dispose();
  w.dispose();
});

Deno.test("kernels read their parameter structs from uniform buffers", () => {
  // On llvmpipe a storage-buffer load is a loop over the SIMD lanes even at a constant address;
  // a uniform load at one is a single load (BENCHMARKS.md, "Parameters in uniform buffers").
  // Structs with u32 arrays (layout, reduce) are read as vec4u words instead.
  const dir = new URL("../shaders/", import.meta.url);
  const storage: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (!e.name.endsWith(".wgsl")) continue;
    const src = Deno.readTextFileSync(new URL(e.name, dir));
    for (const m of src.matchAll(/var<storage,\s*read>\s+(\w+)\s*:\s*(\w+)\s*;/g)) {
      if (!m[2].startsWith("array")) storage.push(`${e.name}: ${m[1]}: ${m[2]}`);
    }
  }
  assert.deepEqual(storage, []);
});
