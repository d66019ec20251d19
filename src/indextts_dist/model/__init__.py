"""IndexTTS2's GPT stage (v2 and 2.5), our implementation, loading the official checkpoints strictly."""

from ..utils.hashing import file_sha256  # re-exported: `model.file_sha256` is what callers know
from .checkpoint import CheckpointError, load_gpt_checkpoint, load_state_dict_file, strict_load
from .config import (
    LANGUAGE_ROWS,
    PRESETS,
    RANDOM_PRESETS,
    STYLE_DIM,
    ConditionModuleConfig,
    GPTConfig,
    is_random_preset,
    preset,
)
from .factory import (
    MINI_LABEL,
    SEEDED_PRESETS,
    TINY_LABEL,
    base_fingerprint,
    base_weights_file,
    build_model,
    preset_label,
)
from .unified_voice import CONDITIONING_MODULES, MelPositions, TeacherForced, UnifiedVoice

__all__ = [
    "CONDITIONING_MODULES",
    "LANGUAGE_ROWS",
    "MINI_LABEL",
    "PRESETS",
    "RANDOM_PRESETS",
    "SEEDED_PRESETS",
    "STYLE_DIM",
    "TINY_LABEL",
    "CheckpointError",
    "ConditionModuleConfig",
    "GPTConfig",
    "MelPositions",
    "TeacherForced",
    "UnifiedVoice",
    "base_fingerprint",
    "base_weights_file",
    "build_model",
    "file_sha256",
    "is_random_preset",
    "load_gpt_checkpoint",
    "load_state_dict_file",
    "preset",
    "preset_label",
    "strict_load",
]
