"""Loading official GPT-stage checkpoints strictly, without unpickling anything.

The v2 release loader used `strict=True`, so its `gpt.pth` holds exactly the 665 keys our model
registers; 2.5's loader is `strict=False`, but its layout (456 keys) is pinned by the official-size
manifest our `official-v2.5` preset reproduces, so it loads strictly too. We accept a bare state
dict or `{"model": ...}`, drop the alias keys that post-init models and community trainers save
(`inference_model.*`, `gpt.wte.weight`), and then load strictly. A file that does not fit fails
with one line naming the first offending key, never with a 600-line diff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import UserError
from .unified_voice import CONDITIONING_MODULES, UnifiedVoice

__all__ = [
    "ALIAS_PREFIXES",
    "CheckpointError",
    "checkpoint_version",
    "load_gpt_checkpoint",
    "load_state_dict_file",
    "state_dict_fingerprint",
    "strict_load",
    "strict_load_module",
]

ALIAS_PREFIXES = ("inference_model.", "gpt.wte.")
"""Keys that share storage with real keys in post-init models; never part of the official layout."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded into the model as it is (one line: file, key, reason)."""


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from a `.safetensors` file or a torch file with `weights_only=True`.

    A `{"model": state_dict}` wrapper is unwrapped. Nothing is unpickled beyond plain tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        if path.suffix == ".safetensors":
            data: object = load_file(str(path))
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # the libraries raise many types for a corrupt file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from exc
    if isinstance(data, Mapping) and "model" in data and isinstance(data["model"], Mapping):
        data = data["model"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (optionally under 'model')")
    return dict(data)


def strict_load(model: UnifiedVoice, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load `state` into `model` with every key and shape checked; raise `CheckpointError` on misfit.

    Alias keys are dropped. When the model was built without conditioning encoders, their keys are
    dropped too (they are legitimately in the file but not needed by this model).
    """
    _check_version(model, state, source)
    skip = ALIAS_PREFIXES
    if not model.has_conditioning_encoders:
        skip = skip + tuple(f"{name}." for name in CONDITIONING_MODULES)
    strict_load_module(model, {k: v for k, v in state.items() if not k.startswith(skip)}, source)


_VERSION_KEYS = {"v2.5": ("spk_emb_proj.", "lang_embedding."), "v2": ("conditioning_encoder.", "speed_emb.")}
"""Keys only one version's GPT has (SPEC_2_5 §6.1): what names a checkpoint's version."""


def checkpoint_version(state: Mapping[str, torch.Tensor]) -> str | None:
    """'v2' or 'v2.5' from the keys only that version has; None when neither set is there."""
    for version, prefixes in _VERSION_KEYS.items():
        if any(k.startswith(prefixes) for k in state):
            return version
    return None


def _check_version(model: UnifiedVoice, state: Mapping[str, torch.Tensor], source: str) -> None:
    """The other version's base weights are refused in one line naming both versions (not as the
    first of 200 missing keys)."""
    found, want = checkpoint_version(state), model.cfg.version
    if found is not None and found != want:
        presets = "a -v2.5 preset" if found == "v2.5" else "a v2 preset (tiny, mini, official-v2)"
        raise CheckpointError(
            f"{source}: is an IndexTTS-{found[1:]} GPT checkpoint, but this model is IndexTTS-{want[1:]} "
            f"(load it with {presets}, or give {want} weights)"
        )


def strict_load_module(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str = "model"
) -> None:
    """`load_state_dict(strict=True)` after checking every key and shape ourselves, so that a misfit is
    ONE line naming the first missing/unexpected key or wrong shape (not a 600-line diff)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(f"{source}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all)")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: key {key!r} has shape {list(tensor.shape)}, the {what} expects "
                f"{list(expected[key].shape)} (wrong config for this checkpoint?)"
            )
    # Each tensor takes its own slot's dtype (fp16 files into fp32 models; integer buffers stay integer).
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def load_gpt_checkpoint(model: UnifiedVoice, path: str | Path) -> UnifiedVoice:
    """Read `path` (gpt.pth or safetensors) and load it strictly into `model`."""
    strict_load(model, load_state_dict_file(path), source=str(path))
    return model


def state_dict_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A stable sha256 over key names, shapes and values: identifies the base weights an adapter or
    a conditioning was made with, independent of file format or key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if key.startswith(ALIAS_PREFIXES):
            continue
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(key.encode())
        digest.update(str(list(tensor.shape)).encode())
        digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()
