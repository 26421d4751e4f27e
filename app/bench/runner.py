"""`whisper-api bench` (and `make bench`): the server against faster-whisper called directly.

This module is the command line; the scenarios and their helpers live beside it:
`measure` (clips, result row, WER, /proc readings), `servers` (the server process and
its clients), `scenarios` (engine and server), `peers`, `cluster`, `fairness`, `live`, `speakers`,
`context_study` (`bench context`), `live_study` (`bench live-study`), and `report` (table and
JSON).

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
- fairness: a late client's one clip behind another client's backlog, QUEUE_POLICY=fair
  against fifo: its wait and the position it was told (app/bench/fairness.py; skip with
  --skip-fairness)
- speakers: the speaker stage on conversations built from the clips (app.bench.speakers):
           DER with and without a 0.25 s collar, speaker-count accuracy, CPU s per audio
           minute, an hour of audio; `--only speakers` runs it alone
- subtitles: SRT norms per clip before and after shaping, and the cost of timing words
           for the cues (app/bench/subtitles.py); `--only subtitles` runs it alone
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
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from app.bench.cluster import bench_cluster
from app.bench.context_study import main as context_study
from app.bench.fairness import bench_fairness
from app.bench.live import live_rows, live_table
from app.bench.live_study import main as live_study
from app.bench.measure import AUDIO_DIR, Row, word_error_rate
from app.bench.peers import bench_peer
from app.bench.report import ratio_line, table, write_json
from app.bench.scenarios import bench_engine, bench_memory, bench_server

# word_error_rate is re-exported: tests compare transcripts with the bench's own rule.
__all__ = ["main", "word_error_rate"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark scenarios and print the table (`bench context`: the context study)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["context"]:
        return context_study(arguments[1:])
    if arguments[:1] == ["live-study"]:
        return live_study(arguments[1:])
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
    parser.add_argument("--skip-fairness", action="store_true")
    parser.add_argument(
        "--peers", action="store_true", help="also run faster-whisper-server (PyPI) side by side"
    )
    parser.add_argument(
        "--only", choices=["speakers", "live", "subtitles"], help="run only this scenario"
    )
    parser.add_argument("--skip-speakers", action="store_true")
    parser.add_argument("--skip-live", action="store_true", help="leave out the live scenario")
    parser.add_argument("--live-only", action="store_true", help="the same as --only live")
    parser.add_argument(
        "--live-final-model",
        help="the live server's LIVE_FINAL_MODEL (set on the server the bench starts)",
    )
    args = parser.parse_args(argv)
    if args.only == "speakers":
        return _speakers(args.json)
    if args.only == "subtitles":
        return _subtitles(args.json, args.threads, args.runs)
    if args.live_only or args.only == "live":
        rows = live_rows(args.url, final_model=args.live_final_model)
        print(table(rows))
        print(live_table(rows))
        write_json(args.json, {"cpus": os.cpu_count()}, rows)
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
        cluster_rows, cluster = bench_cluster(args.threads, env)
        rows.extend(cluster_rows)
    fairness = ""
    if not args.skip_fairness and args.url is None:
        fairness_rows, fairness = bench_fairness(env)
        rows.extend(fairness_rows)
    live: list[Row] = []
    if not args.skip_live and args.url is None:
        live = live_rows(final_model=args.live_final_model)
        rows += live
    context = {
        "model": "base", "device": "cpu", "compute_type": "int8", "beam_size": 5,
        "threads": args.threads, "batch_size": args.batch_size, "cpus": os.cpu_count(),
        "total_bench_s": round(time.perf_counter() - began, 1),
    }  # fmt: skip
    print(table(rows))
    print("context: " + ", ".join(f"{k}={v}" for k, v in context.items()))
    for engine, server in zip(engine_rows, server_rows, strict=True):
        print(ratio_line(engine, server))
    if cluster:
        print("cluster: " + ", ".join(f"{k}={v}" for k, v in cluster.items()))
    if fairness:
        print(fairness)
    if live:
        print(live_table(live))
    write_json(args.json, {**context, "cluster": cluster}, rows)
    if not args.skip_speakers:
        speakers_json = args.json.with_name("bench-speakers.json") if args.json else None
        _speakers(speakers_json)
    return 0


def _speakers(json_path: Path | None) -> int:
    """The speaker-label scenario (its own table and JSON file)."""
    # Imported when asked for: numpy and the speaker stage take a while to load.
    from app.bench.speakers import bench_speakers, speaker_table

    result = bench_speakers(AUDIO_DIR)
    print(speaker_table(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def _subtitles(json_path: Path | None, threads: int, runs: int) -> int:
    """Subtitle norms before and after shaping, and the cue words' cost (two tables)."""
    from dataclasses import asdict

    from app.bench.subtitles import bench_subtitles, cost_table, norms_table

    norms, costs = bench_subtitles(threads, runs)
    print(norms_table(norms))
    print()
    print(cost_table(costs))
    if json_path:
        rows = [
            {**row, "before": asdict(row["before"]), "after": asdict(row["after"])} for row in norms
        ]
        payload = {"threads": threads, "runs": runs, "norms": rows, "cost": costs}
        json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
