// The page: wires connection, player, feedback and microphone together, draws the UI and
// exposes everything on `window.moqAudio` for tests (shape documented in README.md).
//
// URL parameters: ?url=URL (server or relay; default: this page's origin; ?relay= is the older
// name), ?token=JWT (sent as ?jwt= on the connect URL, never shown), ?broadcast=bot, ?user=user,
// ?id=web-xxxx (listener id), ?autostart=1, ?transport=webtransport|websocket, ?mic=0,
// ?maxLatency=ms, ?contextRate=Hz (the AudioContext's initial rate; tests use it to exercise the
// move to the decoder's rate).

import { Path } from "@moq/net";
import { CATALOG_TRACK, TRANSCRIPT_TRACK, describe, type AudioDescription, type Catalog } from "./catalog";
import { connect, redact, serverTarget, type Established, type ServerTarget } from "./connection";
import { Feedback, randomListenerId } from "./feedback";
import { MIC_RATE, Mic, UserBroadcast } from "./mic";
import { Player, type EndReason } from "./player";
import type { PlayerOut } from "./worklet";

type Status = Extract<PlayerOut, { type: "status" }>;

export interface FlushRecord {
  from: number | null;
  to: number;
  /** Worklet-measured: the new generation's first frame reached the worklet → output silent. */
  flushToSilenceMs: number;
  /**
   * From the page receiving that frame off the network (performance.now()) to the silent sample
   * reaching the speaker (AudioContext.getOutputTimestamp(), so output latency included).
   */
  networkToSilenceMs: number;
  fadeMs: number;
  /** Old audio that was buffered but never played. */
  droppedMs: number;
  /** AudioContext time (s) at which the output went silent. */
  silentTime: number;
  /** Wall clock (ms since epoch) of the measurement. */
  at: number;
}

export interface TimelineEntry {
  /** ms since the page loaded. */
  t: number;
  kind: string;
  text: string;
}

const params = new URLSearchParams(location.search);
const botPath = params.get("broadcast") ?? "bot";
const userPath = params.get("user") ?? "user";
const listenerId = params.get("id") ?? randomListenerId();
const forcedTransport = params.get("transport") as "webtransport" | "websocket" | null;
const wantMic = params.get("mic") !== "0";
const maxLatencyMs = params.has("maxLatency") ? Number(params.get("maxLatency")) : undefined;
const contextRate = params.has("contextRate") ? Number(params.get("contextRate")) : 48_000;
let target: ServerTarget | null = null;
let targetError: string | null = null;
try {
  target = serverTarget(params);
} catch (e) {
  targetError = e instanceof Error ? e.message : String(e);
}

const state = {
  connection: "idle" as "idle" | "connecting" | "connected" | "closed" | "failed",
  transport: null as string | null,
  version: null as string | null,
  /** The server or relay the page connects to, without the token. */
  server: target?.url.toString() ?? "",
  /** Same as `server` (the older name). */
  relay: target?.url.toString() ?? "",
  /** Whether a token is sent (its value is never exposed). */
  token: target?.token ? true : false,
  broadcast: botPath,
  user: userPath,
  listenerId,
  feedbackPath: `${botPath}/listeners/${listenerId}`,
  error: null as string | null,
  attempts: 0,
  audioContext: "none" as AudioContextState | "none",
  sampleRate: 0,
  /** AudioContext.baseLatency + outputLatency, ms: what the speaker adds after the worklet. */
  outputLatencyMs: 0,
  decodedSampleRate: 0,
  bot: "offline" as "offline" | "online" | "playing",
  /** How the bot's audio track last ended: "finished", "cancelled" (v2 cancel marker), "stopped". */
  botEnd: null as EndReason | null,
  catalog: null as AudioDescription | null,
  /** Newest generation seen on the network. */
  networkGeneration: null as number | null,
  /** Generation the worklet plays (or waits for). */
  generation: null as number | null,
  /** Generation of the last rendered sample. */
  renderedGeneration: null as number | null,
  /** Media timestamp (µs) just past the last rendered sample. */
  tsUs: null as number | null,
  playing: false,
  bufferedMs: 0,
  /** The adaptive jitter buffer: its target delay, the measured jitter (99.5th percentile of the
   * relative arrival delay), the loss-recovery peak in effect and the current playout delay (ms). */
  targetMs: 0,
  jitterMs: 0,
  peakMs: 0,
  delayMs: 0,
  /** Audio concealed (missing at its playout time), ms, and times playout ran dry. */
  concealedMs: 0,
  underruns: 0,
  level: 0,
  renderedGenerations: [] as number[],
  mic: "off" as string,
  micError: null as string | null,
  micFrames: 0,
  micGroups: 0,
  /** Wire version the microphone is published in (the bot's), null until the bot's catalog. */
  micWireVersion: null as number | null,
  transcript: "",
  transcriptGeneration: null as number | null,
};

