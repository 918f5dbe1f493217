// The generation-aware adaptive jitter buffer the AudioWorklet renders from. Pure logic (no Web
// Audio): the same specification as moq-audio's Rust `listen/jitter.rs` (read its header for the
// reasoning and sources), checked by the shared scenarios in spec/jitter/*.json, which both
// `cargo test` (crates/moq-audio/tests/jitter_spec.rs) and `npm test` (tests/spec.test.mjs) run.
//
// - Target: the playout delay over the fastest recent packet ("delay") is steered towards a target
//   the DelayEstimator (delay.ts) adapts to arrival jitter and loss-recovery peaks, within
//   [minTargetUs, maxTargetUs].
// - Start: a generation starts once `target` of it is buffered, or its audio has waited `target`.
// - Grow fast, shrink slowly, never by a jump: a dry buffer holds its position (10 ms of
//   concealment faded out, then silence) until the late packet comes and plays it then; a hole
//   under the target is concealed holding the position; otherwise quiet chunks are shrunk when the
//   delay is over max(target, lead) + 20 ms and stretched when under target − 20 ms (stretch.ts).
//   Only over max(maxTarget, lead) + 100 ms (after an outage) is queued audio skipped.
// - Missing packets: a hole (≤ maxGapUs) at or over the target is concealed for its duration and
//   the packet, arriving afterwards, is dropped as late. A larger hole is a jump of the
//   publisher's timeline: closed up. An underrun is counted when a dry buffer goes on with audio
//   continuing its position (a jump or a new generation means the utterance had ended).
// - Generations: on a newer generation (its marker, or its first audio) what is audible of the old
//   one fades out over at most fadeUs (≤ 10 ms) whatever the depth; the rest is dropped; a cut
//   during an earlier cut's fade keeps that fade. Older generations are dropped.
//
// In the browser the packets are PCM decoded by WebCodecs (which has no PLC API): the codec is
// conceal.ts's PcmCodec, which conceals by repeating the last pitch period.

import { type Codec } from "./conceal";
import { DelayEstimator } from "./delay";
import { CROSSFADE_US, grow, isQuiet, shrink } from "./stretch";

export interface JitterOptions {
  sampleRate: number;
  channels: number;
  /** Target delay before anything was measured, µs. Default 40 000. */
  targetUs?: number;
  /** Smallest target, µs. Default 20 000. */
  minTargetUs?: number;
  /** Largest target, µs. Default 400 000. */
  maxTargetUs?: number;
  /** Fade-out of the flushed generation, µs. Default 5 000; clamped to 10 000. */
  fadeUs?: number;
  /** Largest timestamp gap concealed, µs; larger jumps are closed up. Default 100 000. */
  maxGapUs?: number;
  /** The publisher's pacing lead (catalog leadMs), µs: the delay is not shrunk below it. Default 0. */
  leadUs?: number;
}

export interface JitterStats {
  /** Frames dropped because their generation was older than the current one. */
  staleFrames: number;
  /** Frames dropped because they arrived after their time (or were duplicates). */
  lateFrames: number;
  /** Sample frames of older generations discarded at flushes (not counting the fade). */
  flushedFrames: number;
  /** Times playout ran dry and then went on with audio that had been late. */
  underruns: number;
  /** Sample frames skipped because the delay was far over the target (after an outage). */
  skippedFrames: number;
  /** Sample frames of concealment rendered. */
  concealedFrames: number;
  /** Sample frames added by stretching quiet audio (the delay grew). */
  insertedFrames: number;
  /** Sample frames removed from quiet audio (the delay shrank). */
  removedFrames: number;
  /** The current target delay, µs. */
  targetUs: number;
  /** The measured jitter: the relative arrival delay 99.5 % of packets stay under, µs. */
  jitterUs: number;
  /** The loss-recovery peak raising the target (0 when none), µs. */
  peakUs: number;
  /** The current playout delay over the fastest recent packet, µs (last known while waiting). */
  delayUs: number;
  /** Sample frames of audio rendered (fades and concealment included). */
  renderedFrames: number;
}

/** What one rendered stretch was (the Rust `Rendered`). */
export interface Rendered {
  /** Generation, null for silence. */
  generation: number | null;
  /** Media timestamp (µs) of the first sample (the position held, for concealment while dry). */
  tsUs: number;
  frames: number;
  fade: boolean;
  concealed: boolean;
}

