// The AudioWorklet processors (built by Vite as a separate module, loaded by player.ts):
// - "moq-player": renders the bot's voice from a generation-aware adaptive JitterBuffer and
//   reports, at least every 50 ms, what it actually rendered and the buffer's state (target,
//   measured jitter, delay, concealment); plus an event when each generation's first sample is
//   rendered and when the output went silent after a flush. Missing audio is concealed on the
//   decoded PCM (conceal.ts: WebCodecs has no packet loss concealment API).
// - "moq-capture": hands the microphone's samples to the main thread in 20 ms blocks.

import { PcmCodec } from "./conceal";
import { JitterBuffer, type JitterStats } from "./jitter";

// The AudioWorkletGlobalScope, which TypeScript's DOM lib does not describe.
declare const sampleRate: number;
declare const currentTime: number;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
  constructor(options?: unknown);
}
declare function registerProcessor(
  name: string,
  ctor: new (options: { processorOptions?: Record<string, unknown> }) => AudioWorkletProcessor,
): void;

/** Messages the main thread sends to "moq-player". */
export type PlayerIn =
  | {
      type: "config";
      channels: number;
      /** Start target, and its range, µs (JitterOptions defaults when absent). */
      targetUs?: number;
      minTargetUs?: number;
      maxTargetUs?: number;
      fadeUs?: number;
      /** The publisher's pacing lead (catalog leadMs), µs. */
      leadUs?: number;
    }
  | { type: "generation"; generation: number }
  | { type: "pcm"; generation: number; tsUs: number; samples: Float32Array }
  | { type: "reset" };

/** Messages "moq-player" posts back. Times are AudioContext times (s). */
export type PlayerOut =
  | {
      type: "status";
      time: number;
      generation: number | null;
      /** Generation of the last rendered sample (may be the faded one). */
      renderedGeneration: number | null;
      /** Media timestamp just past the last rendered sample, µs. */
      tsUs: number | null;
      playing: boolean;
      bufferedUs: number;
      bufferedSamples: number;
      rms: number;
      /** Counters and the adaptation's state: targetUs, jitterUs, peakUs, delayUs, concealedFrames... */
      stats: JitterStats;
    }
  | { type: "started"; generation: number; time: number }
  | {
      type: "flush";
      from: number | null;
      to: number;
      /** When the worklet learned of the new generation (its first frame arrived). */
      arrivedTime: number;
      /** When the output went silent: the end of the fade, or at once if nothing was audible. */
      silentTime: number;
      fadeMs: number;
      droppedMs: number;
    };

/** Quanta between status reports: 25 ms, so well within the 50 ms the page promises. */
const STATUS_EVERY_S = 0.025;

class PlayerProcessor extends AudioWorkletProcessor {
  private buffer = PlayerProcessor.makeBuffer({ type: "config", channels: 1 });
  private scratch = new Float32Array(128);
  private lastStatus = -1;
  private wasPlaying = false;
  private rms = 0;
  /** Time the newest pending cut was learned of, by generation. */
  private arrivals = new Map<number, number>();

  constructor() {
    super();
    this.port.onmessage = (event: MessageEvent<PlayerIn>) => this.onMessage(event.data);
  }

  private onMessage(msg: PlayerIn): void {
    switch (msg.type) {
      case "config":
        this.buffer = PlayerProcessor.makeBuffer(msg);
        break;
      case "generation":
        this.noteArrival(msg.generation);
        this.buffer.announce(msg.generation);
        break;
      case "pcm":
        this.noteArrival(msg.generation); // in case no early notice came
        this.buffer.push(msg.generation, msg.tsUs, msg.samples);
        break;
      case "reset":
        this.buffer.reset();
        this.arrivals.clear();
        break;
    }
  }

  private static makeBuffer(msg: Extract<PlayerIn, { type: "config" }>): JitterBuffer<Float32Array> {
    return new JitterBuffer(
      {
        sampleRate,
        channels: msg.channels,
        targetUs: msg.targetUs,
        minTargetUs: msg.minTargetUs,
        maxTargetUs: msg.maxTargetUs,
        fadeUs: msg.fadeUs,
        leadUs: msg.leadUs,
      },
      new PcmCodec(sampleRate, msg.channels),
    );
  }

