// The job list: one row per file, from upload through the queue to the finished transcript.
import {
  ApiError,
  deleteTask,
  followTask,
  getResultJson,
  getTask,
  uploadFile,
} from "./api.js";
import { clock, fileSize, percent, plural } from "./format.js";
import { languageName } from "./languages.js";

// Retry-After is missing only from unusual proxies; wait this long then.
const DEFAULT_RETRY_S = 10;
// States in which the job is still in motion (a Cancel button makes sense).
const ACTIVE = new Set([
  "waiting-upload", "uploading", "checking", "queued", "processing", "fetching", "retry-wait",
]);
// Which buttons each state offers.
const ACTIONS = {
  open: new Set(["finished"]),
  retry: new Set(["retry-wait", "upload-failed"]),
  key: new Set(["needs-key"]),
  cancel: ACTIVE,
  delete: new Set(["finished"]),
  remove: new Set(["failed", "rejected", "cancelled", "deleted", "expired", "upload-failed", "needs-key"]),
};
const ACTION_LABELS = {
  open: "Show transcript",
  retry: "Try again now",
  key: "Enter API key",
  cancel: "Cancel",
  delete: "Delete now",
  remove: "Remove",
};
// Announced to screen readers when a job enters them (progress ticks are not).
const ANNOUNCED = new Set([
  "queued", "finished", "failed", "rejected", "retry-wait", "needs-key", "deleted", "expired",
  "upload-failed",
]);

let lastJobNumber = 0;

export class Job {
  constructor(file, options) {
    lastJobNumber += 1;
    this.number = lastJobNumber;
    this.file = file;
    this.options = { ...options };
    this.state = "new";
    this.status = "";
    this.detail = "";
    this.progress = null;
    this.taskId = null;
    this.result = null;
    this.task = null;
    this.controller = new AbortController();
    this.retryTimer = null;
    this.retryAt = 0;
    this.audioUrl = null;
    this.row = null;
  }

  get name() {
    return this.file.name || "recording";
  }

  /** A blob: URL over the local file, made once: the audio is never uploaded twice. */
  localAudioUrl() {
    if (!this.audioUrl) this.audioUrl = URL.createObjectURL(this.file);
    return this.audioUrl;
  }

  forgetLocalAudio() {
    if (this.audioUrl) URL.revokeObjectURL(this.audioUrl);
    this.audioUrl = null;
  }
}

function isNotMedia(file, error) {
  const type = (file.type || "").toLowerCase();
  const looksLikeMedia = type.startsWith("audio/") || type.startsWith("video/");
  const mentionsAudio = /decod|audio|empty/i.test(error.detail || "");
  return !looksLikeMedia || mentionsAudio;
}

export class JobList {
  /**
   * @param {HTMLElement} list the <ul> of rows
   * @param {HTMLElement} empty the "nothing yet" paragraph
   * @param {object} hooks announce(text), onFinished(job), onOpen(job), onGone(job), onNeedKey()
   */
  constructor(list, empty, hooks) {
    this.list = list;
    this.empty = empty;
    this.hooks = hooks;
    this.jobs = [];
    // Uploads go one at a time, in the order the files were added, so the queue keeps that order.
    this.uploads = Promise.resolve();
  }

  add(file, options) {
    const job = new Job(file, options);
    this.jobs.push(job);
    job.row = this.buildRow(job);
    this.list.append(job.row.item);
    this.empty.hidden = true;
    this.set(job, "waiting-upload", "Waiting to upload…");
    this.scheduleUpload(job);
    return job;
  }

  scheduleUpload(job) {
    this.uploads = this.uploads.then(() => this.upload(job));
  }

  // ---- one job's life

  async upload(job) {
    if (job.state === "cancelled" || !this.jobs.includes(job)) return;
    job.controller = new AbortController();
    this.set(job, "uploading", `Uploading… ${percent(0)}`, { progress: 0 });
    try {
      const task = await uploadFile({
        file: job.file,
        options: job.options,
        signal: job.controller.signal,
        onProgress: (fraction) => {
          if (fraction >= 1) this.set(job, "checking", "Uploaded. The server is reading the audio…");
          else this.set(job, "uploading", `Uploading… ${percent(fraction)}`, { progress: fraction });
        },
      });
      job.taskId = task.task_id;
      this.applyServerState(job, task);
      this.follow(job);
    } catch (error) {
      this.uploadFailed(job, error);
    }
  }

  uploadFailed(job, error) {
    if (error.name === "AbortError") {
      this.set(job, "cancelled", "Cancelled before it reached the queue.");
      return;
    }
    const detail = error.detail || String(error.message || error);
    switch (error.status) {
      case 429:
        this.waitAndRetry(job, error.retryAfterS ?? DEFAULT_RETRY_S, detail);
        return;
      case 413:
        this.set(job, "rejected", "Too large for this server.", {
          detail: `${job.name} is ${fileSize(job.file.size)}. Server: ${detail}. ` +
            "Try a shorter or more compressed recording (for example MP3 or Opus).",
        });
        return;
      case 401:
      case 403:
        this.needKey(job, error.status);
        return;
      case 400:
      case 415:
      case 422:
        if (isNotMedia(job.file, error)) {
          this.set(job, "rejected", "This is not an audio or video file the server can read.", {
            detail: `Choose a recording such as MP3, WAV, FLAC, M4A, OGG or MP4. Server: ${detail}.`,
          });
        } else {
          this.set(job, "rejected", "The server refused this upload.", { detail: `Server: ${detail}.` });
        }
        return;
      default:
        this.set(job, "upload-failed", "The upload did not work.", {
          detail: error.status ? `Server (${error.status}): ${detail}.` : detail,
        });
    }
  }

