"""Prometheus metrics of one service instance, in their own registry.

Each `TranscriptionService` owns a `ServiceMetrics` with a private
`CollectorRegistry`, so tests that build many apps never collide in the global
one. Labels are coarse on purpose: surface, task type, status, model, device and
reason. None carries a task id, a file name, a client address or anything else
that could identify a person or a recording.

Counters move at the service's edges (submit, the worker's job-done callback,
cancellation, shutdown); queue depth and model state are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "FinalStatus",
    "LiveMetrics",
    "RejectReason",
    "ServiceMetrics",
    "StateSnapshot",
]

# The classic text format (0.0.4): every Prometheus version and most agents read it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "whisper_api"

FinalStatus = Literal["finished", "failed", "cancelled"]
RejectReason = Literal[
    "queue_full",
    "too_large",
    "too_long",
    "bad_audio",
    "bad_request",
    "no_model",
    "unauthorized",
    "rate_limited",
    "shutting_down",
    "backend_unavailable",
    "too_many_uploads",
    "upload_timeout",
    # One client's share (issue 25): its uploads in flight, its waiting jobs, its body's pace.
    "client_uploads_in_flight",
    "client_queue_full",
    "upload_idle",
    "upload_too_slow",
    "live_disabled",
    "too_many_sessions",
    "origin_not_allowed",
]

# Seconds of work per job: from a short clip on a GPU to a long recording on a CPU.
PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Processing time divided by audio duration: below 1 is faster than real time.
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)
# Seconds from a word's audio arriving to the word being committed, and per live pass.
LIVE_DELAY_BUCKETS = (0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20)
# Upload sizes, 64 KiB to 1 GiB.
UPLOAD_BUCKETS = tuple(float(64 * 1024 * 4**n) for n in range(8))


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """What the scrape-time gauges show, taken from the service when Prometheus asks."""

    queue_depth: int
    running_jobs: int
    draining: bool
    device: str
    loaded_models: list[str]
    load_seconds: dict[str, float]  # the most recent load of each model loaded so far
    loading_model: str | None
    # A cluster (QUEUE_BACKEND=redis): workers alive by device; empty in one process.
    workers_by_device: dict[str, int] = field(default_factory=dict)
    # How often each model was loaded and unloaded since start (the dashboard's turnover).
    load_counts: dict[str, int] = field(default_factory=dict)
    unload_counts: dict[str, int] = field(default_factory=dict)
    # Clients with waiting jobs, and the most waiting jobs of one of them (counts, no ids).
    queue_clients: int = 0
    queue_most_per_client: int = 0


class _StateCollector(Collector):
    """Gauges read when Prometheus scrapes, so they are never stale."""

    def __init__(self, snapshot: Callable[[], StateSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One sample per gauge, or per model for the model gauges."""
        state = self._snapshot()
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Jobs waiting in the queue.", value=state.queue_depth
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_clients",
            "Clients (API keys, else addresses) with jobs waiting; none is named.",
            value=state.queue_clients,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth_most_per_client",
            "The most jobs one client has waiting.",
            value=state.queue_most_per_client,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_jobs_running", "Jobs being transcribed now.", value=state.running_jobs
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_draining",
            "1 while the server shuts down and refuses new uploads.",
            value=1.0 if state.draining else 0.0,
        )
        device, load_seconds = state.device, state.load_seconds
        loaded, loading = state.loaded_models, state.loading_model
        loaded_gauge = GaugeMetricFamily(
            f"{PREFIX}_model_loaded",
            "1 for a model in memory, 0 for one loaded before and unloaded since.",
            labels=["model", "device"],
        )
        seconds_gauge = GaugeMetricFamily(
            f"{PREFIX}_model_load_seconds",
            "Seconds the most recent load of the model took.",
            labels=["model", "device"],
        )
        for model in sorted(set(load_seconds) | set(loaded)):
            loaded_gauge.add_metric([model, device], 1.0 if model in loaded else 0.0)
            if model in load_seconds:
                seconds_gauge.add_metric([model, device], load_seconds[model])
        yield loaded_gauge
        yield seconds_gauge
        loading_gauge = GaugeMetricFamily(
            f"{PREFIX}_model_loading",
            "1 while the model is being loaded.",
            labels=["model", "device"],
        )
        if loading is not None:
            loading_gauge.add_metric([loading, device], 1.0)
        yield loading_gauge
        if state.workers_by_device:
            workers = GaugeMetricFamily(
                f"{PREFIX}_workers_alive",
                "Cluster workers registered now, by device.",
                labels=["device"],
            )
            for worker_device, count in sorted(state.workers_by_device.items()):
                workers.add_metric([worker_device], float(count))
            yield workers
        yield from _model_turnover(state)


