// The user's side: a broadcast `user` (overridable with ?user=) with a hang catalog, the
// microphone as Opus (`audio`: 48 kHz mono, 20 ms frames, 5 frames a group, sequences 0, 1, 2 ...)
// and `control.json` carrying {"type":"interrupt","time":<ms>} when the Interrupt button is clicked.
//
// Wire format: the page speaks the version of the bot it talks to. Against a v2 bot (catalog
// `moqAudio.version >= 2`, i.e. moq-audio with LOC) the microphone is published in v2: catalog
// container {"kind":"loc"} and `moqAudio` version 2, every frame a LOC frame with generation 0.
// Against a v1 bot (today's legacy-container servers, which cannot read LOC) it is published in
// v1: legacy container, `moqAudio` version 1. Until the bot's catalog has been read the catalog
// track stays empty (a subscriber waits for it) and microphone packets are not sent.
//
// Capture: getUserMedia (echo cancellation, noise suppression, AGC on) → the "moq-capture"
// AudioWorklet (20 ms blocks) → WebCodecs AudioEncoder (Opus) → groups on the track.

import { Broadcast, Path, Time, type Group, type Track } from "@moq/net";
import { AUDIO_TRACK, CATALOG_TRACK, CONTROL_TRACK, WIRE_VERSION, micCatalog, micCatalogV1 } from "./catalog";
import type { Established } from "./connection";
import { encodeLegacy } from "./container";
import { encodeLoc } from "./loc";
import { loadWorklet } from "./player";

export const MIC_RATE = 48_000;
export const MIC_FRAME_MS = 20;
export const MIC_GROUP_FRAMES = 5;
export const MIC_BITRATE = 32_000;

/**
 * How long the catalog's group stays available to new subscribers, ms. @moq/net keeps a track's
 * closed groups only for its `latencyMax` (default 5 s, also advertised to relays as the
 * retention), so with the default a consumer that subscribes to `user` more than 5 s after the
 * catalog was written (an agent that restarts, a second listener) would wait forever for it.
 */
export const CATALOG_RETENTION_MS = 24 * 3600 * 1000;

export type MicState = "off" | "starting" | "on" | "muted" | "unavailable";

/** The `user` broadcast: catalog, mic audio and control tracks on one connection. */
export class UserBroadcast {
  readonly path: string;
  /** Wire version the microphone is published in; null until the bot's catalog was read. */
  wireVersion: 1 | 2 | null = null;
  private broadcast = new Broadcast.Producer();
  private catalog: Track.Producer;
  private audio: Track.Producer;
  private control: Track.Producer;
  private group: Group.Producer | null = null;
  private groupFrames = 0;
  framesSent = 0;
  groupsSent = 0;
  controlSent = 0;

  constructor(connection: Established, path: string) {
    this.path = path;
    this.catalog = this.broadcast.createTrack(CATALOG_TRACK, { latencyMax: CATALOG_RETENTION_MS });
    this.audio = this.broadcast.createTrack(AUDIO_TRACK, { timescale: Time.Timescale.MICRO });
    this.control = this.broadcast.createTrack(CONTROL_TRACK);
    connection.publish(Path.from(path), this.broadcast);
  }

  /**
   * Publish the microphone in the wire version of the bot (`moqAudio.version` of its catalog; 0
   * for a plain hang bot, answered in v2). Writes the catalog when the version changes.
   */
  useWireVersion(botVersion: number): void {
    const version = botVersion === 1 ? 1 : WIRE_VERSION;
    if (version === this.wireVersion) return;
    this.endGroup();
    this.wireVersion = version;
    const make = version === 1 ? micCatalogV1 : micCatalog;
    this.catalog.writeJson(make(MIC_RATE, 1, MIC_BITRATE, MIC_FRAME_MS));
  }