const moqAudio = {
  ready: false,
  state,
  flushes: [] as FlushRecord[],
  timeline: [] as TimelineEntry[],
  /** Context time (s) at which each generation's first sample was rendered. */
  generationStarts: {} as Record<number, number>,
  feedbackSent: 0,
  lastFeedback: null as unknown,
  controlSent: 0,
  counters: {} as Record<string, number>,
  workletStats: null as Status["stats"] | null,
  start: () => start(),
  interrupt: () => interrupt(),
  toggleMic: () => toggleMic(),
  /** Frequency (Hz) of the loudest component of what the page outputs now, or null if silent. */
  peakHz: () => peakHz(),
};
declare global {
  interface Window {
    moqAudio: typeof moqAudio;
  }
}
window.moqAudio = moqAudio;

// ---- UI helpers -----------------------------------------------------------------------------

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** The jitter buffer's numbers next to "buffered" in the voice card: target, jitter, concealed. */
function addBufferNumbers(): void {
  const after = $("buffered")?.parentElement;
  if (!after) return;
  let at: Element = after;
  for (const [id, label, title] of [
    ["target", "target", "the adaptive jitter buffer's target delay"],
    ["jitter", "jitter", "measured jitter: the relative arrival delay 99.5 % of packets stay under"],
    ["concealed", "concealed", "audio concealed because it was missing at its playout time"],
  ]) {
    if (document.getElementById(id)) continue;
    const div = document.createElement("div");
    div.title = title;
    div.innerHTML = `<span class="label">${label}</span><span id="${id}" class="big">–</span><span class="unit">ms</span>`;
    at.after(div);
    at = div;
  }
}
addBufferNumbers();
const t0 = performance.now();

function log(kind: string, text: string): void {
  const entry = { t: performance.now() - t0, kind, text };
  moqAudio.timeline.push(entry);
  if (moqAudio.timeline.length > 500) moqAudio.timeline.shift();
  const li = document.createElement("li");
  li.className = kind;
  li.innerHTML = `<span class="t">${(entry.t / 1000).toFixed(3)} s</span> `;
  li.append(document.createTextNode(`${kind}: ${text}`));
  const list = $("timeline");
  list.prepend(li);
  while (list.children.length > 200) list.lastElementChild?.remove();
}

function setConnection(s: typeof state.connection, detail?: string): void {
  state.connection = s;
  const pill = $("conn-state");
  pill.textContent = detail ? `${s} (${detail})` : s;
  pill.className = `pill ${s}`;
}

function addFlushRow(f: FlushRecord): void {
  const body = $("flush-rows");
  body.querySelector(".empty")?.remove();
  const tr = document.createElement("tr");
  const cls = f.flushToSilenceMs <= 12 ? "fast" : "slow";
  const cells = [
    String(moqAudio.flushes.length),
    `${f.from ?? "–"} → ${f.to}`,
    `${f.flushToSilenceMs.toFixed(1)} ms`,
    `${f.networkToSilenceMs.toFixed(1)} ms`,
    `${f.fadeMs.toFixed(1)} ms`,
    `${f.droppedMs.toFixed(0)} ms`,
    new Date(f.at).toLocaleTimeString(),
  ];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 2) td.className = cls;
    tr.append(td);
  });
  body.prepend(tr);
}

