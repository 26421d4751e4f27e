"""whisper-api: a self-hosted speech-to-text service."""

import os

__version__ = "0.1.0"

# onnxruntime (faster-whisper's Silero VAD runs on it) writes a telemetry database,
# a device id and session files under ~/.cache/Microsoft and $TMPDIR unless this is
# set before its library loads; every import of it goes through this package first.
# No telemetry, nothing on disk: the service forces it, whatever the environment says.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