/** A cut to a newer generation, reported once its fade has been rendered. */
export interface Cut {
  from: number | null;
  to: number;
  /** Sample frames the fade lasts (0 when nothing was audible). */
  fadeFrames: number;
  /** Sample frames of the old generation thrown away without being heard. */
  droppedFrames: number;
}

/** What one `render` call produced. */
export interface RenderResult {
  /** Index (sample frame within this render) where a pending cut's output went silent. */
  silentAt?: { cut: Cut; frame: number };
  /** Index where the first sample of a generation was rendered. */
  started?: { generation: number; frame: number };
  /** Sample frames of real audio (not silence) rendered, fades and concealment included. */
  audioFrames: number;
  /** What each stretch was. */
  spans: Rendered[];
}

/** Timestamps within this of each other are contiguous (frame lengths do not land on whole µs). */
export const SLACK_US = 1_000;
export const HOLE_PIECE_US = 20_000;
export const HOLD_PIECE_US = 10_000;
export const DRY_CONCEAL_US = 10_000;
export const SHRINK_HYSTERESIS_US = 20_000;
export const GROW_HYSTERESIS_US = 20_000;
export const SKIP_MARGIN_US = 100_000;

interface Packet<P> {
  tsUs: number;
  durUs: number;
  frames: number;
  payload: P;
}

interface Chunk {
  tsUs: number;
  mediaUs: number;
  pcm: Float32Array;
  /** Samples (interleaved) already rendered. */
  offset: number;
  concealed: boolean;
}

type State = "waiting" | "playing" | "dry";

export class JitterBuffer<P> {
  readonly sampleRate: number;
  readonly channels: number;
  readonly fadeUs: number;
  readonly maxGapUs: number;
  readonly leadUs: number;
  readonly minTargetUs: number;
  readonly maxTargetUs: number;
  private readonly codec: Codec<P>;
  private readonly delay: DelayEstimator;

  generation: number | null = null;
  private state: State = "waiting";
  private queue: Packet<P>[] = [];
  private cur: Chunk | null = null;
  /** Media timestamp of the next sample to render, µs; null until playout is anchored. */
  private posUs: number | null = null;
  private fade: Float32Array = new Float32Array(0);
  private fadePos = 0;
  private fadeGeneration = 0;
  private fadeTs = 0;
  private waitedUs = 0;
  /** Sample frames rendered: the render clock. */
  private rendered = 0;
  /** A cut whose silence point has not been rendered yet. */
  private pendingCut: Cut | null = null;
  /** Generation whose first rendered sample is still to be reported. */
  private unstarted: number | null = null;
  /** (generation, media ts µs) just past the last rendered sample. */
  last: { generation: number; tsUs: number } | null = null;
  readonly stats: JitterStats;

  constructor(opts: JitterOptions, codec: Codec<P>) {
    this.sampleRate = opts.sampleRate;
    this.channels = opts.channels;
    this.fadeUs = Math.min(opts.fadeUs ?? 5_000, 10_000);
    this.maxGapUs = opts.maxGapUs ?? 100_000;
    this.leadUs = opts.leadUs ?? 0;
    this.minTargetUs = opts.minTargetUs ?? 20_000;
    this.maxTargetUs = Math.max(opts.maxTargetUs ?? 400_000, this.minTargetUs);
    this.codec = codec;
    this.delay = new DelayEstimator(this.minTargetUs, this.maxTargetUs, opts.targetUs ?? 40_000, this.maxGapUs);
    this.stats = {
      staleFrames: 0,
      lateFrames: 0,
      flushedFrames: 0,
      underruns: 0,
      skippedFrames: 0,
      concealedFrames: 0,
      insertedFrames: 0,
      removedFrames: 0,
      targetUs: this.delay.targetUs,
      jitterUs: this.delay.jitterUs,
      peakUs: 0,
      delayUs: 0,
      renderedFrames: 0,
    };
  }

  /** Whether playout is running (not waiting for the target, not dry). */
  get playing(): boolean {
    return this.state === "playing";
  }

  private usToFrames(us: number): number {
    return Math.floor((us * this.sampleRate) / 1_000_000);
  }

  private framesToUs(frames: number): number {
    return Math.floor((frames * 1_000_000) / this.sampleRate);
  }

  /** The render clock (µs) at sample `i` of the quantum being rendered. */
  private clockUs(i: number): number {
    return this.framesToUs(this.rendered + Math.floor(i / this.channels));
  }