function renderText(): void {
  $("transport").textContent = state.transport ?? "–";
  $("protocol").textContent = state.version ?? "–";
  $("server").textContent = state.server + (state.token ? " (with token)" : "");
  $("broadcast").textContent = `${state.broadcast} (${state.bot})`;
  $("listener").textContent = state.feedbackPath;
  $("feedback").textContent = `${moqAudio.feedbackSent} reports`;
  $("mic-state").textContent =
    state.mic + (state.micError ? ` – ${state.micError}` : state.mic === "on" ? ` – ${state.micFrames} frames` : "");
  $("generation").textContent = state.generation === null ? "–" : String(state.generation);
  $("buffered").textContent = state.bufferedMs.toFixed(0);
  $("target").textContent = state.targetMs.toFixed(0);
  $("jitter").textContent = state.jitterMs.toFixed(0);
  $("concealed").textContent = state.concealedMs.toFixed(0);
  $("playing").textContent = state.playing ? "yes" : "no";
  $("heard").textContent = state.tsUs === null ? "–" : (state.tsUs / 1e6).toFixed(2);
  const c = moqAudio.counters;
  const w = moqAudio.workletStats;
  $("audio-detail").textContent =
    `context ${state.audioContext} @ ${state.sampleRate} Hz, output latency ${state.outputLatencyMs.toFixed(0)} ms · decoder ${state.decodedSampleRate || "–"} Hz · ` +
    `frames ${c.framesReceived ?? 0} rx / ${c.framesDecoded ?? 0} decoded · stale dropped ${(c.staleFramesDropped ?? 0) + (w?.staleFrames ?? 0)}` +
    ` · stale groups ${c.staleGroupsSkipped ?? 0} · group resets ${c.groupErrors ?? 0} · underruns ${w?.underruns ?? 0}` +
    ` · jitter buffer: target ${state.targetMs.toFixed(0)} ms (jitter ${state.jitterMs.toFixed(0)} ms, loss-recovery peak ` +
    `${state.peakMs.toFixed(0)} ms), delay ${state.delayMs.toFixed(0)} ms, concealed ${state.concealedMs.toFixed(0)} ms`;
  const mic = $("mic");
  mic.textContent = `Mic: ${state.mic === "on" ? "on" : state.mic === "muted" ? "muted" : state.mic}`;
  mic.classList.toggle("on", state.mic === "on");
}

