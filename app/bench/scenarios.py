"""The engine-versus-server scenarios: jfk, long, clients (and health) on both sides, memory.

The engine baseline is faster-whisper's own `WhisperModel.transcribe()` in a fresh
process; the server is `whisper-api serve` in another fresh process (or an external
URL), on the same model files and settings.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from app.bench.measure import (
    JFK,
    LONG,
    REPO_ROOT,
    SHORT,
    CpuMeter,
    HealthProbe,
    Row,
    base_model_path,
    clip_path,
    clip_reference,
    duration,
    mean_wer,
    percentile,
    rss_mib,
    word_error_rate,
)
from app.bench.servers import clients_at_once, running_server, transcribe_via_http

__all__ = ["bench_engine", "bench_memory", "bench_server", "engine_runs"]

# Runs in a fresh interpreter: faster-whisper's default path, nothing of ours but decoding
# (the server decodes the same way) and the model's location.
_ENGINE_SCRIPT = r"""
import json, sys, time
from faster_whisper import WhisperModel
from app.transcription.audio import decode_audio
spec = json.loads(sys.argv[1])
model = WhisperModel(spec["path"], device="cpu", compute_type="int8", cpu_threads=spec["threads"])
def run(name):
    data = open(name, "rb").read()
    began, cpu = time.perf_counter(), time.process_time()
    segments, info = model.transcribe(decode_audio(data), beam_size=5)
    text = "".join(s.text for s in segments)
    return time.perf_counter() - began, text, time.process_time() - cpu
run(spec["warmup"])
out = {}
for key, names in spec["jobs"].items():
    out[key] = [run(n) for n in names]
print(json.dumps(out))
"""


def engine_runs(model_path: str, threads: int, jobs: dict[str, list[str]]) -> dict[str, Any]:
    """Run faster-whisper's default transcribe() in a fresh process on the named clips."""
    spec = {
        "path": model_path,
        "threads": threads,
        "warmup": str(clip_path(JFK)),
        "jobs": {key: [str(clip_path(n)) for n in names] for key, names in jobs.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _ENGINE_SCRIPT, json.dumps(spec)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = 0.0
    while process.poll() is None:
        with contextlib.suppress(OSError):  # the process may end between poll and read
            peak = max(peak, rss_mib(process.pid, "VmHWM"))
        time.sleep(0.2)
    assert process.stdout is not None
    result: dict[str, Any] = json.loads(process.stdout.read().strip().splitlines()[-1])
    result["peak_rss_mib"] = peak
    return result


def bench_engine(threads: int, runs: int) -> tuple[list[Row], dict[str, Any]]:
    """The faster-whisper baseline for every scenario, in one fresh process."""
    out = engine_runs(
        base_model_path(), threads, {"jfk": [JFK] * runs, "long": [LONG], "short": SHORT}
    )
    jfk = [seconds for seconds, _, _ in out["jfk"]]
    long_s, long_text, long_cpu = out["long"][0]
    short = [seconds for seconds, _, _ in out["short"]]
    # One after another: each client waits for all the clips before its own.
    waits = [sum(short[: i + 1]) for i in range(len(short))]
    short_audio = sum(duration(n) for n in SHORT)
    policy = "full (faster-whisper)"
    rows = [
        Row(
            "jfk", "engine", duration(JFK), statistics.median(jfk),
            p50_s=statistics.median(jfk), max_s=max(jfk),
            wer=word_error_rate(clip_reference(JFK), out["jfk"][0][1]),
            cpu_s=statistics.median(cpu for _, _, cpu in out["jfk"]), context=policy,
        ),
        Row("long", "engine", duration(LONG), long_s,
            wer=word_error_rate(clip_reference(LONG), long_text), cpu_s=long_cpu, context=policy),
        Row(
            "clients", "engine (one after another)", short_audio, sum(short),
            p50_s=percentile(waits, 0.5), p95_s=percentile(waits, 0.95), max_s=max(waits),
            wer=mean_wer(SHORT, out["short"]), cpu_s=sum(cpu for _, _, cpu in out["short"]),
            context=policy,
        ),
    ]  # fmt: skip
    return rows, out


def bench_server(url: str | None, runs: int, env: dict[str, str]) -> list[Row]:
    """jfk, the long clip and N clients at once through HTTP, with server memory."""
    rows: list[Row] = []
    with running_server(url, **env) as (base, pid, ready_s):
        idle_rss = rss_mib(pid) if pid else None
        cpu = CpuMeter(pid)
        transcribe_via_http(base, JFK)  # warm-up
        cpu.start()
        jfk = [transcribe_via_http(base, JFK) for _ in range(runs)]
        jfk_cpu = cpu.stop()
        times = [seconds for seconds, _, _ in jfk]
        context = env.get("ENCODER_CONTEXT", "adaptive")
        rows.append(
            Row("jfk", "whisper-api", duration(JFK), statistics.median(times),
                p50_s=statistics.median(times), max_s=max(times),
                wer=word_error_rate(clip_reference(JFK), jfk[0][1]), rss_mib=idle_rss,
                cpu_s=None if jfk_cpu is None else jfk_cpu / runs, context=context,
                extra={"startup_to_ready_s": round(ready_s, 3)})
        )  # fmt: skip
        health = HealthProbe(base)
        cpu.start()
        with health:
            long_s, long_text, _ = transcribe_via_http(base, LONG)
        rows.append(
            Row(
                "long", "whisper-api", duration(LONG), long_s,
                wer=word_error_rate(clip_reference(LONG), long_text), cpu_s=cpu.stop(),
                context=context,
                extra={"healthz_p99_ms": health.p99_ms, "healthz_max_ms": health.max_ms},
            )
        )  # fmt: skip
        cpu.start()
        clients = clients_at_once(base, pid)
        clients.cpu_s, clients.context = cpu.stop(), context
        rows.append(clients)
    return rows


def bench_memory() -> Row:
    """Server RSS: no model, tiny.en, base, and after an idle unload."""
    figures: dict[str, float] = {}
    with running_server(None, LOAD_MODEL_ON_STARTUP="0") as (_, pid, _):
        assert pid is not None
        time.sleep(0.5)
        figures["idle_no_model_mib"] = rss_mib(pid)
    with running_server(None, MAX_MODEL="tiny.en") as (_, pid, _):
        assert pid is not None
        figures["tiny_en_loaded_mib"] = rss_mib(pid)
    with running_server(None, UNLOAD_MODEL_AFTER_S="1") as (base, pid, _):
        assert pid is not None
        figures["base_loaded_idle_mib"] = rss_mib(pid)
        transcribe_via_http(base, JFK)
        figures["base_peak_mib"] = rss_mib(pid, "VmHWM")
        time.sleep(2.0)
        figures["after_unload_mib"] = rss_mib(pid)
    return Row("memory", "whisper-api", extra={k: round(v, 1) for k, v in figures.items()})