  waitAndRetry(job, seconds, detail) {
    clearInterval(job.retryTimer);
    job.retryAt = Date.now() + seconds * 1000;
    const tick = () => {
      const left = Math.max(0, Math.ceil((job.retryAt - Date.now()) / 1000));
      if (left <= 0) {
        clearInterval(job.retryTimer);
        job.retryTimer = null;
        this.set(job, "waiting-upload", "Trying again…");
        this.scheduleUpload(job);
        return;
      }
      this.set(job, "retry-wait", `The server's queue is full. Trying again in ${plural(left, "second")}…`, {
        detail: `Nothing was lost: the file stays here and is sent again by itself. Server: ${detail}.`,
      });
    };
    tick();
    job.retryTimer = setInterval(tick, 1000);
  }

  needKey(job, status) {
    this.set(
      job,
      "needs-key",
      status === 403 ? "This API key may not do that." : "This server needs an API key.",
      { detail: "Enter a key; the file is sent again once you have." },
    );
    this.hooks.onNeedKey();
  }

  async follow(job) {
    try {
      const final = await followTask(
        job.taskId,
        (state) => this.applyServerState(job, state),
        job.controller.signal,
      );
      if (final.status === "finished") await this.loadResult(job);
    } catch (error) {
      this.followFailed(job, error);
    }
  }

  followFailed(job, error) {
    if (error.name === "AbortError") return;
    if (error.status === 401 || error.status === 403) {
      this.needKey(job, error.status);
    } else if (error.status === 404) {
      this.set(job, "expired", "The server no longer has this task.", {
        detail: "It expired or was deleted.",
      });
      this.hooks.onGone(job);
    } else {
      this.set(job, "failed", "Lost track of this task.", { detail: error.detail || String(error) });
    }
  }

  /** Show a task state from the server: an event, a poll or the upload's answer. */
  applyServerState(job, state) {
    const verb = job.options.task === "translate" ? "Translating" : "Transcribing";
    switch (state.status) {
      case "pending": {
        const position = state.position_in_queue;
        const where = position > 0 ? `position ${position}` : "next";
        this.set(job, "queued", `Queued: ${where} in line.`, {
          detail: position > 1 ? `${plural(position - 1, "file")} ahead of it.` : "",
        });
        break;
      }
      case "processing": {
        const progress = Number(state.progress) || 0;
        const text = progress > 0 ? `${verb}… ${percent(progress)} of the audio` : `${verb}… starting`;
        this.set(job, "processing", text, { progress: progress > 0 ? progress : null });
        break;
      }
      case "finished":
        this.set(job, "fetching", "Finished. Loading the transcript…", { progress: 1 });
        break;
      case "failed":
        this.set(job, "failed", "The server could not finish this file.", {
          detail: `Reason: ${state.error || "not given"}.`,
        });
        break;
      default:
        break;
    }
  }

  async loadResult(job) {
    try {
      job.result = await getResultJson(job.taskId, job.controller.signal);
      // Read after the result: with refresh-on-read the expiry time has just moved.
      job.task = await getTask(job.taskId, job.controller.signal).catch(() => null);
    } catch (error) {
      this.followFailed(job, error);
      return;
    }
    const result = job.result;
    const segments = Array.isArray(result.segments) ? result.segments.length : 0;
    this.set(job, "finished", "Done.", {
      detail: [
        result.language ? languageName(result.language) : "",
        Number.isFinite(result.duration) ? `${clock(result.duration)} of audio` : "",
        plural(segments, "line"),
      ].filter(Boolean).join(" · "),
    });
    // Outside this job's error handling: a fault in the viewer is not a failed transcription.
    queueMicrotask(() => this.hooks.onFinished(job));
  }

  // ---- what people can do with a row

