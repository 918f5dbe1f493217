// Unit tests of the LOC frame codec (src/loc.ts), the two containers (src/container.ts) and the
// catalog reader (src/catalog.ts). The byte vectors are built by hand from draft-ietf-moq-loc-04
// (varint(properties length) ‖ delta-coded KVPs ‖ payload; QUIC varints) and cross-checked with
// upstream's decoder, @moq/loc, which reads the timestamp and payload and skips our properties.
// Run: npm test (node --test tests/).

import assert from "node:assert/strict";
import { test } from "node:test";
import * as Loc from "@moq/loc";
import { Track } from "@moq/net";
import { importSrc } from "./bundle.mjs";

const { decodeLoc, encodeLoc, LocError, LocEvent, GENERATION_PROPERTY, EVENT_PROPERTY } = await importSrc("loc.ts");
const { decodeFrame, decodeLegacy, encodeLegacy, generationOf } = await importSrc("container.ts");
const { describe, micCatalog, micCatalogV1 } = await importSrc("catalog.ts");

const bytes = (...b) => Uint8Array.from(b);
const upstream = new Loc.Format();

// timestamp 1 000 000 µs, generation 3, payload AA BB:
//   0A                 properties length 10
//   10 | 80 0F 42 40   type 0x10 (timestamp), value 1 000 000 (4-byte varint 0x000F4240)
//   80 4D 40 F0 | 03   type delta 0x4D40F0 (0x4D4100 - 0x10 = generation), value 3
//   AA BB              payload
const AUDIO = bytes(0x0a, 0x10, 0x80, 0x0f, 0x42, 0x40, 0x80, 0x4d, 0x40, 0xf0, 0x03, 0xaa, 0xbb);
// Flush marker: timestamp 2 000 000 µs, generation 4, event 1, payload = Opus TOC 0x80 (mono
// CELT 2.5 ms, no data):
//   0C | 10 80 1E 84 80 | 80 4D 40 F0 04 | 02 01   (event: type delta 2 = 0x4D4102, value 1) | 80
const FLUSH = bytes(0x0c, 0x10, 0x80, 0x1e, 0x84, 0x80, 0x80, 0x4d, 0x40, 0xf0, 0x04, 0x02, 0x01, 0x80);
// Cancel marker: the same with generation 5, event 2.
const CANCEL = bytes(0x0c, 0x10, 0x80, 0x1e, 0x84, 0x80, 0x80, 0x4d, 0x40, 0xf0, 0x05, 0x02, 0x02, 0x80);
// A plain LOC publisher (upstream's encoder): only the timestamp.
const PLAIN = bytes(0x05, 0x10, 0x80, 0x0f, 0x42, 0x40, 0xaa, 0xbb);

test("an audio frame: timestamp, generation, payload", () => {
  const f = decodeLoc(AUDIO);
  assert.equal(f.timestampUs, 1_000_000);
  assert.equal(f.generation, 3);
  assert.equal(f.event, undefined);
  assert.deepEqual([...f.payload], [0xaa, 0xbb]);
  assert.equal(GENERATION_PROPERTY, 5062912);
  assert.equal(EVENT_PROPERTY, 5062914);
});

test("markers carry the event; a plain LOC frame has no generation", () => {
  const flush = decodeLoc(FLUSH);
  assert.deepEqual([flush.timestampUs, flush.generation, flush.event, [...flush.payload]], [2_000_000, 4, LocEvent.Flush, [0x80]]);
  const cancel = decodeLoc(CANCEL);
  assert.deepEqual([cancel.generation, cancel.event], [5, LocEvent.Cancel]);
  const plain = decodeLoc(PLAIN);
  assert.deepEqual([plain.timestampUs, plain.generation, plain.event, [...plain.payload]], [1_000_000, undefined, undefined, [0xaa, 0xbb]]);
});

test("the encoder writes exactly the hand-built bytes (minimal varints, ascending delta-coded types)", () => {
  assert.deepEqual([...encodeLoc({ timestampUs: 1_000_000, generation: 3 }, bytes(0xaa, 0xbb))], [...AUDIO]);
  assert.deepEqual([...encodeLoc({ timestampUs: 2_000_000, generation: 4, event: LocEvent.Flush }, bytes(0x80))], [...FLUSH]);
  assert.deepEqual([...encodeLoc({ timestampUs: 2_000_000, generation: 5, event: LocEvent.Cancel }, bytes(0x80))], [...CANCEL]);
  // Generation 0 is written too (the microphone): 0A 10 | 00 | 80 4D 40 F0 | 00 = 1+1+4+1 = 7 bytes of properties.
  assert.deepEqual([...encodeLoc({ timestampUs: 0, generation: 0 }, bytes(1))], [0x07, 0x10, 0x00, 0x80, 0x4d, 0x40, 0xf0, 0x00, 0x01]);
});

