// The generation-aware jitter buffer the AudioWorklet renders from. Pure logic (no Web Audio),
// the same semantics as moq-audio's Rust `jitter.rs` and the Python player:
// - Start playout once `targetUs` (40 ms) is buffered.
// - First frame (or early notice) of a newer generation: every buffered sample of older
//   generations is dropped; what the listener is hearing right now is faded out linearly over
//   at most `fadeUs` (5 ms, never more than 10 ms), the playout anchor is reset and the new
//   generation plays as soon as its first audio is there (no waiting for the target).
// - Frames of older generations arriving later are dropped and counted.
// - Underrun: silence until the target is buffered again.
// - More than `maxUs` (300 ms) buffered while playing: skip the oldest audio back to the target.

export interface JitterOptions {
  sampleRate: number;
  channels: number;
  /** Audio buffered before playout starts, µs. Default 40 000. */
  targetUs?: number;
  /** Fade-out of the flushed generation, µs. Default 5 000; clamped to 10 000. */
  fadeUs?: number;
  /** Largest timestamp gap filled with silence, µs; larger jumps are closed up. Default 100 000. */
  maxGapUs?: number;
  /**
   * Most audio held while playing, µs (default 300 000, as the Rust player): each underrun delays
   * playout by the silence it inserted, so above the cap the oldest audio is skipped down to the
   * target instead of letting the delay accumulate.
   */
  maxUs?: number;
}

export interface JitterStats {
  /** Frames dropped because their generation was older than the current one. */
  staleFrames: number;
  /** Frames dropped because they arrived after their time. */
  lateFrames: number;
  /** Sample frames of older generations discarded at flushes (not counting the fade). */
  flushedFrames: number;
  /** Times playout ran dry. */
  underruns: number;
  /** Sample frames skipped to bring an overfull buffer back to the target. */
  skippedFrames: number;
  /** Sample frames of audio rendered (fades included). */
  renderedFrames: number;
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
  /** Sample frames of real audio (not silence) rendered, fades included. */
  audioFrames: number;
}

/** Timestamps within this of each other are contiguous (frame lengths do not land on whole µs). */
const SLACK_US = 1_000;

interface Chunk {
  tsUs: number;
  pcm: Float32Array;
  /** Samples (interleaved) already rendered from the front. */
  offset: number;
}

export class JitterBuffer {
  readonly sampleRate: number;
  readonly channels: number;
  readonly targetUs: number;
  readonly fadeUs: number;
  readonly maxGapUs: number;
  readonly maxUs: number;

  generation: number | null = null;
  playing = false;
  /** Set by a cut: the next audio starts at once, without waiting for the target. */
  private immediate = false;
  private queue: Chunk[] = [];
  /** Interleaved samples in `queue` not yet rendered. */
  private queued = 0;
  /** Media timestamp of the next sample to render, µs; null until playout is anchored. */
  private posUs: number | null = null;
  private fade: Float32Array = new Float32Array(0);
  private fadePos = 0;
  private fadeGeneration = 0;
  private fadeTs = 0;
  /** A cut whose silence point has not been rendered yet. */
  private pendingCut: Cut | null = null;
  /** Generation whose first rendered sample is still to be reported. */
  private unstarted: number | null = null;
  /** (generation, media ts µs) just past the last rendered sample. */
  last: { generation: number; tsUs: number } | null = null;
  readonly stats: JitterStats = { staleFrames: 0, lateFrames: 0, flushedFrames: 0, underruns: 0, skippedFrames: 0, renderedFrames: 0 };

  constructor(opts: JitterOptions) {
    this.sampleRate = opts.sampleRate;
    this.channels = opts.channels;
    this.targetUs = opts.targetUs ?? 40_000;
    this.fadeUs = Math.min(opts.fadeUs ?? 5_000, 10_000);
    this.maxGapUs = opts.maxGapUs ?? 100_000;
    this.maxUs = opts.maxUs ?? 300_000;
  }

  private usToFrames(us: number): number {
    return Math.floor((us * this.sampleRate) / 1_000_000);
  }

