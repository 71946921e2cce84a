// A size-bucketed pool of storage buffers. Training allocates the same shapes every step, so
// recycling buffers keeps GPU memory flat and avoids createBuffer calls on the hot path.

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Rounds a byte size up to its bucket: multiples of 256 B below 64 KiB, then 1/8 octaves. */
export function bucketBytes(bytes: number): number {
  const b = Math.max(256, bytes);
  if (b <= 65536) return Math.ceil(b / 256) * 256;
  const octave = 2 ** Math.floor(Math.log2(b));
  const step = octave / 8;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  liveBytes: number;
  /** Buffers sitting in the free lists. */
  freeBuffers: number;
  freeBytes: number;
  /** createBuffer calls so far: flat over steps means the pool is doing its job. */
  allocations: number;
}

export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #live = new Set<GPUBuffer>();
  #liveBytes = 0;
  #freeBytes = 0;
  #freeCount = 0;
  #allocations = 0;

  constructor(private device: GPUDevice, private maxBufferSize: number) {}

  acquire(bytes: number): GPUBuffer {
    const size = bucketBytes(bytes);
    if (size > this.maxBufferSize) {
      throw new Error(
        `tensor of ${bytes} bytes exceeds this adapter's maxBufferSize (${this.maxBufferSize}); ` +
          `use a smaller batch size`,
      );
    }
    const list = this.#free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.#freeBytes -= size;
      this.#freeCount--;
    } else {
      buf = this.device.createBuffer({ size, usage: USAGE });
      this.#allocations++;
    }
    this.#live.add(buf);
    this.#liveBytes += size;
    return buf;
  }

  /** Returns a buffer to the pool. Safe even when queued commands still read it: every later
   * use is recorded after those commands on the same queue, so it runs after them. */
  release(buf: GPUBuffer): void {
    if (!this.#live.delete(buf)) throw new Error("internal: buffer released twice");
    this.#liveBytes -= buf.size;
    let list = this.#free.get(buf.size);
    if (!list) this.#free.set(buf.size, list = []);
    list.push(buf);
    this.#freeBytes += buf.size;
    this.#freeCount++;
  }

  /** Destroys all free buffers (e.g. between benchmark phases). */
  trim(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
    this.#freeBytes = 0;
    this.#freeCount = 0;
  }

  stats(): PoolStats {
    return {
      liveBuffers: this.#live.size,
      liveBytes: this.#liveBytes,
      freeBuffers: this.#freeCount,
      freeBytes: this.#freeBytes,
      allocations: this.#allocations,
    };
  }
}