function drawScope(analyser: () => AnalyserNode): void {
  const canvas = $<HTMLCanvasElement>("scope");
  const g = canvas.getContext("2d")!;
  const data = new Float32Array(analyser().fftSize);
  const frame = () => {
    analyser().getFloatTimeDomainData(data);
    const { width, height } = canvas;
    g.fillStyle = "#0b1015";
    g.fillRect(0, 0, width, height);
    g.strokeStyle = "#2a3542";
    g.beginPath();
    g.moveTo(0, height / 2);
    g.lineTo(width, height / 2);
    g.stroke();
    g.strokeStyle = state.playing ? "#4fc3f7" : "#546e7a";
    g.lineWidth = 2;
    g.beginPath();
    for (let i = 0; i < data.length; i++) {
      const x = (i / (data.length - 1)) * width;
      const y = height / 2 - data[i] * (height / 2) * 0.95;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    }
    g.stroke();
    $("level-bar").style.width = `${Math.min(100, state.level * 250)}%`;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

/**
 * The dominant frequency of the player's output (its AnalyserNode, after the worklet): the peak
 * FFT bin refined by parabolic interpolation over the dB magnitudes. null below -60 dB.
 */
function peakHz(): number | null {
  if (!player) return null;
  const a = player.analyser;
  const db = new Float32Array(a.frequencyBinCount);
  a.getFloatFrequencyData(db);
  let best = 1;
  for (let i = 2; i < db.length - 1; i++) if (db[i] > db[best]) best = i;
  if (!(db[best] > -60)) return null;
  const [l, c, r] = [db[best - 1], db[best], db[best + 1]];
  const shift = (0.5 * (l - r)) / (l - 2 * c + r || 1);
  return ((best + shift) * player.ctx.sampleRate) / a.fftSize;
}

// ---- Audio and sessions ---------------------------------------------------------------------

let ctx: AudioContext | null = null;
let player: Player | null = null;
let mic: Mic | null = null;
let feedback: Feedback | null = null;
let user: UserBroadcast | null = null;
let started = false;

/**
 * performance.now() at which the sample rendered at context time `time` (of the player's
 * AudioContext, whose clock the worklet reports in) reaches the output.
 */
function perfTimeOf(time: number): number {
  const clock = player?.ctx ?? ctx;
  const ts = clock?.getOutputTimestamp?.();
  if (ts && ts.contextTime !== undefined && ts.performanceTime !== undefined && ts.contextTime > 0) {
    return ts.performanceTime + (time - ts.contextTime) * 1000;
  }
  return performance.now() + (time - (clock?.currentTime ?? time)) * 1000;
}

/** Wall clock (ms since the Unix epoch) at which the sample at context time `time` is heard. */
function wallClockOf(time: number): number {
  return performance.timeOrigin + perfTimeOf(time);
}

/** performance.now() at which the first frame of each generation arrived off the network. */
const networkArrivals = new Map<number, number>();

function onStatus(s: Status): void {
  state.generation = s.generation;
  state.renderedGeneration = s.renderedGeneration;
  state.tsUs = s.tsUs;
  state.playing = s.playing;
  state.bufferedMs = s.bufferedUs / 1000;
  state.targetMs = s.stats.targetUs / 1000;
  state.jitterMs = s.stats.jitterUs / 1000;
  state.peakMs = s.stats.peakUs / 1000;
  state.delayMs = s.stats.delayUs / 1000;
  state.concealedMs = (s.stats.concealedFrames / (state.sampleRate || 48_000)) * 1000;
  state.underruns = s.stats.underruns;
  state.level = s.rms;
  moqAudio.workletStats = s.stats;
  if (feedback && s.renderedGeneration !== null && s.tsUs !== null) {
    const sent = feedback.offer({
      generation: s.renderedGeneration,
      ts: s.tsUs,
      playing: s.playing,
      renderTime: wallClockOf(s.time),
    });
    if (sent) {
      moqAudio.feedbackSent = feedback.sent;
      moqAudio.lastFeedback = feedback.last;
    }
  }
}

function onFlush(e: Extract<PlayerOut, { type: "flush" }>): void {
  const record: FlushRecord = {
    from: e.from,
    to: e.to,
    flushToSilenceMs: (e.silentTime - e.arrivedTime) * 1000,
    networkToSilenceMs: perfTimeOf(e.silentTime) - (networkArrivals.get(e.to) ?? NaN),
    fadeMs: e.fadeMs,
    droppedMs: e.droppedMs,
    silentTime: e.silentTime,
    at: Date.now(),
  };
  moqAudio.flushes.push(record);
  addFlushRow(record);
  log(
    "flush",
    `generation ${e.from} → ${e.to}: silent ${record.flushToSilenceMs.toFixed(1)} ms after the new generation arrived ` +
      `(fade ${e.fadeMs.toFixed(1)} ms, ${e.droppedMs.toFixed(0)} ms of old audio dropped)`,
  );
}

async function start(): Promise<void> {
  if (started) return;
  started = true;
  const button = $<HTMLButtonElement>("start");
  button.disabled = true;
  button.textContent = "Listening";
  try {
    // 48 kHz is Opus's native rate, the microphone's, and what Chromium's AudioDecoder outputs
    // for Opus at any catalog rate; if a browser's decoder outputs another rate the player moves
    // to an AudioContext at that rate and Web Audio converts it for the device.
    ctx = new AudioContext({ sampleRate: contextRate, latencyHint: "interactive" });
    // Without a user gesture (autostart) resume() may wait forever: offer a click instead.
    await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 1000))]);
    if (ctx.state !== "running") {
      log("info", "the browser wants a click before playing audio");
      button.disabled = false;
      button.textContent = "Enable audio";
      button.onclick = () => {
        void ctx!.resume();
        button.disabled = true;
        button.textContent = "Listening";
      };
    }
    const watchContext = (c: AudioContext) => {
      state.audioContext = c.state;
      state.sampleRate = c.sampleRate;
      c.onstatechange = () => {
        if (c === (player?.ctx ?? ctx)) state.audioContext = c.state;
      };
    };
    watchContext(ctx);
    const latency = () => {
      const c = player?.ctx ?? ctx;
      return ((c?.baseLatency ?? 0) + (c?.outputLatency ?? 0)) * 1000;
    };
    state.outputLatencyMs = latency();
    setInterval(() => (state.outputLatencyMs = latency()), 1000);
    player = await Player.create(ctx);
    moqAudio.counters = player.counters as unknown as Record<string, number>;
    player.on({
      status: onStatus,
      flush: onFlush,
      started: (e) => {
        moqAudio.generationStarts[e.generation] = e.time;
        if (!state.renderedGenerations.includes(e.generation)) state.renderedGenerations.push(e.generation);
        log("play", `generation ${e.generation}: first sample rendered at context time ${e.time.toFixed(3)} s`);
      },
      generation: (g, at) => {
        networkArrivals.set(g, at);
        for (const old of networkArrivals.keys()) if (old < g - 10) networkArrivals.delete(old);
        state.networkGeneration = g;
        log("generation", `first frame of generation ${g} arrived`);
        updateTranscript();
      },
      decodedRate: (rate) => {
        state.decodedSampleRate = rate;
        const at = player!.ctx.sampleRate;
        if (rate !== at) log("info", `decoder outputs ${rate} Hz; moving playback to an AudioContext at ${rate} Hz (was ${at} Hz)`);
      },
      context: (c) => {
        watchContext(c);
        log("info", `playing in an AudioContext at ${c.sampleRate} Hz (${c.state})`);
      },
    });
    drawScope(() => player!.analyser);
    // The microphone is captured and encoded at 48 kHz: in the page's context if it runs at that
    // rate, else in its own.
    mic = new Mic(ctx.sampleRate === MIC_RATE ? ctx : new AudioContext({ sampleRate: MIC_RATE, latencyHint: "interactive" }));
    mic.onChange = () => {
      state.mic = mic!.state;
      state.micError = mic!.error;
      log("mic", mic!.state + (mic!.error ? ` (${mic!.error})` : ""));
    };
    if (wantMic) void mic.start();
    $<HTMLButtonElement>("mic").disabled = false;
    setInterval(() => {
      if (user) {
        state.micFrames = user.framesSent;
        state.micGroups = user.groupsSent;
        state.micWireVersion = user.wireVersion;
      }
      renderText();
    }, 100);
    if (!target) throw new Error(targetError ?? "no server URL");
    void sessions(target);
  } catch (e) {
    state.error = e instanceof Error ? e.message : String(e);
    log("error", state.error);
    setConnection("failed", state.error);
  }
}

