"""Settings: the struct (`settings`), reading it from the environment (`environment`),
the words for what each accepts (`allowed`) and the typo guard (`typos`).
"""

from app.config.allowed import RATE_LIMIT_UNITS
from app.config.environment import ENV_ALIASES, load_settings, parse_rate_limit
from app.config.settings import Settings, SettingsError, log_format_style

__all__ = [
    "ENV_ALIASES",
    "RATE_LIMIT_UNITS",
    "Settings",
    "SettingsError",
    "load_settings",
    "log_format_style",
    "parse_rate_limit",
]