  /** The playout delay over the fastest recent packet at sample `i` of this quantum, µs. */
  private delayNow(i: number): number | null {
    if (this.posUs === null) return null;
    const fastest = this.delay.fastestTransitAt(this.posUs);
    if (fastest === null) return null;
    return this.clockUs(i) - this.posUs - fastest;
  }

  /** Audio of the current generation buffered, µs (gaps not counted). */
  bufferedUs(): number {
    let us = 0;
    for (const p of this.queue) us += p.durUs;
    const c = this.cur;
    if (c) us += Math.floor((c.mediaUs * (c.pcm.length - c.offset)) / Math.max(c.pcm.length, 1));
    return us;
  }

  /**
   * Learn that `generation` exists (its first frame arrived on the network), before its audio is
   * decoded: the marker of a flush. Returns false for a stale generation.
   */
  announce(generation: number): boolean {
    if (this.generation === null) {
      this.generation = generation;
      this.unstarted = generation;
      return true;
    }
    if (generation < this.generation) return false;
    if (generation > this.generation) this.cutTo(generation);
    return true;
  }

  /** Add a packet stamped `tsUs` of `generation`; it arrived now (on the render clock). */
  push(generation: number, tsUs: number, packet: P): void {
    if (!this.announce(generation)) {
      this.stats.staleFrames += 1;
      return;
    }
    const frames = this.codec.frames(packet);
    if (!frames) return;
    const durUs = this.framesToUs(frames);
    // Only what arrives once playout runs tells about the network (see delay.ts).
    this.delay.onArrival(tsUs, this.clockUs(0), this.state !== "waiting");
    this.updateStateStats();
    // At or before the playout position (or inside what is being played): late.
    const playedTo = this.cur ? this.cur.tsUs + this.cur.mediaUs : this.posUs;
    if (playedTo !== null && tsUs + SLACK_US < playedTo) {
      this.stats.lateFrames += 1;
      return;
    }
    // Insert in timestamp order; a packet overlapping one we have is a duplicate.
    let at = this.queue.length;
    while (at > 0 && this.queue[at - 1].tsUs >= tsUs) at--;
    const prev = this.queue[at - 1];
    const next = this.queue[at];
    if ((prev && prev.tsUs + prev.durUs > tsUs + SLACK_US) || (next && next.tsUs + SLACK_US < tsUs + durUs)) {
      this.stats.lateFrames += 1;
      return;
    }
    this.queue.splice(at, 0, { tsUs, durUs, frames, payload: packet });
  }

  /** A newer generation: fade out what is audible, drop the rest, start a new stream. */
  private cutTo(generation: number): void {
    const ch = this.channels;
    const from = this.generation;
    let fadeFrames = 0;
    // A fade still running from an earlier cut keeps running (it is already going to zero).
    if (this.fadePos >= this.fade.length && this.state !== "waiting") {
      const want = Math.max(this.usToFrames(this.fadeUs), 1) * ch;
      this.fadeTs = this.posUs ?? 0;
      this.fadeGeneration = from ?? generation;
      const old = new Float32Array(want);
      let got = 0;
      while (got < want) {
        const c = this.cur;
        if (c && c.offset < c.pcm.length) {
          const take = Math.min(c.pcm.length - c.offset, want - got);
          old.set(c.pcm.subarray(c.offset, c.offset + take), got);
          c.offset += take;
          got += take;
          continue;
        }
        const pos = c ? c.tsUs + c.mediaUs : this.posUs;
        const front = this.queue[0];
        if (this.state === "playing" && front && pos !== null && front.tsUs <= pos + SLACK_US) {
          const p = this.queue.shift()!;
          this.cur = { tsUs: p.tsUs, mediaUs: p.durUs, pcm: this.decode(p), offset: 0, concealed: false };
        } else break;
      }
      fadeFrames = got / ch;
      const fade = new Float32Array(got);
      for (let k = 0; k < got; k++) fade[k] = old[k] * (1 - (Math.floor(k / ch) + 1) / fadeFrames);
      this.fade = fade;
      this.fadePos = 0;
    }
    const c = this.cur;
    const curLeft = c && !c.concealed ? (c.pcm.length - c.offset) / ch : 0;
    let queued = 0;
    for (const p of this.queue) queued += p.frames;
    const droppedFrames = curLeft + queued;
    this.stats.flushedFrames += droppedFrames;
    this.queue = [];
    this.cur = null;
    this.posUs = null;
    this.generation = generation;
    this.state = "waiting";
    this.waitedUs = 0;
    this.codec.reset();
    this.unstarted = generation;
    // Report the silence point of the newest cut (a cut that overtakes another replaces it).
    const pendingFade = (this.fade.length - this.fadePos) / ch;
    this.pendingCut = { from, to: generation, fadeFrames: Math.max(fadeFrames, pendingFade), droppedFrames };
  }