/** Connect, and reconnect after the connection ends. */
async function sessions(target: ServerTarget): Promise<void> {
  for (;;) {
    state.attempts += 1;
    try {
      await session(target);
    } catch (e) {
      state.error = redact(e instanceof Error ? e.message : String(e), target.token);
      log("error", state.error);
      setConnection("failed", state.error);
    }
    moqAudio.ready = false;
    $<HTMLButtonElement>("interrupt").disabled = true;
    await new Promise((r) => setTimeout(r, Math.min(5000, 500 * state.attempts)));
  }
}

async function session(target: ServerTarget): Promise<void> {
  setConnection("connecting");
  log("connect", `${target.url}${target.token ? " with a token" : ""} (attempt ${state.attempts})`);
  const { connection, transport, version } = await connect(target, { transport: forcedTransport ?? undefined });
  state.transport = transport;
  state.version = version;
  state.error = null;
  setConnection("connected");
  log("connected", `to ${target.url} via ${transport}, ${version}`);

  feedback = new Feedback(connection, botPath, listenerId);
  user = new UserBroadcast(connection, userPath);
  if (mic) mic.sink = user;
  $<HTMLButtonElement>("interrupt").disabled = false;
  moqAudio.ready = true;

  const watch = connection.announcedBroadcast(Path.from(botPath));
  // The broadcast currently announced, and the loop playing it. A republished broadcast (the
  // bot restarted) stops the running playback; the loop then picks up the new one.
  let current: Parameters<typeof playBot>[1] | undefined;
  let loop: Promise<void> | null = null;
  const onBroadcast = (bc: Parameters<typeof playBot>[1] | undefined) => {
    current = bc;
    if (!bc) {
      state.bot = "offline";
      log("broadcast", `${botPath} is offline`);
      player?.stop();
      return;
    }
    state.bot = "online";
    log("broadcast", `${botPath} is online`);
    if (loop) {
      player?.stop();
      return;
    }
    loop = (async () => {
      while (current) {
        const playingNow = current;
        await playBot(connection, playingNow);
        if (current === playingNow) break; // ended on its own: wait for a new announcement
      }
    })().finally(() => (loop = null));
  };
  const initial = watch.active.peek();
  if (initial) onBroadcast(initial);
  const unsubscribe = watch.active.subscribe(onBroadcast);
  try {
    await connection.closed;
    setConnection("closed");
    log("closed", "connection closed");
  } finally {
    unsubscribe();
    watch.close();
    player?.stop();
    if (mic) mic.sink = null;
    feedback?.close();
    user?.close();
    feedback = null;
    user = null;
  }
}

