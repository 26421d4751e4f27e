"""Deployment files: Containerfiles, compose, the Nix flake and module, the README's commands."""

from __future__ import annotations

import msgspec

from app.config import ENV_ALIASES, Settings
from tests.conftest import REPO_ROOT

__all__ = ["REPO_ROOT", "SEED_VARIABLES", "setting_variables"]

# The seed's environment variables (its README), which every deployment path must offer.
SEED_VARIABLES = (
    "PORT",
    "LISTEN",
    "LOAD_MODEL_ON_STARTUP",
    "DEVELOP_MODE",
    "UNLOAD_MODEL_AFTER_S",
    "DELETE_RESULTS_AFTER_M",
    "REFRESH_EXPIRATION_TIME_ON_USAGE",
    "RUN_RESULT_EXPIRY_CHECK_M",
    "USE_GPU_IF_AVAILABLE",
    "MAX_MODEL",
    "MAX_TASK_QUEUE_SIZE",
    "CPU_FALLBACK_MODEL",
    "LOG_DIR",
    "LOG_FILE",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LOG_DATE_FORMAT",
    "LOG_ROTATION_WHEN",
    "LOG_ROTATION_INTERVAL",
    "LOG_ROTATION_BACKUP_COUNT",
    "LOG_PRIVACY_MODE",
    "LOG_AUTHORIZED_MAILS",
)


def setting_variables() -> set[str]:
    """Every environment variable app/config/ reads, aliases included."""
    names = {field.name.upper() for field in msgspec.structs.fields(Settings)}
    return names | set(ENV_ALIASES)
