"""IndexTTS2's GPT stage, our implementation, loading the official checkpoints strictly."""

from ..utils.hashing import file_sha256  # re-exported: `model.file_sha256` is what callers know
from .checkpoint import CheckpointError, load_gpt_checkpoint, load_state_dict_file, strict_load
from .config import PRESETS, RANDOM_PRESETS, ConditionModuleConfig, GPTConfig, preset
from .factory import MINI_LABEL, TINY_LABEL, base_fingerprint, build_model, preset_label
from .unified_voice import CONDITIONING_MODULES, TeacherForced, UnifiedVoice

__all__ = [
    "CONDITIONING_MODULES",
    "MINI_LABEL",
    "PRESETS",
    "RANDOM_PRESETS",
    "TINY_LABEL",
    "CheckpointError",
    "ConditionModuleConfig",
    "GPTConfig",
    "TeacherForced",
    "UnifiedVoice",
    "base_fingerprint",
    "build_model",
    "file_sha256",
    "load_gpt_checkpoint",
    "load_state_dict_file",
    "preset",
    "preset_label",
    "strict_load",
]
