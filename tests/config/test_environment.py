"""Tests for settings from the environment (app.config)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import Settings, SettingsError, load_settings
from app.transcription.catalogue import MODEL_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_seed_defaults() -> None:
    """With an empty environment every seed variable has the seed's default."""
    settings = load_settings({})
    assert settings.port == 3001
    assert settings.listen == "127.0.0.1"
    assert settings.load_model_on_startup is True
    assert settings.develop_mode is False
    assert settings.unload_model_after_s is None
    assert settings.delete_results_after_m == 60
    assert settings.refresh_expiration_time_on_usage is True
    assert settings.run_result_expiry_check_m == 5
    assert settings.use_gpu_if_available is True
    assert settings.max_model is None
    assert settings.max_task_queue_size == 128
    assert settings.cpu_fallback_model == "medium"
    assert settings.log_dir == "data/"
    assert settings.log_file == "whisper_api.log"
    assert settings.log_privacy_mode is True
    assert settings.log_rotation_when == "H"
    assert settings.log_rotation_interval == 2
    assert settings.log_rotation_backup_count == 48
    assert settings.log_level == "INFO"
    assert settings.log_authorized_mails == ()


def test_encoder_context_is_adaptive_unless_set_to_full() -> None:
    """ENCODER_CONTEXT defaults to adaptive and accepts full in any case."""
    assert load_settings({}).encoder_context == "adaptive"
    assert load_settings({"ENCODER_CONTEXT": "FULL"}).encoder_context == "full"


def test_log_path_joins_dir_and_file_or_is_none() -> None:
    """log_path is LOG_DIR/LOG_FILE, and None when LOG_FILE is empty."""
    assert load_settings({}).log_path == Path("data") / "whisper_api.log"
    assert load_settings({"LOG_FILE": ""}).log_path is None


def test_ignores_unrelated_variables() -> None:
    """Variables the service does not know (PATH, HOME, ...) change nothing."""
    assert load_settings({"PATH": "/bin", "HOME": "/root", "FOO": "bar"}) == load_settings({})


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1", True), ("0", False), ("true", True), ("false", False), ("TRUE", True), ("False", False)],
)
@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("LOAD_MODEL_ON_STARTUP", "load_model_on_startup"),
        ("DEVELOP_MODE", "develop_mode"),
        ("USE_GPU_IF_AVAILABLE", "use_gpu_if_available"),
        ("REFRESH_EXPIRATION_TIME_ON_USAGE", "refresh_expiration_time_on_usage"),
        ("LOG_PRIVACY_MODE", "log_privacy_mode"),
    ],
)
def test_booleans_accept_1_0_true_false(
    variable: str, attribute: str, raw: str, value: bool
) -> None:
    """Boolean variables accept 1/0/true/false in any case."""
    assert getattr(load_settings({variable: raw}), attribute) is value


def test_numbers_are_parsed() -> None:
    """Integer and float variables are converted from their strings."""
    settings = load_settings(
        {
            "PORT": "8080",
            "MAX_TASK_QUEUE_SIZE": "3",
            "UNLOAD_MODEL_AFTER_S": "0",
            "LOG_ROTATION_INTERVAL": "7",
            "LOG_ROTATION_BACKUP_COUNT": "0",
        }
    )
    assert settings.port == 8080
    assert settings.max_task_queue_size == 3
    assert settings.unload_model_after_s == 0
    assert settings.log_rotation_interval == 7
    assert settings.log_rotation_backup_count == 0


def test_minute_settings_accept_fractions() -> None:
    """DELETE_RESULTS_AFTER_M and RUN_RESULT_EXPIRY_CHECK_M take fractions of a minute."""
    settings = load_settings(
        {"DELETE_RESULTS_AFTER_M": "0.05", "RUN_RESULT_EXPIRY_CHECK_M": "0.05"}
    )
    assert settings.delete_results_after_m == pytest.approx(0.05)
    assert settings.run_result_expiry_check_m == pytest.approx(0.05)


def test_expiry_check_zero_is_allowed() -> None:
    """RUN_RESULT_EXPIRY_CHECK_M=0 (check on access) is a valid value."""
    assert load_settings({"RUN_RESULT_EXPIRY_CHECK_M": "0"}).run_result_expiry_check_m == 0


