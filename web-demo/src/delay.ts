// The jitter buffer's target delay, adapted to the network: the same estimator as moq-audio's Rust
// `listen/delay.rs` (whose header says what is taken from WebRTC NetEQ and @moq/watch), number for
// number, so both pass the scenarios in spec/jitter/.
//
// - Relative arrival delay (NetEQ DelayManager): a packet's transit (arrival on the render clock −
//   timestamp) minus the smallest transit of the last 2 s of media; the history restarts at a
//   timestamp jump (a publisher that restarted its timeline), keeping the old stretch's fastest
//   transit for positions before the jump.
// - A forgetting histogram of it (10 ms buckets up to 2 s, forget factor 0.9993 per packet, the
//   start target as a prior of weight 2): the measured jitter is its 99.5th percentile (NetEQ: 97th; over QUIC a lost packet is late, not gone).
// - Peaks (NetEQ DelayPeakDetector): a delay above min(2 × jitter, jitter + 78 ms) — over QUIC, a
//   retransmission — raises the target at once to 1.25 × it, for 20 s after the last one.
// - The target is max(jitter, peak) within [min, max] (@moq/watch's latency range).

export const HISTORY_US = 2_000_000;
export const BUCKET_US = 10_000;
export const BUCKETS = 200;
export const QUANTILE = 0.995;
export const FORGET = 0.9993;
export const PRIOR_PACKETS = 2;
export const PEAK_HEIGHT_US = 78_000;
/** A peak raises the target to 1.25 × its height (@moq/watch's factor on the RTT). */
export const PEAK_HEADROOM_PCT = 125;
export const MAX_PEAKS = 8;
export const PEAK_HOLD_US = 20_000_000;
const MAX_EPOCHS = 8;

const bucketOf = (us: number) => Math.min(Math.floor(us / BUCKET_US), BUCKETS - 1);
const roundUp = (us: number) => (Math.floor(us / BUCKET_US) + 1) * BUCKET_US;

export class DelayEstimator {
  private readonly minUs: number;
  private readonly maxUs: number;
  private readonly jumpUs: number;
  /** [timestamp µs, transit µs] of recent packets since the last jump, oldest first. */
  private history: Array<[number, number]> = [];
  /** [first timestamp after a jump, fastest transit of the stretch before it], oldest first. */
  private epochs: Array<[number, number]> = [];
  private buckets: Float64Array = new Float64Array(BUCKETS);
  private adds = 0;
  /** [height µs, render clock µs when seen] of recent peaks. */
  private peaks: Array<[number, number]> = [];
  jitterUs = 0;
  peakUs = 0;
  targetUs: number;

  constructor(minUs: number, maxUs: number, startUs: number, jumpUs: number) {
    this.minUs = minUs;
    this.maxUs = Math.max(maxUs, minUs);
    this.jumpUs = jumpUs;
    const start = Math.min(Math.max(startUs, this.minUs), this.maxUs);
    this.buckets[bucketOf(Math.max(start - 1, 0))] = 1;
    this.targetUs = start;
    this.jitterUs = this.quantileUs();
  }

  /**
   * A packet stamped `tsUs` arrived at render clock `clockUs`; returns its relative delay (µs).
   * `learn: false` only tracks the fastest transit (packets arriving while playout waits to start).
   */
  onArrival(tsUs: number, clockUs: number, learn: boolean): number {
    const transit = clockUs - tsUs;
    const newest = this.history.length ? Math.max(...this.history.map(([t]) => t)) : null;
    let rel: number;
    const lastEpoch = this.epochs[this.epochs.length - 1];
    if (newest !== null && tsUs > newest + this.jumpUs) {
      this.epochs.push([tsUs, this.fastestTransit()!]);
      if (this.epochs.length > MAX_EPOCHS) this.epochs.shift();
      this.history = [[tsUs, transit]];
      rel = 0;
    } else if (lastEpoch && tsUs < lastEpoch[0]) {
      rel = Math.max(transit - this.fastestTransitAt(tsUs)!, 0);
    } else {
      const top = newest === null ? tsUs : Math.max(newest, tsUs);
      this.history.push([tsUs, transit]);
      while (this.history.length && this.history[0][0] + HISTORY_US < top) this.history.shift();
      rel = transit - this.fastestTransit()!;
    }

    if (!learn) return rel;
    // Peaks, against the jitter expected before this packet.
    const threshold = Math.min(2 * this.jitterUs, this.jitterUs + PEAK_HEIGHT_US);
    if (rel > threshold) {
      this.peaks.push([rel, clockUs]);
      if (this.peaks.length > MAX_PEAKS) this.peaks.shift();
    }

    this.adds += 1;
    const weight = Math.max(1 - FORGET, 1 / (this.adds + PRIOR_PACKETS));
    if (Math.floor(rel / BUCKET_US) < BUCKETS) {
      for (let i = 0; i < BUCKETS; i++) this.buckets[i] *= 1 - weight;
      this.buckets[bucketOf(rel)] += weight;
    }
    this.jitterUs = this.quantileUs();
    while (this.peaks.length && this.peaks[0][1] + PEAK_HOLD_US < clockUs) this.peaks.shift();
    this.peakUs = this.peaks.reduce((m, [h]) => Math.max(m, roundUp(Math.floor((h * PEAK_HEADROOM_PCT) / 100))), 0);
    this.targetUs = Math.min(Math.max(Math.max(this.jitterUs, this.peakUs), this.minUs), this.maxUs);
    return rel;
  }

  /** The smallest transit of the recent packets (µs): the fastest path. */
  fastestTransit(): number | null {
    if (!this.history.length) return null;
    return this.history.reduce((m, [, tr]) => Math.min(m, tr), Infinity);
  }

  /** The fastest transit of the stretch of the timeline that media time `tsUs` belongs to. */
  fastestTransitAt(tsUs: number): number | null {
    const epoch = this.epochs.find(([start]) => tsUs < start);
    return epoch ? epoch[1] : this.fastestTransit();
  }

  private quantileUs(): number {
    let sum = 0;
    for (let i = 0; i < BUCKETS; i++) {
      sum += this.buckets[i];
      if (sum >= QUANTILE) return (i + 1) * BUCKET_US;
    }
    return BUCKETS * BUCKET_US;
  }
}
