// The job list: one row per file, from upload through the queue to the finished transcript.
// Jobs are remembered in this browser (store.js), so a reload shows them again with live state.
import {
  ApiError, deleteTask, deleteTasks, followTask, getResultJson, getTask, uploadFile,
} from "./api.js";
import { clock, percent, plural } from "./format.js";
import { ACTIVE, buildRow, describeOptions, markOpen, paintRow } from "./jobrow.js";
import { EMPTY_FILE, processingText, stateNow, uploadRefusal } from "./jobtext.js";
import { languageName } from "./languages.js";
import { forgetJob, rememberJob, rememberedJobsFor } from "./store.js";

// Retry-After is missing only from unusual proxies; wait this long then.
const DEFAULT_RETRY_S = 10;
// Announced to screen readers when a job enters them (progress ticks are not).
const ANNOUNCED = new Set([
  "queued", "finished", "failed", "rejected", "retry-wait", "needs-key", "deleted", "expired",
  "upload-failed",
]);

let lastJobNumber = 0;
// Other tabs of this page in this browser: what one cancels or deletes, the others show.
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("whisper-api:jobs") : null;
// The server's word for a task deleted while it ran (app/service/core.py).
const DELETED_BY_OWNER = /deleted by its owner/i;

export class Job {
  constructor({
    file = null, name, size, options, taskId = null, keyTag = "", addedAt = null, kind = "file",
  }) {
    lastJobNumber += 1;
    this.number = lastJobNumber;
    this.file = file;
    this.name = name || file?.name || "recording";
    this.size = size ?? file?.size ?? 0;
    this.options = { ...options };
    this.taskId = taskId;
    this.keyTag = keyTag;
    this.addedAt = addedAt || new Date().toISOString();
    // "file" (uploaded from this page or another tab) or "live" (a kept live transcript).
    this.kind = kind === "live" ? "live" : "file";
    this.restored = taskId !== null;
    this.state = "new";
    this.result = null;
    this.task = null;
    this.controller = new AbortController();
    this.retryTimer = null;
    this.retryAt = 0;
    this.processingSince = 0;
    this.audioUrl = null;
    this.row = null;
  }

  /** A blob: URL over the local file (none after a reload): the audio is never uploaded twice. */
  localAudioUrl() {
    if (!this.file) return null;
    if (!this.audioUrl) this.audioUrl = URL.createObjectURL(this.file);
    return this.audioUrl;
  }

  forgetLocalAudio() {
    if (this.audioUrl) URL.revokeObjectURL(this.audioUrl);
    this.audioUrl = null;
  }
}

export class JobList {
  /**
   * @param {object} nodes list (<ul>), empty (paragraph), restored (status line), deleteAll (button)
   * @param {object} hooks announce, onFinished, onOpen, onGone, onNeedKey, keyTag, confirm,
   *   focusAfterLastRemoved
   */
  constructor(nodes, hooks) {
    Object.assign(this, nodes);
    this.hooks = hooks;
    this.jobs = [];
    // Uploads go one at a time, in the order the files were added, so the queue keeps that order.
    this.uploads = Promise.resolve();
    this.forgotten = 0;
    setInterval(() => this.tick(), 1000);
    this.deleteAll.addEventListener("click", () => this.deleteAllMine());
    tabs?.addEventListener("message", (event) => this.fromOtherTab(event.data || {}));
  }

  add(file, options) {
    const job = this.insert(new Job({ file, options }));
    if (!file.size) {
      this.set(job, "rejected", EMPTY_FILE, { detail: "It has no sound in it at all, so nothing was sent." });
      return job;
    }
    this.set(job, "waiting-upload", "Waiting to upload…");
    this.scheduleUpload(job);
    return job;
  }

  insert(job) {
    this.jobs.push(job);
    job.row = buildRow(job, (action) => this.act(job, action));
    // Newest first: a file just added is at the top, where people look.
    this.list.prepend(job.row.item);
    this.refreshListState();
    return job;
  }

  refreshListState() {
    this.empty.hidden = this.jobs.length > 0;
    this.deleteAll.hidden = !this.jobs.some((job) => job.taskId);
  }

  /** A task the server made without an upload from this list (a kept live session). */
  adopt(taskId, name) {
    const job = this.insert(new Job({
      name, size: 0, options: {}, taskId, keyTag: this.hooks.keyTag(), kind: "live",
    }));
    rememberJob(job);
    this.refreshListState();
    this.set(job, "restoring", "Asking the server about it…");
    this.follow(job);
    return job;
  }

  /** Show the remembered jobs of the key in use and pick each up where the server has it. */
  restore(keyTag) {
    const shown = new Set(this.jobs.map((job) => job.taskId));
    for (const record of rememberedJobsFor(keyTag)) {
      if (shown.has(record.taskId)) continue;
      const job = this.insert(new Job({ ...record }));
      this.set(job, "restoring", "Asking the server about it…");
      this.follow(job);
    }
  }

