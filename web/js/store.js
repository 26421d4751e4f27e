// What the page remembers in this browser (localStorage) so a reload or a new tab finds its jobs:
// per job the task id, file name, size, options and time added, never the transcript; and, per
// finished job, the lines people edited and the names they gave speakers, until the job goes.

const JOBS_KEY = "whisper-api:jobs";
const EDITS_PREFIX = "whisper-api:edits:";
// More than this many remembered jobs: the oldest are forgotten first.
const MAX_REMEMBERED = 200;

function read(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key) || "null");
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage off or full: the page still works, it only forgets on reload.
  }
}

function remove(key) {
  try {
    localStorage.removeItem(key);
  } catch {
    // Nothing stored to begin with.
  }
}

/**
 * A short tag telling API keys apart, so a page shows only the jobs of the key in use.
 * FNV-1a: no secret is derived from it and it is no way to recover the key; "" without a key.
 */
export function keyTag(key) {
  if (!key) return "";
  let hash = 0x811c9dc5;
  for (const char of `whisper-api:${key}`) {
    hash ^= char.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

function validRecord(record) {
  return (
    record && typeof record.taskId === "string" && /^[A-Za-z0-9_-]{1,128}$/.test(record.taskId)
    && typeof record.name === "string" && typeof record.keyTag === "string"
  );
}

/** Every remembered job, oldest first, each checked so a stale entry cannot break the page. */
export function rememberedJobs() {
  const list = read(JOBS_KEY, []);
  return Array.isArray(list) ? list.filter(validRecord) : [];
}

/** The remembered jobs of the key in use (or of no key). */
export function rememberedJobsFor(tag) {
  return rememberedJobs().filter((record) => record.keyTag === tag);
}

export function rememberJob(record) {
  const list = rememberedJobs().filter((other) => other.taskId !== record.taskId);
  list.push({
    taskId: record.taskId,
    name: record.name,
    size: Number(record.size) || 0,
    options: {
      task: record.options?.task === "translate" ? "translate" : "transcribe",
      language: String(record.options?.language || ""),
      model: String(record.options?.model || ""),
      wordTimestamps: record.options?.wordTimestamps === true,
    },
    addedAt: record.addedAt || new Date().toISOString(),
    keyTag: record.keyTag,
    kind: record.kind === "live" ? "live" : "file",
  });
  write(JOBS_KEY, list.slice(-MAX_REMEMBERED));
}

/** Forget a job and whatever was edited in it. */
export function forgetJob(taskId) {
  write(JOBS_KEY, rememberedJobs().filter((record) => record.taskId !== taskId));
  remove(EDITS_PREFIX + taskId);
}

/** {lines: {segmentIndex: text}, speakers: {label: name}} of one task. */
export function loadEdits(taskId) {
  const stored = read(EDITS_PREFIX + taskId, {});
  const clean = (object) =>
    Object.fromEntries(
      Object.entries(object && typeof object === "object" ? object : {})
        .filter(([, value]) => typeof value === "string"),
    );
  return { lines: clean(stored.lines), speakers: clean(stored.speakers) };
}

export function saveEdits(taskId, edits) {
  const empty = !Object.keys(edits.lines).length && !Object.keys(edits.speakers).length;
  if (empty) remove(EDITS_PREFIX + taskId);
  else write(EDITS_PREFIX + taskId, edits);
}
