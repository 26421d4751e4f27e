// The API key: whether this server needs one (said up front), the dialog, and an honest header:
// "Key in use" only once a request has succeeded with it, "Key not accepted" after a 401.
import { checkKey, onKeyOutcome } from "./api.js";
import { currentApiKey, setApiKey } from "./prefs.js";
import { keyTag } from "./store.js";

const $ = (id) => document.getElementById(id);
const REJECTED = "That key was not accepted. Check it and try again.";

export class KeyFlow {
  /** @param {object} hooks announce(text), onKeyChanged() (a key was accepted or forgotten) */
  constructor(hooks) {
    this.hooks = hooks;
    this.required = false;
    // none: no key; unverified: not yet used; accepted; rejected.
    this.status = currentApiKey() ? "unverified" : "none";
    this.dialog = $("key-dialog");
    this.input = $("key-input");
    this.error = $("key-error");
    $("key-button").addEventListener("click", () => this.open());
    $("key-notice-button").addEventListener("click", () => this.open());
    $("key-cancel").addEventListener("click", () => this.dialog.close("cancel"));
    $("key-forget").addEventListener("click", () => this.forget());
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    onKeyOutcome((outcome) => this.outcome(outcome));
    this.paint();
  }

  get tag() {
    return keyTag(currentApiKey());
  }

  /** What /api/v1/privacy said: whether every upload needs a key. */
  setRequired(required) {
    this.required = Boolean(required);
    this.paint();
  }

  outcome(outcome) {
    if (outcome === this.status) return;
    this.status = outcome;
    this.paint();
    if (outcome === "rejected") this.open({ rejected: true });
  }

  paint() {
    const badge = $("key-state");
    const words = {
      accepted: "Key in use",
      rejected: "Key not accepted",
      unverified: "",
      none: this.required ? "Key needed" : "",
    }[this.status];
    badge.textContent = words;
    badge.hidden = !words;
    badge.classList.toggle("badge-problem", this.status === "rejected" || this.status === "none");
    const notice = $("key-notice");
    notice.hidden = !this.required || this.status === "accepted" || this.status === "unverified";
    $("key-notice-text").textContent = this.status === "rejected"
      ? "That key was not accepted. Enter another one to add files."
      : "This server needs an API key before it takes files.";
    $("key-forget").hidden = !currentApiKey();
  }

  open({ rejected = false } = {}) {
    this.showError(rejected ? REJECTED : "");
    $("key-forget").hidden = !currentApiKey();
    if (!this.dialog.open) this.dialog.showModal();
    this.input.focus();
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
    this.input.setAttribute("aria-invalid", String(Boolean(text)));
  }

  /** Try the key on the server before keeping it: a wrong one is said at once, not later. */
  async save() {
    const key = this.input.value.trim();
    if (!key) {
      this.input.focus();
      return;
    }
    const previous = currentApiKey();
    setApiKey(key);
    $("key-save").setAttribute("aria-busy", "true");
    let good;
    try {
      good = await checkKey();
    } catch {
      // Unreachable for now: keep the key; the next request will tell.
      good = null;
    } finally {
      $("key-save").removeAttribute("aria-busy");
    }
    if (good === false) {
      setApiKey(previous);
      this.status = "rejected";
      this.paint();
      this.showError(REJECTED);
      this.input.select();
      this.hooks.announce(REJECTED);
      return;
    }
    this.input.value = "";
    this.status = good ? "accepted" : "unverified";
    this.paint();
    this.dialog.close("save");
    this.hooks.announce(good ? "Key accepted. It is kept for this tab only." : "Key saved for this tab.");
    this.hooks.onKeyChanged();
  }

  forget() {
    setApiKey("");
    this.status = "none";
    this.paint();
    this.dialog.close("forget");
    this.hooks.announce("The API key is forgotten.");
    this.hooks.onKeyChanged();
  }
}
