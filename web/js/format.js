// Small formatting helpers for times, durations and sizes.

/** 7.3 -> "0:07", 3725 -> "1:02:05": a clock position in the audio. */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** A clock position read aloud: "1 minute 5 seconds". */
export function spokenClock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const parts = [];
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) parts.push(plural(hours, "hour"));
  if (minutes) parts.push(plural(minutes, "minute"));
  if (secs || !parts.length) parts.push(plural(secs, "second"));
  return parts.join(" ");
}

export function plural(count, unit) {
  return `${count} ${unit}${count === 1 ? "" : "s"}`;
}

/** A lifetime given in minutes, in words: 0.05 -> "3 seconds", 90 -> "90 minutes", 1440 -> "1 day". */
export function lifetime(minutes) {
  const value = Number(minutes);
  if (!Number.isFinite(value) || value <= 0) return "no time at all";
  const round = (number) => Math.round(number * 10) / 10;
  if (value < 1) return plural(Math.max(1, Math.round(value * 60)), "second");
  if (value < 120) return plural(round(value), "minute");
  if (value < 48 * 60) return plural(round(value / 60), "hour");
  return plural(round(value / 1440), "day");
}

/** 1536 -> "1.5 KB". */
export function fileSize(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit ? `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}` : plural(value, "byte");
}

export const percent = (fraction) => `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;

/** A wall-clock time such as "14:05" in the reader's locale. */
export function timeOfDay(isoString, { seconds = false } = {}) {
  const date = new Date(isoString);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) });
}

/** Seconds left as people say it: "about 40 seconds", "about 3 minutes". */
export function timeLeft(seconds) {
  const value = Math.max(1, Math.round(Number(seconds) || 0));
  if (value < 60) return `about ${plural(Math.max(5, Math.ceil(value / 5) * 5), "second")}`;
  if (value < 5400) return `about ${plural(Math.round(value / 60), "minute")}`;
  return `about ${plural(Math.round(value / 360) / 10, "hour")}`;
}
