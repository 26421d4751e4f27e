// The result of one job: timed lines that play the local recording, search, copy, download, delete.
import { getResultFile } from "./api.js";
import { clock, lifetime, percent, plural, spokenClock, timeOfDay } from "./format.js";
import { languageName } from "./languages.js";

const $ = (id) => document.getElementById(id);

export class Viewer {
  /** @param {object} hooks announce(text), deleteResult(job) -> Promise, getPrivacy() */
  constructor(hooks) {
    this.hooks = hooks;
    this.job = null;
    this.lines = []; // [{segment, item, words: [{start, end, node}]}]
    this.current = null;
    this.engaged = false;
    this.root = $("viewer");
    this.player = $("player");
    this.search = $("search");
    this.segmentsList = $("segments");
    this.copyButton = $("copy-button");
    this.deleteButton = $("delete-button");

    this.segmentsList.addEventListener("click", (event) => this.playFrom(event));
    this.search.addEventListener("input", () => this.renderLines());
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.search.value) {
        event.preventDefault();
        this.search.value = "";
        this.renderLines();
      }
    });
    this.player.addEventListener("timeupdate", () => this.followPlayback());
    this.player.addEventListener("seeked", () => this.followPlayback());
    this.copyButton.addEventListener("click", () => this.copy());
    for (const button of this.root.querySelectorAll("[data-format]")) {
      button.addEventListener("click", () => this.download(button.dataset.format, button));
    }
    this.deleteButton.addEventListener("click", () => this.deleteNow());
  }

  /** Show a finished job; `focus` moves keyboard focus to the heading (when asked for). */
  show(job, { focus = false } = {}) {
    if (!job.result) return;
    const switching = this.job !== job;
    this.job = job;
    this.root.hidden = false;
    $("viewer-kind").textContent = job.options.task === "translate" ? "Translation" : "Transcript";
    $("viewer-name").textContent = job.name;
    $("viewer-summary").textContent = summary(job);
    $("viewer-note").textContent = this.expiryNote(job);
    if (switching) {
      this.engaged = false;
      this.player.src = job.localAudioUrl();
      this.search.value = "";
      this.copyButton.textContent = "Copy text";
    }
    this.renderLines();
    if (focus) $("viewer-heading").focus();
  }

  /** The job went away (deleted, expired, removed): close if it is the one shown. */
  forget(job) {
    if (this.job !== job) return;
    this.job = null;
    this.player.pause();
    this.player.removeAttribute("src");
    this.player.load();
    this.segmentsList.replaceChildren();
    this.lines = [];
    this.root.hidden = true;
  }

  expiryNote(job) {
    const privacy = this.hooks.getPrivacy();
    const until = job.task?.expires_at ? timeOfDay(job.task.expires_at) : "";
    if (!until && !privacy) return "";
    const parts = [];
    if (until) parts.push(`The server keeps this result until about ${until}`);
    else parts.push(`The server keeps this result for ${lifetime(privacy.delete_results_after_m)}`);
    if (privacy?.refresh_expiration_time_on_usage) {
      parts.push("(opening or downloading it again restarts that clock)");
    }
    return `${parts.join(" ")}, then erases it. “Delete from server now” erases it at once.`;
  }

  // ---- lines

  renderLines() {
    const segments = this.job?.result?.segments || [];
    const query = this.search.value.trim();
    const needle = query.toLocaleLowerCase();
    const items = [];
    this.lines = [];
    let matches = 0;
    let total = 0;
    for (const segment of segments) {
      const text = String(segment.text || "").trim();
      if (!text) continue;
      total += 1;
      const matching = !needle || text.toLocaleLowerCase().includes(needle);
      if (!matching) continue;
      matches += 1;
      const line = this.buildLine(segment, text, needle);
      this.lines.push(line);
      items.push(line.item);
    }
    this.segmentsList.replaceChildren(...items);
    this.current = null;
    const count = $("search-count");
    if (!needle) count.textContent = "";
    else if (!matches) count.textContent = "No lines match.";
    else count.textContent = `Found in ${matches} of ${plural(total, "line")}.`;
    this.followPlayback();
  }

  buildLine(segment, text, needle) {
    const item = document.createElement("li");
    item.className = "segment";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "segment-button";
    button.dataset.start = String(segment.start);

    const time = document.createElement("span");
    time.className = "segment-time";
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = `Play from ${spokenClock(segment.start)}: `;
    const shown = document.createElement("span");
    shown.setAttribute("aria-hidden", "true");
    shown.textContent = clock(segment.start);
    time.append(hidden, shown);

    const body = document.createElement("span");
    body.className = "segment-text";
    const words = [];
    if (needle) {
      body.append(...highlight(text, needle));
    } else if (Array.isArray(segment.words) && segment.words.length) {
      segment.words.forEach((word, index) => {
        const node = document.createElement("span");
        node.className = "word";
        node.dataset.start = String(word.start);
        node.textContent = index === 0 ? String(word.word).trimStart() : word.word;
        body.append(node);
        words.push({ start: word.start, end: word.end, node });
      });
    } else {
      body.textContent = text;
    }
    button.append(time, body);
    item.append(button);
    return { segment, item, words };
  }

  // ---- playback

  playFrom(event) {
    const target = event.target.closest("[data-start]");
    if (!target || !this.segmentsList.contains(target)) return;
    const start = Number(target.dataset.start);
    if (!Number.isFinite(start)) return;
    this.engaged = true;
    this.player.currentTime = start;
    this.followPlayback();
    this.player.play().catch(() => {
      // The browser could not play this file type; the time is still set for the controls.
    });
  }

  followPlayback() {
    const time = this.player.currentTime;
    // Nothing is "current" before the recording has been played or a line chosen.
    const started = this.engaged || !this.player.paused || time > 0;
    const playing = started
      ? this.lines.find(({ segment }) => time >= segment.start && time < segment.end)
      : undefined;
    if (playing !== this.current) {
      this.current?.item.classList.remove("is-current");
      this.current?.item.removeAttribute("aria-current");
      if (playing) {
        playing.item.classList.add("is-current");
        playing.item.setAttribute("aria-current", "true");
      }
      this.current = playing || null;
    }
    if (playing?.words.length) {
      for (const word of playing.words) {
        word.node.classList.toggle("is-current", time >= word.start && time < word.end);
      }
    }
  }

  // ---- actions

  plainText() {
    const segments = this.job?.result?.segments || [];
    const lines = segments.map((segment) => String(segment.text || "").trim()).filter(Boolean);
    return lines.length ? lines.join("\n") : String(this.job?.result?.text || "").trim();
  }

  async copy() {
    const text = this.plainText();
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      copied = copyWithSelection(text);
    }
    this.copyButton.textContent = copied ? "Copied" : "Copy failed";
    this.hooks.announce(copied ? "Transcript copied to the clipboard." : "Copying did not work here.");
    setTimeout(() => {
      this.copyButton.textContent = "Copy text";
    }, 2500);
  }

  async download(format, button) {
    const job = this.job;
    if (!job) return;
    button.setAttribute("aria-busy", "true");
    try {
      const { blob, fileName } = await getResultFile(job.taskId, format);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = fileName || `${stem(job.name)}.${format}`;
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      this.hooks.announce(`Downloaded ${link.download}.`);
    } catch (error) {
      if (error.status === 404) this.hooks.resultGone(job);
      else if (error.status === 401 || error.status === 403) this.hooks.needKey();
      this.hooks.announce(`The download did not work: ${error.detail || error.message}`);
      $("viewer-note").textContent = `The download did not work: ${error.detail || error.message}`;
    } finally {
      button.removeAttribute("aria-busy");
    }
  }

  async deleteNow() {
    const job = this.job;
    if (!job) return;
    this.deleteButton.disabled = true;
    try {
      await this.hooks.deleteResult(job);
    } catch (error) {
      $("viewer-note").textContent = `Deleting did not work: ${error.detail || error.message}`;
    } finally {
      this.deleteButton.disabled = false;
    }
  }
}

