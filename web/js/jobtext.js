// What a job's row says: refusals of an upload and the steps of a running job, in plain words.
import { clock, fileSize, percent } from "./format.js";

export const EMPTY_FILE = "This file is empty.";

function looksNotMedia(job, error) {
  const type = (job.file?.type || "").toLowerCase();
  const media = type.startsWith("audio/") || type.startsWith("video/");
  return !media || /decod|audio/i.test(error.detail || "");
}

/** An upload the server refused or that never arrived: {state, status, detail}. */
export function uploadRefusal(job, error) {
  if (error.name === "AbortError") {
    return { state: "cancelled", status: "Cancelled before it reached the queue.", detail: "" };
  }
  const detail = error.detail || String(error.message || error);
  if (error.status === 413) {
    return {
      state: "rejected",
      status: "Too large for this server.",
      detail: `${job.name} is ${fileSize(job.size)}. Server: ${detail}. ` +
        "Try a shorter or more compressed recording (for example MP3 or Opus).",
    };
  }
  if ([400, 415, 422].includes(error.status)) {
    if (/empty/i.test(detail)) {
      return { state: "rejected", status: EMPTY_FILE, detail: `There is no sound in it to transcribe. Server: ${detail}.` };
    }
    if (looksNotMedia(job, error)) {
      return {
        state: "rejected",
        status: "This is not an audio or video file the server can read.",
        detail: `Choose a recording such as MP3, WAV, FLAC, M4A, OGG or MP4. Server: ${detail}.`,
      };
    }
    return { state: "rejected", status: "The server refused this upload.", detail: `Server: ${detail}.` };
  }
  return {
    state: "upload-failed",
    status: "The upload did not work.",
    detail: error.status ? `Server (${error.status}): ${detail}.` : detail,
  };
}

/**
 * What the worker is doing, as far as the server has said: its stage (loading the model, the
 * first 30-second window, then the share of audio done) or, from older servers, the fraction.
 */
export function processingText(job, state) {
  const verb = job.options.task === "translate" ? "Translating" : "Transcribing";
  const progress = Number(state.progress) || 0;
  const duration = Number(state.audio_duration) || 0;
  const stage = state.stage || (progress > 0 ? "transcribing" : "first_window");
  if (stage === "decoding") return "Reading the audio…";
  if (stage === "loading_model") return "Loading the model…";
  if (stage === "first_window" && progress <= 0) {
    return duration > 30 ? `${verb}: working on the first 30 seconds of ${clock(duration)}…` : `${verb}…`;
  }
  return `${verb}… ${percent(progress)}${duration ? ` of ${clock(duration)}` : " of the audio"}`;
}
