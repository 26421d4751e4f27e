"""`whisper-api bench` (and `make bench`): the server against faster-whisper called directly.

A long module on purpose: one command-line script whose scenarios share the same
server and engine set-up and one report; the cluster and speaker scenarios and the
context study live in their own modules (`bench_cluster`, `speaker_bench`, `context_study`).

Every figure is measured in the same run, on the same model files and settings:
the engine baseline is faster-whisper's own `WhisperModel.transcribe()` in a fresh
process; the server is `whisper-api serve` in another fresh process on a free
loopback port (or an external `--url`). Scenarios:

- jfk:     one 11 s clip, language auto, warm; median of `--runs`
- long:    the 120 s clip; WER against its reference
- clients: N clients at once, one short clip each (audio s, wall s, latency p50/p95/max)
- memory:  server RSS idle without a model, with tiny.en, with base, peak, after unload
- health:  /healthz latency while a long job runs
- cluster: the clients scenario on QUEUE_BACKEND=redis, one worker then two
  (app/bench/cluster.py; needs redis-server, skip with --skip-cluster)
- speakers: the speaker stage on conversations built from the clips (app.bench.speakers):
           DER with and without a 0.25 s collar, speaker-count accuracy, CPU s per audio
           minute, an hour of audio; `--only speakers` runs it alone
- live:    one /v1/realtime session at real-time pace, alone and beside a batch upload:
           committed-word delay mean/p95/max, WER (and the live model's offline WER), CPU
           share (app/bench/live.py)

With `--peers`, the same scenarios run against `faster-whisper-server` from PyPI
(installed once into .bench-peers/, a separate virtual environment) serving the
same model files with the same device, compute type, beam size and threads.

Prints a table and writes one JSON object per scenario to `--json`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main", "word_error_rate"]

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDIO_DIR = REPO_ROOT.parent / "shared" / "audio"
JFK = "en_jfk.flac"
LONG = "en_longform_tedlium_120s.flac"
SHORT = [
    "en_ls-test-clean_1089-134686-0000.flac",
    "en_ls-test-clean_1089-134686-0001.flac",
    "en_ls-test-clean_1089-134691-0000.flac",
    "en_ls-test-clean_1089-134691-0001.flac",
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0002.wav",
    "en_ljspeech_LJ001-0003.wav",
    "en_ljspeech_LJ001-0004.wav",
]

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


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    system: str
    audio_s: float = 0.0
    wall_s: float = 0.0
    p50_s: float | None = None
    p95_s: float | None = None
    max_s: float | None = None
    wer: float | None = None
    refused: int = 0
    rss_mib: float | None = None
    cpu_s: float | None = None
    context: str = "-"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Audio seconds per wall second."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_per_audio_min(self) -> float | None:
        """CPU seconds (all threads of the process) per minute of audio."""
        if self.cpu_s is None or not self.audio_s:
            return None
        return self.cpu_s / (self.audio_s / 60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clip(name: str) -> Path:
    path = AUDIO_DIR / name
    if not path.is_file():
        raise SystemExit(f"bench: clip not found: {path}")
    return path


def _reference(name: str) -> str:
    return _clip(name).with_suffix(".txt").read_text(encoding="utf-8")


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after lower-casing and stripping punctuation (the clips' README's rule)."""
    import jiwer

    normalise = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    return float(
        jiwer.wer(
            reference, hypothesis, reference_transform=normalise, hypothesis_transform=normalise
        )
    )


_wer = word_error_rate


def _duration(name: str) -> float:
    from app.transcription.audio import decode_audio, duration_seconds

    return duration_seconds(decode_audio(_clip(name).read_bytes()))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- the server side


