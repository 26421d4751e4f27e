// Wires the page together: options, file picking, the job list, the viewer, privacy and the key.
import { ApiError, getModels, getPrivacy } from "./api.js";
import { lifetime } from "./format.js";
import { JobList } from "./jobs.js";
import { LANGUAGES, languageLabel, resolveLanguage } from "./languages.js";
import { currentApiKey, loadPrefs, savePrefs, setApiKey } from "./prefs.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);

let prefs = loadPrefs();
let privacy = null;
let announceTimer = null;

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

// ---- options

function setUpOptions() {
  const form = $("options");
  const languageInput = $("language");
  const list = $("language-list");
  list.append(
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
  });
  languageInput.addEventListener("input", () => checkLanguage(false));
  languageInput.addEventListener("blur", () => checkLanguage(true));
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
    task: form.elements.task.value === "translate" ? "translate" : "transcribe",
    language: code ?? prefs.language,
    model: $("model").value,
    wordTimestamps: $("word-timestamps").checked,
  };
  return code;
}

async function loadModels() {
  const select = $("model");
  const hint = $("model-hint");
  let models;
  try {
    models = await getModels();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      hint.textContent = "Enter an API key to see this server's models.";
      pendingAfterKey.add(loadModels);
      return;
    }
    models = null;
  }
  select.replaceChildren(new Option("Server's choice", ""));
  for (const id of models || []) select.append(new Option(id, id));
  const known = [...select.options].some((option) => option.value === prefs.model);
  select.value = known ? prefs.model : "";
  select.dataset.listed = models ? "yes" : "no";
  updateModelHint();
}

function updateModelHint() {
  const select = $("model");
  const hint = $("model-hint");
  const model = select.value;
  hint.classList.remove("hint-error");
  if (model.endsWith(".en")) {
    const asksTooMuch = prefs.task === "translate" || prefs.language !== "en";
    hint.textContent = "English only: it can neither translate nor detect a language.";
    if (asksTooMuch) {
      hint.textContent += " With these options the server picks a multilingual model or refuses.";
      hint.classList.add("hint-error");
    }
  } else if (select.dataset.listed === "no") {
    hint.textContent = "This server does not list its models; it picks the best one it may use.";
  } else {
    hint.textContent = "Larger models are more accurate and slower. The list stops at this server's limit.";
  }
}

// ---- files

function addFiles(files) {
  const error = $("upload-error");
  const code = checkLanguage(true);
  if (code === null) {
    error.textContent = "Choose a language from the list (or leave the field empty) before adding files.";
    error.hidden = false;
    $("language").focus();
    return;
  }
  error.hidden = true;
  readOptions();
  savePrefs(prefs);
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

// ---- privacy

async function loadPrivacy() {
  const list = $("privacy-list");
  try {
    privacy = await getPrivacy();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      pendingAfterKey.add(loadPrivacy);
      list.replaceChildren(item("Enter an API key to see this server's privacy settings."));
      return;
    }
    list.replaceChildren(
      item(`This server's privacy settings could not be loaded (${error.detail || error.message}).`),
    );
    return;
  }
  const keep = lifetime(privacy.delete_results_after_m);
  list.replaceChildren(
    item(
      privacy.audio_stored_on_disk
        ? "This server writes uploaded audio to its disk."
        : "Your audio is decoded in memory and never written to the server's disk.",
    ),
    item(
      `Transcripts stay in the server's memory for ${keep} after they finish` +
        (privacy.refresh_expiration_time_on_usage
          ? ", counted again from each time they are opened or downloaded"
          : "") +
        ", then they are erased. “Delete from server now” erases one at once.",
    ),
    item(
      privacy.log_privacy_mode
        ? "Server logs record events and timings, never what was said or file names, and shorten task ids."
        : "Server logs record events and timings, never what was said or file names; task ids and addresses appear in full.",
    ),
    item("Your choices are remembered in this browser; an API key only in this tab."),
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

// ---- API key

const pendingAfterKey = new Set();

function setUpKeyDialog() {
  const dialog = $("key-dialog");
  const input = $("key-input");
  const refreshBadge = () => {
    const hasKey = Boolean(currentApiKey());
    $("key-state").hidden = !hasKey;
    $("key-forget").hidden = !hasKey;
  };
  refreshBadge();
  $("key-button").addEventListener("click", () => openKeyDialog());
  $("key-cancel").addEventListener("click", () => dialog.close("cancel"));
  $("key-forget").addEventListener("click", () => {
    setApiKey("");
    refreshBadge();
    dialog.close("forget");
    announce("The API key is forgotten.");
  });
  $("key-form").addEventListener("submit", (event) => {
    const key = input.value.trim();
    if (!key) {
      event.preventDefault();
      input.focus();
      return;
    }
    setApiKey(key);
    input.value = "";
    refreshBadge();
    announce("API key saved for this tab.");
    const retries = [...pendingAfterKey];
    pendingAfterKey.clear();
    for (const retry of retries) retry();
    jobs.resumeAfterKey();
  });
}

function openKeyDialog() {
  const dialog = $("key-dialog");
  if (dialog.open) return;
  $("key-forget").hidden = !currentApiKey();
  dialog.showModal();
  $("key-input").focus();
}

// ---- start

const viewer = new Viewer({
  announce,
  getPrivacy: () => privacy,
  deleteResult: async (job) => {
    await jobs.deleteResult(job);
    job.row.item.focus();
  },
  resultGone: (job) => jobs.followFailed(job, new ApiError(404, "gone")),
  needKey: () => openKeyDialog(),
});

const jobs = new JobList($("jobs"), $("jobs-empty"), {
  announce,
  onFinished: (job) => {
    // The first result opens by itself; later ones wait for "Show transcript".
    if (!viewer.job) viewer.show(job);
  },
  onOpen: (job) => viewer.show(job, { focus: true }),
  onGone: (job) => viewer.forget(job),
  onNeedKey: () => openKeyDialog(),
  focusAfterLastRemoved: () => $("upload-heading").focus(),
});

setUpOptions();
setUpDropzone();
setUpKeyDialog();
loadModels();
loadPrivacy();
document.documentElement.dataset.ready = "yes";
