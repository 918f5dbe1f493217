// AudioWorklet processor of the recorder (src/tap.js): mixes its input to mono (the node is
// created with channelCount 1, "speakers" interpretation) and posts it to the main thread in
// chunks of 5120 frames (213 ms at 24 kHz), each stamped with the context's frame index
// (`currentFrame`) of its first sample. Outputs silence, so adding it to the destination does
// not change what the page plays; it is connected only so the graph pulls it every quantum.
const CHUNK = 128 * 40;

class StockTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(CHUNK);
    this.n = 0;
    this.start = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    const frames = input ? input.length : 128;
    if (this.n === 0) this.start = currentFrame;
    if (this.n + frames > CHUNK) this.post();
    if (this.n === 0) this.start = currentFrame;
    if (input) this.buf.set(input, this.n);
    else this.buf.fill(0, this.n, this.n + frames);
    this.n += frames;
    if (this.n >= CHUNK) this.post();
    return true;
  }

  post() {
    const data = this.buf.subarray(0, this.n);
    this.port.postMessage({ frame: this.start, data }, [this.buf.buffer]);
    this.buf = new Float32Array(CHUNK);
    this.n = 0;
  }
}

registerProcessor("stock-tap", StockTap);
