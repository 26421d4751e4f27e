"""Schemathesis over /docs/openapi.json on a live server: no 5xx, every answer as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

# Loaded at collection, not lazily by `from_url` mid-run: CPython 3.11 can fail to compile
# a module ("AST constructor recursion depth mismatch") after an earlier test in the same
# process met a RecursionError (deeply nested JSON), and pytest rewrites this plugin's modules.
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server_process import Server, served

pytestmark = pytest.mark.real_model

# Bounded so the whole run stays around a minute on two CPU cores.
MAX_EXAMPLES = 12


@pytest.fixture(
    scope="module",
    params=[
        pytest.param({}, id="open"),
        # Without a key every guarded route answers 401, and past the limit 429:
        # those answers must be documented too.
        pytest.param(
            {"API_KEYS": "fuzz-key-0123456789abcdef", "RATE_LIMIT": "20/minute"}, id="keys"
        ),
    ],
)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real server with the smallest models; the fuzzer's uploads are refused before decoding."""
    log_dir: Path = tmp_path_factory.mktemp("fuzz-logs")
    with served(
        tmp_path_factory.mktemp("fuzz"),
        DEVELOP_MODE="1",
        LOG_DIR=str(log_dir),
        LOG_FILE="whisper_api.log",
        MAX_UPLOAD_MB="2",
        **request.param,
    ) as server:
        yield server
    assert "request_failed" not in server.output  # no handler raised unexpectedly


def _operations(url: str) -> list[Any]:
    loaded = schemathesis.openapi.from_url(url + "/docs/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def test_api_answers_as_its_schema_says(live_server: Server) -> None:
    """Generated requests to every operation get documented statuses, types and bodies.

    Hypothesis drives each operation's strategy directly (schemathesis's lazy pytest
    fixture does not run on pytest 9); every operation runs, failures are reported together.
    """
    operations = _operations(live_server.url)
    assert len(operations) >= 15
    failures: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same examples every run: a failure can be reproduced
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=live_server.url,
                timeout=30,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_headers_conformance,
                    response_schema_conformance,
                ],
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # collect all, then report them together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
