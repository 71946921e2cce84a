// A size-bucketed pool of storage buffers. Training allocates the same shapes every step, so
// recycling buffers keeps GPU memory flat and avoids createBuffer calls on the hot path.
// Attacks do not: the rows still robust shrink as examples are fooled, so every run of a
// cascade asks for new sizes, and an unbounded free list kept a buffer of each (13 GB resident
// after 11 minutes of AutoAttack on 64 images). The free list is therefore capped: past
// 1.5x the largest working set seen (at least 256 MiB), the longest-unused buffers go.

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
  /** Free buffers destroyed to keep the free list under its cap. */
  evictions: number;
  /** The cap on free bytes now. */
  freeCapBytes: number;
  /** Buffers owned by captured graphs (runtime/graph/capture.ts). */
  claimedBuffers: number;
  claimedBytes: number;
}

const MIB = 1024 * 1024;

/** The smallest free-list cap; ATOP_POOL_FREE_MB overrides it. */
function minFreeCap(): number {
  try {
    const mb = Number(Deno.env.get("ATOP_POOL_FREE_MB"));
    if (Number.isFinite(mb) && mb >= 0) return mb * MIB;
  } catch {
    // no --allow-env
  }
  return 256 * MIB;
}

export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #live = new Set<GPUBuffer>();
  #liveBytes = 0;
  #freeBytes = 0;
  #freeCount = 0;
  #allocations = 0;
  #evictions = 0;
  #peakLive = 0;
  /** Free buffers in release order (a Map iterates oldest first). */
  #freeOrder = new Map<GPUBuffer, number>();
  #toDestroy: GPUBuffer[] = [];
  readonly #minCap: number;

  constructor(
    private device: GPUDevice,
    /** The largest tensor buffer: the adapter's storage binding limit (every tensor is bound
     * whole as a storage buffer), or its buffer limit if that is lower. */
    readonly maxBinding: number,
    opts: { minFreeCapBytes?: number } = {},
  ) {
    this.#minCap = opts.minFreeCapBytes ?? minFreeCap();
  }

  /** Free bytes kept at most: 1.5x the peak of live bytes, and at least the minimum. */
  get freeCap(): number {
    return Math.max(this.#minCap, 1.5 * this.#peakLive);
  }

  #windowPeak = 0;
  /** Starts measuring the peak of live bytes from now (explain's memory figure). */
  startPeakWindow(): void {
    this.#windowPeak = this.#liveBytes;
  }
  /** The peak of live bytes since startPeakWindow. */
  get windowPeak(): number {
    return this.#windowPeak;
  }

  acquire(bytes: number): GPUBuffer {
    // Every tensor is bound whole as a storage buffer, so no bucket may outgrow the binding
    // limit (a bucket above it would fail later, at submit, as an invalid bind group).
    let size = bucketBytes(bytes);
    if (size > this.maxBinding && bytes <= this.maxBinding) {
      size = Math.ceil(Math.max(256, bytes) / 256) * 256;
    }
    if (size > this.maxBinding) {
      throw new Error(
        `tensor of ${bytes} bytes exceeds this adapter's largest storage binding ` +
          `(${this.maxBinding} bytes); use a smaller batch size (stacked EOT passes: ` +
          `ATOP_EOT_BATCH)`,
      );
    }
    const list = this.#free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.#freeBytes -= size;
      this.#freeCount--;
      this.#freeOrder.delete(buf);
    } else {
      buf = this.device.createBuffer({ size, usage: USAGE });
      this.#allocations++;
    }
    this.#live.add(buf);
    this.#liveBytes += size;
    this.#peakLive = Math.max(this.#peakLive, this.#liveBytes);
    this.#windowPeak = Math.max(this.#windowPeak, this.#liveBytes);
    return buf;
  }

  #claimed = new Set<GPUBuffer>();
  #evictionPaused = 0;

  /** Holds evictions while a step is recorded and its temporaries claimed (an evicted temporary
   * would be destroyed under the graph); nested calls count. */
  pauseEviction(on: boolean): void {
    this.#evictionPaused += on ? 1 : -1;
    if (this.#evictionPaused === 0 && this.#freeBytes > this.freeCap) this.#evict(this.freeCap);
  }

  /** The buffers tensors hold now (a captured step's outputs that predate it are copied). */
  liveSnapshot(): Set<GPUBuffer> {
    return new Set(this.#live);
  }
  #claimedBytes = 0;

  /** True while the buffer sits in a free list. */
  isFree(buf: GPUBuffer): boolean {
    return this.#freeOrder.has(buf);
  }

  /** True while a tensor holds the buffer. */
  isLive(buf: GPUBuffer): boolean {
    return this.#live.has(buf);
  }

  /** Takes a free buffer out of the pool for good (a captured graph's own buffers: its replays
   * write them, so nothing else may receive them). */
  claim(buf: GPUBuffer): void {
    if (!this.#freeOrder.has(buf)) throw new Error("internal: claimed buffer is not free");
    this.#unlistFree(buf);
    this.#claimed.add(buf);
    this.#claimedBytes += buf.size;
  }

  /** Takes a buffer off the free lists. */
  #unlistFree(buf: GPUBuffer): void {
    const size = buf.size;
    const list = this.#free.get(size)!;
    list.splice(list.indexOf(buf), 1);
    if (list.length === 0) this.#free.delete(size);
    this.#freeOrder.delete(buf);
    this.#freeBytes -= size;
    this.#freeCount--;
  }

  /** Gives a claimed buffer back to the free lists. */
  unclaim(buf: GPUBuffer): void {
    if (!this.#claimed.delete(buf)) throw new Error("internal: buffer was not claimed");
    this.#claimedBytes -= buf.size;
    this.#live.add(buf);
    this.#liveBytes += buf.size;
    this.release(buf);
  }

  /** Called with each buffer returned to the pool (caches of values derived from a buffer's
   * contents drop them: the next owner is another tensor). */
  onRelease: ((buf: GPUBuffer) => void)[] = [];

  /** Returns a buffer to the pool. Safe even when queued commands still read it: every later
   * use is recorded after those commands on the same queue, so it runs after them. */
  release(buf: GPUBuffer): void {
    if (!this.#live.delete(buf)) throw new Error("internal: buffer released twice");
    for (const f of this.onRelease) f(buf);
    this.#liveBytes -= buf.size;
    let list = this.#free.get(buf.size);
    if (!list) this.#free.set(buf.size, list = []);
    list.push(buf);
    this.#freeBytes += buf.size;
    this.#freeCount++;
    this.#freeOrder.set(buf, buf.size);
    if (this.#evictionPaused === 0 && this.#freeBytes > this.freeCap) this.#evict(this.freeCap);
  }

  /** Drops the longest-unused free buffers until at most `cap` free bytes remain. A dropped
   * buffer may still be named by commands recorded but not yet submitted, so it is destroyed
   * only after the next submit (WebGPU lets submitted work finish on a destroyed buffer). */
  #evict(cap: number): void {
    for (const buf of this.#freeOrder.keys()) {
      if (this.#freeBytes <= cap) break;
      this.#unlistFree(buf);
      this.#evictions++;
      this.#toDestroy.push(buf);
    }
  }

  /** Called with each buffer just before it is destroyed (the engine drops its bind groups). */
  onDestroy: ((buf: GPUBuffer) => void)[] = [];

  #destroy(buf: GPUBuffer): void {
    for (const f of this.onDestroy) f(buf);
    buf.destroy();
  }

  /** Destroys a buffer (not the pool's) after the next submit: recorded commands may name it. */
  destroyLater(buf: GPUBuffer): void {
    this.#toDestroy.push(buf);
  }

  /** Destroys the buffers evicted before a submit; the engine calls it after each submit. */
  afterSubmit(): void {
    for (const b of this.#toDestroy) this.#destroy(b);
    this.#toDestroy = [];
  }

  /** Destroys all free buffers (e.g. between benchmark phases). */
  trim(): void {
    for (const list of this.#free.values()) for (const b of list) this.#destroy(b);
    this.#free.clear();
    this.#freeOrder.clear();
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
      evictions: this.#evictions,
      freeCapBytes: this.freeCap,
      claimedBuffers: this.#claimed.size,
      claimedBytes: this.#claimedBytes,
    };
  }
}
