// Talking to this server, and only this server: every path here is relative to the page.
import { currentApiKey } from "./prefs.js";

const FINAL_STATES = new Set(["finished", "failed"]);
// Browsers open about six HTTP/1.1 connections per host; an event stream holds one for as long
// as its task runs. Streaming at most four tasks at once leaves room for an upload and a
// download; the others are polled, and every poller wakes at once when a stream frees up or
// any task ends (the ones behind it move up), so no position waits for the next poll.
const MAX_EVENT_STREAMS = 4;
let openStreams = 0;
const sleepers = new Set();

/** Wake every task that waits to poll again. */
function wakeAll() {
  for (const wake of [...sleepers]) wake();
}

// Told whether the key in use was accepted ("accepted") or refused ("rejected").
const keyListeners = new Set();
export function onKeyOutcome(listener) {
  keyListeners.add(listener);
}
function reportKeyOutcome(status) {
  if (!currentApiKey()) return;
  const outcome = status === 401 ? "rejected" : status >= 200 && status < 300 ? "accepted" : null;
  if (outcome) for (const listener of keyListeners) listener(outcome);
}

/** A refusal or failure, with the HTTP status (0 = the server could not be reached). */
export class ApiError extends Error {
  constructor(status, detail, retryAfterS = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.retryAfterS = retryAfterS;
  }
}

export const isFinal = (status) => FINAL_STATES.has(status);

function authHeaders(extra = {}) {
  const key = currentApiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

/** Retry-After as whole seconds (it may be seconds or an HTTP date), or null. */
export function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(1, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(1, Math.ceil((date - Date.now()) / 1000));
}

/** The server's reason from an error body: {detail}, OpenAI's {error:{message}}, or plain text. */
function detailFrom(text, fallback) {
  if (!text) return fallback;
  try {
    const body = JSON.parse(text);
    if (typeof body?.detail === "string") return body.detail;
    if (typeof body?.error?.message === "string") return body.error.message;
    if (typeof body?.error === "string") return body.error;
  } catch {
    // Not JSON: a proxy's page or plain text.
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

async function errorFrom(response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    text = "";
  }
  return new ApiError(
    response.status,
    detailFrom(text, response.statusText || `HTTP ${response.status}`),
    parseRetryAfter(response.headers.get("Retry-After")),
  );
}

const UNREACHABLE = "The server could not be reached. Check the connection and try again.";

/** fetch() with the API key, no caching, and errors turned into ApiError; `open`: a public route. */
export async function apiFetch(path, { method = "GET", headers = {}, signal, body, open = false } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      body,
      signal,
      headers: authHeaders(headers),
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, UNREACHABLE);
  }
  // A route open to all says nothing about the key.
  if (!open) reportKeyOutcome(response.status);
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** Ask the server whether the key in use is good: true, false (401), or an ApiError. */
export async function checkKey() {
  try {
    await apiFetch("api/v1/version", { headers: { Accept: "application/json" } });
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

/**
 * Upload one file to the task API. XMLHttpRequest rather than fetch because only it reports
 * upload progress. Form fields the server does not know (yet) are ignored by it.
 */
export function uploadFile({ file, options, onProgress, signal }) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    if (options.language) form.append("language", options.language);
    if (options.model) form.append("model", options.model);
    if (options.wordTimestamps) form.append("word_timestamps", "true");
    form.append("file", file, file.name);

    const request = new XMLHttpRequest();
    const route = options.task === "translate" ? "translate" : "transcribe";
    request.open("POST", `api/v1/${route}`);
    for (const [name, value] of Object.entries(authHeaders({ Accept: "application/json" }))) {
      request.setRequestHeader(name, value);
    }
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    });
    request.upload.addEventListener("load", () => onProgress(1));
    request.addEventListener("load", () => {
      reportKeyOutcome(request.status);
      if (request.status >= 200 && request.status < 300) {
        try {
          resolve(JSON.parse(request.responseText));
        } catch {
          reject(new ApiError(request.status, "The server's answer could not be read."));
        }
        return;
      }
      reject(
        new ApiError(
          request.status,
          detailFrom(request.responseText, request.statusText || `HTTP ${request.status}`),
          parseRetryAfter(request.getResponseHeader("Retry-After")),
        ),
      );
    });
    request.addEventListener("error", () => {
      // A server that refuses a body too large may close the connection before the browser
      // has sent it all; the browser then reports a bare network error.
      reject(new ApiError(0, "The upload was interrupted before the server answered."));
    });
    request.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    signal?.addEventListener("abort", () => request.abort(), { once: true });
    request.send(form);
  });
}

function taskPath(taskId, suffix = "") {
  return `api/v1/tasks/${encodeURIComponent(taskId)}${suffix}`;
}

export async function getTask(taskId, signal) {
  return (await apiFetch(taskPath(taskId), { signal, headers: { Accept: "application/json" } }))
    .json();
}

export async function getResultJson(taskId, signal) {
  const response = await apiFetch(taskPath(taskId, "/result?format=json"), { signal });
  return response.json();
}

/** Erase every task in `taskIds`; returns the ids the server no longer has (gone or erased). */
export async function deleteTasks(taskIds) {
  const outcomes = await Promise.allSettled(taskIds.map((taskId) => deleteTask(taskId)));
  return taskIds.filter((taskId, index) => {
    const outcome = outcomes[index];
    return outcome.status === "fulfilled" || outcome.reason?.status === 404;
  });
}

