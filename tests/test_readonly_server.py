"""No audio on disk: the real server transcribes a big upload on a read-only file system."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.bench.runner import word_error_rate
from app.transcription.audio import decode_audio
from tests.conftest import REPO_ROOT, reference_text, shared_clip
from tests.server_process import served, server_upload, server_wait_final

pytestmark = pytest.mark.real_model

# In a private mount namespace: the whole root file system (working directory, TMPDIR,
# /tmp, home, the model cache) becomes read-only for the server alone, /dev/shm too.
# The server's stdout is a file the test opened before, outside that namespace.
READ_ONLY_NAMESPACE = (
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-ec",
    'mount -o remount,bind,ro / && mount -t tmpfs -o ro tmpfs /dev/shm && exec "$@"',
    "read-only",
)


def namespace_works() -> str | None:
    """None when read-only mount namespaces can be made here, else the reason they cannot."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        [*READ_ONLY_NAMESPACE, "sh", "-c", "! touch /probe-read-only 2>/dev/null"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return "cannot make a read-only mount namespace: " + (probe.stderr.strip() or "denied")
    return None


def unprivileged_launcher() -> tuple[str, ...] | None:
    """Fallback: run the server as `nobody`, for whom the directories are read-only."""
    if shutil.which("setpriv") is None:
        return None
    return ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")


# Five different read sentences (29.7 s): one clip repeated makes Whisper loop on it.
CLIPS = (
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0003.wav",
    "en_ljspeech_LJ001-0004.wav",
    "en_ls-test-clean_1089-134686-0001.flac",
    "en_ljspeech_LJ001-0002.wav",
)


def big_wav(clips: list[Path]) -> bytes:
    """The clips one after another as 48 kHz stereo 16-bit WAV (about 190 kB a second)."""
    mono = np.concatenate([decode_audio(clip.read_bytes()) for clip in clips])
    upsampled = np.repeat(mono, 3)  # 16 kHz -> 48 kHz (a crude but faithful hold)
    stereo = np.stack([upsampled, upsampled], axis=1)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((stereo * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def test_five_megabyte_upload_transcribes_with_everything_read_only(tmp_path: Path) -> None:
    """Read-only cwd, TMPDIR (empty), cache and root fs: a 5 MB upload still transcribes."""
    clips = [shared_clip(name) for name in CLIPS]
    tmpdir = tmp_path / "empty-tmp"
    tmpdir.mkdir()
    audio_path = tmp_path / "board-meeting.wav"
    audio_path.write_bytes(big_wav(clips))
    assert audio_path.stat().st_size > 5 * 1024 * 1024

    reason = namespace_works()
    environment = {
        "TMPDIR": str(tmpdir),
        "HOME": str(tmpdir),
        "MODEL_CACHE_DIR": str(tmpdir / "cache"),
        "XDG_CACHE_HOME": str(tmpdir / "cache"),
        "HF_HOME": str(tmpdir / "hf"),
        "LOG_FILE": "",
    }
    if reason is None:
        launcher: tuple[str, ...] = READ_ONLY_NAMESPACE
    else:
        fallback = unprivileged_launcher()
        if fallback is None:
            pytest.skip(f"{reason}, and setpriv is missing too")
        launcher = fallback
        tmpdir.chmod(0o555)  # root-owned: read-only for nobody

    with served(
        tmp_path, ready_timeout_s=120, launcher=launcher, cwd=REPO_ROOT, **environment
    ) as server:
        response = server_upload(server.url, "/api/v1/transcribe", audio_path)
        assert response.status_code == 200, response.text
        body = server_wait_final(server.url, response.json()["task_id"])
    assert body["status"] == "finished", body
    assert body["audio_duration"] == pytest.approx(29.7, abs=0.2)
    reference = " ".join(reference_text(name) for name in CLIPS)
    assert word_error_rate(reference, body["transcript"]) <= 0.15
    assert list(tmpdir.iterdir()) == []
    output = server.output
    assert "Traceback" not in output
    if reason is None:  # the split model could not be cached anywhere: it came from memory
        assert "bundled_model_assembled_in_memory" in output


def test_nothing_is_written_outside_the_log_dir_and_model_cache(tmp_path: Path) -> None:
    """Fresh, writable HOME and TMPDIR: after a long job with the VAD, nothing else appeared."""
    home = tmp_path / "home"
    tmpdir = tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    log_dir = home / "logs"
    model_cache = home / ".cache" / "whisper-api"
    environment = {
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "MODEL_CACHE_DIR": str(model_cache),
        "HF_HOME": str(home / "hf"),
        "LOG_DIR": str(log_dir),
        "LOG_FILE": "whisper_api.log",
    }
    with served(tmp_path, ready_timeout_s=120, DEVELOP_MODE="1", **environment) as server:
        clip = shared_clip("en_longform_tedlium_120s.flac")
        with clip.open("rb") as handle:
            response = httpx.post(
                server.url + "/api/v1/transcribe",
                files={"file": (clip.name, handle)},
                data={"vad_filter": "true", "language": "en"},
                timeout=120,
            )
        assert response.status_code == 200, response.text
        body = server_wait_final(server.url, response.json()["task_id"], timeout_s=600)
    assert body["status"] == "finished", body
    written = sorted(
        str(path.relative_to(tmp_path))
        for path in (*home.rglob("*"), *tmpdir.rglob("*"))
        if path.is_file() and log_dir not in path.parents and model_cache not in path.parents
    )
    print(f"\nrow 7: files outside LOG_DIR and the model cache after a VAD job: {written}")
    assert written == []
    assert any(log_dir.iterdir())  # the log went where it was told
