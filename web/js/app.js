// Wires the page together: adding files (drop, choose, record), options, the job list, the
// viewer, privacy and the API key.
import { ApiError, checkKey, getModels, getPrivacy, liveRefusal } from "./api.js";
import { lifetime } from "./format.js";
import { JobList } from "./jobs.js";
import { KeyFlow } from "./keys.js";
import { LANGUAGES, languageLabel, languageName, resolveLanguage } from "./languages.js";
import { LiveMode } from "./live.js";
import { loadPrefs, savePrefs } from "./prefs.js";
import { Recorder, recordingProblem, recordingSupported } from "./recorder.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);

let prefs = loadPrefs();
let privacy = null;
let announceTimer = null;
// Loads that were refused for want of a key, tried again once one is accepted.
const pendingAfterKey = new Set();

/** Say something to screen-reader users without moving focus. */
function announce(text) {
  const region = $("announcer");
  clearTimeout(announceTimer);
  // Clearing first makes the same sentence twice in a row still be read.
  region.textContent = "";
  announceTimer = setTimeout(() => {
    region.textContent = text;
  }, 60);
}

function showUploadError(text) {
  const error = $("upload-error");
  error.textContent = text;
  error.hidden = !text;
}

// ---- options, folded into one line that opens in place

function setUpOptions() {
  const form = $("options");
  const languageInput = $("language");
  $("language-list").append(
    ...LANGUAGES.map(([code]) => {
      const option = document.createElement("option");
      option.value = languageLabel(code);
      return option;
    }),
  );
  form.elements.task.value = prefs.task;
  languageInput.value = languageLabel(prefs.language);
  $("word-timestamps").checked = prefs.wordTimestamps;
  form.addEventListener("change", () => {
    readOptions();
    savePrefs(prefs);
    updateModelHint();
    updateSummary();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  languageInput.addEventListener("input", () => checkLanguage(false));
  languageInput.addEventListener("blur", () => checkLanguage(true));
  updateSummary();
}

function updateSummary() {
  const parts = [
    prefs.task === "translate" ? "Translate into English" : "Transcribe",
    prefs.language ? languageName(prefs.language) : "detect language",
    prefs.model || "server's model",
  ];
  if (prefs.wordTimestamps) parts.push("word times");
  $("options-summary").textContent = parts.join(" · ");
}

/** Validate the language field; on `tidy`, show a known language in its full form. */
function checkLanguage(tidy) {
  const input = $("language");
  const hint = $("language-hint");
  const code = resolveLanguage(input.value);
  const invalid = code === null && (tidy || input.value.trim().length > 2);
  input.setAttribute("aria-invalid", String(invalid));
  hint.classList.toggle("hint-error", invalid);
  if (invalid) {
    hint.textContent = `“${input.value.trim()}” is not a language Whisper knows. Pick one from the list, or leave it empty to detect it.`;
  } else if (code) {
    hint.textContent = `Whisper will listen for ${languageLabel(code)}.`;
    if (tidy) input.value = languageLabel(code);
  } else if (code === "") {
    hint.textContent = "Leave empty to detect it, or type to search the list.";
    if (tidy) input.value = "";
  }
  return code;
}

function readOptions() {
  const form = $("options");
  const code = resolveLanguage($("language").value);
  prefs = {
    ...prefs,
    task: form.elements.task.value === "translate" ? "translate" : "transcribe",
    language: code ?? prefs.language,
    model: $("model").value,
    wordTimestamps: $("word-timestamps").checked,
  };
  return code;
}

async function loadModels() {
  const select = $("model");
  let models;
  try {
    models = await getModels();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      $("model-hint").textContent = "Enter an API key to see this server's models.";
      pendingAfterKey.add(loadModels);
      return;
    }
    models = null;
  }
  select.replaceChildren(new Option("Server's choice", ""));
  for (const { name } of models || []) select.append(new Option(name, name));
  const known = [...select.options].some((option) => option.value === prefs.model);
  select.value = known ? prefs.model : "";
  select.dataset.listed = models ? "yes" : "no";
  updateModelHint();
}

function updateModelHint() {
  const model = $("model").value;
  const hint = $("model-hint");
  hint.classList.remove("hint-error");
  if (model.endsWith(".en")) {
    hint.textContent = "English only: it can neither translate nor detect a language.";
    if (prefs.task === "translate" || prefs.language !== "en") {
      hint.textContent += " With these options the server picks a multilingual model or refuses.";
      hint.classList.add("hint-error");
    }
  } else if ($("model").dataset.listed === "no") {
    hint.textContent = "This server does not list its models; it picks the best one it may use.";
  } else {
    hint.textContent = "Larger models are more accurate and slower. The list stops at this server's limit.";
  }
}

// ---- adding files: drop, choose, record

function addFiles(files) {
  if (checkLanguage(true) === null) {
    $("options-panel").open = true;
    showUploadError("Choose a language from the list (or leave the field empty) before adding files.");
    $("language").focus();
    return;
  }
  showUploadError("");
  readOptions();
  savePrefs(prefs);
  // The choices stay in the panel's one-line summary; folded, the panel no longer pushes the
  // transcript that is about to open down to the bottom edge of a laptop screen.
  $("options-panel").open = false;
  for (const file of files) jobs.add(file, prefs);
}

function setUpDropzone() {
  const input = $("file-input");
  const zone = $("dropzone");
  input.addEventListener("change", () => {
    if (input.files?.length) addFiles([...input.files]);
    input.value = ""; // so choosing the same file again still counts
  });
  // The whole window takes drops, so a near miss never opens the file in the tab instead.
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    zone.classList.add("is-dragging");
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("is-dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("is-dragging");
    const files = [...event.dataTransfer.files];
    if (files.length) addFiles(files);
  });
}

