"""Environment variables that look like a setting but are none: typos such as MAX_MODLE.

A misspelt variable would otherwise be ignored without a word and the service
would start with the default, e.g. any model instead of the capped one. Only a
close match to a known name counts (difflib's similarity ratio), and names
other software sets (PATH, HOME, PYTHON*, UV_*, systemd's LISTEN_FDS, ...) are
never considered.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

__all__ = ["SIMILARITY", "likely_typos"]

# "MAX_MODLE" ~ "MAX_MODEL" is 0.89, "LOG_LEVL" ~ "LOG_LEVEL" 0.94; unrelated
# variables in service environments stay below 0.8 (tests/config/test_typos.py).
SIMILARITY = 0.85
# Settings are upper snake case; anything else (http_proxy, npm_config_*) is not ours.
_OUR_SHAPE = re.compile(r"[A-Z][A-Z0-9_]*")
_FOREIGN_PREFIXES = (
    "PYTHON",
    "UV_",
    "PIP_",
    "VIRTUAL_ENV",
    "CONDA",
    "LC_",
    "LD_",
    "XDG_",
    "HF_",
    "HUGGINGFACE",
    "TRANSFORMERS_",
    "CUDA",
    "NVIDIA_",
    "CT2_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "LISTEN_FD",
    "LISTEN_PID",
    "SYSTEMD_",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "NOTIFY_SOCKET",
    "KUBERNETES_",
    "NIX_",
    "SSH_",
    "GIT_",
)
_FOREIGN_NAMES = frozenset(
    {"PATH", "HOME", "HOSTNAME", "LANG", "LANGUAGE", "TERM", "SHELL", "USER", "LOGNAME", "PWD"}
)


def _is_foreign(name: str) -> bool:
    return name in _FOREIGN_NAMES or name.startswith(_FOREIGN_PREFIXES)


def likely_typos(environ: Mapping[str, str], known: Iterable[str]) -> list[tuple[str, str]]:
    """(variable, the known name it resembles) for each set variable that looks like a typo."""
    known_names = sorted(set(known))
    known_set = set(known_names)
    found: list[tuple[str, str]] = []
    for name in sorted(environ):
        if name in known_set or not _OUR_SHAPE.fullmatch(name) or _is_foreign(name):
            continue
        matches = difflib.get_close_matches(name, known_names, n=1, cutoff=SIMILARITY)
        if matches:
            found.append((name, matches[0]))
    return found
