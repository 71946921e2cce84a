// The time left in an evaluation of several attack jobs whose costs per image differ by 30x or
// more: an attack through a purifier with EOT 8 costs far more per image than one on the bare
// classifier, so a rate in images per second over the whole run promised a standard run's end in
// 26 minutes with 3.5 hours to go. Each job names a cost group (jobs of one group cost the same
// per unit of attack work: same defense kind and threat model) and its units of attack work per
// image (gradient passes: steps x restarts x EOT, see attackUnits). A group's seconds per unit are
// measured from its own batches; a group not yet run has no estimate, and the remaining time is
// then a lower bound.

export interface EtaJob {
  /** Jobs of one group share their seconds per unit (e.g. "purifier.full-pipeline"). */
  group: string;
  images: number;
  unitsPerImage: number;
}

export interface EtaEstimate {
  /** Seconds left over the groups already timed. */
  seconds: number;
  /** Groups with work left and no timing yet: the estimate is then a lower bound. */
  untimed: number;
}

/** Units of attack work per attacked image: gradient passes of an attack with these parameters
 * (cascades count their first attack twice: the rand version of AutoAttack runs APGD-CE and
 * APGD-DLR on every surviving image; query attacks count queries). */
export function attackUnits(
  name: string,
  p: {
    steps?: number | null;
    restarts?: number | null;
    eot?: number | null;
    queries?: number | null;
  },
): number {
  const eot = Math.max(1, p.eot ?? 1);
  const restarts = Math.max(1, p.restarts ?? 1);
  if (name === "square") return Math.max(1, p.queries ?? 1) / 2;
  const steps = Math.max(1, p.steps ?? 1);
  const cascade = name.startsWith("autoattack") || name === "fab" ? 2 : 1;
  return steps * restarts * eot * cascade;
}

export class EtaModel {
  readonly #jobs: EtaJob[];
  readonly #done: number[];
  readonly #seconds = new Map<string, number>();
  readonly #units = new Map<string, number>();
  readonly #now: () => number;
  #current = -1;
  #last = 0;

  constructor(jobs: EtaJob[], now: () => number = () => performance.now()) {
    this.#jobs = jobs;
    this.#done = jobs.map(() => 0);
    this.#now = now;
  }

  /** Job j starts now: the time until its next progress is its own. */
  start(j: number): void {
    this.#current = j;
    this.#last = this.#now();
  }

  /** `images` more of job j are done; `resumed`: done by an earlier run (no time measured). */
  progress(j: number, images: number, resumed = false): void {
    this.#done[j] = Math.min(this.#jobs[j].images, this.#done[j] + images);
    const now = this.#now();
    if (!resumed && j === this.#current) {
      const g = this.#jobs[j].group;
      this.#seconds.set(g, (this.#seconds.get(g) ?? 0) + (now - this.#last) / 1000);
      this.#units.set(g, (this.#units.get(g) ?? 0) + images * this.#jobs[j].unitsPerImage);
    }
    this.#last = now;
  }

  estimate(): EtaEstimate {
    let seconds = 0;
    const untimed = new Set<string>();
    this.#jobs.forEach((job, j) => {
      const left = (job.images - this.#done[j]) * job.unitsPerImage;
      if (left <= 0) return;
      const units = this.#units.get(job.group) ?? 0;
      if (units > 0) seconds += (left * this.#seconds.get(job.group)!) / units;
      else untimed.add(job.group);
    });
    return { seconds, untimed: untimed.size };
  }
}