  async cancel(job) {
    clearInterval(job.retryTimer);
    job.retryTimer = null;
    job.controller.abort();
    if (job.taskId) {
      try {
        await deleteTask(job.taskId);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 404) {
          this.set(job, "failed", "Could not cancel on the server.", { detail: error.detail || "" });
          return;
        }
      }
    }
    this.set(job, "cancelled", "Cancelled.", {
      detail: job.taskId ? "The server has forgotten it." : "Nothing was sent.",
    });
  }

  /** Erase the result on the server now; the page forgets the text too. */
  async deleteResult(job) {
    try {
      await deleteTask(job.taskId);
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        this.hooks.onNeedKey();
        throw error;
      }
      if (error.status !== 404) throw error;
    }
    job.result = null;
    job.task = null;
    this.set(job, "deleted", "Deleted from the server.", {
      detail: "The transcript is gone there and from this page; your local file is untouched.",
    });
    this.hooks.onGone(job);
  }

  remove(job) {
    clearInterval(job.retryTimer);
    job.controller.abort();
    // A failed task still has a record on the server until it expires: tidy it up quietly.
    if (job.taskId && job.state === "failed") deleteTask(job.taskId).catch(() => {});
    job.forgetLocalAudio();
    const index = this.jobs.indexOf(job);
    this.jobs.splice(index, 1);
    const next = this.jobs[index] || this.jobs[index - 1];
    job.row.item.remove();
    this.empty.hidden = this.jobs.length > 0;
    this.hooks.onGone(job);
    if (next) next.row.item.focus();
    else this.hooks.focusAfterLastRemoved();
  }

  /** After an API key is entered: send again what was refused for want of one. */
  resumeAfterKey() {
    for (const job of this.jobs) {
      if (job.state !== "needs-key") continue;
      if (job.taskId) {
        job.controller = new AbortController();
        this.set(job, "queued", "Checking the task again…");
        this.follow(job);
      } else {
        this.set(job, "waiting-upload", "Waiting to upload…");
        this.scheduleUpload(job);
      }
    }
  }

  // ---- the row

  buildRow(job) {
    const item = document.createElement("li");
    item.className = "job";
    item.tabIndex = -1;
    const nameId = `job-${job.number}-name`;
    const statusId = `job-${job.number}-status`;
    item.setAttribute("aria-labelledby", nameId);
    item.setAttribute("aria-describedby", statusId);

    const head = element("div", "job-head");
    const name = element("span", "job-name file-name", job.name);
    name.id = nameId;
    const meta = element("span", "job-meta", describeOptions(job));
    head.append(name, meta);

    const status = element("p", "job-status");
    status.id = statusId;
    const detail = element("p", "job-detail");
    const progress = document.createElement("progress");
    progress.className = "job-progress";
    progress.max = 100;
    progress.setAttribute("aria-label", `Progress of ${job.name}`);

    const actions = element("div", "job-actions");
    const buttons = {};
    for (const action of Object.keys(ACTIONS)) {
      const button = element("button", `job-action action-${action}`, ACTION_LABELS[action]);
      button.type = "button";
      button.dataset.action = action;
      button.setAttribute("aria-label", `${ACTION_LABELS[action]}: ${job.name}`);
      if (action === "delete" || action === "cancel") button.classList.add("danger-quiet");
      button.addEventListener("click", () => this.act(job, action));
      buttons[action] = button;
      actions.append(button);
    }
    item.append(head, status, detail, progress, actions);
    return { item, status, detail, progress, buttons };
  }

  act(job, action) {
    switch (action) {
      case "open":
        this.hooks.onOpen(job);
        break;
      case "retry":
        clearInterval(job.retryTimer);
        job.retryTimer = null;
        this.set(job, "waiting-upload", "Trying again…");
        this.scheduleUpload(job);
        break;
      case "key":
        this.hooks.onNeedKey();
        break;
      case "cancel":
        this.cancel(job);
        break;
      case "delete":
        this.deleteResult(job).catch((error) => {
          this.set(job, "finished", "Done, but deleting did not work.", {
            detail: error.detail || String(error),
          });
        });
        break;
      case "remove":
        this.remove(job);
        break;
      default:
        break;
    }
  }

  set(job, state, status, { detail = "", progress = null } = {}) {
    const entered = job.state !== state;
    job.state = state;
    job.status = status;
    job.detail = detail;
    job.progress = progress;
    const row = job.row;
    row.item.dataset.state = state;
    row.status.textContent = status;
    row.detail.textContent = detail;
    row.detail.hidden = !detail;

    const showsProgress = ["uploading", "checking", "processing", "fetching"].includes(state);
    row.progress.hidden = !showsProgress;
    if (progress === null) row.progress.removeAttribute("value"); // indeterminate
    else row.progress.value = Math.round(progress * 100);

    const focused = row.item.contains(document.activeElement) ? document.activeElement : null;
    for (const [action, button] of Object.entries(row.buttons)) {
      button.hidden = !ACTIONS[action].has(state);
    }
    // Keep keyboard focus in the row when the focused button just went away.
    if (focused && focused.hidden) {
      const visible = Object.values(row.buttons).find((button) => !button.hidden);
      (visible || row.item).focus();
    }
    if (entered && ANNOUNCED.has(state)) this.hooks.announce(`${job.name}: ${status}`);
  }
}

function element(tag, className, text = "") {
  const node = document.createElement(tag);
  node.className = className;
  if (text) node.textContent = text;
  return node;
}

function describeOptions(job) {
  const { task, language, model, wordTimestamps } = job.options;
  return [
    task === "translate" ? "Translate to English" : "Transcribe",
    language ? languageName(language) : "language detected",
    model || null,
    wordTimestamps ? "word times" : null,
    fileSize(job.file.size),
  ].filter(Boolean).join(" · ");
}