async function playBot(_connection: Established, broadcast: NonNullable<ReturnType<Established["consume"]>>): Promise<void> {
  try {
    const catalogTrack = broadcast.subscribe(CATALOG_TRACK);
    const catalog = (await catalogTrack.readJson()) as Catalog | undefined;
    catalogTrack.close();
    if (!catalog) throw new Error("the catalog track ended before a catalog");
    const desc = describe(catalog);
    state.catalog = desc;
    const generations =
      desc.generation.kind === "sequence"
        ? `generation = group sequence >> ${desc.generation.shift}`
        : desc.wireVersion >= 2
          ? "generation from each LOC frame"
          : "no moqAudio section (generation 0 only)";
    log("catalog", `${desc.track}: opus ${desc.sampleRate} Hz × ${desc.channels}, ${desc.container} container, wire v${desc.wireVersion}, ${generations}`);
    // Answer in the bot's wire version: the microphone goes out in v1 to a v1 bot, else in v2.
    user?.useWireVersion(desc.wireVersion);
    void readTranscript(broadcast);
    state.bot = "playing";
    state.botEnd = null;
    const end = await player!.play(broadcast, desc, maxLatencyMs);
    state.botEnd = end;
    log("broadcast", `audio track ended: ${end}`);
  } catch (e) {
    log("error", `playing ${botPath}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    if (state.bot === "playing") state.bot = "online";
  }
}

// ---- Transcript ---------------------------------------------------------------------------

const transcripts = new Map<number, string>();

function updateTranscript(): void {
  const g = state.networkGeneration;
  const text = g === null ? undefined : transcripts.get(g);
  const el = $("transcript");
  if (text !== undefined) {
    state.transcript = text;
    state.transcriptGeneration = g;
    el.textContent = text;
    el.classList.remove("muted");
    $("transcript-gen").textContent = `generation ${g}`;
  } else if (transcripts.size > 0) {
    state.transcript = "";
    el.textContent = "…";
  }
}

/** `transcript.json` frames: {"generation": g, "text": "..."}; shown for the current generation. */
async function readTranscript(broadcast: Parameters<typeof playBot>[1]): Promise<void> {
  const track = broadcast.subscribe(TRANSCRIPT_TRACK);
  try {
    for (;;) {
      const msg = (await track.readJson()) as { generation?: number; text?: string } | undefined;
      if (!msg) return;
      if (typeof msg.text !== "string") continue;
      const g = Number(msg.generation ?? 0);
      transcripts.set(g, msg.text);
      for (const old of transcripts.keys()) if (old < g - 10) transcripts.delete(old);
      if (state.networkGeneration === null || g >= state.networkGeneration) updateTranscript();
    }
  } catch {
    // No transcript track on this broadcast (or it ended): nothing to show.
  } finally {
    track.close();
  }
}

// ---- Buttons ------------------------------------------------------------------------------

function interrupt(): void {
  if (!user) return;
  const msg = user.interrupt();
  moqAudio.controlSent = user.controlSent;
  log("interrupt", `sent ${JSON.stringify(msg)} on ${userPath}/control.json`);
}

function toggleMic(): void {
  if (!mic) return;
  if (mic.state === "off" || mic.state === "unavailable") void mic.start();
  else mic.toggle();
}

$("start").addEventListener("click", () => void start());
$("interrupt").addEventListener("click", interrupt);
$("mic").addEventListener("click", toggleMic);
renderText();
if (params.get("autostart") === "1") void start();