def test_unload_after_empty_means_never() -> None:
    """An empty UNLOAD_MODEL_AFTER_S means never unload (None); a fraction is kept."""
    assert load_settings({"UNLOAD_MODEL_AFTER_S": ""}).unload_model_after_s is None
    assert load_settings({"UNLOAD_MODEL_AFTER_S": "1.5"}).unload_model_after_s == 1.5


def test_log_rotation_alias() -> None:
    """The seed code's LOG_ROTATION sets LOG_ROTATION_WHEN (upper-cased)."""
    assert load_settings({"LOG_ROTATION": "midnight"}).log_rotation_when == "MIDNIGHT"
    assert load_settings({"LOG_ROTATION": "d"}).log_rotation_when == "D"


def test_documented_name_wins_over_alias() -> None:
    """When both LOG_ROTATION_WHEN and LOG_ROTATION are set, the documented name wins."""
    settings = load_settings({"LOG_ROTATION": "D", "LOG_ROTATION_WHEN": "M"})
    assert settings.log_rotation_when == "M"


def test_authorized_mails_alias_is_split_and_lower_cased() -> None:
    """AUTHORIZED_MAILS is a comma-separated list, trimmed and lower-cased."""
    settings = load_settings({"AUTHORIZED_MAILS": " Alice@Example.org, bob@EXAMPLE.org ,,"})
    assert settings.log_authorized_mails == ("alice@example.org", "bob@example.org")


def test_log_authorized_mails_documented_name() -> None:
    """LOG_AUTHORIZED_MAILS itself is read the same way."""
    settings = load_settings({"LOG_AUTHORIZED_MAILS": "A@B.C"})
    assert settings.log_authorized_mails == ("a@b.c",)


@pytest.mark.parametrize(
    "raw",
    [
        "nik@example.com chris@example.com",
        "nik@example.com,chris@example.com",
        " nik@example.com ,\tChris@Example.com\n",
    ],
)
def test_authorized_mails_are_separated_by_commas_or_whitespace(raw: str) -> None:
    """The seed README's space-separated LOG_AUTHORIZED_MAILS authorizes each address."""
    settings = load_settings({"LOG_AUTHORIZED_MAILS": raw})
    assert settings.log_authorized_mails == ("nik@example.com", "chris@example.com")


def test_trusted_proxies_and_origins_may_be_separated_by_whitespace() -> None:
    """Lists whose items never contain blanks accept whitespace as well as commas."""
    settings = load_settings(
        {
            "TRUSTED_PROXIES": "10.0.0.1 10.0.0.2",
            "CORS_ALLOW_ORIGINS": "https://a.example https://b.example",
        }
    )
    assert settings.trusted_proxies == ("10.0.0.1/32", "10.0.0.2/32")
    assert settings.cors_allow_origins == ("https://a.example", "https://b.example")


def test_handler_levels_default_to_log_level() -> None:
    """LOG_LEVEL_CONSOLE and LOG_LEVEL_FILE are unset (LOG_LEVEL applies) unless given."""
    assert load_settings({}).log_level_console is None
    assert load_settings({"LOG_LEVEL_CONSOLE": ""}).log_level_file is None
    settings = load_settings({"LOG_LEVEL_CONSOLE": "warning", "LOG_LEVEL_FILE": "Debug"})
    assert settings.log_level_console == "WARNING"
    assert settings.log_level_file == "DEBUG"


@pytest.mark.parametrize(
    ("log_format", "style"),
    [
        ("[%(asctime)s] [%(levelname)s] %(message)s", "%"),
        (
            "[{asctime}] [{levelname}][{processName}][{threadName}][{module}.{funcName}] {message}",
            "{",
        ),
        ("{message} at 100%", "{"),
    ],
)
def test_log_format_style_is_detected(log_format: str, style: str) -> None:
    """A LOG_FORMAT with %(name)s fields is %-style; the seed README's {name} fields are {-style."""
    settings = load_settings({"LOG_FORMAT": log_format})
    assert settings.log_format == log_format
    assert settings.log_format_style == style


