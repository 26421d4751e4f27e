"""The peer comparison (`--peers`): the same scenarios against faster-whisper-server.

The peer comes from PyPI, installed once into its own virtual environment under
.bench-peers/, and serves our bundled base model with the same device, compute type,
beam size and threads as the engine and the server.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from app.bench.measure import (
    JFK,
    LONG,
    REPO_ROOT,
    HealthProbe,
    Row,
    base_model_path,
    clip_path,
    clip_reference,
    duration,
    rss_mib,
    word_error_rate,
)
from app.bench.servers import ServerProcess, clients_at_once, free_port

__all__ = ["PEER_PACKAGE", "PeerProcess", "bench_peer", "transcribe_via_openai"]

PEER_PACKAGE = "faster-whisper-server==0.0.3"
PEER_VENV = REPO_ROOT / ".bench-peers" / "faster-whisper-server"


def _peer_python() -> Path:
    """The peer's interpreter, installing it into its own virtual environment once."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PEER_PACKAGE], check=True)
    return python


class PeerProcess(ServerProcess):
    """faster-whisper-server on a free loopback port, on our bundled base model."""

    def __init__(self, model_path: str, threads: int) -> None:
        python = _peer_python()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = PEER_VENV / "bench-config.yaml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "models": [
                        {
                            "name": "whisper-1",
                            "path": model_path,
                            "batch_size": 1,
                            "model_options": {
                                "device": "cpu",
                                "compute_type": "int8",
                                "cpu_threads": threads,
                            },
                            "transcribe_options": {"beam_size": 5},
                        }
                    ]
                }
            ),
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [str(python), "-m", "faster_whisper_server", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.started = time.perf_counter()

    def wait_ready(self, timeout_s: float = 120) -> float:
        """Seconds until /health answers and a first transcription has loaded the model."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("bench: faster-whisper-server exited during start-up")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise SystemExit("bench: faster-whisper-server did not start")


def transcribe_via_openai(url: str, name: str) -> tuple[float, str, int]:
    """One OpenAI-style transcription request; (seconds, text, status)."""
    import httpx

    data = clip_path(name).read_bytes()
    began = time.perf_counter()
    response = httpx.post(
        url + "/v1/audio/transcriptions",
        files={"file": (name, data)},
        data={"model_name": "whisper-1", "response_format": "json"},
        timeout=600,
    )
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        return elapsed, "", response.status_code
    return elapsed, str(response.json().get("text", "")), 200


def bench_peer(threads: int, runs: int) -> list[Row]:
    """The same scenarios against faster-whisper-server."""
    name = "faster-whisper-server"
    peer = PeerProcess(base_model_path(), threads)
    try:
        peer.wait_ready()
        pid = peer.process.pid
        transcribe_via_openai(peer.url, JFK)  # loads the model and warms up
        idle = rss_mib(pid)
        jfk = [transcribe_via_openai(peer.url, JFK) for _ in range(runs)]
        times = [seconds for seconds, _, _ in jfk]
        rows = [
            Row(
                "jfk", name, duration(JFK), statistics.median(times),
                p50_s=statistics.median(times), max_s=max(times),
                wer=word_error_rate(clip_reference(JFK), jfk[0][1]), rss_mib=idle,
            )
        ]  # fmt: skip
        health = HealthProbe(peer.url, path="/health")
        with health:
            long_s, long_text, _ = transcribe_via_openai(peer.url, LONG)
        rows.append(
            Row(
                "long", name, duration(LONG), long_s,
                wer=word_error_rate(clip_reference(LONG), long_text),
                extra={"health_p99_ms": health.p99_ms, "health_max_ms": health.max_ms},
            )
        )  # fmt: skip
        rows.append(clients_at_once(peer.url, pid, transcribe_via_openai, name))
        return rows
    finally:
        peer.stop()
