"""A finished transcript as a file download, the same on every surface that offers one."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from pathlib import PurePath
from urllib.parse import quote

import msgspec
from litestar import Response

from app.transcription import formats
from app.transcription.jobs import Job
from app.transcription.types import SubtitleShape, Transcript

__all__ = ["content_disposition", "response_media_type", "transcript_download", "without_words"]

SUBTITLE_FORMATS = frozenset({"srt", "vtt"})


def without_words(transcript: Transcript) -> Transcript:
    """The transcript with no word timings (as decoded without word_timestamps)."""
    if not transcript.words:
        return transcript
    segments = [msgspec.structs.replace(segment, words=None) for segment in transcript.segments]
    return msgspec.structs.replace(transcript, segments=segments)


def content_disposition(file_name: str | None, extension: str) -> str:
    """An attachment header safe for any file name (ASCII fallback plus RFC 5987 form)."""
    stem = PurePath((file_name or "").replace("\\", "/")).stem or "transcript"
    stem = "".join(ch for ch in stem if unicodedata.category(ch)[0] != "C")[:120] or "transcript"
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    ascii_stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", ascii_stem).strip(" ._") or "transcript"
    full = f"{stem}.{extension}"
    return (
        f'attachment; filename="{ascii_stem}.{extension}"; '
        f"filename*=UTF-8''{quote(full, safe='')}"
    )


def response_media_type(fmt: str) -> str:
    """The media type to give Litestar for `fmt`: it appends the charset to text/* itself."""
    media_type = formats.MEDIA_TYPES[fmt]
    return media_type.partition(";")[0] if media_type.startswith("text/") else media_type


def transcript_download(
    job: Job,
    fmt: str,
    shape: SubtitleShape | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    """A finished job's transcript in `fmt`, named after the upload; cues cut as the job asked
    unless `shape` says otherwise."""
    assert job.transcript is not None
    extension = formats.EXTENSIONS[fmt]
    transcript = job.transcript
    if fmt not in SUBTITLE_FORMATS and not job.options.word_timestamps:
        transcript = without_words(transcript)  # timed for the cues only, never asked for
    return Response(
        content=formats.render(
            transcript, fmt, shape=shape or job.subtitle_shape, task=job.task_type
        ),
        media_type=response_media_type(fmt),
        headers={
            **(headers or {}),
            "Content-Disposition": content_disposition(job.file_name, extension),
        },
    )
