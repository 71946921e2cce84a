// The buffer pool: same sizes are recycled, the free list is capped (an attack cascade asks
// for a new size whenever its set of robust rows shrinks), and an evicted buffer is destroyed
// only after the next submit, since unsubmitted commands may still name it.

import { assert } from "./helpers/check.ts";
import { bucketBytes, BufferPool } from "../runtime/pool.ts";

class FakeBuffer {
  destroyed = false;
  constructor(readonly size: number) {}
  destroy() {
    this.destroyed = true;
  }
}

function fakeDevice() {
  const made: FakeBuffer[] = [];
  const device = {
    createBuffer: ({ size }: { size: number }) => {
      const b = new FakeBuffer(size);
      made.push(b);
      return b;
    },
  };
  return { device: device as unknown as GPUDevice, made };
}

Deno.test("pool: recycles a size; caps free bytes at 1.5x the peak working set (LRU)", () => {
  const { device, made } = fakeDevice();
  const MB = 1024 * 1024;
  const pool = new BufferPool(device, 1 << 30, { minFreeCapBytes: 4 * MB });
  // A training step: the same sizes every step, so nothing new after the first.
  for (let step = 0; step < 5; step++) {
    const bufs = [1, 2, 3].map((k) => pool.acquire(k * MB));
    for (const b of bufs) pool.release(b);
  }
  assert.equal(pool.stats().allocations, 3);
  assert.equal(pool.stats().evictions, 0);
  // A cascade: the working set shrinks by one row at a time, each a new bucket.
  const row = 64 * 1024;
  for (let rows = 64; rows >= 1; rows--) {
    const a = pool.acquire(rows * row), b = pool.acquire(rows * row * 2);
    pool.release(a);
    pool.release(b);
    const st = pool.stats();
    assert.ok(st.freeBytes <= st.freeCapBytes, `free ${st.freeBytes} > cap ${st.freeCapBytes}`);
  }
  const st = pool.stats();
  assert.ok(st.evictions > 0, "nothing was evicted");
  assert.equal(
    st.freeCapBytes,
    Math.max(4 * MB, 1.5 * (bucketBytes(64 * row) + bucketBytes(128 * row))),
  );
  // Evicted buffers wait for the next submit before they are destroyed.
  const dropped = made.filter((b) => !b.destroyed).length;
  assert.ok(made.every((b) => !b.destroyed), "destroyed before the submit");
  pool.afterSubmit();
  const destroyed = made.filter((b) => b.destroyed).length;
  assert.equal(destroyed, st.evictions);
  assert.ok(dropped >= destroyed);
  // The buffers still free are the most recently released ones, and are reused.
  const again = pool.acquire(1 * row);
  assert.ok(!(again as unknown as FakeBuffer).destroyed);
  assert.equal(pool.stats().allocations, made.length, "reused, no new buffer");
});

Deno.test("pool: no buffer outgrows the storage binding limit; a larger tensor fails clearly", () => {
  const { device, made } = fakeDevice();
  const MB = 1024 * 1024;
  // A limit that is not a bucket boundary (adapters report e.g. 2^31 - 1).
  const pool = new BufferPool(device, 100 * MB, { minFreeCapBytes: 4 * MB });
  // 90 MiB buckets to 96 MiB (in range); 99 MiB would bucket to 104 MiB: kept exact.
  const a = pool.acquire(90 * MB), b = pool.acquire(99 * MB + 100);
  assert.equal(made[0].size, 96 * MB);
  assert.equal(made[1].size, 99 * MB + 256);
  assert.equal(pool.maxBinding, 100 * MB);
  assert.throws(
    () => pool.acquire(100 * MB + 4),
    /tensor of 104857604 bytes exceeds this adapter's largest storage binding \(104857600 bytes\); use a smaller batch size/,
  );
  pool.release(a);
  pool.release(b);
});
