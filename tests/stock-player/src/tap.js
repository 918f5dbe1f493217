// Recorder of the page's audio output, installed before <moq-watch> loads.
//
// Whatever the page connects to an AudioContext's destination (the stock element's GainNode)
// is also connected to a recorder AudioWorkletNode in the same context (public/tap-worklet.js),
// so the recording is exactly what reaches the speakers, sample for sample, on that context's
// clock (frame index = currentTime * sampleRate). Disconnecting the source from everything (as
// the element does when muted/paused) also disconnects it from the recorder.
//
// Exposed as window.stockTap:
//   contexts()         -> [{id, rate, state, frames}]   one entry per AudioContext seen
//   rms(id, ms)        -> RMS of the last `ms` recorded (0..1)
//   export(id)         -> {rate, startFrame, frames, pcm16 (base64 s16le mono), clock, states}
// `clock` holds samples {ctxTime, outCtxTime, outPerfMs, perfMs, timeOriginMs} taken every 100 ms:
// getOutputTimestamp() maps context time to performance.now() at the speaker; epoch ms =
// timeOriginMs + perfMs.
// Also window.stockConsole: every console.{log,info,warn,error,debug} call as {perfMs, level, text}.

const recorders = [];
const byContext = new Map();
const connect = AudioNode.prototype.connect;
const workletUrl = new URL("./tap-worklet.js", document.baseURI).href;

function recorder(ctx) {
  let rec = byContext.get(ctx);
  if (rec) return rec;
  rec = { id: recorders.length, ctx, rate: ctx.sampleRate, chunks: [], clock: [], states: [], node: null, pending: [] };
  byContext.set(ctx, rec);
  recorders.push(rec);
  const sample = () => {
    if (ctx.state === "closed") return;
    const out = ctx.getOutputTimestamp();
    rec.clock.push({
      ctxTime: ctx.currentTime,
      outCtxTime: out.contextTime ?? 0,
      outPerfMs: out.performanceTime ?? 0,
      perfMs: performance.now(),
      timeOriginMs: performance.timeOrigin,
      baseLatency: ctx.baseLatency,
      outputLatency: ctx.outputLatency ?? 0,
    });
  };
  sample();
  rec.timer = setInterval(sample, 100);
  rec.states.push({ state: ctx.state, perfMs: performance.now() });
  ctx.addEventListener("statechange", () => {
    rec.states.push({ state: ctx.state, perfMs: performance.now() });
    if (ctx.state === "closed") clearInterval(rec.timer);
  });
  ctx.audioWorklet.addModule(workletUrl).then(() => {
    const node = new AudioWorkletNode(ctx, "stock-tap", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
    });
    node.port.onmessage = (e) => rec.chunks.push(e.data);
    connect.call(node, ctx.destination);
    rec.node = node;
    for (const [src, output] of rec.pending) connect.call(src, node, output);
    rec.pending = [];
  }, (err) => {
    // A context the element closed right away (it recreates it at the decoder's rate) aborts
    // the load; any other failure means nothing is recorded.
    if (ctx.state !== "closed") console.error("stock-tap: cannot load the recorder worklet", err);
  });
  return rec;
}

AudioNode.prototype.connect = function (destination, output, input) {
  const result = connect.apply(this, arguments);
  if (destination instanceof AudioDestinationNode) {
    const rec = recorder(destination.context);
    if (rec.node) connect.call(this, rec.node, output ?? 0);
    else rec.pending.push([this, output ?? 0]);
  }
  return result;
};

function frames(rec) {
  if (rec.chunks.length === 0) return { start: 0, data: new Float32Array(0) };
  const start = rec.chunks[0].frame;
  const last = rec.chunks[rec.chunks.length - 1];
  const data = new Float32Array(last.frame + last.data.length - start);
  for (const c of rec.chunks) data.set(c.data, c.frame - start);
  return { start, data };
}

function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

