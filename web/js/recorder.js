// Recording from the microphone with MediaRecorder: record, stop, and the recording becomes a File
// that goes through the same upload as a chosen one. The audio stays in this page until then.

import { clock } from "./format.js";

// Containers the server decodes (PyAV), in the order browsers record them best.
const TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
const EXTENSIONS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a" };

export function recordingSupported() {
  return Boolean(navigator.mediaDevices?.getUserMedia && window.MediaRecorder);
}

function pickType() {
  return TYPES.find((type) => MediaRecorder.isTypeSupported?.(type)) || "";
}

function fileName(type, when) {
  const base = type.split(";")[0];
  const pad = (number) => String(number).padStart(2, "0");
  const stamp = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} `
    + `${pad(when.getHours())}-${pad(when.getMinutes())}-${pad(when.getSeconds())}`;
  return `Recording ${stamp}.${EXTENSIONS[base] || "webm"}`;
}

/** Why recording cannot start, in words people can act on. */
export function recordingProblem(error) {
  if (!window.isSecureContext) {
    return "Browsers allow the microphone only on https:// pages or on this computer (localhost).";
  }
  if (!recordingSupported()) return "This browser cannot record audio here.";
  if (error?.name === "NotAllowedError") {
    return "The microphone was not allowed. Allow it in the browser's site settings, then try again.";
  }
  if (error?.name === "NotFoundError") return "No microphone was found.";
  return `Recording did not start (${error?.message || error}).`;
}

export class Recorder {
  /** @param {object} hooks onTick(text), onLevel(0..1), onDone(file), onStopped() */
  constructor(hooks) {
    this.hooks = hooks;
    this.stream = null;
    this.media = null;
    this.chunks = [];
    this.startedAt = 0;
    this.timer = null;
    this.keep = false;
  }

  get active() {
    return this.media !== null;
  }

  async start() {
    if (!recordingSupported()) throw new Error("unsupported");
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const type = pickType();
    this.media = new MediaRecorder(this.stream, type ? { mimeType: type } : undefined);
    this.chunks = [];
    this.keep = false;
    this.media.addEventListener("dataavailable", (event) => {
      if (event.data?.size) this.chunks.push(event.data);
    });
    this.media.addEventListener("stop", () => this.finish());
    this.media.start(1000);
    this.startedAt = Date.now();
    this.hooks.onTick(clock(0));
    this.timer = setInterval(() => this.hooks.onTick(clock((Date.now() - this.startedAt) / 1000)), 500);
    this.watchLevel();
  }

  /** The microphone's loudness ten times a second, so people see that they are heard. */
  watchLevel() {
    try {
      this.audio = new AudioContext();
      const analyser = this.audio.createAnalyser();
      analyser.fftSize = 1024;
      this.audio.createMediaStreamSource(this.stream).connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      this.levelTimer = setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const sample of samples) sum += sample * sample;
        // RMS on a root scale: speech at a normal distance fills about half the meter.
        this.hooks.onLevel?.(Math.min(1, Math.sqrt(Math.sqrt(sum / samples.length)) * 1.5));
      }, 100);
    } catch {
      // No Web Audio here: recording works without the meter.
    }
  }

  /** Stop and hand the recording on as a file. */
  stop() {
    this.keep = true;
    this.media?.stop();
  }

  /** Stop and throw the recording away. */
  discard() {
    this.keep = false;
    this.media?.stop();
  }

  finish() {
    clearInterval(this.timer);
    clearInterval(this.levelTimer);
    this.audio?.close();
    this.audio = null;
    this.hooks.onLevel?.(0);
    for (const track of this.stream?.getTracks() || []) track.stop();
    const type = this.media?.mimeType || pickType() || "audio/webm";
    const chunks = this.chunks;
    this.media = null;
    this.stream = null;
    this.chunks = [];
    this.hooks.onStopped();
    if (!this.keep || !chunks.length) return;
    const blob = new Blob(chunks, { type });
    this.hooks.onDone(new File([blob], fileName(type, new Date(this.startedAt)), { type: blob.type }));
  }
}
