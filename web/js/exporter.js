// Files built in the page from a result and the edits made here, so copies and downloads carry
// what people corrected. Without edits the page downloads the server's own files instead.

/** The lines as shown: edited text where there is some, speaker names as renamed. */
export function editedLines(result, edits) {
  const segments = Array.isArray(result?.segments) ? result.segments : [];
  return segments
    .map((segment, index) => {
      const edited = edits?.lines?.[index];
      const text = String(edited ?? segment.text ?? "").trim();
      const label = typeof segment.speaker === "string" ? segment.speaker : "";
      const speaker = label ? edits?.speakers?.[label] || label : "";
      return { index, start: Number(segment.start) || 0, end: Number(segment.end) || 0, text, speaker };
    })
    .filter((line) => line.text);
}

export function hasEdits(edits) {
  return Boolean(edits && (Object.keys(edits.lines).length || Object.keys(edits.speakers).length));
}

function stamp(seconds, separator) {
  const total = Math.max(0, Math.round((Number(seconds) || 0) * 1000));
  const ms = String(total % 1000).padStart(3, "0");
  const secs = String(Math.floor(total / 1000) % 60).padStart(2, "0");
  const minutes = String(Math.floor(total / 60000) % 60).padStart(2, "0");
  const hours = String(Math.floor(total / 3600000)).padStart(2, "0");
  return `${hours}:${minutes}:${secs}${separator}${ms}`;
}

const spoken = (line) => (line.speaker ? `${line.speaker}: ${line.text}` : line.text);

export function toText(lines) {
  return lines.map(spoken).join("\n");
}

export function toSrt(lines) {
  return lines
    .map((line, number) =>
      `${number + 1}\n${stamp(line.start, ",")} --> ${stamp(line.end, ",")}\n${spoken(line)}\n`)
    .join("\n");
}

export function toVtt(lines) {
  const cues = lines.map((line) => {
    const voice = line.speaker ? `<v ${line.speaker.replace(/[<>]/g, "")}>` : "";
    return `${stamp(line.start, ".")} --> ${stamp(line.end, ".")}\n${voice}${line.text}\n`;
  });
  return ["WEBVTT\n", ...cues].join("\n");
}

export function toJson(result, lines) {
  const byIndex = new Map(lines.map((line) => [line.index, line]));
  const segments = (result.segments || []).map((segment, index) => {
    const line = byIndex.get(index);
    const copy = { ...segment, text: line ? line.text : "" };
    if (line?.speaker) copy.speaker = line.speaker;
    return copy;
  });
  return JSON.stringify({ ...result, text: lines.map((line) => line.text).join(" "), segments }, null, 2);
}

const MEDIA_TYPES = {
  txt: "text/plain;charset=utf-8",
  srt: "application/x-subrip;charset=utf-8",
  vtt: "text/vtt;charset=utf-8",
  json: "application/json",
};

/** A Blob of `format` (txt, srt, vtt, json) from the result with the edits applied. */
export function editedFile(result, edits, format) {
  const lines = editedLines(result, edits);
  const body = {
    txt: () => `${toText(lines)}\n`,
    srt: () => toSrt(lines),
    vtt: () => toVtt(lines),
    json: () => toJson(result, lines),
  }[format];
  if (!body) throw new Error(`unknown format ${format}`);
  return new Blob([body()], { type: MEDIA_TYPES[format] });
}
