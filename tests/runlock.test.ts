// Leftovers of killed runs: temp files of dead processes are cleaned, and a second run on
// the same --out is refused while the first is alive (a dead holder's lock is taken over).

import { assert } from "./helpers/check.ts";
import { acquireRunLock, cleanStaleTemps, pidAlive } from "../runtime/io/runlock.ts";
import { runCli } from "./helpers/cli.ts";
import { withTmp } from "./helpers/tmp.ts";

/** A pid that is not running (Linux pids stay below 2^22). */
const DEAD = 4194303 + 7;

Deno.test("temp files of dead processes are removed; live ones and other files stay", async () => {
  await withTmp("atop-lock-", async (dir) => {
    await Deno.mkdir(`${dir}/stage-abc`);
    const stale = [
      `${dir}/report.json.tmp-${DEAD}-k3j2`,
      `${dir}/stage-abc/w.safetensors.tmp-${DEAD}-x1`,
    ];
    const keep = [`${dir}/report.json`, `${dir}/mine.json.tmp-${Deno.pid}-zz`, `${dir}/a.tmp`];
    for (const f of [...stale, ...keep]) await Deno.writeTextFile(f, "x");
    assert.ok(!pidAlive(DEAD) && pidAlive(Deno.pid));
    const removed = await cleanStaleTemps(dir, 1);
    assert.deepEqual(removed.sort(), stale.sort());
    for (const f of keep) assert.ok(await Deno.stat(f).then(() => true, () => false), f);
  });
});

Deno.test("run lock: refused while the holder lives, taken over when it is gone", async () => {
  await withTmp("atop-lock-", async (dir) => {
    const path = `${dir}/.lock`;
    const a = await acquireRunLock(path, "--out X");
    await assert.rejects(
      () => acquireRunLock(path, "--out X"),
      new RegExp(`^Error: --out X is in use by another run \\(pid ${Deno.pid}, started `),
    );
    a.release();
    const b = await acquireRunLock(path, "--out X");
    b.release();
    // A run killed with -9 left its lock: its pid is gone, so the next run proceeds.
    await Deno.writeTextFile(path, JSON.stringify({ pid: DEAD, started: "then", command: "x" }));
    const c = await acquireRunLock(path, "--out X");
    assert.equal(JSON.parse(await Deno.readTextFile(path)).pid, Deno.pid);
    c.release();
    assert.ok(!(await Deno.stat(path).then(() => true, () => false)), "released lock remains");
  });
});

Deno.test("deno task train: a second run on a --out in use is refused in one line", async () => {
  await withTmp("atop-lock-", async (dir) => {
    const out = `${dir}/run`;
    await Deno.mkdir(out);
    // A live holder: this test process.
    await Deno.writeTextFile(
      `${out}/.lock`,
      JSON.stringify({ pid: Deno.pid, started: "now", command: "deno task train" }),
    );
    const r = await runCli("runtime/cli/train.ts", [
      ...["--arch", "smallcnn", "--data", "data/cifar10/test_subset.bin", "--out", out],
      ...["--epochs", "1", "--limit", "8"],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr.trim(),
      new RegExp(`--out .* is in use by another run \\(pid ${Deno.pid}`),
    );
  });
});
