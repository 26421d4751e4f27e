"""The seed's Python names, so its pip users switch without edits.

`uvicorn whisper_api:app` serves the service as configured by the environment (the
README's Settings), and the `whisper_api` command is `whisper-api serve` (PORT, LISTEN and
every other setting from the environment). New deployments use `whisper-api serve`: it
also drains gracefully on SIGTERM (see the README's Operations), which plain uvicorn does
not do.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["app", "main"]


def main() -> int:
    """The seed's `whisper_api` command: the server, with any `serve` options after it."""
    from app.__main__ import main as whisper_api_main

    return whisper_api_main(["serve", *sys.argv[1:]])


def _build() -> Litestar:
    """The application the environment's settings describe, its logging configured."""
    from app.asgi import create_app
    from app.config import load_settings
    from app.observability.logging import configure_logging

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def __getattr__(name: str) -> Any:
    """`whisper_api.app`, built on first use (importing the package alone starts nothing)."""
    if name == "app":
        application = _build()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