  private framesToUs(frames: number): number {
    return Math.floor((frames * 1_000_000) / this.sampleRate);
  }

  /** Audio of the current generation buffered, µs. */
  bufferedUs(): number {
    return this.framesToUs(this.queued / this.channels);
  }

  private endOf(c: Chunk): number {
    return c.tsUs + this.framesToUs(c.pcm.length / this.channels);
  }

  /**
   * Learn that `generation` exists (its first frame arrived on the network), before its audio is
   * decoded. Returns false for a stale generation.
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

  /**
   * Add a decoded frame of interleaved samples stamped `tsUs` of `generation`. Frames are kept in
   * timestamp order and played against a playout position, not in arrival order: groups are read
   * concurrently, so a frame of group k+1 can arrive before the last frames of group k.
   */
  push(generation: number, tsUs: number, pcm: Float32Array): void {
    if (!this.announce(generation)) {
      this.stats.staleFrames += 1;
      return;
    }
    if (pcm.length === 0) return;
    const ch = this.channels;
    // Before the playout position: late; the part still ahead of it is kept.
    if (this.playing && this.posUs !== null) {
      const end = tsUs + this.framesToUs(pcm.length / ch);
      if (end <= this.posUs + SLACK_US) {
        this.stats.lateFrames += 1;
        return;
      }
      if (tsUs + SLACK_US < this.posUs) {
        const skip = Math.min(this.usToFrames(this.posUs - tsUs) * ch, pcm.length);
        pcm = pcm.subarray(skip);
        tsUs = this.posUs;
      }
    }
    // Insert in timestamp order; a frame overlapping one we have is a duplicate.
    let at = this.queue.length;
    while (at > 0 && this.queue[at - 1].tsUs >= tsUs) at--;
    const end = tsUs + this.framesToUs(pcm.length / ch);
    const prev = this.queue[at - 1];
    const next = this.queue[at];
    if ((prev && this.endOf(prev) > tsUs + SLACK_US) || (next && next.tsUs + SLACK_US < end) || (at === 0 && next && next.offset > 0)) {
      this.stats.lateFrames += 1;
      return;
    }
    this.queue.splice(at, 0, { tsUs, pcm, offset: 0 });
    this.queued += pcm.length;
    this.cap();
  }

  /** Skip the oldest audio when more than `maxUs` is buffered while playing. */
  private cap(): void {
    if (!this.playing || this.bufferedUs() <= this.maxUs) return;
    const excess = this.usToFrames(this.bufferedUs() - this.targetUs) * this.channels;
    this.stats.skippedFrames += this.drain(excess).length / this.channels;
  }

  /** A newer generation: fade out what is audible, drop the rest, reset the anchor. */
  private cutTo(generation: number): void {
    const ch = this.channels;
    const from = this.generation;
    let fadeFrames = 0;
    // A fade still running from an earlier cut keeps running (it is already going to zero).
    if (this.playing && this.queued > 0 && this.fadePos >= this.fade.length) {
      fadeFrames = Math.min(this.usToFrames(this.fadeUs), this.queued / ch);
      this.fadeTs = this.frontTs();
      this.fadeGeneration = from ?? generation;
      const old = this.drain(fadeFrames * ch);
      const fade = new Float32Array(fadeFrames * ch);
      for (let f = 0; f < fadeFrames; f++) {
        const gain = 1 - (f + 1) / fadeFrames;
        for (let c = 0; c < ch; c++) fade[f * ch + c] = (old[f * ch + c] ?? 0) * gain;
      }
      this.fade = fade;
      this.fadePos = 0;
    }
    const droppedFrames = this.queued / ch;
    this.stats.flushedFrames += droppedFrames;
    this.queue = [];
    this.queued = 0;
    this.posUs = null;
    this.generation = generation;
    this.playing = false;
    this.immediate = true;
    this.unstarted = generation;
    // Report the silence point of the newest cut (a cut that overtakes another replaces it).
    const pendingFade = this.fade.length - this.fadePos;
    this.pendingCut = { from, to: generation, fadeFrames: Math.max(fadeFrames, pendingFade / ch), droppedFrames };
  }

