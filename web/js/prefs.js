// Choices remembered between visits (localStorage) and the API key kept for this tab only
// (sessionStorage). Storage can be disabled or full; the page then simply forgets.

const PREFS_KEY = "whisper-api:prefs";
const API_KEY_KEY = "whisper-api:api-key";
// Fallback for browsers where sessionStorage throws: the key lives in this page's memory.
let memoryKey = "";

export const DEFAULT_PREFS = Object.freeze({
  task: "transcribe",
  language: "",
  model: "",
  wordTimestamps: false,
  followPlayback: true,
});

/** The remembered choices, each checked for its type so a stale entry cannot break the page. */
export function loadPrefs() {
  let stored = {};
  try {
    stored = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}") || {};
  } catch {
    stored = {};
  }
  return {
    task: stored.task === "translate" ? "translate" : "transcribe",
    language: typeof stored.language === "string" ? stored.language : DEFAULT_PREFS.language,
    model: typeof stored.model === "string" ? stored.model : DEFAULT_PREFS.model,
    wordTimestamps: stored.wordTimestamps === true,
    followPlayback: stored.followPlayback !== false,
  };
}

export function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // Private mode or storage off: the choices last as long as the page.
  }
}

function storedApiKey() {
  try {
    return sessionStorage.getItem(API_KEY_KEY) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(API_KEY_KEY, key);
    else sessionStorage.removeItem(API_KEY_KEY);
  } catch {
    // Without sessionStorage the key cannot outlive this page, which is fine.
  }
  memoryKey = key;
}

export function currentApiKey() {
  return storedApiKey() || memoryKey;
}
