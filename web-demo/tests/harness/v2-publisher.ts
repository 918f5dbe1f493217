// A wire-format-v2 test publisher that runs in Chromium (tests/test_browser.py injects it into the
// listener page as a bundled <script type="module">). It publishes a broadcast the way the Rust
// producer does in v2 (README/CONTEXT: LOC frames with timestamp + generation, contiguous group
// sequences, 5 Opus frames a group, a one-frame marker group with event 1 at each flush, event 2
// at cancel followed by a clean end of the track), with a pure tone per generation so the test
// can check from the page's audio output which generation it hears and at what pitch.
// Opus comes from WebCodecs' AudioEncoder; transport from @moq/net. Not part of the page.

import { Broadcast, Connection, Path, Time, type Group } from "@moq/net";
import { LocEvent, decodeLoc, encodeLoc } from "../../src/loc";

export interface Segment {
  /** Tone of this generation, Hz. */
  hz: number;
  /** How long this generation is sent (real time, ms) before the next flush / the end. */
  ms: number;
}

export interface PublishOptions {
  url: string;
  broadcast: string;
  sampleRate: number;
  channels: number;
  /** One per generation (0, 1, 2 ...), each ended by a flush except the last. */
  segments: Segment[];
  /** How the last generation ends: a cancel marker, or finishing the track. */
  end: "cancel" | "finish";
  /** Pacing lead, ms (audio written ahead of real time). Default 60. */
  leadMs?: number;
}

export interface PublishResult {
  framesSent: number;
  groups: number;
  /** performance.now() at which each marker group was written (index = generation - 1). */
  markerAt: number[];
}

const FRAME_MS = 20;
const GROUP_FRAMES = 5;

/** Encode `ms` of a sine at `hz` (continuing at `phase` frames) into 20 ms Opus packets. */
async function encodeTone(rate: number, channels: number, hz: number, frames: number, startTs: number): Promise<Uint8Array[]> {
  const packets: Uint8Array[] = [];
  const encoder = new AudioEncoder({
    output: (chunk) => {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      packets.push(data);
    },
    error: (e) => {
      throw e;
    },
  });
  encoder.configure({ codec: "opus", sampleRate: rate, numberOfChannels: channels, bitrate: 64_000, opus: { frameDuration: FRAME_MS * 1000 } });
  const n = (rate * FRAME_MS) / 1000;
  for (let k = 0; k < frames; k++) {
    const pcm = new Float32Array(n * channels);
    for (let i = 0; i < n; i++) {
      const s = 0.3 * Math.sin((2 * Math.PI * hz * (k * n + i)) / rate);
      for (let c = 0; c < channels; c++) pcm[c * n + i] = s;
    }
    const data = new AudioData({ format: "f32-planar", sampleRate: rate, numberOfFrames: n, numberOfChannels: channels, timestamp: startTs + k * FRAME_MS * 1000, data: pcm });
    encoder.encode(data);
    data.close();
  }
  await encoder.flush();
  encoder.close();
  return packets;
}

const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));

