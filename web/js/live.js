// Live mode: the microphone streams to /v1/realtime (OpenAI's Realtime protocol) and the words
// appear as the server commits them, one paragraph per turn. Audio goes only to this server and
// is kept nowhere; the text lives in this page until it is copied or downloaded, or, when the
// person ticks "Keep as a task", the server stores the finished turns as a task of their key.

import { currentApiKey } from "./prefs.js";

const RATE = 24000;
const KEY_PROTOCOL = "openai-insecure-api-key.";

/** The websocket URL of this server's live route. */
export function liveUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/realtime?intent=transcription`;
}

/** Float samples in [-1, 1] as base64 little-endian PCM16. */
export function pcm16Base64(samples) {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  samples.forEach((sample, index) => {
    const clipped = Math.max(-1, Math.min(1, sample));
    view.setInt16(index * 2, clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff, true);
  });
  let text = "";
  for (let start = 0; start < bytes.length; start += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(start, start + 0x8000));
  }
  return btoa(text);
}

export class LiveMode {
  /**
   * @param {object} parts panel, text (the transcript box), status, stop, copy, download, keep
   *   (the "keep as a task" checkbox)
   * @param {object} hooks announce(text), language() (a Whisper code or ""), onError(text),
   *   onKept(taskId) (the server stored the transcript as a task)
   */
  constructor(parts, hooks) {
    this.parts = parts;
    this.hooks = hooks;
    this.socket = null;
    this.audio = null;
    this.stream = null;
    this.turns = new Map();
    parts.stop.addEventListener("click", () => this.stop());
    parts.copy.addEventListener("click", () => navigator.clipboard?.writeText(this.text()));
    parts.download.addEventListener("click", () => this.download());
  }

  get active() {
    return this.socket !== null;
  }

  /** The whole transcript so far: completed turns and the committed words of the open one. */
  text() {
    // The paragraphs' order is the audio's (see `place`), not the order they were made in.
    return [...this.parts.text.querySelectorAll(".live-turn")]
      .map((paragraph) => paragraph.firstChild.textContent.trim())
      .filter(Boolean)
      .join("\n\n");
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    const key = currentApiKey();
    const protocols = ["realtime", ...(key ? [KEY_PROTOCOL + key] : [])];
    this.socket = new WebSocket(liveUrl(), protocols);
    this.socket.addEventListener("open", () => this.opened());
    this.socket.addEventListener("message", (message) => this.received(JSON.parse(message.data)));
    this.socket.addEventListener("close", (event) => this.closed(event));
    this.parts.text.replaceChildren();
    this.turns.clear();
    this.kept = false;
    this.keeping = false;
    this.keepAsked = false;
    this.parts.panel.hidden = false;
    this.parts.stop.disabled = false;
    this.setStatus("Connecting…");
  }

  opened() {
    const language = this.hooks.language();
    this.send({
      type: "session.update",
      session: {
        type: "transcription",
        audio: {
          input: {
            format: { type: "audio/pcm", rate: RATE },
            transcription: { model: "whisper-1", ...(language ? { language } : {}) },
            turn_detection: { type: "server_vad" },
          },
        },
      },
    });
    this.capture();
    this.setStatus("Listening. Words appear as you speak.");
    this.hooks.announce("Live transcription started.");
  }

  /** Microphone samples to the server: an AudioWorklet (live-capture.js) hands over blocks of
   *  4096 samples (about 170 ms at 24 kHz); the browser resamples the microphone for us. */
  async capture() {
    const audio = new AudioContext({ sampleRate: RATE });
    this.audio = audio;
    try {
      await audio.audioWorklet.addModule(new URL("./live-capture.js", import.meta.url));
    } catch (error) {
      this.hooks.onError(`The microphone could not be read here (${error.message || error}).`);
      return;
    }
    if (this.audio !== audio || !this.stream) return; // stopped while the module loaded
    const source = audio.createMediaStreamSource(this.stream);
    const tap = new AudioWorkletNode(audio, "live-capture", { numberOfInputs: 1, numberOfOutputs: 1 });
    tap.port.onmessage = (message) => {
      if (this.socket?.readyState !== WebSocket.OPEN) return;
      this.send({ type: "input_audio_buffer.append", audio: pcm16Base64(message.data) });
    };
    source.connect(tap);
    // Connected so the graph pulls it; it writes no output, so nothing is heard.
    tap.connect(audio.destination);
  }

  send(event) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(event));
  }

  turn(itemId) {
    let turn = this.turns.get(itemId);
    if (!turn) {
      const paragraph = document.createElement("p");
      paragraph.className = "live-turn";
      const words = document.createElement("span");
      const tail = document.createElement("span");
      tail.className = "live-tail";
      paragraph.append(words, tail);
      this.parts.text.append(paragraph);
      turn = { paragraph, words, tail };
      this.turns.set(itemId, turn);
    }
    return turn;
  }

  /** Put a turn's paragraph right after the turn the server says came before it. */
  place(itemId, previousId) {
    const turn = this.turn(itemId);
    const previous = previousId ? this.turns.get(previousId) : null;
    if (previous) previous.paragraph.after(turn.paragraph);
  }

  received(event) {
    switch (event.type) {
      case "x.whisper_api.turn.pending":
      case "input_audio_buffer.speech_started":
        this.turn(event.item_id);
        break;
      case "x.whisper_api.turn.dropped": {
        // The detector's turn had no word: the server never announced it.
        this.turns.get(event.item_id)?.paragraph.remove();
        this.turns.delete(event.item_id);
        this.finishIfDone();
        break;
      }
      case "input_audio_buffer.committed":
        this.place(event.item_id, event.previous_item_id);
        break;
      case "conversation.item.input_audio_transcription.delta":
        this.turn(event.item_id).words.textContent += event.delta;
        break;
      case "x.whisper_api.transcription.words":
        this.turn(event.item_id).tail.textContent = event.tail ? ` ${event.tail}` : "";
        break;
      case "conversation.item.input_audio_transcription.completed": {
        const turn = this.turn(event.item_id);
        turn.words.textContent = event.transcript;
        turn.tail.textContent = "";
        turn.paragraph.dataset.done = "yes";
        this.finishIfDone();
        break;
      }
      case "conversation.item.input_audio_transcription.failed": {
        const turn = this.turn(event.item_id);
        turn.tail.textContent = "";
        turn.paragraph.dataset.done = "yes";
        this.hooks.onError(event.error?.message || "A part of the live transcription failed.");
        this.finishIfDone();
        break;
      }
      case "x.whisper_api.task.created":
        this.keeping = false;
        this.kept = true;
        this.hooks.onKept(event.task_id);
        this.finishIfDone();
        break;
      case "error":
        if (event.error?.code === "nothing_to_keep") {
          this.keeping = false;
        } else if (event.error?.code !== "input_audio_buffer_commit_empty") {
          this.hooks.onError(event.error?.message || "The live transcription failed.");
        }
        this.finishIfDone();
        break;
      default:
        break;
    }
  }

  /** Stop listening; the turn in progress is committed and its words still arrive. */
  stop() {
    this.stopAudio();
    this.parts.stop.disabled = true;
    this.stopping = true;
    this.send({ type: "input_audio_buffer.commit" });
    this.setStatus("Finishing the last words…");
    this.finishIfDone();
  }

  /** Once every turn is complete: ask the server to keep them if asked to, then close. */
  finishIfDone() {
    if (!this.stopping || this.keeping) return;
    const open = [...this.turns.values()].some((turn) => turn.paragraph.dataset.done !== "yes");
    if (open) return;
    if (this.parts.keep.checked && !this.keepAsked && this.text()) {
      this.keepAsked = true;
      this.keeping = true;
      this.setStatus("Keeping the transcript as a task…");
      this.send({ type: "x.whisper_api.session.keep" });
      return;
    }
    this.socket?.close();
  }

  stopAudio() {
    this.audio?.close();
    this.audio = null;
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
  }

  closed(event) {
    this.stopAudio();
    this.socket = null;
    this.stopping = false;
    this.parts.stop.disabled = true;
    const refused = event.code === 1006 && !this.turns.size;
    const done = this.kept
      ? "Stopped. The transcript is kept as a task in the list below; copy or download it here too."
      : "Stopped. Copy or download the transcript.";
    this.setStatus(refused ? "The server did not accept a live session (busy, or a key is needed)." : done);
    this.hooks.announce("Live transcription stopped.");
  }

  setStatus(text) {
    this.parts.status.textContent = text;
  }

  download() {
    const blob = new Blob([this.text() + "\n"], { type: "text/plain" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "Live transcript.txt";
    link.click();
    URL.revokeObjectURL(link.href);
  }
}