@pytest.mark.parametrize(
    "log_format", ["[%(asctime)s] no message", "{asctime} {bogus_field!z}", "plain text"]
)
def test_bad_log_format_stops_start_up(log_format: str) -> None:
    """A LOG_FORMAT without the message field, or that logging rejects, is one clear error."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"LOG_FORMAT": log_format})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"LOG_FORMAT={log_format!r} is not allowed")
    assert "{message}" in message


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("MAX_MODLE", "MAX_MODEL"),
        ("LOG_LEVL", "LOG_LEVEL"),
        ("LOGLEVEL", "LOG_LEVEL"),
        ("TRUSTED_PROXY", "TRUSTED_PROXIES"),
        ("AUTHORISED_MAILS", "AUTHORIZED_MAILS"),
    ],
)
def test_misspelt_setting_stops_start_up(variable: str, meant: str) -> None:
    """A variable that is a near miss of a setting's name fails with one line naming both."""
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: "value", "PATH": "/bin"})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}='value' is not a setting")
    assert f"did you mean {meant}?" in message


def test_misspelt_secret_setting_hides_its_value() -> None:
    """API_KEY (for API_KEYS) is named, but its value, a key, is never echoed."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"API_KEY": "sk-very-secret-key-1234"})
    assert "API_KEY=<hidden>" in str(caught.value)
    assert "sk-very-secret" not in str(caught.value)


def test_log_level_is_upper_cased() -> None:
    """LOG_LEVEL accepts lower case and is stored upper case."""
    assert load_settings({"LOG_LEVEL": "debug"}).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("turbo", "large-v3-turbo"), ("Large-V2", "large-v2"), ("tiny.en", "tiny.en")],
)
def test_model_names_are_canonical(raw: str, canonical: str) -> None:
    """MAX_MODEL and CPU_FALLBACK_MODEL resolve aliases such as turbo to catalogue names."""
    settings = load_settings({"MAX_MODEL": raw, "CPU_FALLBACK_MODEL": raw})
    assert settings.max_model == canonical
    assert settings.cpu_fallback_model == canonical


def test_empty_max_model_means_no_cap() -> None:
    """An empty MAX_MODEL is the same as not setting it."""
    assert load_settings({"MAX_MODEL": ""}).max_model is None


def test_keyword_overrides_win_over_environment() -> None:
    """Keyword overrides replace what the environment says."""
    settings = load_settings({"PORT": "8080"}, port=9090, log_file="")
    assert settings.port == 9090
    assert settings.log_file == ""


@pytest.mark.parametrize(
    ("variable", "raw", "allowed"),
    [
        ("PORT", "abc", "1 to 65535"),
        ("PORT", "70000", "1 to 65535"),
        ("PORT", "0", "1 to 65535"),
        ("MAX_MODEL", "huge", "large-v3-turbo"),
        ("CPU_FALLBACK_MODEL", "huge", "tiny.en"),
        ("USE_GPU_IF_AVAILABLE", "maybe", "true or false"),
        ("DEVELOP_MODE", "2", "true or false"),
        ("DELETE_RESULTS_AFTER_M", "0", "greater than 0"),
        ("DELETE_RESULTS_AFTER_M", "-1", "greater than 0"),
        ("RUN_RESULT_EXPIRY_CHECK_M", "-0.5", "at least 0"),
        ("UNLOAD_MODEL_AFTER_S", "soon", "at least 0"),
        ("MAX_TASK_QUEUE_SIZE", "0", "at least 1"),
        ("MAX_TASK_QUEUE_SIZE", "1.5", "at least 1"),
        ("LOG_LEVEL", "loud", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_ROTATION_WHEN", "yearly", "midnight"),
        ("LOG_ROTATION", "yearly", "midnight"),
        ("LOG_ROTATION_INTERVAL", "0", "at least 1"),
        ("LOG_ROTATION_BACKUP_COUNT", "-1", "at least 0"),
        ("ENCODER_CONTEXT", "short", "one of adaptive, full"),
    ],
)
def test_bad_value_raises_one_line_naming_variable_value_and_allowed(
    variable: str, raw: str, allowed: str
) -> None:
    """A bad value raises SettingsError: one line naming the variable, value and allowed values."""
    with pytest.raises(SettingsError) as info:
        load_settings({variable: raw})
    message = str(info.value)
    assert "\n" not in message
    shown = "LOG_ROTATION_WHEN" if variable == "LOG_ROTATION" else variable
    assert shown in message
    assert raw in message
    assert allowed in message


def test_bad_model_message_lists_every_model() -> None:
    """The MAX_MODEL error lists all catalogue names so the admin can pick one."""
    with pytest.raises(SettingsError) as info:
        load_settings({"MAX_MODEL": "huge"})
    for name in MODEL_NAMES:
        assert name in str(info.value)


def test_settings_are_immutable() -> None:
    """Settings is frozen: code cannot change a setting after start-up."""
    settings = load_settings({})
    assert isinstance(settings, Settings)
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [("MAX_MODEL", "huge", "huge"), ("MAX_MODLE", "small", "did you mean MAX_MODEL")],
)
def test_cli_exits_with_one_line_on_bad_setting(variable: str, raw: str, expected: str) -> None:
    """`whisper-api` with a bad value or a misspelt name exits at once: one stderr line."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "VIRTUAL_ENV"}}
    env[variable] = raw
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_access_control_defaults_are_closed_and_quiet() -> None:
    """No keys, no trusted proxies, no CORS, no rate limit; localhost may read logs."""
    settings = load_settings({})
    assert settings.api_keys == ()
    assert settings.trusted_proxies == ()
    assert settings.cors_allow_origins == ()
    assert settings.rate_limit is None
    assert settings.log_allow_localhost is True
    assert settings.max_audio_duration_s == 14400
    assert (settings.job_timeout_min_s, settings.job_timeout_factor) == (120, 10)


