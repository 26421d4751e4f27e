// The AudioWorklet of live mode (live.js): collects the microphone's 128-sample render quanta
// into blocks of 4096 samples and posts each block to the page, which sends it to the server.
// It replaces the deprecated ScriptProcessorNode; its output stays silent.

const BLOCK = 4096;

class LiveCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const samples = inputs[0]?.[0];
    if (!samples) return true;
    let from = 0;
    while (from < samples.length) {
      const take = Math.min(samples.length - from, BLOCK - this.filled);
      this.block.set(samples.subarray(from, from + take), this.filled);
      this.filled += take;
      from += take;
      if (this.filled === BLOCK) {
        this.port.postMessage(this.block);
        this.block = new Float32Array(BLOCK);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("live-capture", LiveCapture);