class ServiceMetrics:
    """The counters and histograms of one service, and the registry they live in."""

    def __init__(self, snapshot: Callable[[], StateSnapshot]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(snapshot))
        self.jobs = Counter(
            f"{PREFIX}_jobs",
            "Jobs that reached a final status, by surface, task type and status.",
            ["surface", "task_type", "status"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            f"{PREFIX}_audio_seconds",
            "Seconds of audio in finished jobs.",
            ["surface", "task_type"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            f"{PREFIX}_processing_seconds",
            "Wall-clock seconds a finished job spent on the model.",
            ["model", "device"],
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            f"{PREFIX}_real_time_factor",
            "Processing seconds per second of audio of finished jobs (below 1 = faster than "
            "real time).",
            ["model", "device"],
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            f"{PREFIX}_uploads_rejected",
            "Uploads refused before they were queued, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.upload_bytes = Histogram(
            f"{PREFIX}_upload_bytes",
            "Size of the audio files handed to the service, in bytes.",
            ["surface"],
            buckets=UPLOAD_BUCKETS,
            registry=self.registry,
        )
        self.fleet = FleetMetrics(self.registry)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def upload_received(self, surface: str, size: int) -> None:
        """An upload reached the service (counted whether or not it is accepted)."""
        self.upload_bytes.labels(surface=surface).observe(size)

    def upload_rejected(self, reason: RejectReason) -> None:
        """An upload was refused before it was queued."""
        self.rejected.labels(reason=reason).inc()

    def job_final(
        self,
        *,
        surface: str,
        task_type: str,
        status: FinalStatus,
        audio_seconds: float,
        processing_seconds: float | None,
        model: str | None,
        device: str | None,
        wait_seconds: float | None = None,
    ) -> None:
        """A job reached its final status; finished ones add their audio and timings."""
        self.jobs.labels(surface=surface, task_type=task_type, status=status).inc()
        if wait_seconds is not None:
            self.fleet.queue_wait.labels(surface=surface).observe(max(0.0, wait_seconds))
        if status != "finished":
            return
        self.audio_seconds.labels(surface=surface, task_type=task_type).inc(audio_seconds)
        if processing_seconds is None:
            return
        labels = {"model": model or "unknown", "device": device or "unknown"}
        self.processing_seconds.labels(**labels).observe(processing_seconds)
        if audio_seconds > 0:
            self.real_time_factor.labels(**labels).observe(processing_seconds / audio_seconds)


class LiveMetrics:
    """Live transcription (/v1/realtime): sessions, turns and delays; never any text.

    Also the `LiveObserver` each live session reports its timings to.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge(
            f"{PREFIX}_live_sessions_active", "Live sessions open now.", registry=registry
        )
        self.sessions = Counter(
            f"{PREFIX}_live_sessions",
            "Live sessions that ended, by how they ended.",
            ["outcome"],
            registry=registry,
        )
        self.refused = Counter(
            f"{PREFIX}_live_sessions_refused",
            "Live sessions refused before the upgrade, by reason.",
            ["reason"],
            registry=registry,
        )
        self.turns = Counter(f"{PREFIX}_live_turns", "Live turns completed.", registry=registry)
        self.audio_seconds = Counter(
            f"{PREFIX}_live_audio_seconds",
            "Seconds of audio in completed live turns.",
            registry=registry,
        )
        self.word_delay = Histogram(
            f"{PREFIX}_live_word_delay_seconds",
            "Seconds from a word's audio arriving to the word being committed.",
            buckets=LIVE_DELAY_BUCKETS,
            registry=registry,
        )
        self.pass_seconds = Histogram(
            f"{PREFIX}_live_pass_seconds",
            "Seconds one live transcription pass took.",
            buckets=LIVE_DELAY_BUCKETS,
            registry=registry,
        )

    def session_refused(self, reason: RejectReason) -> None:
        """A live session was refused before the upgrade, for `reason`."""
        self.refused.labels(reason=reason).inc()

    def pass_done(self, seconds: float) -> None:
        """One transcription pass took `seconds`."""
        self.pass_seconds.observe(seconds)

    def word_committed(self, delay_s: float) -> None:
        """A word was committed `delay_s` after its audio arrived."""
        self.word_delay.observe(delay_s)

    def turn_completed(self, audio_s: float) -> None:
        """A turn of `audio_s` seconds was completed."""
        self.turns.inc()
        self.audio_seconds.inc(audio_s)


# -- What the fleet's dashboard and alert rules need (deploy/kubernetes/monitoring/) --------
# Kept in one block: queue waits, whether the queue's backend answers, model turnover.

# Seconds a job waited in the queue before a worker started it.
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class FleetMetrics:
    """Queue waits and the backend's reachability, in the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Seconds from upload to a worker starting the job, of jobs that started.",
            ["surface"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.backend_up = Gauge(
            f"{PREFIX}_backend_up",
            "1 while the queue's backend (Redis in a cluster) answers, 0 while it does not.",
            registry=registry,
        )
        self.queue_capacity = Gauge(
            f"{PREFIX}_queue_capacity",
            "Jobs the queue takes before uploads get 429 (MAX_TASK_QUEUE_SIZE).",
            registry=registry,
        )

    def scraped(self, *, backend_reachable: bool, queue_capacity: int) -> None:
        """Record what the latest check of the backend found and the queue's bound."""
        self.backend_up.set(1.0 if backend_reachable else 0.0)
        self.queue_capacity.set(queue_capacity)


def _model_turnover(state: StateSnapshot) -> Iterator[CounterMetricFamily]:
    """Model loads and unloads so far, by model (0 unloads for a model loaded once)."""
    loads = CounterMetricFamily(
        f"{PREFIX}_model_loads", "Models loaded since start.", labels=["model", "device"]
    )
    unloads = CounterMetricFamily(
        f"{PREFIX}_model_unloads", "Models unloaded since start.", labels=["model", "device"]
    )
    for model in sorted(state.load_counts):
        loads.add_metric([model, state.device], float(state.load_counts[model]))
        unloads.add_metric([model, state.device], float(state.unload_counts.get(model, 0)))
    yield loads
    yield unloads