test("unknown properties are skipped, odd ones by their length; a timescale converts to µs", () => {
  // 10 | 40 64 (ts 100)  11 after it: delta 01, length 02, DE AD  |  generation: delta 0x4D40EF, value 7
  const props = [0x10, 0x40, 0x64, 0x01, 0x02, 0xde, 0xad, 0x80, 0x4d, 0x40, 0xef, 0x07];
  const f = decodeLoc(bytes(props.length, ...props, 0x55));
  assert.deepEqual([f.timestampUs, f.generation, [...f.payload]], [100, 7, [0x55]]);
  // 08 (timescale) 48 000 = 80 00 BB 80 | delta 8 → 0x10, timestamp 48 000: one second.
  const scaled = [0x08, 0x80, 0x00, 0xbb, 0x80, 0x08, 0x80, 0x00, 0xbb, 0x80];
  assert.equal(decodeLoc(bytes(scaled.length, ...scaled)).timestampUs, 1_000_000);
  // Draft-03's timestamp id 0x06 is read as a timestamp (as upstream does).
  assert.equal(decodeLoc(bytes(0x02, 0x06, 0x2a)).timestampUs, 42);
  // An 8-byte generation (2^40).
  const big = encodeLoc({ timestampUs: 5, generation: 2 ** 40 }, bytes());
  assert.equal(decodeLoc(big).generation, 2 ** 40);
});

test("property ids come from the catalog when it names others", () => {
  const ids = { generation: 0x20, event: 0x22 };
  const frame = encodeLoc({ timestampUs: 7, generation: 9, event: 1 }, bytes(3), ids);
  assert.deepEqual([...frame.subarray(0, 8)], [0x06, 0x10, 0x07, 0x10, 0x09, 0x02, 0x01, 0x03]);
  const f = decodeLoc(frame, ids);
  assert.deepEqual([f.generation, f.event], [9, 1]);
  assert.equal(decodeLoc(frame).generation, undefined, "with the default ids these are unknown properties");
});

test("malformed frames throw LocError", () => {
  const bad = {
    empty: bytes(),
    "properties longer than the frame": bytes(0x05, 0x10, 0x01),
    "truncated value": bytes(0x02, 0x10, 0x80),
    "no timestamp (only a generation)": bytes(0x05, 0x80, 0x4d, 0x41, 0x00, 0x00),
    "odd property past the block": bytes(0x04, 0x10, 0x01, 0x01, 0x05),
    "timescale 0": bytes(0x04, 0x08, 0x00, 0x08, 0x01),
  };
  for (const [what, frame] of Object.entries(bad)) {
    assert.throws(() => decodeLoc(frame), LocError, what);
  }
});

test("upstream @moq/loc reads our frames with the same timestamp and payload", () => {
  for (const frame of [AUDIO, FLUSH, CANCEL, PLAIN, encodeLoc({ timestampUs: 123_456_789, generation: 2 ** 33, event: 1 }, bytes(9, 8, 7))]) {
    const [theirs] = upstream.decode(frame);
    const ours = decodeLoc(frame);
    assert.equal(theirs.timestamp, ours.timestampUs);
    assert.deepEqual([...theirs.payload], [...ours.payload]);
  }
});

test("we read what upstream's @moq/loc Producer writes (generation absent = plain publisher)", async () => {
  const track = new Track.Producer("audio");
  const sub = track.subscribe();
  const producer = new Loc.Producer(track);
  producer.encode(bytes(0xfc, 0x01), 20_000, true);
  producer.encode(bytes(0xfc, 0x02), 40_000, false);
  producer.close();
  const group = await sub.recvGroup();
  const frames = [];
  for (let f = await group.readFrame(); f; f = await group.readFrame()) frames.push(decodeLoc(f.payload));
  assert.deepEqual(
    frames.map((f) => [f.timestampUs, f.generation, [...f.payload]]),
    [
      [20_000, undefined, [0xfc, 0x01]],
      [40_000, undefined, [0xfc, 0x02]],
    ],
  );
});

