"""The `whisper-api transcribe` client against an app on the fake transcriber."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import srt
from litestar import Litestar
from litestar.testing import TestClient

from app.__main__ import main
from app.cli.transcribe import (
    TaskEvent,
    TranscribeRequest,
    Transcription,
    output_path,
    run_transcribe,
)
from tests.conftest import AppFactory, FakeTranscriber, wav_bytes


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    """A two-second WAV on disk."""
    path = tmp_path / "meeting.wav"
    path.write_bytes(wav_bytes(2.0))
    return path


@pytest.fixture
def test_client(build_app: AppFactory) -> Iterator[TestClient[Litestar]]:
    """A synchronous client on the app; the CLI takes any httpx.Client."""
    with TestClient(app=build_app()) as client:
        yield client


def run(
    client: TestClient[Litestar], files: list[Path], **options: object
) -> tuple[int, bytes, str]:
    """Run the client; return its exit status, standard output and standard error."""
    stdout, stderr = io.BytesIO(), io.StringIO()
    request = TranscribeRequest(files=files, quiet=True, **options)  # type: ignore[arg-type]
    status = run_transcribe(request, client=client, stdout=stdout, stderr=stderr)
    return status, stdout.getvalue(), stderr.getvalue()


def test_output_path_rules(tmp_path: Path) -> None:
    """No -o: NAME.EXT here; -o file for one input; -o dir for several; - is stdout."""
    source = Path("/audio/talk.flac")
    assert output_path(source, "srt", None, several=False) == Path("talk.srt")
    assert output_path(source, "verbose_json", None, several=False) == Path("talk.json")
    assert output_path(source, "txt", "out.txt", several=False) == Path("out.txt")
    assert output_path(source, "vtt", "subs", several=True) == Path("subs/talk.vtt")
    assert output_path(source, "vtt", str(tmp_path), several=False) == tmp_path / "talk.vtt"
    assert output_path(source, "txt", "-", several=False) is None


def test_writes_the_result_in_the_asked_format(
    test_client: TestClient[Litestar], wav_file: Path, tmp_path: Path
) -> None:
    """A finished task's SRT is written to -o and the exit status is 0."""
    target = tmp_path / "out" / "meeting.srt"
    status, _, stderr = run(test_client, [wav_file], fmt="srt", output=str(target))
    assert status == 0, stderr
    subtitles = list(srt.parse(target.read_text(encoding="utf-8")))
    assert subtitles[0].content == "hello world"


def test_stdout_and_options_reach_the_server(
    test_client: TestClient[Litestar], wav_file: Path, fake_transcriber: FakeTranscriber
) -> None:
    """-o - prints the result; --translate, --language, --model and word timing are sent."""
    status, stdout, _ = run(
        test_client,
        [wav_file],
        output="-",
        translate=True,
        language="de",
        model="base",
        word_timestamps=True,
    )
    assert status == 0
    assert stdout == b"hello world\n"
    options = fake_transcriber.calls[-1]
    assert (options.task, options.language, options.model) == ("translate", "de", "base")
    assert options.word_timestamps


def test_each_failure_is_one_line_and_the_others_still_run(
    test_client: TestClient[Litestar], wav_file: Path, tmp_path: Path
) -> None:
    """A missing file and a non-audio file fail with one line each; the good file is written."""
    text_file = tmp_path / "notes.wav"
    text_file.write_text("not audio")
    missing = tmp_path / "gone.wav"
    status, _, stderr = run(
        test_client, [missing, text_file, wav_file], output=str(tmp_path / "results")
    )
    assert status == 1
    lines = stderr.strip().splitlines()
    assert lines == [
        f"whisper-api: {missing}: no such file",
        f"whisper-api: {text_file}: upload failed (400): "
        "the upload is not audio or video this server can decode",
    ]
    assert (tmp_path / "results" / "meeting.txt").read_text() == "hello world\n"


def test_a_failed_task_is_reported(
    test_client: TestClient[Litestar], wav_file: Path, fake_transcriber: FakeTranscriber
) -> None:
    """A task that fails on the server exits 1 with the server's reason."""
    fake_transcriber.fail_with = RuntimeError("boom")
    status, _, stderr = run(test_client, [wav_file], output="-")
    assert status == 1
    assert "could not transcribe it: transcription failed: RuntimeError" in stderr


def test_unreachable_server_is_one_line(wav_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No server listening: exit 1 and one line naming the server."""
    status = main(["transcribe", str(wav_file), "--server", "http://127.0.0.1:9", "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(lines) == 1
    assert "cannot reach http://127.0.0.1:9" in lines[0]


def test_progress_bar_shows_queue_place_then_audio_done(tmp_path: Path) -> None:
    """Waiting: how many are ahead; running: seconds of audio done; at the end: finished."""
    stderr = io.StringIO()
    request = TranscribeRequest(files=[tmp_path / "talk.flac"])
    job = Transcription(httpx.Client(), request, tmp_path / "talk.flac", stderr)
    with job.bar(120.0) as bar:
        job.show(bar, TaskEvent(status="pending", position_in_queue=3), 120.0)
        queued = job.description
        job.show(bar, TaskEvent(status="pending", position_in_queue=1), 120.0)
        next_up = job.description
        job.show(bar, TaskEvent(status="processing", position_in_queue=0, progress=0.25), 120.0)
        running, done_s = job.description, bar.n
        job.show(bar, TaskEvent(status="finished", progress=1.0), 120.0)
    assert queued == "talk.flac: queued, 2 ahead"
    assert next_up == "talk.flac: queued, next"
    assert (running, done_s) == ("talk.flac: transcribing", 30.0)
    frames = stderr.getvalue().replace("\r", "\n")
    assert "talk.flac: finished 100%" in frames
    assert "120.0/120.0 s of audio" in frames


def test_progress_bar_is_drawn_for_a_real_task(
    test_client: TestClient[Litestar], wav_file: Path
) -> None:
    """Without --quiet the bar reaches 100% over the file's 2 s of audio."""
    stderr = io.StringIO()
    request = TranscribeRequest(files=[wav_file], output="-")
    status = run_transcribe(request, client=test_client, stdout=io.BytesIO(), stderr=stderr)
    frames = stderr.getvalue().replace("\r", "\n")
    assert status == 0
    assert "meeting.wav: finished 100%" in frames
    assert "2.0/2.0 s of audio" in frames


def test_speakers_flag_asks_for_speaker_labels(
    test_client: TestClient[Litestar], wav_file: Path, fake_transcriber: FakeTranscriber
) -> None:
    """--speakers --num-speakers 2 sends diarize and the count; txt comes back by turns."""
    status, stdout, stderr = run(test_client, [wav_file], output="-", speakers=True, num_speakers=2)
    assert status == 0, stderr
    speakers = fake_transcriber.calls[-1].speakers
    assert speakers is not None and speakers.num_speakers == 2
    assert stdout.startswith(b"A: ") or stdout.startswith(b"B: ")


def test_speakers_option_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    """`whisper-api transcribe --speakers --num-speakers 3` reaches the request."""
    seen: list[TranscribeRequest] = []
    monkeypatch.setattr(
        "app.cli.transcribe.run_transcribe", lambda request: seen.append(request) or 0
    )
    assert main(["transcribe", "x.wav", "--speakers", "--num-speakers", "3"]) == 0
    assert seen[0].speakers and seen[0].num_speakers == 3
