// The transcript viewer: player and tools (sticky), the timed lines, search, edits, speakers.
import { getResultFile } from "./api.js";
import { editedFile, editedLines, hasEdits, toText } from "./exporter.js";
import { clock, lifetime, percent, timeOfDay } from "./format.js";
import { languageName } from "./languages.js";
import { buildLine, startEditing } from "./lines.js";
import { loadEdits, saveEdits } from "./store.js";

const $ = (id) => document.getElementById(id);
const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

export class Viewer {
  /**
   * @param {object} hooks announce(text), getPrivacy(), deleteResult(job), resultGone(job),
   *   needKey(), confirm(title, text, action), followPref(value?) , onShown(job)
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.job = null;
    this.edits = { lines: {}, speakers: {} };
    this.lines = []; // [{index, segment, item, words: [{start, end, node}]}]
    this.current = null;
    this.engaged = false;
    this.root = $("viewer");
    this.player = $("player");
    this.search = $("search");
    this.segmentsList = $("segments");
    this.copyButton = $("copy-button");
    this.deleteButton = $("delete-button");
    this.follow = $("follow");
    this.follow.checked = hooks.followPref();

    this.segmentsList.addEventListener("click", (event) => this.onListClick(event));
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
    this.follow.addEventListener("change", () => {
      this.hooks.followPref(this.follow.checked);
      if (this.follow.checked) this.scrollToCurrent();
    });
    this.copyButton.addEventListener("click", () => this.copy());
    for (const button of this.root.querySelectorAll("[data-format]")) {
      button.addEventListener("click", () => this.download(button.dataset.format, button));
    }
    this.deleteButton.addEventListener("click", () => this.deleteNow());
  }

  get hasAudio() {
    return Boolean(this.job?.file);
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
    $("viewer-note").textContent = this.note(job);
    // Times play only where the recording is in this page; say only what works.
    $("viewer-help").textContent = this.hasAudio
      ? "Select a time or a word to play from there; “Edit” changes a line here in this browser (copy and downloads use your edits)."
      : "“Edit” changes a line here in this browser (copy and downloads use your edits).";
    this.root.classList.toggle("can-play", this.hasAudio);
    if (switching) {
      this.edits = loadEdits(job.taskId);
      this.engaged = false;
      const url = job.localAudioUrl();
      this.player.hidden = !url;
      if (url) this.player.src = url;
      else this.player.removeAttribute("src");
      this.search.value = "";
      this.copyButton.textContent = "Copy text";
      this.renderSpeakers();
    }
    this.renderLines();
    this.hooks.onShown(job);
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
    this.hooks.onShown(null);
  }

  note(job) {
    const privacy = this.hooks.getPrivacy();
    const until = job.task?.expires_at ? timeOfDay(job.task.expires_at) : "";
    const parts = [];
    if (until) parts.push(`The server keeps this result until about ${until}`);
    else if (privacy) parts.push(`The server keeps this result for ${lifetime(privacy.delete_results_after_m)}`);
    if (parts.length && privacy?.refresh_expiration_time_on_usage) {
      parts.push("(opening or downloading it again restarts that clock)");
    }
    const keep = parts.length ? `${parts.join(" ")}, then erases it. ` : "";
    let audio = "";
    if (job.kind === "live") audio = " A live transcript keeps no recording, so there is nothing to play here.";
    else if (!this.hasAudio) audio = " The recording was added before this page was reloaded (or in another tab), so it cannot be played here.";
    return `${keep}Your edits stay in this browser only.${audio}`;
  }

  // ---- lines

  renderLines() {
    const segments = this.job?.result?.segments || [];
    const needle = this.search.value.trim().toLocaleLowerCase();
    const shown = editedLines(this.job?.result, this.edits);
    const items = [];
    this.lines = [];
    for (const line of shown) {
      if (needle && !line.text.toLocaleLowerCase().includes(needle)) continue;
      const built = buildLine({
        segment: segments[line.index],
        line,
        edited: line.index in this.edits.lines,
        needle,
        playable: this.hasAudio,
      });
      this.lines.push(built);
      items.push(built.item);
    }
    this.segmentsList.replaceChildren(...items);
    this.current = null;
    const count = $("search-count");
    if (!needle) count.textContent = "";
    else if (!this.lines.length) count.textContent = "No lines match.";
    else count.textContent = `Found in ${this.lines.length} of ${shown.length} line${shown.length === 1 ? "" : "s"}.`;
    this.followPlayback();
  }

  renderSpeakers() {
    const labels = [...new Set((this.job?.result?.segments || [])
      .map((segment) => segment.speaker).filter((label) => typeof label === "string" && label))];
    const box = $("speakers");
    box.hidden = !labels.length;
    $("speaker-fields").replaceChildren(...labels.map((label, number) => {
      const field = document.createElement("label");
      const input = document.createElement("input");
      input.type = "text";
      input.value = this.edits.speakers[label] || "";
      input.placeholder = label;
      input.id = `speaker-${number}`;
      input.addEventListener("change", () => {
        const name = input.value.trim();
        if (name && name !== label) this.edits.speakers[label] = name;
        else delete this.edits.speakers[label];
        this.saveEdits(`${label} is now called ${name || label}.`);
      });
      field.append(`Name for ${label}`, input);
      return field;
    }));
  }

  saveEdits(message) {
    saveEdits(this.job.taskId, this.edits);
    this.renderLines();
    this.hooks.announce(message);
  }

  onListClick(event) {
    const edit = event.target.closest(".segment-edit");
    if (edit) {
      this.editLine(Number(edit.closest(".segment").dataset.index));
      return;
    }
    if (event.target.closest(".segment-editor, .segment-editing-actions")) return;
    const target = event.target.closest("[data-start]");
    if (!target || !this.segmentsList.contains(target) || !this.hasAudio) return;
    this.playFrom(Number(target.dataset.start));
  }

  editLine(index) {
    const built = this.lines.find((line) => line.index === index);
    if (!built) return;
    const original = String(this.job.result.segments[index].text || "").trim();
    startEditing(built, {
      onSave: (text) => {
        const clean = text.replace(/\s+/g, " ").trim();
        if (!clean || clean === original) delete this.edits.lines[index];
        else this.edits.lines[index] = clean;
        this.saveEdits(clean && clean !== original ? "Line changed." : "Line back as transcribed.");
        this.focusEditButton(index);
      },
      onCancel: () => {
        this.renderLines();
        this.focusEditButton(index);
      },
    });
  }

  focusEditButton(index) {
    this.segmentsList.querySelector(`.segment[data-index="${index}"] .segment-edit`)?.focus();
  }

  // ---- playback

  playFrom(start) {
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
    const started = this.hasAudio && (this.engaged || !this.player.paused || time > 0);
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
      if (!this.player.paused) this.scrollToCurrent();
    }
    for (const word of playing?.words || []) {
      word.node.classList.toggle("is-current", time >= word.start && time < word.end);
    }
  }

  /** Keep the playing line in view, unless people turned following off or are typing in it. */
  scrollToCurrent() {
    const item = this.current?.item;
    if (!item || !this.follow.checked || item.contains(document.activeElement)) return;
    const box = item.getBoundingClientRect();
    const sticky = this.root.querySelector(".viewer-sticky").getBoundingClientRect();
    if (box.top >= sticky.bottom && box.bottom <= window.innerHeight) return;
    item.scrollIntoView({ block: "center", behavior: reducedMotion() ? "auto" : "smooth" });
  }

  // ---- actions

  async copy() {
    const text = toText(editedLines(this.job?.result, this.edits)) || String(this.job?.result?.text || "").trim();
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
      // With edits the page builds the file itself, so the download says what people corrected.
      const { blob, fileName } = hasEdits(this.edits)
        ? { blob: editedFile(job.result, this.edits, format), fileName: null }
        : await getResultFile(job.taskId, format);
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
    const ok = await this.hooks.confirm(
      `Delete “${job.name}” from the server?`,
      "The transcript is erased there at once, and your edits in this browser with it. Your own file is untouched. This cannot be undone.",
      "Delete",
    );
    if (!ok) return;
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
  if (job.addedAt) parts.push(`added ${timeOfDay(job.addedAt, { seconds: true })}`);
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
  document.getElementById("copy-button")?.focus();
  return copied;
}