class ServerProcess:
    """`whisper-api serve` in a fresh process on a free loopback port."""

    def __init__(self, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "PORT": str(self.port),
            "LISTEN": "127.0.0.1",
            "LOG_FILE": "",
            "LOG_LEVEL": "WARNING",
            "USE_GPU_IF_AVAILABLE": "0",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            env=environment,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started = time.perf_counter()

    def wait_ready(self, timeout_s: float = 120) -> float:
        """Seconds from start until /readyz answers 200."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("bench: the server exited during start-up")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise SystemExit("bench: the server did not become ready")

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def running_server(url: str | None, **env: str) -> Iterator[tuple[str, int | None, float]]:
    """Yield (base URL, pid or None, seconds to ready) for a local or external server."""
    if url is not None:
        yield url, None, 0.0
        return
    server = ServerProcess(**env)
    try:
        ready_s = server.wait_ready()
        yield server.url, server.process.pid, ready_s
    finally:
        server.stop()


def transcribe_via_http(url: str, name: str) -> tuple[float, str, int]:
    """Upload through the task API, follow its events to the end; (seconds, text, status)."""
    import httpx

    data = _clip(name).read_bytes()
    with httpx.Client(base_url=url, timeout=600) as client:
        began = time.perf_counter()
        response = client.post("/api/v1/transcribe", files={"file": (name, data)})
        if response.status_code != 200:
            return time.perf_counter() - began, "", response.status_code
        task_id = response.json()["task_id"]
        with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as events:
            for _ in events.iter_lines():
                pass
        elapsed = time.perf_counter() - began
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    return elapsed, task.get("transcript") or "", 200


# ---------------------------------------------------------------- the engine side


def engine_runs(model_path: str, threads: int, jobs: dict[str, list[str]]) -> dict[str, Any]:
    """Run faster-whisper's default transcribe() in a fresh process on the named clips."""
    spec = {
        "path": model_path,
        "threads": threads,
        "warmup": str(_clip(JFK)),
        "jobs": {key: [str(_clip(n)) for n in names] for key, names in jobs.items()},
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
            peak = max(peak, _rss_mib(process.pid, "VmHWM"))
        time.sleep(0.2)
    assert process.stdout is not None
    result: dict[str, Any] = json.loads(process.stdout.read().strip().splitlines()[-1])
    result["peak_rss_mib"] = peak
    return result


def _base_model_path() -> str:
    from app.config import load_settings
    from app.transcription.models import ModelSources

    settings = load_settings()
    return str(ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base"))


# ---------------------------------------------------------------- scenarios


def bench_engine(threads: int, runs: int) -> tuple[list[Row], dict[str, Any]]:
    """The faster-whisper baseline for every scenario, in one fresh process."""
    out = engine_runs(
        _base_model_path(), threads, {"jfk": [JFK] * runs, "long": [LONG], "short": SHORT}
    )
    jfk = [seconds for seconds, _, _ in out["jfk"]]
    long_s, long_text, long_cpu = out["long"][0]
    short = [seconds for seconds, _, _ in out["short"]]
    # One after another: each client waits for all the clips before its own.
    waits = [sum(short[: i + 1]) for i in range(len(short))]
    short_audio = sum(_duration(n) for n in SHORT)
    short_wer = statistics.fmean(
        _wer(_reference(name), text) for name, (_, text, _) in zip(SHORT, out["short"], strict=True)
    )
    policy = "full (faster-whisper)"
    rows = [
        Row(
            "jfk", "engine", _duration(JFK), statistics.median(jfk),
            p50_s=statistics.median(jfk), max_s=max(jfk),
            wer=_wer(_reference(JFK), out["jfk"][0][1]),
            cpu_s=statistics.median(cpu for _, _, cpu in out["jfk"]), context=policy,
        ),
        Row("long", "engine", _duration(LONG), long_s, wer=_wer(_reference(LONG), long_text),
            cpu_s=long_cpu, context=policy),
        Row(
            "clients", "engine (one after another)", short_audio, sum(short),
            p50_s=_percentile(waits, 0.5), p95_s=_percentile(waits, 0.95), max_s=max(waits),
            wer=short_wer, cpu_s=sum(cpu for _, _, cpu in out["short"]), context=policy,
        ),
    ]  # fmt: skip
    return rows, out


def bench_server(url: str | None, runs: int, env: dict[str, str]) -> list[Row]:
    """jfk, the long clip and N clients at once through HTTP, with server memory."""
    rows: list[Row] = []
    with running_server(url, **env) as (base, pid, ready_s):
        idle_rss = _rss_mib(pid) if pid else None
        cpu = _CpuMeter(pid)
        transcribe_via_http(base, JFK)  # warm-up
        cpu.start()
        jfk = [transcribe_via_http(base, JFK) for _ in range(runs)]
        jfk_cpu = cpu.stop()
        times = [seconds for seconds, _, _ in jfk]
        context = env.get("ENCODER_CONTEXT", "adaptive")
        rows.append(
            Row("jfk", "whisper-api", _duration(JFK), statistics.median(times),
                p50_s=statistics.median(times), max_s=max(times),
                wer=_wer(_reference(JFK), jfk[0][1]), rss_mib=idle_rss,
                cpu_s=None if jfk_cpu is None else jfk_cpu / runs, context=context,
                extra={"startup_to_ready_s": round(ready_s, 3)})
        )  # fmt: skip
        health = _HealthProbe(base)
        cpu.start()
        with health:
            long_s, long_text, _ = transcribe_via_http(base, LONG)
        rows.append(
            Row(
                "long", "whisper-api", _duration(LONG), long_s,
                wer=_wer(_reference(LONG), long_text), cpu_s=cpu.stop(), context=context,
                extra={"healthz_p99_ms": health.p99_ms, "healthz_max_ms": health.max_ms},
            )
        )  # fmt: skip
        cpu.start()
        clients = _clients_at_once(base, pid)
        clients.cpu_s, clients.context = cpu.stop(), context
        rows.append(clients)
    return rows


class _CpuMeter:
    """CPU seconds a server process spends between start() and stop() (None: external)."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._began = 0.0

    def start(self) -> None:
        """Remember the process's CPU time now."""
        self._began = _cpu_s(self._pid) if self._pid else 0.0

    def stop(self) -> float | None:
        """CPU seconds since start()."""
        return _cpu_s(self._pid) - self._began if self._pid else None


def _clients_at_once(
    base: str, pid: int | None, send: Any = None, system: str = "whisper-api"
) -> Row:
    """Every short clip uploaded by its own client at the same moment."""
    send = send or transcribe_via_http
    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(SHORT)) as pool:
        results = list(pool.map(lambda name: send(base, name), SHORT))
    wall = time.perf_counter() - began
    latencies = [seconds for seconds, _, status in results if status == 200] or [wall]
    wer = statistics.fmean(
        _wer(_reference(name), text) for name, (_, text, _) in zip(SHORT, results, strict=True)
    )
    return Row(
        "clients", f"{system} ({len(SHORT)} at once)", sum(_duration(n) for n in SHORT), wall,
        p50_s=_percentile(latencies, 0.5), p95_s=_percentile(latencies, 0.95),
        max_s=max(latencies), wer=wer,
        refused=sum(status != 200 for _, _, status in results),
        rss_mib=_rss_mib(pid, "VmHWM") if pid else None,
    )  # fmt: skip


class _HealthProbe:
    """Polls /healthz every 20 ms in a thread and keeps the latencies."""

    def __init__(self, url: str, path: str = "/healthz") -> None:
        self._url = url
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.latencies_ms: list[float] = []

    def __enter__(self) -> _HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self._url, timeout=30) as client:
            while not self._stop.wait(0.02):
                began = time.perf_counter()
                client.get(self._path)
                self.latencies_ms.append((time.perf_counter() - began) * 1000)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency."""
        return round(_percentile(self.latencies_ms, 0.99), 1) if self.latencies_ms else 0.0

    @property
    def max_ms(self) -> float:
        """Worst latency."""
        return round(max(self.latencies_ms), 1) if self.latencies_ms else 0.0


def bench_memory() -> Row:
    """Server RSS: no model, tiny.en, base, and after an idle unload."""
    figures: dict[str, float] = {}
    with running_server(None, LOAD_MODEL_ON_STARTUP="0") as (_, pid, _):
        assert pid is not None
        time.sleep(0.5)
        figures["idle_no_model_mib"] = _rss_mib(pid)
    with running_server(None, MAX_MODEL="tiny.en") as (_, pid, _):
        assert pid is not None
        figures["tiny_en_loaded_mib"] = _rss_mib(pid)
    with running_server(None, UNLOAD_MODEL_AFTER_S="1") as (base, pid, _):
        assert pid is not None
        figures["base_loaded_idle_mib"] = _rss_mib(pid)
        transcribe_via_http(base, JFK)
        figures["base_peak_mib"] = _rss_mib(pid, "VmHWM")
        time.sleep(2.0)
        figures["after_unload_mib"] = _rss_mib(pid)
    return Row("memory", "whisper-api", extra={k: round(v, 1) for k, v in figures.items()})


# ---------------------------------------------------------------- the peer

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
        self.port = _free_port()
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

    data = _clip(name).read_bytes()
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
    peer = PeerProcess(_base_model_path(), threads)
    try:
        peer.wait_ready()
        pid = peer.process.pid
        transcribe_via_openai(peer.url, JFK)  # loads the model and warms up
        idle = _rss_mib(pid)
        jfk = [transcribe_via_openai(peer.url, JFK) for _ in range(runs)]
        times = [seconds for seconds, _, _ in jfk]
        rows = [
            Row(
                "jfk", name, _duration(JFK), statistics.median(times),
                p50_s=statistics.median(times), max_s=max(times),
                wer=_wer(_reference(JFK), jfk[0][1]), rss_mib=idle,
            )
        ]  # fmt: skip
        health = _HealthProbe(peer.url, path="/health")
        with health:
            long_s, long_text, _ = transcribe_via_openai(peer.url, LONG)
        rows.append(
            Row(
                "long", name, _duration(LONG), long_s, wer=_wer(_reference(LONG), long_text),
                extra={"health_p99_ms": health.p99_ms, "health_max_ms": health.max_ms},
            )
        )  # fmt: skip
        rows.append(_clients_at_once(peer.url, pid, transcribe_via_openai, name))
        return rows
    finally:
        peer.stop()


# ---------------------------------------------------------------- output


def _table(rows: list[Row]) -> str:
    header = (
        f"{'scenario':<9} {'system':<28} {'audio s':>8} {'wall s':>8} {'x rt':>6} "
        f"{'p50':>6} {'p95':>6} {'max':>6} {'WER':>6} {'refused':>7} {'RSS MiB':>8} "
        f"{'CPU s/audio min':>15}  context"
    )
    lines = [header, "-" * len(header)]

    def fmt(value: float | None, spec: str = ".2f") -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        lines.append(
            f"{row.scenario:<9} {row.system:<28} {row.audio_s:>8.1f} {row.wall_s:>8.2f} "
            f"{row.speed:>6.2f} {fmt(row.p50_s):>6} {fmt(row.p95_s):>6} {fmt(row.max_s):>6} "
            f"{fmt(row.wer, '.3f'):>6} {row.refused:>7} {fmt(row.rss_mib, '.0f'):>8} "
            f"{fmt(row.cpu_per_audio_min):>15}  {row.context}"
        )
        if row.extra:
            lines.append(" " * 10 + ", ".join(f"{k}={v}" for k, v in row.extra.items()))
    return "\n".join(lines)


def _ratio_line(engine: Row, server: Row) -> str:
    """Server / engine for one scenario of the same run, with both WERs and the policy."""

    def ratio(ours: float | None, theirs: float | None) -> str:
        return f"{ours / theirs:.3f}" if ours is not None and theirs else "-"

    def wer(row: Row) -> str:
        return "-" if row.wer is None else f"{100 * row.wer:.2f} %"

    return (
        f"ratio {engine.scenario:<8} server/engine wall = {ratio(server.wall_s, engine.wall_s)}"
        f"  p95 = {ratio(server.p95_s, engine.p95_s)}"
        f"  CPU = {ratio(server.cpu_s, engine.cpu_s)}"
        f"  (WER {wer(server)} vs {wer(engine)}; context {server.context})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark scenarios and print the table (`bench context`: the context study)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["context"]:
        from app.bench.context_study import main as context_study

        return context_study(arguments[1:])
    parser = argparse.ArgumentParser(prog="whisper-api bench", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="benchmark an already running server instead of starting one")
    parser.add_argument("--runs", type=int, default=5, help="jfk repetitions (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    parser.add_argument(
        "--encoder-context",
        choices=("adaptive", "full"),
        default="adaptive",
        help="the server's ENCODER_CONTEXT (the engine is always faster-whisper's full context)",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument(
        "--peers", action="store_true", help="also run faster-whisper-server (PyPI) side by side"
    )
    parser.add_argument("--only", choices=["speakers"], help="run only this scenario")
    parser.add_argument("--skip-speakers", action="store_true")
    parser.add_argument("--skip-live", action="store_true", help="leave out the live scenario")
    parser.add_argument("--live-only", action="store_true", help="run only the live scenario")
    parser.add_argument("--live-clip", default="en_longform_tedlium_120s.flac")
    args = parser.parse_args(argv)
    if args.only == "speakers":
        return _speakers(args.json)
    if args.live_only:
        rows = live_rows(args.live_clip)
        print(_table(rows))
        _write_json(args.json, {"cpus": os.cpu_count()}, rows)
        return 0

    env = {
        "CPU_THREADS": str(args.threads),
        "BATCH_SIZE": str(args.batch_size),
        "CPU_FALLBACK_MODEL": "base",
        "ENCODER_CONTEXT": args.encoder_context,
    }
    began = time.perf_counter()
    engine_rows, _ = bench_engine(args.threads, args.runs)
    server_rows = bench_server(args.url, args.runs, env)
    peer_rows = bench_peer(args.threads, args.runs) if args.peers else []
    groups = [engine_rows, server_rows] + ([peer_rows] if peer_rows else [])
    rows = [row for group in zip(*groups, strict=True) for row in group]
    if not args.skip_memory and args.url is None:
        rows.append(bench_memory())
    cluster: dict[str, Any] = {}
    if not args.skip_cluster and args.url is None:
        from app.bench.cluster import bench_cluster

        cluster_rows, cluster = bench_cluster(args.threads, env)
        rows.extend(cluster_rows)
    if not args.skip_live and args.url is None:
        rows += live_rows(args.live_clip)
    context = {
        "model": "base", "device": "cpu", "compute_type": "int8", "beam_size": 5,
        "threads": args.threads, "batch_size": args.batch_size, "cpus": os.cpu_count(),
        "total_bench_s": round(time.perf_counter() - began, 1),
    }  # fmt: skip
    print(_table(rows))
    print("context: " + ", ".join(f"{k}={v}" for k, v in context.items()))
    for engine, server in zip(engine_rows, server_rows, strict=True):
        print(_ratio_line(engine, server))
    if cluster:
        print("cluster: " + ", ".join(f"{k}={v}" for k, v in cluster.items()))
    _write_json(args.json, {**context, "cluster": cluster}, rows)
    if not args.skip_speakers:
        speakers_json = args.json.with_name("bench-speakers.json") if args.json else None
        _speakers(speakers_json)
    return 0


def _speakers(json_path: Path | None) -> int:
    """The speaker-label scenario (its own table and JSON file)."""
    from app.bench.speakers import bench_speakers, speaker_table

    result = bench_speakers(AUDIO_DIR)
    print(speaker_table(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def _write_json(path: Path | None, context: dict[str, Any], rows: list[Row]) -> None:
    if path is not None:
        path.write_text(
            json.dumps({"context": context, "rows": [asdict(r) for r in rows]}, indent=2) + "\n",
            encoding="utf-8",
        )


def live_rows(clip_name: str) -> list[Row]:
    """The live scenario (see app/bench/live.py) as table rows."""
    from app.bench.live import bench_live, offline_wer

    clip, reference = _clip(clip_name), _reference(clip_name)
    results = bench_live(
        clip,
        reference,
        start_server=lambda **env: running_server(None, CPU_FALLBACK_MODEL="base", **env),
        upload=transcribe_via_http,
        batch_clip=clip_name,
    )
    yardstick = offline_wer(clip, reference)
    rows = []
    for result in results:
        extra = {
            "words": result["words"],
            "mean_delay_s": _rounded(result["mean_s"]),
            "cpu_share": round(result["cpu_share"], 2),
            "offline_wer": round(yardstick, 3),
        }
        if result["batch_wall_s"] is not None:
            extra["batch_wall_s"] = round(result["batch_wall_s"], 1)
        rows.append(
            Row(
                scenario="live",
                system="live + batch beside" if result["beside_batch"] else "live alone",
                audio_s=_duration(clip_name),
                wall_s=result["wall_s"],
                p50_s=None,
                p95_s=result["p95_s"],
                max_s=result["max_s"],
                wer=result["wer"],
                extra=extra,
            )
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    sys.exit(main())
