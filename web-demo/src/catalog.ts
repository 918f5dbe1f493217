// The hang catalog (`catalog.json`) of a moq-audio broadcast: one Opus rendition plus a root
// `moqAudio` section that plain hang players ignore. Two wire versions:
//
// - v2: container {"kind":"loc"}, `moqAudio` {version: 2, frameMs, leadMs, generationProperty,
//   eventProperty}: every LOC frame carries its generation (see loc.ts); group sequences are
//   contiguous and mean nothing about generations.
// - v1: container {"kind":"legacy"}, `moqAudio` {version: 1, generationShift, frameMs, leadMs}:
//   generation = group sequence >> generationShift.
//
// A plain hang publisher (no `moqAudio`) in either container is generation 0 throughout.
// Why this is our own code and not @moq/hang's catalog: see the note at the top of container.ts.

import type { ContainerKind } from "./container";
import { EVENT_PROPERTY, GENERATION_PROPERTY, type LocProperties } from "./loc";

export const CATALOG_TRACK = "catalog.json";
export const AUDIO_TRACK = "audio";
export const TRANSCRIPT_TRACK = "transcript.json";
export const FEEDBACK_TRACK = "playout.json";
export const CONTROL_TRACK = "control.json";

/** The wire version the page publishes (its microphone) and prefers to read. */
export const WIRE_VERSION = 2;

export interface AudioRendition {
  codec: string;
  sampleRate: number;
  numberOfChannels: number;
  bitrate?: number;
  container?: { kind: string };
}

export interface MoqAudioSection {
  version: number;
  frameMs: number;
  /** v1 only: generation = group sequence >> generationShift. */
  generationShift?: number;
  /** The publisher's pacing lead (ms): a listener holds about lead + its jitter target. */
  leadMs?: number;
  /** v2: LOC property id of the generation (5062912 = 0x4D4100). */
  generationProperty?: number;
  /** v2: LOC property id of the marker event (5062914 = 0x4D4102). */
  eventProperty?: number;
}

export interface Catalog {
  audio?: { renditions?: Record<string, AudioRendition> };
  moqAudio?: MoqAudioSection;
  [section: string]: unknown;
}

/**
 * Where a listener reads the generation from:
 * - "frame": the LOC generation property of each frame (v2; absent or legacy container: 0);
 * - "sequence": the group sequence >> `generationShift` (v1).
 */
export type GenerationSource = { kind: "frame"; properties: LocProperties } | { kind: "sequence"; shift: number };

/** What the player needs to subscribe to and decode the bot's voice. */
export interface AudioDescription {
  track: string;
  codec: "opus";
  sampleRate: number;
  channels: number;
  container: ContainerKind;
  /** `moqAudio.version`, 0 for a plain hang publisher. */
  wireVersion: number;
  generation: GenerationSource;
  frameMs: number;
  leadMs: number | undefined;
}

const CONTAINERS: readonly string[] = ["loc", "legacy"];

/**
 * Pick the Opus rendition (LOC preferred over legacy when a catalog offers both) and where its
 * generation comes from; throws with a readable reason when there is none.
 */
export function describe(catalog: Catalog): AudioDescription {
  const renditions = Object.entries(catalog.audio?.renditions ?? {}).filter(
    ([, r]) => r.codec === "opus" && r.sampleRate > 0 && r.numberOfChannels > 0 && CONTAINERS.includes(r.container?.kind ?? "legacy"),
  );
  renditions.sort(([, a], [, b]) => CONTAINERS.indexOf(a.container?.kind ?? "legacy") - CONTAINERS.indexOf(b.container?.kind ?? "legacy"));
  const found = renditions[0];
  if (!found) throw new Error("the catalog has no Opus rendition in the loc or legacy container");
  const [track, r] = found;
  const container = (r.container?.kind ?? "legacy") as ContainerKind; // hang's default container
  const section = catalog.moqAudio;
  const wireVersion = section?.version ?? 0;
  const generation: GenerationSource =
    wireVersion < 2 && section?.generationShift !== undefined
      ? { kind: "sequence", shift: section.generationShift }
      : {
          kind: "frame",
          properties: {
            generation: section?.generationProperty ?? GENERATION_PROPERTY,
            event: section?.eventProperty ?? EVENT_PROPERTY,
          },
        };
  return {
    track,
    codec: "opus",
    sampleRate: r.sampleRate,
    channels: r.numberOfChannels,
    container,
    wireVersion,
    generation,
    frameMs: section?.frameMs ?? 20,
    leadMs: section?.leadMs,
  };
}

/** The catalog the page publishes for its microphone broadcast (wire format v2, generation 0). */
export function micCatalog(sampleRate: number, channels: number, bitrate: number, frameMs: number): Catalog {
  return {
    audio: {
      renditions: {
        [AUDIO_TRACK]: {
          codec: "opus",
          sampleRate,
          numberOfChannels: channels,
          bitrate,
          container: { kind: "loc" },
        },
      },
    },
    // The microphone is never flushed: every frame is generation 0.
    moqAudio: {
      version: WIRE_VERSION,
      frameMs,
      leadMs: 0,
      generationProperty: GENERATION_PROPERTY,
      eventProperty: EVENT_PROPERTY,
    },
  };
}

/**
 * The microphone's catalog in wire format v1 (legacy container, sequences 0, 1, 2 ... =
 * generation 0), for bots that speak v1 only.
 */
export function micCatalogV1(sampleRate: number, channels: number, bitrate: number, frameMs: number): Catalog {
  return {
    audio: {
      renditions: {
        [AUDIO_TRACK]: { codec: "opus", sampleRate, numberOfChannels: channels, bitrate, container: { kind: "legacy" } },
      },
    },
    moqAudio: { version: 1, generationShift: 20, frameMs },
  };
}