def test_access_control_values_are_normalised() -> None:
    """Proxies become networks, origins lose a trailing slash, the rate limit is checked."""
    settings = load_settings(
        {
            "TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8 ,::1",
            "CORS_ALLOW_ORIGINS": "https://app.example/,http://localhost:8080",
            "RATE_LIMIT": "60/minutes",
            "API_KEYS": "k" * 16,
        }
    )
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    assert settings.cors_allow_origins == ("https://app.example", "http://localhost:8080")
    assert settings.rate_limit == "60/minutes"
    assert settings.api_keys == ("k" * 16,)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("TRUSTED_PROXIES", "proxy.example.org"),
        ("CORS_ALLOW_ORIGINS", "https://app.example/path"),
        ("RATE_LIMIT", "often"),
        ("RATE_LIMIT", "0/minute"),
        ("MAX_AUDIO_DURATION_S", "0"),
        ("JOB_TIMEOUT_FACTOR", "-1"),
        ("API_KEYS_FILE", "/nonexistent/keys"),
    ],
)
def test_bad_access_control_values_name_the_variable(variable: str, raw: str) -> None:
    """Each bad value stops start-up with one line naming the variable and the value."""
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: raw})
    message = str(caught.value)
    assert "\n" not in message
    assert variable in message and raw in message


def test_bad_api_key_is_named_but_never_shown() -> None:
    """A too-short key is refused without echoing it: error messages end up in logs."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"API_KEYS": "short-secret"})
    assert "API_KEYS" in str(caught.value)
    assert "short-secret" not in str(caught.value)


def test_redis_sentinels_are_host_port_pairs_and_the_master_has_a_default() -> None:
    """REDIS_SENTINELS splits on commas or blanks into host:port items; a bare host is refused."""
    settings = load_settings({"REDIS_SENTINELS": "10.0.0.5:26379, sentinel-b:26380"})
    assert settings.redis_sentinels == ("10.0.0.5:26379", "sentinel-b:26380")
    assert settings.redis_sentinel_master == "mymaster"
    assert load_settings({}).redis_sentinels == ()
    with pytest.raises(SettingsError) as caught:
        load_settings({"REDIS_SENTINELS": "10.0.0.5"})
    assert "REDIS_SENTINELS" in str(caught.value) and "host:port" in str(caught.value)