window.stockTap = {
  contexts: () =>
    recorders.map((r) => ({
      id: r.id,
      rate: r.rate,
      state: r.ctx.state,
      frames: r.chunks.reduce((n, c) => n + c.data.length, 0),
    })),
  rms(id, ms) {
    const rec = recorders[id];
    if (!rec) return 0;
    let want = Math.round((rec.rate * ms) / 1000);
    let sum = 0;
    let n = 0;
    for (let i = rec.chunks.length - 1; i >= 0 && want > 0; i--) {
      const d = rec.chunks[i].data;
      for (let j = d.length - 1; j >= 0 && want > 0; j--, want--, n++) sum += d[j] * d[j];
    }
    return n ? Math.sqrt(sum / n) : 0;
  },
  export(id) {
    const rec = recorders[id];
    const { start, data } = frames(rec);
    const pcm = new Int16Array(data.length);
    for (let i = 0; i < data.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(data[i] * 32767)));
    return {
      rate: rec.rate,
      startFrame: start,
      frames: data.length,
      pcm16: base64(new Uint8Array(pcm.buffer)),
      clock: rec.clock,
      states: rec.states,
    };
  },
};

// Passive log of the WebCodecs AudioDecoder the element uses: every chunk it is given and every
// AudioData it returns (timestamps in µs), as window.stockDecoder. Behaviour is unchanged.
window.stockDecoder = [];
if (window.AudioDecoder) {
  const Original = window.AudioDecoder;
  window.AudioDecoder = class extends Original {
    constructor(init) {
      const output = init.output;
      super({
        ...init,
        output: (data) => {
          window.stockDecoder.push({ out: data.timestamp, frames: data.numberOfFrames, rate: data.sampleRate });
          output(data);
        },
        error: (e) => {
          window.stockDecoder.push({ error: String(e) });
          init.error(e);
        },
      });
    }
    decode(chunk) {
      window.stockDecoder.push({ in: chunk.timestamp, bytes: chunk.byteLength });
      super.decode(chunk);
    }
  };
}

window.stockConsole = [];
for (const level of ["log", "info", "warn", "error", "debug"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    window.stockConsole.push({ perfMs: performance.now(), level, text: args.map(String).join(" ") });
    original(...args);
  };
}

// Main-thread stalls, as window.stockStalls: every time a 10 ms interval timer fired more than
// 30 ms late, {perfMs (when it fired), lateMs}. The stock consumer reads, buffers and skips groups
// on this thread, so a stall here (the machine did not schedule the page) is what makes its
// latency check throw groups away, flush or no flush; the test reads it to tell a starved page
// from a wire format the player cannot follow.
window.stockStalls = [];
{
  const PERIOD_MS = 10;
  const LATE_MS = 30;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const late = now - last - PERIOD_MS;
    if (late > LATE_MS) window.stockStalls.push({ perfMs: now, lateMs: late });
    last = now;
  }, PERIOD_MS);
}

// Stalls of the page's incoming network data, as window.stockNetStalls: every time the page got
// no stream data for more than 60 ms while it was receiving (the track delivers a 20 ms Opus
// frame every 20 ms), {perfMs (when data came again), gapMs}. @moq/net reads every WebTransport
// stream through ReadableStreamDefaultReader.read(), wrapped here without changing what it
// returns. A real-time player holds about 20 ms of slack (@moq/watch's jitter estimate): a burst
// after a longer gap overflows its latency budget and it skips a group, flush or no flush.
window.stockNetStalls = [];
{
  const GAP_MS = 60;
  const read = ReadableStreamDefaultReader.prototype.read;
  let last;
  ReadableStreamDefaultReader.prototype.read = function (...args) {
    return read.apply(this, args).then((result) => {
      if (!result.done) {
        const now = performance.now();
        if (last !== undefined && now - last > GAP_MS) window.stockNetStalls.push({ perfMs: now, gapMs: now - last });
        last = now;
      }
      return result;
    });
  };
}