test("legacy container: varint timestamp ‖ payload, both ways; decodeFrame picks the container", () => {
  const legacy = encodeLegacy(1_000_000, bytes(0xaa, 0xbb));
  assert.deepEqual([...legacy], [0x80, 0x0f, 0x42, 0x40, 0xaa, 0xbb]);
  assert.deepEqual([decodeLegacy(legacy).timestampUs, [...decodeLegacy(legacy).payload]], [1_000_000, [0xaa, 0xbb]]);
  assert.equal(decodeFrame("legacy", legacy).generation, undefined);
  assert.equal(decodeFrame("loc", AUDIO).generation, 3);
  assert.throws(() => decodeLegacy(bytes(0x80, 0x01)), RangeError);
  // v1: generation = sequence >> 20 (sequences beyond 2^32 too); no section: 0.
  assert.equal(generationOf(3 * 2 ** 20 + 7, 20), 3);
  assert.equal(generationOf(5000 * 2 ** 20, 20), 5000);
  assert.equal(generationOf(3 * 2 ** 20, undefined), 0);
});

const v2 = {
  audio: { renditions: { audio: { codec: "opus", sampleRate: 24000, numberOfChannels: 1, container: { kind: "loc" } } } },
  moqAudio: { version: 2, frameMs: 20, leadMs: 60, generationProperty: 5062912, eventProperty: 5062914 },
};
const v1 = {
  audio: { renditions: { audio: { codec: "opus", sampleRate: 24000, numberOfChannels: 1, container: { kind: "legacy" } } } },
  moqAudio: { version: 1, generationShift: 20, frameMs: 20 },
};

test("catalog: v2 reads generations from frames, v1 from sequences, plain hang is generation 0", () => {
  const d2 = describe(v2);
  assert.deepEqual([d2.track, d2.container, d2.wireVersion, d2.sampleRate, d2.leadMs], ["audio", "loc", 2, 24000, 60]);
  assert.deepEqual(d2.generation, { kind: "frame", properties: { generation: 5062912, event: 5062914 } });
  const d1 = describe(v1);
  assert.deepEqual([d1.container, d1.wireVersion, d1.generation], ["legacy", 1, { kind: "sequence", shift: 20 }]);
  // A v2 catalog never uses the sequence, even if it still names a shift.
  assert.equal(describe({ ...v2, moqAudio: { ...v2.moqAudio, generationShift: 20 } }).generation.kind, "frame");
  // Plain hang publishers, either container (hang's default container is legacy).
  const plain = describe({ audio: { renditions: { a: { codec: "opus", sampleRate: 48000, numberOfChannels: 2 } } } });
  assert.deepEqual([plain.track, plain.container, plain.wireVersion, plain.generation.kind, plain.channels], ["a", "legacy", 0, "frame", 2]);
  // LOC preferred when both are offered; other codecs and containers are skipped.
  const both = describe({
    audio: {
      renditions: {
        aac: { codec: "mp4a.40.2", sampleRate: 48000, numberOfChannels: 2 },
        cmaf: { codec: "opus", sampleRate: 48000, numberOfChannels: 2, container: { kind: "cmaf" } },
        old: { codec: "opus", sampleRate: 48000, numberOfChannels: 1, container: { kind: "legacy" } },
        new: { codec: "opus", sampleRate: 48000, numberOfChannels: 1, container: { kind: "loc" } },
      },
    },
  });
  assert.equal(both.track, "new");
  assert.throws(() => describe({ audio: { renditions: { v: { codec: "mp4a.40.2", sampleRate: 48000, numberOfChannels: 2 } } } }), /no Opus rendition/);
  assert.throws(() => describe({}), /no Opus rendition/);
});

test("the microphone's catalogs: v2 (LOC, generation property) and v1 (legacy)", () => {
  const mic = micCatalog(48000, 1, 32000, 20);
  assert.deepEqual(mic.audio.renditions.audio.container, { kind: "loc" });
  assert.deepEqual(mic.moqAudio, { version: 2, frameMs: 20, leadMs: 0, generationProperty: 5062912, eventProperty: 5062914 });
  assert.equal(describe(mic).generation.kind, "frame");
  const old = micCatalogV1(48000, 1, 32000, 20);
  assert.deepEqual(old.audio.renditions.audio.container, { kind: "legacy" });
  assert.deepEqual(describe(old).generation, { kind: "sequence", shift: 20 });
});
