// One timed line of the transcript: its time (a play button), speaker, text or words, and the
// in-place editor.
import { clock, spokenClock } from "./format.js";

function node(tag, className, text = "") {
  const element = document.createElement(tag);
  element.className = className;
  if (text) element.textContent = text;
  return element;
}

/**
 * @param {object} parts segment (from the server), line ({index, start, end, text, speaker}),
 *   edited (bool), needle (search, lower case), playable (the audio is in this page)
 * @returns {{index, segment, item, text, words: {start, end, node}[]}}
 */
export function buildLine({ segment, line, edited, needle, playable }) {
  const item = node("li", "segment");
  item.dataset.index = String(line.index);
  const at = clock(segment.start);

  let time;
  if (playable) {
    time = node("button", "segment-time");
    time.type = "button";
    time.dataset.start = String(segment.start);
    time.append(node("span", "visually-hidden", `Play from ${spokenClock(segment.start)}: `));
    const shown = node("span", "", at);
    shown.setAttribute("aria-hidden", "true");
    time.append(shown);
  } else {
    time = node("span", "segment-time", at);
  }

  const body = node("div", "segment-body");
  if (line.speaker) body.append(node("span", "speaker-chip", line.speaker));
  const text = node("span", "segment-text");
  if (playable) text.dataset.start = String(segment.start);
  const words = [];
  const timedWords = Array.isArray(segment.words) && segment.words.length;
  if (needle) {
    text.append(...highlight(line.text, needle));
  } else if (timedWords && !edited && playable) {
    // Every word is a button, so people who use a keyboard reach each one with Tab. The spaces
    // between words are text of their own: a button drops its leading space when drawn, and
    // copying a selection takes the text between the buttons.
    segment.words.forEach((word, index) => {
      const raw = String(word.word);
      if (index > 0 && /^\s/.test(raw)) text.append(" ");
      const button = node("button", "word", raw.trim());
      button.type = "button";
      button.dataset.start = String(word.start);
      text.append(button);
      words.push({ start: word.start, end: word.end, node: button });
    });
  } else {
    text.textContent = line.text;
  }
  body.append(text);
  if (edited) body.append(node("span", "edited-mark", "Edited here"));

  const edit = node("button", "segment-edit button-quiet", "Edit");
  edit.type = "button";
  edit.setAttribute("aria-label", `Edit the line at ${spokenClock(segment.start)}`);
  item.append(time, body, edit);
  return { index: line.index, segment, item, text, words, value: line.text };
}

/** Swap the line's text for a text box; Enter or "Save" keeps it, Escape or "Cancel" does not. */
export function startEditing(built, { onSave, onCancel }) {
  const editor = node("textarea", "segment-editor");
  editor.value = built.value;
  editor.rows = Math.min(6, Math.max(2, Math.ceil(built.value.length / 60)));
  editor.setAttribute("aria-label", `Text of the line at ${spokenClock(built.segment.start)}`);
  const save = node("button", "primary small", "Save");
  save.type = "button";
  const cancel = node("button", "button-quiet small", "Cancel");
  cancel.type = "button";
  const actions = node("div", "segment-editing-actions");
  actions.append(save, cancel);
  built.text.replaceWith(editor);
  editor.after(actions);
  built.item.querySelector(".segment-edit").hidden = true;
  let done = false;
  const finish = (keep) => {
    if (done) return;
    done = true;
    if (keep) onSave(editor.value);
    else onCancel();
  };
  save.addEventListener("click", () => finish(true));
  cancel.addEventListener("click", () => finish(false));
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  editor.focus();
  editor.setSelectionRange(editor.value.length, editor.value.length);
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