function setUpRecorder() {
  const button = $("record-button");
  const panel = $("recorder");
  const recorder = new Recorder({
    onTick: (text) => {
      $("record-time").textContent = text;
    },
    onLevel: (level) => {
      $("record-level").value = level;
    },
    onDone: (file) => addFiles([file]),
    onStopped: () => {
      panel.hidden = true;
      button.disabled = false;
      button.focus();
    },
  });
  button.addEventListener("click", async () => {
    showUploadError("");
    if (!window.isSecureContext || !recordingSupported()) {
      showUploadError(recordingProblem(null));
      return;
    }
    button.disabled = true;
    try {
      await recorder.start();
    } catch (error) {
      button.disabled = false;
      showUploadError(recordingProblem(error));
      return;
    }
    panel.hidden = false;
    $("record-stop").focus();
    announce("Recording. Press “Stop and transcribe” when you are done.");
  });
  $("record-stop").addEventListener("click", () => recorder.stop());
  $("record-cancel").addEventListener("click", () => {
    recorder.discard();
    announce("The recording was discarded.");
  });
}

function setUpLive() {
  const live = new LiveMode(
    {
      panel: $("live-panel"),
      text: $("live-text"),
      status: $("live-status"),
      stop: $("live-stop"),
      copy: $("live-copy"),
      download: $("live-download"),
      keep: $("live-keep"),
    },
    {
      announce,
      language: () => prefs.language || "",
      onError: showUploadError,
      onKept: (taskId) => jobs.adopt(taskId, "Live transcript"),
    },
  );
  $("live-button").addEventListener("click", async () => {
    showUploadError("");
    if (live.active) return;
    // A server that takes no live session says so before the microphone is asked for.
    const refusal = await liveRefusal();
    if (refusal) {
      showUploadError(refusal);
      return;
    }
    if (!window.isSecureContext || !recordingSupported()) {
      showUploadError(recordingProblem(null));
      return;
    }
    try {
      await live.start();
    } catch (error) {
      showUploadError(recordingProblem(error));
    }
  });
}

// ---- privacy, and whether a key is needed

async function loadPrivacy() {
  const list = $("privacy-list");
  try {
    privacy = await getPrivacy();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      keys.setRequired(true);
      pendingAfterKey.add(loadPrivacy);
      list.replaceChildren(item("Enter an API key to see this server's privacy settings."));
      return;
    }
    list.replaceChildren(item(`This server's privacy settings could not be loaded (${error.detail || error.message}).`));
    return;
  }
  keys.setRequired(privacy.api_key_required);
  const keep = lifetime(privacy.delete_results_after_m);
  list.replaceChildren(
    item(privacy.audio_stored_on_disk
      ? "This server writes uploaded audio to its disk."
      : "Your audio is decoded in memory and never written to the server's disk."),
    item(`Transcripts stay in the server's memory for ${keep} after they finish` +
      (privacy.refresh_expiration_time_on_usage ? ", counted again from each time they are opened or downloaded" : "") +
      ", then they are erased. “Delete…” erases one at once."),
    item(privacy.log_privacy_mode
      ? "Server logs record events and timings, never what was said or file names, and shorten task ids."
      : "Server logs record events and timings, never what was said or file names; task ids and addresses appear in full."),
    item("This browser remembers your choices and which files you sent (names and task ids, never the text) so they are still here after a reload; edits stay in this browser only; an API key stays in this tab only."),
  );
  list.dataset.loaded = "yes";
  const short = $("upload-privacy");
  short.textContent = privacy.audio_stored_on_disk
    ? `Results are erased ${keep} after they finish.`
    : `Audio is never stored on disk; results are erased ${keep} after they finish.`;
  short.hidden = false;
}