  /** The key changed: keep what this key may see, then bring back its remembered jobs. */
  switchKey(keyTag) {
    for (const job of [...this.jobs]) {
      if (job.taskId && job.keyTag !== keyTag) this.drop(job);
    }
    this.restore(keyTag);
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
      job.keyTag = this.hooks.keyTag();
      rememberJob(job);
      this.refreshListState();
      this.applyServerState(job, task);
      this.follow(job);
    } catch (error) {
      this.uploadFailed(job, error);
    }
  }

  uploadFailed(job, error) {
    if (error.status === 429) {
      this.waitAndRetry(job, error.retryAfterS ?? DEFAULT_RETRY_S);
    } else if (error.status === 401 || error.status === 403) {
      this.needKey(job, error.status);
    } else {
      const { state, status, detail } = uploadRefusal(job, error);
      this.set(job, state, status, { detail });
    }
  }

  /** A full queue: one live countdown, then the file goes again by itself. */
  waitAndRetry(job, seconds) {
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
        detail: "Nothing was lost: the file stays here and is sent again by itself.",
      });
    };
    tick();
    job.retryTimer = setInterval(tick, 1000);
  }

  needKey(job, status) {
    const rejected = status === 401 && this.hooks.keyTag() !== "";
    const words = status === 403 ? "This API key may not do that."
      : rejected ? "That key was not accepted." : "This server needs an API key.";
    this.set(job, "needs-key", words, { detail: "Enter a key; the file is sent again once you have." });
    this.hooks.onNeedKey();
  }

  async follow(job) {
    job.controller = new AbortController();
    try {
      const final = await followTask(job.taskId, (state) => this.applyServerState(job, state), job.controller.signal);
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
      forgetJob(job.taskId);
      if (job.state === "restoring") {
        // Remembered, but the server has forgotten it: just drop it, and say why if we know.
        this.forgotten += 1;
        if (this.couldHaveExpired(job)) this.expiredSeen = true;
        const one = this.forgotten === 1;
        const count = plural(this.forgotten, "earlier result");
        const were = one ? "was" : "were";
        this.restored.textContent = this.expiredSeen
          ? `${count} had expired or been deleted on the server and ${were} taken off this list.`
          : `${count} ${one ? "is" : "are"} no longer on the server (it was restarted, or ${one ? "it was" : "they were"} deleted) and ${were} taken off this list.`;
        this.drop(job);
        return;
      }
      this.set(job, "expired", "The server no longer has this task.", { detail: "It expired or was deleted." });
      this.hooks.onGone(job);
    } else {
      this.set(job, "failed", "Lost track of this task.", { detail: error.detail || String(error) });
    }
  }

  /** Show a task state from the server: an event, a poll or the upload's answer. */
  applyServerState(job, state) {
    switch (state.status) {
      case "pending": {
        const ahead = Math.max(0, (Number(state.position_in_queue) || 1) - 1);
        const where = ahead ? `${plural(ahead, "file")} ahead` : "next in line";
        this.set(job, "queued", `Waiting: ${where}.`);
        break;
      }
      case "processing":
        // Seen starting here: time it. Already running when the page came back: no guess.
        if (!job.processingSince && job.state !== "restoring") job.processingSince = Date.now();
        job.lastState = state;
        job.lastStateAt = Date.now();
        this.paintProcessing(job);
        break;
      case "finished":
        this.set(job, "fetching", "Finished. Loading the transcript…", { progress: 1 });
        break;
      case "failed":
        if (DELETED_BY_OWNER.test(state.error || "")) {
          // Cancelled in another tab (or by another program with the same key): not a fault.
          forgetJob(job.taskId);
          this.set(job, "cancelled", "Cancelled.", { detail: "It was cancelled in another tab or program." });
          break;
        }
        this.set(job, "failed", "The server could not finish this file.", {
          detail: `Reason: ${state.error || "not given"}.`,
        });
        break;
      default:
        break;
    }
  }

  elapsed(job) {
    if (!job.processingSince) return "";
    return `Started ${plural(Math.round((Date.now() - job.processingSince) / 1000), "second")} ago.`;
  }

  /** A running job: its step, the share done and the time left, moved on since the server's
   *  last word at its pace; never backwards. */
  paintProcessing(job) {
    const since = (Date.now() - (job.lastStateAt || Date.now())) / 1000;
    const state = job.lastState || {};
    const now = stateNow(state, since);
    job.shownProgress = Math.max(job.shownProgress || 0, now.progress);
    now.progress = job.shownProgress;
    this.set(job, "processing", processingText(job, now), {
      detail: this.elapsed(job),
      progress: job.shownProgress > 0 ? job.shownProgress : null,
    });
  }

  /** Once a second: the time since a running job started and the share moved on, so a long
   *  step visibly moves. */
  tick() {
    for (const job of this.jobs) {
      if (job.state === "processing") this.paintProcessing(job);
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
    job.row.meta.textContent = describeOptions(job);
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
      forgetJob(job.taskId);
      tabs?.postMessage({ type: "cancelled", taskIds: [job.taskId] });
    }
    this.set(job, "cancelled", "Cancelled.", {
      detail: job.taskId ? "The server has forgotten it." : "Nothing was sent.",
    });
  }

  /** Erase the result on the server now; the page forgets the text and the edits too. */
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
    forgetJob(job.taskId);
    tabs?.postMessage({ type: "deleted", taskIds: [job.taskId] });
    job.result = null;
    job.task = null;
    this.set(job, "deleted", "Deleted from the server.", {
      detail: "The transcript is gone there and from this page; your local file is untouched.",
    });
    this.hooks.onGone(job);
  }

  /** "Delete all mine from the server": every task this page knows for the key in use. */
  async deleteAllMine() {
    const mine = this.jobs.filter((job) => job.taskId);
    const ok = await this.hooks.confirm(
      `Delete all ${plural(mine.length, "result")} of yours from the server?`,
      "Queued and running files are cancelled, finished transcripts erased at once, together with any edits made here. This cannot be undone.",
      "Delete all",
    );
    if (!ok) return;
    for (const job of mine) job.controller.abort();
    const gone = new Set(await deleteTasks(mine.map((job) => job.taskId)));
    tabs?.postMessage({ type: "deleted", taskIds: [...gone] });
    for (const job of mine) {
      if (!gone.has(job.taskId)) continue;
      forgetJob(job.taskId);
      this.drop(job);
    }
    const left = mine.length - gone.size;
    this.hooks.announce(left ? `Deleted ${gone.size}; ${plural(left, "result")} could not be deleted.` : `Deleted ${plural(gone.size, "result")} from the server.`);
    this.restored.textContent = left ? `${plural(left, "result")} could not be deleted; try again.` : "All your results are deleted from the server.";
    if (!this.jobs.length) this.hooks.focusAfterLastRemoved();
  }

  /** Take a row off the list (the job stays remembered unless forgotten first). */
  drop(job) {
    clearInterval(job.retryTimer);
    job.controller.abort();
    job.forgetLocalAudio();
    this.jobs.splice(this.jobs.indexOf(job), 1);
    job.row.item.remove();
    this.refreshListState();
    this.hooks.onGone(job);
  }

  remove(job) {
    // A failed task still has a record on the server until it expires: tidy it up quietly.
    if (job.taskId && job.state === "failed") deleteTask(job.taskId).catch(() => {});
    if (job.taskId) forgetJob(job.taskId);
    const index = this.jobs.indexOf(job);
    this.drop(job);
    const next = this.jobs[index] || this.jobs[index - 1];
    if (next) next.row.item.focus();
    else this.hooks.focusAfterLastRemoved();
  }

  /** After an API key is entered: send again what was refused for want of one. */
  resumeAfterKey() {
    for (const job of this.jobs) {
      if (job.state !== "needs-key") continue;
      if (job.taskId) {
        this.set(job, "queued", "Checking the task again…");
        this.follow(job);
      } else {
        this.set(job, "waiting-upload", "Waiting to upload…");
        this.scheduleUpload(job);
      }
    }
  }

  /** Whether the server may have let the job's result expire by now (else it was restarted). */
  couldHaveExpired(job) {
    const minutes = Number(this.hooks.getPrivacy?.()?.delete_results_after_m);
    const added = Date.parse(job.addedAt);
    if (!Number.isFinite(minutes) || Number.isNaN(added)) return true;
    return Date.now() - added >= minutes * 60_000 * 0.9;
  }

  /** Another tab cancelled or deleted tasks: show it here too, without asking the server. */
  fromOtherTab({ type, taskIds }) {
    if (!Array.isArray(taskIds) || !["cancelled", "deleted"].includes(type)) return;
    for (const job of this.jobs.filter((one) => taskIds.includes(one.taskId))) {
      job.controller.abort();
      if (type === "cancelled") {
        this.set(job, "cancelled", "Cancelled in another tab.", { detail: "The server has forgotten it." });
      } else {
        job.result = null;
        this.set(job, "deleted", "Deleted from the server in another tab.", {
          detail: "The transcript is gone there and from this page.",
        });
        this.hooks.onGone(job);
      }
    }
  }

  markOpen(openJob) {
    for (const job of this.jobs) markOpen(job.row, job === openJob);
  }

  act(job, action) {
    if (action === "open") this.hooks.onOpen(job);
    else if (action === "key") this.hooks.onNeedKey();
    else if (action === "cancel") this.cancel(job);
    else if (action === "remove") this.remove(job);
    else if (action === "retry") {
      clearInterval(job.retryTimer);
      job.retryTimer = null;
      this.set(job, "waiting-upload", "Trying again…");
      this.scheduleUpload(job);
    }
  }

  set(job, state, status, { detail = "", progress = null } = {}) {
    const entered = job.state !== state;
    job.state = state;
    if (!ACTIVE.has(state)) job.processingSince = 0;
    paintRow(job.row, { state, status, detail, progress });
    if (entered && ANNOUNCED.has(state)) this.hooks.announce(`${job.name}: ${status}`);
  }
}