  /** One encoded Opus packet at media time `timestampUs` (dropped until the version is known). */
  writeOpus(timestampUs: number, packet: Uint8Array): void {
    if (this.wireVersion === null) return;
    if (!this.group) {
      this.group = this.audio.appendGroup();
      this.groupFrames = 0;
      this.groupsSent += 1;
    }
    // The microphone is never flushed: generation 0 throughout.
    const payload = this.wireVersion === 1 ? encodeLegacy(timestampUs, packet) : encodeLoc({ timestampUs, generation: 0 }, packet);
    this.group.writeFrame({ payload, timestamp: Time.Timestamp.fromMicros(timestampUs) });
    this.framesSent += 1;
    this.groupFrames += 1;
    if (this.groupFrames >= MIC_GROUP_FRAMES) this.endGroup();
  }

  /** Close the open group (muting mid-group does not leave it dangling). */
  endGroup(): void {
    this.group?.close();
    this.group = null;
  }

  /** The user barged in: one group with one frame on `control.json`. */
  interrupt(): { type: "interrupt"; time: number } {
    const msg = { type: "interrupt" as const, time: Date.now() };
    this.control.writeJson(msg);
    this.controlSent += 1;
    return msg;
  }

  close(): void {
    this.endGroup();
    this.broadcast.close();
  }
}

/**
 * The microphone, captured and encoded once per page; its packets go to whichever
 * `UserBroadcast` is current (reconnects swap it).
 */
export class Mic {
  state: MicState = "off";
  error: string | null = null;
  level = 0;
  sink: UserBroadcast | null = null;
  private stream: MediaStream | null = null;
  private encoder: AudioEncoder | null = null;
  private muted = false;
  onChange: () => void = () => {};

  constructor(private ctx: AudioContext) {}

  async start(): Promise<void> {
    if (this.state === "on" || this.state === "starting") return;
    this.set("starting");
    try {
      if (this.ctx.sampleRate !== MIC_RATE) throw new Error(`the AudioContext runs at ${this.ctx.sampleRate} Hz, not 48 kHz`);
      await loadWorklet(this.ctx);
      const config: AudioEncoderConfig = {
        codec: "opus",
        sampleRate: MIC_RATE,
        numberOfChannels: 1,
        bitrate: MIC_BITRATE,
        opus: { frameDuration: MIC_FRAME_MS * 1000 },
      };
      if (!(await AudioEncoder.isConfigSupported(config)).supported) throw new Error("this browser cannot encode Opus");
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      this.encoder = new AudioEncoder({
        output: (chunk) => {
          const packet = new Uint8Array(chunk.byteLength);
          chunk.copyTo(packet);
          if (!this.muted) this.sink?.writeOpus(chunk.timestamp, packet);
        },
        error: (e) => {
          this.error = String(e);
          this.set("unavailable");
        },
      });
      this.encoder.configure(config);

      const source = this.ctx.createMediaStreamSource(this.stream);
      const capture = new AudioWorkletNode(this.ctx, "moq-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        channelCount: 1,
        channelCountMode: "explicit",
        processorOptions: { frameSamples: (MIC_RATE * MIC_FRAME_MS) / 1000 },
      });
      // Pulled by the graph through a muted gain: the user must not hear themselves.
      const mute = new GainNode(this.ctx, { gain: 0 });
      source.connect(capture).connect(mute).connect(this.ctx.destination);
      capture.port.onmessage = (event: MessageEvent<{ samples: Float32Array<ArrayBuffer>; time: number }>) => {
        const { samples, time } = event.data;
        let sum = 0;
        for (const s of samples) sum += s * s;
        this.level = Math.sqrt(sum / samples.length);
        if (this.muted || !this.encoder || this.encoder.state !== "configured") return;
        const data = new AudioData({
          format: "f32-planar",
          sampleRate: MIC_RATE,
          numberOfFrames: samples.length,
          numberOfChannels: 1,
          timestamp: Math.round(time * 1e6),
          data: samples,
        });
        this.encoder.encode(data);
        data.close();
      };
      this.set("on");
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      this.set("unavailable");
    }
  }

  /** Mute or unmute; returns the new state. */
  toggle(): MicState {
    if (this.state === "on") {
      this.muted = true;
      this.sink?.endGroup();
      this.set("muted");
    } else if (this.state === "muted") {
      this.muted = false;
      this.set("on");
    }
    return this.state;
  }

  private set(state: MicState): void {
    this.state = state;
    this.onChange();
  }
}
