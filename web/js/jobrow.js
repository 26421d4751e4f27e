// One row of the job list: what a job's state looks like and which buttons it offers.
import { fileSize, timeOfDay } from "./format.js";
import { languageName } from "./languages.js";

// States in which the job is still in motion (a Cancel button makes sense).
export const ACTIVE = new Set([
  "waiting-upload", "uploading", "checking", "queued", "processing", "fetching", "retry-wait",
  "restoring",
]);
// Which buttons each state offers. Deleting a result is done in the viewer, with confirmation.
const ACTIONS = {
  open: new Set(["finished"]),
  retry: new Set(["retry-wait", "upload-failed"]),
  key: new Set(["needs-key"]),
  cancel: ACTIVE,
  remove: new Set(["failed", "rejected", "cancelled", "deleted", "expired", "upload-failed", "needs-key"]),
};
const ACTION_LABELS = {
  open: "Show transcript",
  retry: "Try again now",
  key: "Enter API key",
  cancel: "Cancel",
  remove: "Remove",
};
const WITH_PROGRESS = new Set(["uploading", "checking", "processing", "fetching", "restoring"]);

function element(tag, className, text = "") {
  const node = document.createElement(tag);
  node.className = className;
  if (text) node.textContent = text;
  return node;
}

export function describeOptions(job) {
  const { task, language, model, wordTimestamps } = job.options;
  // The model that ran, once the server said: a model that cannot do what was asked (an
  // English-only one told to detect the language) is replaced by one that can.
  const used = job.task?.used_model_size;
  const modelText = model && used && used !== model ? `${model} asked, ${used} ran` : model || null;
  return [
    task === "translate" ? "Translate to English" : "Transcribe",
    language ? languageName(language) : "language detected",
    modelText,
    wordTimestamps ? "word times" : null,
    job.size ? fileSize(job.size) : null,
    // Two files of the same name are told apart by when they were added.
    job.addedAt ? `added ${timeOfDay(job.addedAt, { seconds: true })}` : null,
  ].filter(Boolean).join(" · ");
}

/** Build the row of `job`; `onAction(action)` runs when one of its buttons is pressed. */
export function buildRow(job, onAction) {
  const item = element("li", "job");
  item.tabIndex = -1;
  const nameId = `job-${job.number}-name`;
  const statusId = `job-${job.number}-status`;
  item.setAttribute("aria-labelledby", nameId);
  item.setAttribute("aria-describedby", statusId);

  const head = element("div", "job-head");
  const name = element("span", "job-name file-name", job.name);
  name.id = nameId;
  // Where the open transcript is depends on the layout: beside the list, or under it.
  const openMark = element("span", "job-open-mark");
  openMark.append(element("span", "where-wide", "Shown on the right"), element("span", "where-narrow", "Shown below"));
  openMark.hidden = true;
  const meta = element("span", "job-meta", describeOptions(job));
  head.append(name, openMark, meta);

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
    if (action === "cancel") button.classList.add("danger-quiet");
    button.addEventListener("click", () => onAction(action));
    buttons[action] = button;
    actions.append(button);
  }
  item.append(head, status, detail, progress, actions);
  return { item, status, detail, progress, buttons, openMark, meta };
}

/** Show `state` in the row: text, progress bar (null = indeterminate) and buttons. */
export function paintRow(row, { state, status, detail, progress }) {
  row.item.dataset.state = state;
  row.status.textContent = status;
  row.detail.textContent = detail;
  row.detail.hidden = !detail;
  row.progress.hidden = !WITH_PROGRESS.has(state);
  if (progress === null) row.progress.removeAttribute("value");
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
}

/** Mark the row whose transcript is open in the viewer. */
export function markOpen(row, open) {
  row.item.classList.toggle("is-open", open);
  row.openMark.hidden = !open;
  if (open) row.item.setAttribute("aria-current", "true");
  else row.item.removeAttribute("aria-current");
}