  private decode(p: Packet<P>): Float32Array {
    try {
      return this.codec.decode(p.payload);
    } catch {
      return this.conceal(p.frames);
    }
  }

  private conceal(frames: number): Float32Array {
    try {
      return this.codec.conceal(frames);
    } catch {
      return new Float32Array(frames * this.channels);
    }
  }

  /** Make the chunk at the playout position current. False when nothing is buffered (dry). */
  private nextChunk(i: number): boolean {
    this.skipIfFarBehind(i);
    for (;;) {
      const pos = this.posUs!;
      const front = this.queue[0];
      if (!front) return false;
      if (front.tsUs <= pos + SLACK_US) {
        const p = this.queue.shift()!;
        this.posUs = p.tsUs;
        const pcm = this.timeScale(this.decode(p), i);
        if (this.setChunk(p.tsUs, p.durUs, pcm, false)) return true;
        continue;
      }
      const gap = front.tsUs - pos;
      if (gap <= this.maxGapUs) {
        // A packet that is not there (yet): concealed, holding the position under the target.
        const d = this.delayNow(i);
        const hold = d !== null && d < this.delay.targetUs;
        const frames = Math.max(this.usToFrames(hold ? HOLD_PIECE_US : Math.min(gap, HOLE_PIECE_US)), 1);
        const media = hold ? 0 : Math.min(gap, HOLE_PIECE_US);
        let pcm = this.conceal(frames);
        if (pcm.length === 0 && media === 0) pcm = new Float32Array(frames * this.channels);
        if (this.setChunk(pos, media, pcm, true)) return true;
        continue;
      }
      this.posUs = front.tsUs; // a jump (the publisher restarted its timeline): close it up
    }
  }

  private setChunk(tsUs: number, mediaUs: number, pcm: Float32Array, concealed: boolean): boolean {
    if (pcm.length === 0) {
      this.posUs = tsUs + mediaUs;
      return false;
    }
    this.cur = { tsUs, mediaUs, pcm, offset: 0, concealed };
    return true;
  }

  /** Skip queued packets, down to the target, when the delay is far over the range. */
  private skipIfFarBehind(i: number): void {
    const limit = Math.max(this.maxTargetUs, this.leadUs) + SKIP_MARGIN_US;
    const d = this.delayNow(i);
    if (d === null || d <= limit) return;
    const target = this.delay.targetUs;
    for (;;) {
      const dn = this.delayNow(i);
      if (dn === null || dn <= target || this.queue.length <= 1) break;
      const back = this.queue[this.queue.length - 1];
      if (back.tsUs + back.durUs - this.queue[0].tsUs <= target) break;
      const p = this.queue.shift()!;
      this.stats.skippedFrames += p.frames;
      this.posUs = p.tsUs + p.durUs;
    }
  }

  /** Shrink or grow a quiet decoded chunk to steer the delay towards the target. */
  private timeScale(pcm: Float32Array, i: number): Float32Array {
    const d = this.delayNow(i);
    if (d === null || !isQuiet(pcm)) return pcm;
    const ch = this.channels;
    const half = Math.floor(pcm.length / ch / 2);
    const xf = this.usToFrames(CROSSFADE_US);
    const target = this.delay.targetUs;
    const floor = Math.max(target, this.leadUs);
    if (d > floor + SHRINK_HYSTERESIS_US) {
      const remove = Math.min(this.usToFrames(d - floor), half);
      const out = shrink(pcm, ch, remove, xf);
      if (out) {
        this.stats.removedFrames += remove;
        return out;
      }
    } else if (d + GROW_HYSTERESIS_US < target) {
      const insert = Math.min(this.usToFrames(target - d), half);
      const out = grow(pcm, ch, insert, xf);
      if (out) {
        this.stats.insertedFrames += insert;
        return out;
      }
    }
    return pcm;
  }

  /** Playout ran dry: a short concealment, faded out, holding the position. */
  private dryConceal(): void {
    const ch = this.channels;
    const pcm = this.conceal(Math.max(this.usToFrames(DRY_CONCEAL_US), 1));
    const n = pcm.length / ch;
    for (let k = 0; k < pcm.length; k++) pcm[k] *= 1 - (Math.floor(k / ch) + 1) / n;
    this.setChunk(this.posUs!, 0, pcm, true);
  }