function summary(job) {
  const { result, task, options } = job;
  const parts = [];
  if (result.language) {
    const name = languageName(result.language);
    const sure = Number(result.language_probability);
    parts.push(
      options.language || !Number.isFinite(sure) || sure <= 0
        ? name
        : `${name} (detected, ${percent(sure)} sure)`,
    );
  }
  if (Number.isFinite(result.duration)) parts.push(`${clock(result.duration)} of audio`);
  if (task?.used_model_size) parts.push(`model ${task.used_model_size}`);
  if (Number.isFinite(task?.processing_duration)) {
    parts.push(`took ${task.processing_duration.toFixed(1)} s`);
  }
  return parts.join(" · ");
}

function stem(fileName) {
  const dot = fileName.lastIndexOf(".");
  return (dot > 0 ? fileName.slice(0, dot) : fileName) || "transcript";
}

/** The text split into plain parts and <mark>s around each (case-insensitive) match. */
function highlight(text, needle) {
  const lower = text.toLocaleLowerCase();
  if (lower.length !== text.length) return [document.createTextNode(text)];
  const parts = [];
  let from = 0;
  let at = lower.indexOf(needle, from);
  while (at >= 0) {
    if (at > from) parts.push(document.createTextNode(text.slice(from, at)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(at, at + needle.length);
    parts.push(mark);
    from = at + needle.length;
    at = lower.indexOf(needle, from);
  }
  if (from < text.length) parts.push(document.createTextNode(text.slice(from)));
  return parts;
}

/** Copy for pages served over plain http on a LAN, where navigator.clipboard is absent. */
function copyWithSelection(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  const active = document.getElementById("copy-button");
  active?.focus();
  return copied;
}