function item(text) {
  const node = document.createElement("li");
  node.textContent = text;
  return node;
}

/** Ask before something that cannot be undone; resolves true when people confirm. */
function confirmAction(title, text, action) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = action;
  dialog.returnValue = "";
  const opener = document.activeElement;
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      opener?.focus?.();
      resolve(dialog.returnValue === "ok");
    }, { once: true });
  });
}

/** On a phone the transcript is under the list: bring it into view when it opens by itself,
 *  unless people are typing somewhere (that would pull the page from under them). */
function revealOnNarrowScreen() {
  if (!window.matchMedia("(max-width: 56rem)").matches) return;
  if (isTyping(document.activeElement)) return;
  const reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  $("viewer").scrollIntoView({ block: "start", behavior: reduced ? "auto" : "smooth" });
}

/** Whether `element` takes typed text: a ticked checkbox or the file input that just chose
 *  the files keeps the focus too, and must not stop the transcript from coming into view. */
function isTyping(element) {
  if (!element?.matches) return false;
  if (element.matches("textarea, select, [contenteditable='true']")) return true;
  return element.matches("input") && TEXT_INPUTS.has(element.type);
}

const TEXT_INPUTS = new Set(["text", "search", "password", "email", "number", "url", "tel"]);

// ---- start

const keys = new KeyFlow({
  announce,
  onKeyChanged: () => {
    const retries = [...pendingAfterKey];
    pendingAfterKey.clear();
    for (const retry of retries) retry();
    jobs.resumeAfterKey();
    jobs.switchKey(keys.tag);
  },
});

const viewer = new Viewer({
  announce,
  getPrivacy: () => privacy,
  confirm: confirmAction,
  followPref: (value) => {
    if (value === undefined) return prefs.followPlayback;
    prefs = { ...prefs, followPlayback: value };
    savePrefs(prefs);
    return value;
  },
  onShown: (job) => jobs.markOpen(job),
  deleteResult: async (job) => {
    await jobs.deleteResult(job);
    job.row.item.focus();
  },
  resultGone: (job) => jobs.followFailed(job, new ApiError(404, "gone")),
  needKey: () => keys.open(),
});

const jobs = new JobList(
  { list: $("jobs"), empty: $("jobs-empty"), restored: $("jobs-restored"), deleteAll: $("delete-all") },
  {
    announce,
    keyTag: () => keys.tag,
    confirm: confirmAction,
    onFinished: (job) => {
      // A result opens by itself unless people are busy with another one: the newest file
      // added wins over an older transcript that is merely open.
      const shown = viewer.job;
      const busy = shown && (viewer.root.contains(document.activeElement) || viewer.engaged);
      if (!shown || (!busy && job.number > shown.number)) {
        viewer.show(job);
        revealOnNarrowScreen();
      }
    },
    onOpen: (job) => {
      viewer.show(job, { focus: true });
      revealOnNarrowScreen();
    },
    getPrivacy: () => privacy,
    onGone: (job) => viewer.forget(job),
    onNeedKey: () => keys.open({ rejected: keys.status === "rejected" }),
    focusAfterLastRemoved: () => $("upload-heading").focus(),
  },
);

setUpOptions();
setUpDropzone();
setUpRecorder();
setUpLive();
// A key another tab shares (people asked for "every tab") serves this one from the start.
await keys.askOtherTabs();
loadModels();
await loadPrivacy();
// A key kept from earlier in this tab: find out now whether it still works.
if (keys.tag) checkKey().then((good) => keys.outcome(good ? "accepted" : "rejected")).catch(() => {});
// A remembered job needs the key it was sent with; without one where keys are needed, wait.
if (!keys.required || keys.tag) jobs.restore(keys.tag);
document.documentElement.dataset.ready = "yes";