/** A result format as a Blob, with the file name the server suggests. */
export async function getResultFile(taskId, format) {
  const response = await apiFetch(taskPath(taskId, `/result?format=${encodeURIComponent(format)}`));
  return {
    blob: await response.blob(),
    fileName: fileNameFrom(response.headers.get("Content-Disposition")),
  };
}

export async function deleteTask(taskId) {
  await apiFetch(taskPath(taskId), { method: "DELETE" });
}

export async function getPrivacy() {
  return (await apiFetch("api/v1/privacy", { headers: { Accept: "application/json" }, open: true }))
    .json();
}

/**
 * Why this server takes no live session, from its decoder status (`live_transcription`), or
 * null when it does or does not say. A browser cannot read the HTTP answer that refuses a
 * websocket, so the page asks before it opens the microphone and the socket.
 */
export async function liveRefusal() {
  let status;
  try {
    status = await (await apiFetch("api/v1/decoder_status", {
      headers: { Accept: "application/json" },
    })).json();
  } catch {
    return null; // the socket's own outcome will tell
  }
  if (status?.live_transcription === "refused") {
    return "Live transcription does not run on this server: it is an API node of a cluster "
      + "(API_NODE_LIVE=refuse). Upload or record a file instead, or use a server that offers Live.";
  }
  if (status?.live_transcription === "off") {
    return "Live transcription is off on this server (MAX_LIVE_SESSIONS=0). Upload or record a file instead.";
  }
  return null;
}

/** The server's model ids from the OpenAI-style list, or null where the route does not exist. */
/**
 * The models an upload may ask for, as [{name, englishOnly}], or null when the server does not
 * say. The task API's own list first (every name its `model` field accepts); an older server's
 * OpenAI list without OpenAI's own names, which the task API does not take.
 */
export async function getModels() {
  const headers = { Accept: "application/json" };
  try {
    const body = await (await apiFetch("api/v1/models", { headers })).json();
    if (Array.isArray(body?.models)) {
      return body.models.filter((model) => typeof model?.name === "string" && model.name)
        .map((model) => ({ name: model.name, englishOnly: model.english_only === true }));
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
  }
  try {
    const body = await (await apiFetch("v1/models", { headers })).json();
    if (!Array.isArray(body?.data)) return null;
    return body.data.map((model) => model?.id)
      .filter((id) => typeof id === "string" && id && !/^(whisper-1|gpt-)/.test(id))
      .map((name) => ({ name, englishOnly: name.endsWith(".en") }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    return null;
  }
}

/** The file name of an attachment header (the UTF-8 form first), or null. */
export function fileNameFrom(header) {
  if (!header) return null;
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      // Fall through to the plain form.
    }
  }
  const plain = /filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)/i.exec(header);
  return plain ? (plain[1] ?? plain[2]).trim() : null;
}

/** Wait `ms`, or less when wakeAll() is called; rejects when `signal` aborts. */
const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      sleepers.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    sleepers.add(done);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        sleepers.delete(done);
        reject(new DOMException("cancelled", "AbortError"));
      },
      { once: true },
    );
  });

/** Split a server-sent event stream into {event, data} messages. */
export function createEventParser(onMessage) {
  let buffer = "";
  let heldCarriageReturn = false;
  return (chunk) => {
    let text = (heldCarriageReturn ? "\r" : "") + chunk;
    // A CR at the end of a chunk may be the first half of a CRLF: decide with the next chunk.
    heldCarriageReturn = text.endsWith("\r");
    if (heldCarriageReturn) text = text.slice(0, -1);
    buffer += text.replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onMessage({ event, data: data.join("\n") });
      end = buffer.indexOf("\n\n");
    }
  };
}

/**
 * Read the task's event stream with fetch, which (unlike EventSource) can send the API key.
 * Returns the final state, or null when the stream ended early.
 */
async function streamTask(taskId, onUpdate, signal) {
  const response = await apiFetch(taskPath(taskId, "/events"), {
    signal,
    headers: { Accept: "text/event-stream" },
  });
  let final = null;
  const parse = createEventParser(({ data }) => {
    let state;
    try {
      state = JSON.parse(data);
    } catch {
      return;
    }
    onUpdate(state);
    if (isFinal(state.status)) final = state;
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (!final) {
      const { value, done } = await reader.read();
      if (done) break;
      parse(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return final;
}

const isFatal = (error) =>
  error.name === "AbortError" || (error instanceof ApiError && [401, 403, 404].includes(error.status));

/**
 * Follow a task until it is finished or failed, calling onUpdate with each state
 * ({status, position_in_queue, progress, error}). Streams events when a slot is free,
 * polls otherwise, and falls back to polling when a stream breaks.
 */
export async function followTask(taskId, onUpdate, signal) {
  let pollDelayMs = 700;
  let streamFailures = 0;
  for (;;) {
    if (streamFailures < 3 && openStreams < MAX_EVENT_STREAMS) {
      openStreams += 1;
      try {
        const final = await streamTask(taskId, onUpdate, signal);
        if (final) return final;
        streamFailures += 1;
      } catch (error) {
        if (isFatal(error)) throw error;
        streamFailures += 1;
      } finally {
        openStreams -= 1;
        wakeAll();
      }
    }
    try {
      const task = await getTask(taskId, signal);
      onUpdate(task);
      if (isFinal(task.status)) {
        wakeAll();
        return task;
      }
    } catch (error) {
      if (isFatal(error)) throw error;
      // Unreachable for a moment: keep trying, a little less often.
    }
    await sleep(pollDelayMs, signal);
    pollDelayMs = Math.min(Math.round(pollDelayMs * 1.5), 2000);
  }
}
