"""What each setting accepts, in words, for the one-line error at start-up."""

from __future__ import annotations

import msgspec

from app.transcription.catalogue import MODEL_NAMES

__all__ = ["MIN_API_KEY_CHARS", "MODEL_FIELDS", "RATE_LIMIT_UNITS", "allowed"]

MIN_API_KEY_CHARS = 16
RATE_LIMIT_UNITS = ("second", "minute", "hour", "day")
MODEL_FIELDS = frozenset({"max_model", "cpu_fallback_model", "live_model", "live_final_model"})


def allowed(field: msgspec.structs.FieldInfo) -> str:
    """Say in words what a field accepts, for the one-line error."""
    name = field.name
    if name in MODEL_FIELDS:
        return "one of " + ", ".join(MODEL_NAMES) + " (or turbo)"
    text = {
        "port": "an integer from 1 to 65535",
        "max_task_queue_size": "an integer of at least 1",
        "log_rotation_interval": "an integer of at least 1",
        "max_upload_mb": "an integer of at least 1",
        "max_queued_mb": "an integer of at least 1 (megabytes of uploads held by waiting jobs)",
        "log_rotation_backup_count": "an integer of at least 0",
        "unload_model_after_s": "a number of seconds of at least 0, or empty for never",
        "delete_results_after_m": "a number of minutes greater than 0 (fractions allowed)",
        "run_result_expiry_check_m": "a number of minutes of at least 0 (0 = check on access)",
        "shutdown_grace_s": "a number of seconds of at least 0",
        "max_uploads_in_flight": "an integer of at least 1 (uploads whose bodies arrive at once)",
        "upload_timeout_s": "a number of seconds greater than 0 (time to send one upload)",
        "upload_idle_timeout_s": "a number of seconds greater than 0 (longest pause while a "
        "body arrives)",
        "upload_min_rate_bps": "an integer of at least 0 (bytes per second a body must average "
        "after UPLOAD_RATE_GRACE_S; 0 = no minimum)",
        "upload_rate_grace_s": "a number of seconds of at least 0",
        "max_uploads_in_flight_per_client": "an integer of at least 1, or empty for a quarter of "
        "MAX_UPLOADS_IN_FLIGHT",
        "max_queued_per_client": "an integer of at least 1, or empty for half of "
        "MAX_TASK_QUEUE_SIZE",
        "queue_policy": "one of fair, fifo",
        "log_level": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "log_level_console": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL, or empty for LOG_LEVEL",
        "log_level_file": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL, or empty for LOG_LEVEL",
        "log_format": "a logging format with %(name)s fields, e.g. "
        "'[%(asctime)s] [%(levelname)s] %(message)s', or with {name} fields, e.g. "
        "'[{asctime}] [{levelname}] {message}'",
        "log_rotation_when": "one of S, M, H, D, midnight, W0-W6",
        "cpu_threads": "an integer of at least 0 (0 = every core)",
        "cpu_replicas": "an integer of at least 0 (0 = auto: one per core up to 3 cores, "
        "one per two cores beyond; never more than BATCH_SIZE)",
        "batch_size": "an integer of at least 1 (1 = no batching)",
        "batched_inference": "one of auto, on, off",
        "encoder_context": "one of adaptive, full",
        "trusted_proxies": "comma-separated IP addresses or networks (CIDR), e.g. "
        "127.0.0.1,10.0.0.0/8",
        "api_keys": f"comma-separated keys of at least {MIN_API_KEY_CHARS} characters "
        "without spaces",
        "api_keys_file": "a readable file with one API key per line "
        f"(at least {MIN_API_KEY_CHARS} characters each; # starts a comment)",
        "cors_allow_origins": "comma-separated origins such as https://app.example.org "
        "(scheme://host[:port], no path), or *",
        "rate_limit": "requests per unit such as 60/minute (units: "
        + ", ".join(RATE_LIMIT_UNITS)
        + "), or empty for none",
        "max_audio_duration_s": "a number of seconds greater than 0",
        "job_timeout_min_s": "a number of seconds greater than 0",
        "job_timeout_factor": "a number of at least 0 (seconds per second of audio)",
        "max_live_sessions": "an integer of at least 0 (0 = no live transcription)",
        "live_cpu_threads": "an integer of at least 0 (0 = half the cores)",
        "live_max_session_s": "a number of seconds greater than 0",
        "live_idle_timeout_s": "a number of seconds greater than 0",
        "live_unload_after_s": "a number of seconds of at least 0",
        "job_max_wait_s": "a number of seconds greater than 0",
        "api_node_live": "one of refuse, local",
        "redis_sentinels": "comma-separated host:port addresses of Redis Sentinels, e.g. "
        "10.0.0.5:26379,10.0.0.6:26379",
    }.get(name)
    if text is not None:
        return text
    if field.type is bool:
        return "1, 0, true or false"
    return "a string"