  private frontTs(): number {
    const c = this.queue[0];
    return c ? c.tsUs + this.framesToUs(c.offset / this.channels) : (this.posUs ?? 0);
  }

  /** Take up to `n` interleaved samples from the front of the queue, updating `last`. */
  private drain(n: number): Float32Array {
    const out = new Float32Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.queue[0];
      if (!chunk) break;
      const take = Math.min(chunk.pcm.length - chunk.offset, n - filled);
      out.set(chunk.pcm.subarray(chunk.offset, chunk.offset + take), filled);
      filled += take;
      chunk.offset += take;
      this.posUs = chunk.tsUs + this.framesToUs(chunk.offset / this.channels);
      this.last = { generation: this.generation ?? 0, tsUs: this.posUs };
      if (chunk.offset === chunk.pcm.length) this.queue.shift();
    }
    this.queued -= filled;
    return filled === n ? out : out.subarray(0, filled);
  }

  /** Render `out.length / channels` sample frames (interleaved) into `out`. */
  render(out: Float32Array): RenderResult {
    const ch = this.channels;
    const result: RenderResult = { audioFrames: 0 };
    let i = 0;
    // 1. The fade-out of a flushed generation.
    if (this.fadePos < this.fade.length) {
      const n = Math.min(this.fade.length - this.fadePos, out.length);
      out.set(this.fade.subarray(this.fadePos, this.fadePos + n), 0);
      this.fadePos += n;
      i = n;
      result.audioFrames += n / ch;
      this.last = { generation: this.fadeGeneration, tsUs: this.fadeTs + this.framesToUs((this.fadePos / ch) | 0) };
    }
    if (this.pendingCut && this.fadePos >= this.fade.length) {
      // The old generation is now silent (its fade ended at frame i / ch of this render).
      result.silentAt = { cut: this.pendingCut, frame: i / ch };
      this.pendingCut = null;
    }
    // 2. Start: at once after a cut, else once the target is buffered.
    if (!this.playing && this.generation !== null && this.queued > 0) {
      if (this.immediate || this.bufferedUs() >= this.targetUs) {
        this.playing = true;
        this.immediate = false;
      }
    }
    // 3. Audio of the current generation, against the playout position.
    while (this.playing && i < out.length) {
      const front = this.queue[0];
      if (!front) {
        this.stats.underruns += 1; // ran dry
        this.playing = false;
        break;
      }
      if (this.posUs === null) this.posUs = front.tsUs;
      if (front.offset === 0 && front.tsUs > this.posUs + SLACK_US) {
        const gap = front.tsUs - this.posUs;
        if (gap > this.maxGapUs) {
          this.posUs = front.tsUs; // a jump (the publisher restarted its timeline): close it up
          continue;
        }
        // A frame that never came: silence in its place.
        const n = Math.min(Math.max(this.usToFrames(gap), 1) * ch, out.length - i);
        out.fill(0, i, i + n);
        this.posUs += this.framesToUs(n / ch);
        i += n;
        continue;
      }
      const audio = this.drain(out.length - i);
      out.set(audio, i);
      if (this.unstarted !== null && this.unstarted === this.generation) {
        result.started = { generation: this.unstarted, frame: i / ch };
        this.unstarted = null;
      }
      i += audio.length;
      result.audioFrames += audio.length / ch;
    }
    // 4. Silence for the rest.
    if (i < out.length) out.fill(0, i);
    this.stats.renderedFrames += result.audioFrames;
    return result;
  }

  /** Forget everything (the bot went away). */
  reset(): void {
    this.generation = null;
    this.playing = false;
    this.immediate = false;
    this.queue = [];
    this.queued = 0;
    this.posUs = null;
    this.fade = new Float32Array(0);
    this.fadePos = 0;
    this.pendingCut = null;
    this.unstarted = null;
    this.last = null;
  }
}
