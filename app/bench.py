"""`python -m app.bench`: start-up time and jfk latency through HTTP against the bare engine.

Both sides use the same model files, device, compute type, beam size and threads, and
are measured in the same run, so the ratio is the server's own overhead. Prints a
table and writes the figures as JSON (``--json PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLIP = REPO_ROOT.parent / "shared" / "audio" / "en_jfk.flac"

_ENGINE_SCRIPT = """
import json, os, statistics, sys, time
from faster_whisper import WhisperModel
from app.transcription.audio import decode_audio
from app.transcription.models import ModelSources
from app.config import load_settings

settings = load_settings()
sources = ModelSources(settings.model_dir, settings.model_cache_dir, False)
path = sources.locate(sys.argv[1])
model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 0)
data = open(sys.argv[2], "rb").read()
runs = []
for _ in range(int(sys.argv[3])):
    started = time.perf_counter()
    audio = decode_audio(data)
    segments, info = model.transcribe(audio, beam_size=5)
    text = "".join(s.text for s in segments)
    runs.append(time.perf_counter() - started)
print(json.dumps(runs))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _engine_latencies(model: str, clip: Path, runs: int) -> list[float]:
    """faster-whisper called directly in a fresh process (warm: after one extra run)."""
    output = subprocess.run(
        [sys.executable, "-c", _ENGINE_SCRIPT, model, str(clip), str(runs + 1)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    ).stdout
    return list(json.loads(output.strip().splitlines()[-1]))[1:]


def _server_latencies(clip: Path, runs: int) -> tuple[float, list[float], str]:
    """Start the server, time until /readyz, then upload-to-finished for each run."""
    import httpx

    port = _free_port()
    env = {**os.environ, "PORT": str(port), "LOG_FILE": "", "USE_GPU_IF_AVAILABLE": "0"}
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise SystemExit("the server exited during start-up")
            time.sleep(0.02)
        ready_s = time.perf_counter() - started
        data = clip.read_bytes()
        latencies: list[float] = []
        model = ""
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(runs + 1):
                began = time.perf_counter()
                task = client.post("/api/v1/transcribe", files={"file": (clip.name, data)}).json()
                # Follow the task's progress events: no polling load on the 2 shared cores.
                with client.stream("GET", f"/api/v1/tasks/{task['task_id']}/events") as events:
                    for _line in events.iter_lines():
                        pass
                latencies.append(time.perf_counter() - began)
                model = client.get(f"/api/v1/tasks/{task['task_id']}").json()["used_model_size"]
        return ready_s, latencies[1:], model
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(prog="python -m app.bench")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        raise SystemExit(f"clip not found: {args.clip}")

    ready_s, server_runs, model = _server_latencies(args.clip, args.runs)
    engine_runs = _engine_latencies(model, args.clip, args.runs)
    server_median = statistics.median(server_runs)
    engine_median = statistics.median(engine_runs)
    result: dict[str, Any] = {
        "clip": args.clip.name,
        "model": model,
        "device": "cpu",
        "compute_type": "int8",
        "beam_size": 5,
        "threads": os.cpu_count(),
        "startup_to_ready_s": round(ready_s, 3),
        "http_latency_s": [round(x, 3) for x in server_runs],
        "engine_latency_s": [round(x, 3) for x in engine_runs],
        "http_median_s": round(server_median, 3),
        "engine_median_s": round(engine_median, 3),
        "ratio_http_to_engine": round(server_median / engine_median, 3),
    }
    print(f"clip {result['clip']}  model {model}  cpu int8  beam 5  threads {os.cpu_count()}")
    print(f"start-up to ready           {ready_s:8.2f} s")
    print(f"jfk via HTTP (median of {args.runs}) {server_median:8.2f} s")
    print(f"faster-whisper directly     {engine_median:8.2f} s")
    print(f"ratio HTTP / engine         {result['ratio_http_to_engine']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
