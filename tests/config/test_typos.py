"""Spotting misspelt setting names without flagging other software's variables."""

from __future__ import annotations

import msgspec

from app.config import ENV_ALIASES, Settings
from app.config.typos import likely_typos

KNOWN = {field.name.upper() for field in msgspec.structs.fields(Settings)} | set(ENV_ALIASES)

# What a shell, a container, systemd, CUDA, Python and uv put in a service's environment.
UNRELATED_NAMES = (
    "PATH HOME HOSTNAME LANG LANGUAGE LC_ALL TERM SHELL USER LOGNAME PWD OLDPWD SHLVL TZ "
    "MAIL EDITOR PAGER DISPLAY HTTP_PROXY NO_PROXY PYTHONPATH PYTHONUNBUFFERED "
    "PYTHONDONTWRITEBYTECODE PYTHONHASHSEED UV_CACHE_DIR UV_PYTHON UV_LINK_MODE "
    "PIP_NO_CACHE_DIR VIRTUAL_ENV XDG_CACHE_HOME XDG_RUNTIME_DIR HF_HOME HF_HUB_OFFLINE "
    "CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES NVIDIA_DRIVER_CAPABILITIES CT2_VERBOSE "
    "OMP_NUM_THREADS LD_LIBRARY_PATH LISTEN_FDS LISTEN_PID LISTEN_FDNAMES INVOCATION_ID "
    "JOURNAL_STREAM NOTIFY_SOCKET KUBERNETES_SERVICE_PORT KUBERNETES_PORT WEB_CONCURRENCY "
    "MAX_JOBS MAKEFLAGS REDIS_URL DATABASE_URL SECRET_KEY DEBUG CI GITHUB_ACTIONS "
    "WHISPER_API_URL WHISPER_API_KEY NO_COLOR http_proxy https_proxy npm_config_cache "
    "container PORT_NUMBER SERVER_PORT CACHE_DIR MODEL_PATH THREADS UMASK PUID PGID"
)
UNRELATED = dict.fromkeys(UNRELATED_NAMES.split(), "x")


def test_unrelated_variables_are_never_flagged() -> None:
    """A service environment full of other software's variables yields no typo."""
    assert likely_typos(UNRELATED, KNOWN) == []


def test_known_names_are_never_flagged() -> None:
    """Every setting and alias, set correctly, is no typo."""
    assert likely_typos(dict.fromkeys(KNOWN, "1"), KNOWN) == []


def test_near_misses_are_flagged_with_the_name_they_resemble() -> None:
    """Swapped, missing or doubled letters in a setting's name are found, each with its match."""
    environ = {
        **UNRELATED,
        "MAX_MODLE": "small",
        "LISTN": "0.0.0.0",
        "LOG_AUTHORIZED_MAIL": "a@b.c",
        "DELETE_RESULT_AFTER_M": "5",
    }
    assert likely_typos(environ, KNOWN) == [
        ("DELETE_RESULT_AFTER_M", "DELETE_RESULTS_AFTER_M"),
        ("LISTN", "LISTEN"),
        ("LOG_AUTHORIZED_MAIL", "LOG_AUTHORIZED_MAILS"),
        ("MAX_MODLE", "MAX_MODEL"),
    ]
