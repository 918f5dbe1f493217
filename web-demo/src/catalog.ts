// The hang catalog (`catalog.json`) of a moq-audio broadcast: one Opus rendition in the legacy
// container plus a root `moqAudio` section ({version, generationShift, frameMs}) that plain hang
// players ignore.

export const CATALOG_TRACK = "catalog.json";
export const AUDIO_TRACK = "audio";
export const TRANSCRIPT_TRACK = "transcript.json";
export const FEEDBACK_TRACK = "playout.json";
export const CONTROL_TRACK = "control.json";

export interface AudioRendition {
  codec: string;
  sampleRate: number;
  numberOfChannels: number;
  bitrate?: number;
  container?: { kind: string };
}

export interface MoqAudioSection {
  version: number;
  generationShift: number;
  frameMs: number;
  /** The publisher's pacing lead (ms): a listener holds about lead + its jitter target. */
  leadMs?: number;
}

export interface Catalog {
  audio?: { renditions?: Record<string, AudioRendition> };
  moqAudio?: MoqAudioSection;
  [section: string]: unknown;
}

/** What the player needs to subscribe to and decode the bot's voice. */
export interface AudioDescription {
  track: string;
  codec: "opus";
  sampleRate: number;
  channels: number;
  /** `undefined` for a plain hang publisher: everything is generation 0. */
  generationShift: number | undefined;
  frameMs: number;
  leadMs: number | undefined;
}

/** Pick the Opus rendition in the legacy container; throws with a readable reason otherwise. */
export function describe(catalog: Catalog): AudioDescription {
  const renditions = catalog.audio?.renditions ?? {};
  for (const [track, r] of Object.entries(renditions)) {
    const kind = r.container?.kind ?? "legacy"; // hang's default container
    if (r.codec !== "opus" || kind !== "legacy") continue;
    if (!(r.sampleRate > 0) || !(r.numberOfChannels > 0)) continue;
    return {
      track,
      codec: "opus",
      sampleRate: r.sampleRate,
      channels: r.numberOfChannels,
      generationShift: catalog.moqAudio?.generationShift,
      frameMs: catalog.moqAudio?.frameMs ?? 20,
      leadMs: catalog.moqAudio?.leadMs,
    };
  }
  throw new Error("the catalog has no Opus rendition in the legacy container");
}

/** The catalog the page publishes for its microphone broadcast. */
export function micCatalog(sampleRate: number, channels: number, bitrate: number, frameMs: number): Catalog {
  return {
    audio: {
      renditions: {
        [AUDIO_TRACK]: {
          codec: "opus",
          sampleRate,
          numberOfChannels: channels,
          bitrate,
          container: { kind: "legacy" },
        },
      },
    },
    // Generation 0 forever (sequences 0, 1, 2 ...): the microphone is never flushed.
    moqAudio: { version: 1, generationShift: 20, frameMs },
  };
}