  private noteArrival(generation: number): void {
    const current = this.buffer.generation;
    if (current !== null && generation > current && !this.arrivals.has(generation)) {
      this.arrivals.set(generation, currentTime);
    }
  }

  process(_inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const output = outputs[0];
    const frames = output[0]?.length ?? 128;
    const ch = this.buffer.channels;
    if (this.scratch.length !== frames * ch) this.scratch = new Float32Array(frames * ch);
    const result = this.buffer.render(this.scratch);

    // De-interleave into the output (a mono stream is up-mixed by the node's output).
    let sum = 0;
    for (let c = 0; c < output.length; c++) {
      const dst = output[c];
      const src = Math.min(c, ch - 1);
      for (let f = 0; f < frames; f++) dst[f] = this.scratch[f * ch + src];
    }
    for (let k = 0; k < this.scratch.length; k++) sum += this.scratch[k] * this.scratch[k];
    this.rms = Math.sqrt(sum / this.scratch.length);

    const quantumTime = currentTime;
    if (result.started) {
      this.post({ type: "started", generation: result.started.generation, time: quantumTime + result.started.frame / sampleRate });
    }
    if (result.silentAt) {
      const { cut, frame } = result.silentAt;
      const arrivedTime = this.arrivals.get(cut.to) ?? quantumTime;
      for (const g of [...this.arrivals.keys()]) if (g <= cut.to) this.arrivals.delete(g);
      this.post({
        type: "flush",
        from: cut.from,
        to: cut.to,
        arrivedTime,
        silentTime: quantumTime + frame / sampleRate,
        fadeMs: (cut.fadeFrames / sampleRate) * 1000,
        droppedMs: (cut.droppedFrames / sampleRate) * 1000,
      });
    }
    const playing = this.buffer.playing;
    if (playing !== this.wasPlaying || quantumTime - this.lastStatus >= STATUS_EVERY_S) {
      this.wasPlaying = playing;
      this.lastStatus = quantumTime;
      const last = this.buffer.last;
      this.post({
        type: "status",
        time: quantumTime + frames / sampleRate,
        generation: this.buffer.generation,
        renderedGeneration: last?.generation ?? null,
        tsUs: last?.tsUs ?? null,
        playing,
        bufferedUs: this.buffer.bufferedUs(),
        bufferedSamples: Math.round((this.buffer.bufferedUs() * sampleRate) / 1e6),
        rms: this.rms,
        stats: { ...this.buffer.stats },
      });
    }
    return true;
  }

  private post(msg: PlayerOut): void {
    this.port.postMessage(msg);
  }
}

/** Collects `frameSamples` mono samples (channel 0 of the input) and posts them as one block. */
class CaptureProcessor extends AudioWorkletProcessor {
  private block: Float32Array;
  private filled = 0;
  private blockStart = 0;

  constructor(options: { processorOptions?: Record<string, unknown> }) {
    super();
    const samples = Math.max(1, Number(options.processorOptions?.frameSamples ?? 960));
    this.block = new Float32Array(samples);
  }

  process(inputs: Float32Array[][]): boolean {
    const input = inputs[0]?.[0];
    if (!input) return true; // no source connected (yet)
    let read = 0;
    while (read < input.length) {
      if (this.filled === 0) this.blockStart = currentTime + read / sampleRate;
      const n = Math.min(input.length - read, this.block.length - this.filled);
      this.block.set(input.subarray(read, read + n), this.filled);
      this.filled += n;
      read += n;
      if (this.filled === this.block.length) {
        const block = this.block;
        const size = block.length; // read before the transfer detaches it (length becomes 0)
        this.port.postMessage({ samples: block, time: this.blockStart }, [block.buffer]);
        this.block = new Float32Array(size);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("moq-player", PlayerProcessor);
registerProcessor("moq-capture", CaptureProcessor);