export async function publish(o: PublishOptions): Promise<PublishResult> {
  const lead = o.leadMs ?? 60;
  const connection = await Connection.connect(new URL(o.url), { signal: AbortSignal.timeout(10_000) });
  const broadcast = new Broadcast.Producer();
  const catalog = broadcast.createTrack("catalog.json");
  catalog.writeJson({
    audio: { renditions: { audio: { codec: "opus", sampleRate: o.sampleRate, numberOfChannels: o.channels, container: { kind: "loc" } } } },
    moqAudio: { version: 2, frameMs: FRAME_MS, leadMs: lead, generationProperty: 0x4d4100, eventProperty: 0x4d4102 },
  });
  const audio = broadcast.createTrack("audio", { timescale: Time.Timescale.MICRO });
  connection.publish(Path.from(o.broadcast), broadcast);

  const result: PublishResult = { framesSent: 0, groups: 0, markerAt: [] };
  let group: Group.Producer | null = null;
  let groupFrames = 0;
  let ts = 0; // µs, monotonic over the whole track
  const start = performance.now() + 500; // give the listener time to subscribe
  let sent = 0; // frames of real time elapsed at `start`
  const marker = (generation: number, event: number) => {
    group?.close(new Error("flushed")); // RESET the old generation's open group
    group = null;
    const g = audio.appendGroup();
    const toc = o.channels === 1 ? 0x80 : 0x84; // CELT 2.5 ms, zero-length frame: "no data"
    g.writeFrame({ payload: encodeLoc({ timestampUs: ts, generation, event }, Uint8Array.of(toc)), timestamp: Time.Timestamp.fromMicros(ts) });
    g.close();
    result.groups += 1;
    result.markerAt.push(performance.now());
  };

  for (const [generation, seg] of o.segments.entries()) {
    if (generation > 0) marker(generation, LocEvent.Flush);
    const frames = Math.ceil(seg.ms / FRAME_MS);
    const packets = await encodeTone(o.sampleRate, o.channels, seg.hz, frames, ts);
    const segStart = sent;
    for (const packet of packets) {
      // Paced: frame k goes out `lead` ms before it is due.
      await sleepUntil(start + sent * FRAME_MS - lead);
      if (!group) {
        group = audio.appendGroup();
        groupFrames = 0;
        result.groups += 1;
      }
      group.writeFrame({ payload: encodeLoc({ timestampUs: ts, generation }, packet), timestamp: Time.Timestamp.fromMicros(ts) });
      ts += FRAME_MS * 1000;
      sent += 1;
      result.framesSent += 1;
      if (++groupFrames >= GROUP_FRAMES) {
        group.close();
        group = null;
      }
      if ((sent - segStart) * FRAME_MS >= seg.ms) break;
    }
  }
  if (o.end === "cancel") {
    marker(o.segments.length, LocEvent.Cancel);
    audio.close();
  } else {
    (group as Group.Producer | null)?.close();
    audio.close();
  }
  // Let the relay deliver the end before the connection goes.
  await sleepUntil(performance.now() + 1000);
  broadcast.close();
  connection.close();
  return result;
}

export interface MicReport {
  catalog: unknown;
  /** The first `frames` frames of the `audio` track, LOC-decoded. */
  frames: Array<{ group: number; timestampUs: number; generation: number | undefined; event: number | undefined; bytes: number }>;
  /** How many of them WebCodecs decoded as Opus (sample rate of the output). */
  decoded: number;
  decodedRate: number;
}

/** Subscribe to the page's microphone broadcast and read `frames` frames of it as LOC. */
export async function readMic(o: { url: string; broadcast: string; frames: number }): Promise<MicReport> {
  const connection = await Connection.connect(new URL(o.url), { signal: AbortSignal.timeout(10_000) });
  const progress = { stage: "announce", frames: 0 };
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`readMic: no ${o.frames} frames of ${o.broadcast} in 10 s (${JSON.stringify(progress)})`)), 10_000),
  );
  try {
    return await Promise.race([readMicOn(connection, o, progress), timeout]);
  } finally {
    connection.close();
  }
}

async function readMicOn(
  connection: Connection.Established,
  o: { broadcast: string; frames: number },
  progress: { stage: string; frames: number },
): Promise<MicReport> {
  {
    // Wait for the announcement (consume() before it would not find the broadcast).
    const watch = connection.announcedBroadcast(Path.from(o.broadcast));
    const broadcast =
      watch.active.peek() ??
      (await new Promise<NonNullable<ReturnType<typeof watch.active.peek>>>((resolve) => {
        const unsubscribe = watch.active.subscribe((b) => {
          if (b) {
            unsubscribe();
            resolve(b);
          }
        });
      }));
    progress.stage = "catalog";
    const catalogTrack = broadcast.subscribe("catalog.json");
    const catalog = await catalogTrack.readJson();
    catalogTrack.close();
    const report: MicReport = { catalog, frames: [], decoded: 0, decodedRate: 0 };
    const decoder = new AudioDecoder({
      output: (data) => {
        report.decoded += 1;
        report.decodedRate = data.sampleRate;
        data.close();
      },
      error: () => {},
    });
    decoder.configure({ codec: "opus", sampleRate: 48_000, numberOfChannels: 1 });
    progress.stage = "audio";
    const track = broadcast.subscribe("audio");
    while (report.frames.length < o.frames) {
      const frame = await track.readFrameSequence();
      if (!frame) break;
      const loc = decodeLoc(frame.payload);
      progress.frames += 1;
      report.frames.push({ group: frame.group, timestampUs: loc.timestampUs, generation: loc.generation, event: loc.event, bytes: loc.payload.byteLength });
      decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: loc.timestampUs, data: loc.payload }));
    }
    track.close();
    await decoder.flush();
    decoder.close();
    watch.close();
    return report;
  }
}

(globalThis as { moqV2Publisher?: unknown }).moqV2Publisher = { publish, readMic };
