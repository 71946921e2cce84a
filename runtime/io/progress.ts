// A progress line for long work: done/total, items per second, ETA. Redrawn in place on a
// terminal (throttled to ~2 Hz); on a pipe or file, one plain line per 10%, and at least one
// every 10 s so a log shows life from the first seconds. A heartbeat timer repeats the line
// while one item takes longer than that (the GPU work is awaited, so timers still fire).

export interface ProgressOptions {
  /** Unit shown in the rate ("it/s"). */
  unit?: string;
  /** Where lines go (default: stderr). */
  write?: (text: string) => void;
  /** Redraw in place (default: whether stderr is a terminal). */
  tty?: boolean;
  /** Milliseconds clock (default: performance.now). */
  now?: () => number;
  /** Minimum time between redraws on a terminal. */
  intervalMs?: number;
  /** Longest silence on a pipe, and the heartbeat period (default 10 s; 0: neither). The
   * heartbeat timer runs only with the real clock. */
  quietMs?: number;
  /** The time left, where items differ in cost (runtime/eval/eta.ts); default: items left over
   * the rate. With `untimed` > 0 the time is a lower bound, shown as "ETA 1:02+" ("?" if 0). */
  eta?: () => { seconds: number; untimed: number };
}

/** Seconds as m:ss, or h:mm:ss from one hour up; "?" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

function isStderrTty(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

export class Progress {
  #count: number;
  #start: number;
  readonly #t0: number;
  #lastDraw = -Infinity;
  #lastWrite: number;
  #extra = "";
  #timer: ReturnType<typeof setInterval> | null = null;
  #lastDecile: number;
  #finished = false;
  readonly #write: (text: string) => void;
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #interval: number;
  readonly #unit: string;
  readonly #quiet: number;
  readonly #eta?: () => { seconds: number; untimed: number };

  /** `start`: items already done (a resumed run); the rate counts only this run's items. */
  constructor(readonly total: number, readonly label: string, start = 0, o: ProgressOptions = {}) {
    this.#count = start;
    this.#start = start;
    this.#now = o.now ?? (() => performance.now());
    this.#t0 = this.#now();
    this.#tty = o.tty ?? isStderrTty();
    this.#write = o.write ?? ((t) => Deno.stderr.writeSync(new TextEncoder().encode(t)));
    this.#interval = o.intervalMs ?? 500;
    this.#unit = o.unit ?? "it";
    this.#lastDecile = this.#decile();
    this.#quiet = o.quietMs ?? 10_000;
    this.#eta = o.eta;
    this.#lastWrite = this.#t0;
    if (this.#quiet > 0 && !o.now) {
      this.#write(this.#tty ? `\r\x1b[K${this.line()}` : `${this.line()}\n`);
      // Checked often, so a silence never exceeds quietMs by more than a check period.
      const timer = setInterval(() => this.#heartbeat(), Math.min(1000, this.#quiet / 4));
      Deno.unrefTimer(timer); // never keeps the process alive
      this.#timer = timer;
    }
  }

  #heartbeat(): void {
    const now = this.#now();
    if (this.#finished || now - this.#lastWrite < this.#quiet) return;
    this.#emit(now, this.#extra);
  }

  #emit(now: number, extra: string): void {
    this.#lastWrite = now;
    this.#lastDraw = now;
    this.#write(this.#tty ? `\r\x1b[K${this.line(extra)}` : `${this.line(extra)}\n`);
  }

  get count(): number {
    return this.#count;
  }

  #decile(): number {
    return this.total > 0 ? Math.floor((10 * Math.min(this.#count, this.total)) / this.total) : 0;
  }

  /** The status line: `label  123/1000  45.6 it/s  ETA 0:19  extra`. */
  line(extra = ""): string {
    const secs = (this.#now() - this.#t0) / 1000;
    const rate = secs > 0 ? (this.#count - this.#start) / secs : 0;
    let eta = formatDuration(rate > 0 ? Math.max(0, this.total - this.#count) / rate : Infinity);
    if (this.#eta) {
      const e = this.#eta();
      eta = e.untimed > 0 && e.seconds <= 0 ? "?" : formatDuration(e.seconds);
      if (e.untimed > 0 && eta !== "?") eta += "+";
    }
    return `${this.label}  ${this.#count}/${this.total}  ${rate.toFixed(1)} ${this.#unit}/s  ` +
      `ETA ${eta}${extra ? `  ${extra}` : ""}`;
  }

  /** Counts `n` items done by an earlier run (a resume): they add to the count, not the rate. */
  resumed(n: number): void {
    this.#count += n;
    this.#start += n;
  }

  /** Adds `n` items; redraws when due. `extra` (e.g. the running loss) ends the line. */
  tick(n = 1, extra = ""): void {
    this.#count += n;
    this.#extra = extra;
    const now = this.#now();
    if (this.#tty) {
      if (now - this.#lastDraw < this.#interval && this.#count < this.total) return;
      this.#emit(now, extra);
    } else {
      const d = this.#decile();
      const silent = this.#quiet > 0 && now - this.#lastWrite >= this.#quiet;
      if (d === this.#lastDecile && !silent) return;
      this.#lastDecile = d;
      this.#emit(now, extra);
    }
  }

  /** Ends the line with the total elapsed time. Safe to call twice. */
  done(extra = ""): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    const secs = (this.#now() - this.#t0) / 1000;
    const text = `${this.label}  ${this.#count}/${this.total}  done in ${formatDuration(secs)}` +
      `${extra ? `  ${extra}` : ""}`;
    this.#write(this.#tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  }
}
