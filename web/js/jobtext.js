// What a job's row says: refusals of an upload and the steps of a running job, in plain words.
import { clock, fileSize, percent, timeLeft } from "./format.js";

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
 * first part, then the share of audio done and, once the server can tell, the time left) or,
 * from older servers, the fraction. `since` is how many seconds ago the state arrived: the
 * share and the time left move on at the server's pace between its updates.
 */
export function processingText(job, state, since = 0) {
  const verb = job.options.task === "translate" ? "Translating" : "Transcribing";
  const duration = Number(state.audio_duration) || 0;
  const stage = state.stage || ((Number(state.progress) || 0) > 0 ? "transcribing" : "first_window");
  if (stage === "decoding") return "Reading the audio…";
  if (stage === "loading_model") return "Loading the model…";
  const progress = shownProgress(state, since);
  const left = Number(state.seconds_left);
  const withLeft = (text) => (Number.isFinite(left) && left > 0
    ? `${text} · ${timeLeft(Math.max(1, left - since))} left` : text);
  if (stage === "first_window" && progress <= 0) {
    // Long audio is worked on in rounds of several 30 s parts at once (a 2-minute file may
    // be one round): no promise about its first part, only its length and, once the server
    // knows the model's pace, the time left.
    const what = duration > 30 ? `${verb} ${clock(duration)} of audio` : verb;
    return Number.isFinite(left) && left > 0 ? withLeft(what) : `${what}…`;
  }
  return withLeft(`${verb}… ${percent(progress)}${duration ? ` of ${clock(duration)}` : " of the audio"}`);
}

/**
 * The share of the audio done as it stands `since` seconds after the state arrived: with a
 * time left from the server, the share moves on at that pace (never past 99 %), so a long
 * part of the work shows steady movement instead of a jump at its end.
 */
export function shownProgress(state, since = 0) {
  const progress = Number(state.progress) || 0;
  const left = Number(state.seconds_left);
  if (!(progress > 0) || !Number.isFinite(left) || left <= 0 || since <= 0) return progress;
  const moved = (1 - progress) * Math.min(1, since / left);
  return Math.min(0.99, progress + moved);
}
/**
 * The server's state as it stands `since` seconds after it arrived: the share moved on at the
 * server's pace and the time left counted down; no time left where the server gave none.
 */
export function stateNow(state, since = 0) {
  // Number(null) is 0, a finite number: a missing estimate must stay missing.
  const left = state.seconds_left == null ? NaN : Number(state.seconds_left);
  return {
    ...state,
    progress: shownProgress(state, since),
    seconds_left: Number.isFinite(left) && left > 0 ? Math.max(1, left - since) : null,
  };
}