  private updateStateStats(): void {
    this.stats.targetUs = this.delay.targetUs;
    this.stats.jitterUs = this.delay.jitterUs;
    this.stats.peakUs = this.delay.peakUs;
  }

  /** Render `out.length / channels` sample frames (interleaved) into `out`. */
  render(out: Float32Array): RenderResult {
    const ch = this.channels;
    const n = out.length;
    const result: RenderResult = { audioFrames: 0, spans: [] };
    const spans = result.spans;
    let i = 0;
    // 1. The fade-out of a flushed generation.
    if (this.fadePos < this.fade.length) {
      const k = Math.min(this.fade.length - this.fadePos, n);
      out.set(this.fade.subarray(this.fadePos, this.fadePos + k), 0);
      this.fadePos += k;
      spans.push({ generation: this.fadeGeneration, tsUs: this.fadeTs, frames: k / ch, fade: true, concealed: false });
      i = k;
      result.audioFrames += k / ch;
    }
    if (this.pendingCut && this.fadePos >= this.fade.length) {
      // The old generation is now silent (its fade ended at frame i / ch of this render).
      result.silentAt = { cut: this.pendingCut, frame: i / ch };
      this.pendingCut = null;
    }
    // 2. Wait for the target before starting, but no longer than the target itself.
    if (this.state === "waiting" && this.generation !== null && this.queue.length > 0) {
      const target = this.delay.targetUs;
      if (this.bufferedUs() >= target || this.waitedUs >= target) {
        this.state = "playing";
        this.posUs = this.queue[0].tsUs;
        this.waitedUs = 0;
      } else {
        this.waitedUs += this.framesToUs((n - i) / ch);
      }
    }
    // 3. Audio of the current generation, against the playout position.
    while (i < n && this.state !== "waiting") {
      const generation = this.generation!;
      const c = this.cur;
      if (c && c.offset < c.pcm.length) {
        const take = Math.min(c.pcm.length - c.offset, n - i);
        out.set(c.pcm.subarray(c.offset, c.offset + take), i);
        spans.push({ generation, tsUs: this.posUs!, frames: take / ch, fade: false, concealed: c.concealed });
        if (c.concealed) this.stats.concealedFrames += take / ch;
        if (this.unstarted === generation) {
          result.started = { generation, frame: i / ch };
          this.unstarted = null;
        }
        c.offset += take;
        const total = c.pcm.length / ch;
        this.posUs = c.tsUs + Math.floor((c.mediaUs * (c.offset / ch)) / total);
        if (c.offset === c.pcm.length) {
          this.posUs = c.tsUs + c.mediaUs;
          this.cur = null;
        }
        i += take;
        result.audioFrames += take / ch;
        continue;
      }
      if (this.state === "dry") {
        const front = this.queue[0];
        if (!front) break;
        if (front.tsUs <= this.posUs! + this.maxGapUs) {
          this.state = "playing"; // the late audio came: go on where playout stopped
          this.stats.underruns += 1;
        } else {
          this.state = "waiting"; // a new stretch of the timeline: that was the end of an utterance
          this.posUs = null;
          this.waitedUs = 0;
          break;
        }
      }
      if (!this.nextChunk(i)) {
        this.state = "dry";
        this.dryConceal();
      }
    }
    if (this.generation !== null && this.posUs !== null && spans.some((s) => !s.fade && s.generation !== null)) {
      this.last = { generation: this.generation, tsUs: this.posUs };
    }
    // 4. Silence for the rest.
    if (i < n) {
      out.fill(0, i);
      spans.push({ generation: null, tsUs: 0, frames: (n - i) / ch, fade: false, concealed: false });
    }
    this.rendered += n / ch;
    const d = this.delayNow(0);
    if (d !== null) this.stats.delayUs = Math.max(d, 0);
    this.stats.renderedFrames += result.audioFrames;
    return result;
  }

  /** Forget everything (the bot went away). */
  reset(): void {
    this.generation = null;
    this.state = "waiting";
    this.queue = [];
    this.cur = null;
    this.posUs = null;
    this.fade = new Float32Array(0);
    this.fadePos = 0;
    this.pendingCut = null;
    this.unstarted = null;
    this.waitedUs = 0;
    this.last = null;
    this.codec.reset();
  }
}
