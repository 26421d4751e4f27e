// The API key: whether this server needs one (said up front), the dialog, and an honest header:
// "Key in use" only once a request has succeeded with it, "Key not accepted" after a 401.
import { checkKey, onKeyOutcome } from "./api.js";
import { currentApiKey, setApiKey } from "./prefs.js";
import { keyTag } from "./store.js";

const $ = (id) => document.getElementById(id);
const REJECTED = "That key was not accepted. Check it and try again.";
// Tabs of this page hand a key to each other only where people asked for it ("every tab").
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("whisper-api:key") : null;
const SHARED_FLAG = "whisper-api:key-shared";
// How long a new tab waits for another tab to offer its key before it starts without one.
const ASK_TABS_MS = 300;

function shared() {
  try {
    return sessionStorage.getItem(SHARED_FLAG) === "yes";
  } catch {
    return false;
  }
}

function setShared(value) {
  try {
    if (value) sessionStorage.setItem(SHARED_FLAG, "yes");
    else sessionStorage.removeItem(SHARED_FLAG);
  } catch {
    // Without sessionStorage nothing is shared.
  }
}

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
    tabs?.addEventListener("message", (event) => this.fromOtherTab(event.data || {}));
    this.paint();
  }

  /** A new tab without a key: take the key another tab shares, if one answers in time. */
  askOtherTabs() {
    if (!tabs || currentApiKey()) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.offered = resolve;
      tabs.postMessage({ type: "key-request" });
      setTimeout(() => {
        this.offered = null;
        resolve(false);
      }, ASK_TABS_MS);
    });
  }

  fromOtherTab({ type, key }) {
    if (type === "key-request" && shared() && currentApiKey()) {
      tabs.postMessage({ type: "key", key: currentApiKey() });
    } else if (type === "key" && typeof key === "string" && key && !currentApiKey()) {
      setApiKey(key);
      setShared(true);
      this.status = "unverified";
      this.paint();
      if (this.offered) {
        this.offered(true);
        this.offered = null;
      } else {
        this.hooks.onKeyChanged();
      }
    } else if (type === "forget" && shared() && currentApiKey()) {
      this.forget({ tell: false });
    }
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
    // Only a server that takes keys needs the button (or a key set earlier, to forget it).
    $("key-button").hidden = !this.required && !currentApiKey();
  }

  open({ rejected = false } = {}) {
    this.showError(rejected ? REJECTED : "");
    $("key-forget").hidden = !currentApiKey();
    $("key-share").checked = shared();
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
    const everyTab = $("key-share").checked;
    setShared(everyTab);
    if (everyTab) tabs?.postMessage({ type: "key", key });
    this.status = good ? "accepted" : "unverified";
    this.paint();
    this.dialog.close("save");
    const where = everyTab ? "every tab of this browser" : "this tab only";
    this.hooks.announce(good ? `Key accepted. It is kept for ${where}.` : `Key saved for ${where}.`);
    this.hooks.onKeyChanged();
  }

  forget({ tell = true } = {}) {
    if (tell && shared()) tabs?.postMessage({ type: "forget" });
    setShared(false);
    setApiKey("");
    this.status = "none";
    this.paint();
    if (this.dialog.open) this.dialog.close("forget");
    this.hooks.announce("The API key is forgotten.");
    this.hooks.onKeyChanged();
  }
}
