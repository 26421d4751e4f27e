"""Clients of every surface of an API node, each returning how its job ended and how long it waited.

The fault tests send these while processes die: each call answers, within its bound, one of
`finished`, `failed` (with a reason), `refused` (503 with a reason, the job was not taken) or
`lost` (404: the task is gone with the Redis that held it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import shared_clip

# Clips of a few seconds: the fault test's ~40 jobs fit in minutes on 2 cores with tiny.en.
CLIPS = ["en_jfk.flac", "en_ljspeech_LJ001-0001.wav", "en_ljspeech_LJ001-0002.wav"]
# A client waits at most this long for one answer (JOB_CLAIM_TIMEOUT_S plus the queue).
CLIENT_BOUND_S = 150.0
TRANSPORT_FAILURES = (httpx.TransportError,)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one client's job ended: `finished`, `failed`, `refused`, `lost`, or `unreachable`
    (its API node was killed: the client saw the connection drop, not a silence)."""

    surface: str
    end: str
    reason: str
    waited_s: float
    task_id: str = ""  # the task API's id, for its owner to delete afterwards


def _clip(index: int) -> Path:
    return shared_clip(CLIPS[index % len(CLIPS)])


def _ended(surface: str, response: httpx.Response, began: float) -> Outcome:
    waited = time.monotonic() - began
    if response.status_code == 200:
        return Outcome(surface, "finished", "", waited)
    reason = response.text[:300]
    if response.status_code in (503, 429):
        return Outcome(surface, "refused", reason, waited)
    if response.status_code == 404:
        return Outcome(surface, "lost", reason, waited)
    return Outcome(surface, "failed", reason, waited)


def openai_plain(url: str, index: int) -> Outcome:
    """POST /v1/audio/transcriptions and wait for the text (the synchronous surface)."""
    began = time.monotonic()
    with _clip(index).open("rb") as audio:
        response = httpx.post(
            f"{url}/v1/audio/transcriptions",
            data={"model": "whisper-1", "language": "en"},
            files={"file": (f"clip-{index}.flac", audio)},
            timeout=CLIENT_BOUND_S,
        )
    return _ended("openai", response, began)


def openai_diarized(url: str, index: int) -> Outcome:
    """The diarize model with response_format=diarized_json: speaker labels on a worker."""
    began = time.monotonic()
    with _clip(index).open("rb") as audio:
        response = httpx.post(
            f"{url}/v1/audio/transcriptions",
            data={
                "model": "gpt-4o-transcribe-diarize",
                "response_format": "diarized_json",
                "language": "en",
            },
            files={"file": (f"clip-{index}.flac", audio)},
            timeout=CLIENT_BOUND_S,
        )
    outcome = _ended("diarized", response, began)
    if outcome.end == "finished":
        assert response.json()["segments"][0]["speaker"], response.text
    return outcome


def openai_stream(url: str, index: int) -> Outcome:
    """stream=true: the SSE stream must end with a final event (done or error)."""
    began = time.monotonic()
    last: dict[str, object] = {}
    with (
        _clip(index).open("rb") as audio,
        httpx.stream(
            "POST",
            f"{url}/v1/audio/transcriptions",
            data={"model": "whisper-1", "stream": "true", "language": "en"},
            files={"file": (f"clip-{index}.flac", audio)},
            timeout=CLIENT_BOUND_S,
        ) as response,
    ):
        if response.status_code != 200:
            response.read()
            return _ended("stream", response, began)
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                last = json.loads(line[len("data: ") :])
    waited = time.monotonic() - began
    kind = str(last.get("type", ""))
    if kind.endswith(".done"):
        return Outcome("stream", "finished", "", waited)
    if "error" in kind or "error" in last:
        return Outcome("stream", "failed", json.dumps(last)[:300], waited)
    raise AssertionError(f"the stream ended without a final event: {last}")


def asr(url: str, index: int) -> Outcome:
    """whisper-asr-webservice's /asr (JSON output)."""
    began = time.monotonic()
    with _clip(index).open("rb") as audio:
        response = httpx.post(
            f"{url}/asr",
            params={"output": "json", "language": "en"},
            files={"audio_file": ("audio_file", audio)},
            timeout=CLIENT_BOUND_S,
        )
    return _ended("asr", response, began)


def detect_language(url: str, index: int) -> Outcome:
    """/detect-language."""
    began = time.monotonic()
    with _clip(index).open("rb") as audio:
        response = httpx.post(
            f"{url}/detect-language",
            files={"audio_file": ("audio_file", audio)},
            timeout=CLIENT_BOUND_S,
        )
    return _ended("detect", response, began)


def tasks_api(url: str, index: int) -> Outcome:
    """The task API: upload, then poll the status until it is final or gone."""
    began = time.monotonic()
    with _clip(index).open("rb") as audio:
        sent = httpx.post(
            f"{url}/api/v1/transcribe",
            params={"language": "en"},
            files={"file": (f"clip-{index}.flac", audio)},
            timeout=CLIENT_BOUND_S,
        )
    if sent.status_code != 200:
        return _ended("tasks", sent, began)
    task_id = sent.json()["task_id"]
    while time.monotonic() - began < CLIENT_BOUND_S:
        state = httpx.get(f"{url}/api/v1/status", params={"task_id": task_id}, timeout=10)
        if state.status_code == 404:
            return Outcome("tasks", "lost", state.text[:300], time.monotonic() - began)
        if state.status_code != 200:  # 503 while Redis restarts: ask again
            time.sleep(0.5)
            continue
        body = state.json()
        if body["status"] in ("finished", "failed"):
            reason = body.get("error") or ""
            return Outcome("tasks", body["status"], reason, time.monotonic() - began, task_id)
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} neither ended nor vanished within {CLIENT_BOUND_S} s")


SURFACES: list[Callable[[str, int], Outcome]] = [
    openai_plain,
    tasks_api,
    openai_stream,
    asr,
    detect_language,
    openai_diarized,
]


def send_any(url: str, index: int) -> Outcome:
    """The `index`-th surface of SURFACES; a node that was killed is `unreachable`."""
    surface = SURFACES[index % len(SURFACES)]
    began = time.monotonic()
    try:
        return surface(url, index)
    except TRANSPORT_FAILURES as exc:
        return Outcome(
            surface.__name__, "unreachable", type(exc).__name__, time.monotonic() - began
        )
