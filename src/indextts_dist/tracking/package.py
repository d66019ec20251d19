"""The registered model's contents as one self-describing folder, and loading it back.

```
adapter/adapter_config.json, adapter/adapter_model.safetensors   PEFT LoRA adapter
global_conditioning.safetensors                                  the ONE conditioning it was trained with
tokenizer/bpe.model                                              SentencePiece model
gpt_config.json                                                  the GPT stage's config (official keys)
reference/*                                                      the speaker's reference clip(s)
manifest.json                                                    what, from which base, why this checkpoint
```

The adapter only makes sense on the base it was trained on, with the conditioning it was trained
against; the manifest records the base fingerprint and the sha256 of every file, so a mismatch is
one clear line at load time instead of quietly wrong speech. The folder is built in a temporary
sibling and renamed into place: a crash leaves the previous package or none, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ..conditioning import GlobalConditioning, load_conditioning
from ..dataset.layout import CONDITIONING_FILE, INFO_FILE
from ..generate.text_to_codes import CodeGenerator
from ..inference.placement import Placement, resolve_placement
from ..lora import load_merged
from ..model import TINY_LABEL, GPTConfig, UnifiedVoice, build_model, file_sha256
from ..model import base_fingerprint as fingerprint_of_base
from ..text import TextTokenizer
from ..utils.atomic import atomic_write_text

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "PYFUNC_MODEL_CONFIG",
    "WEIGHTS_DIR_ENV",
    "PackageError",
    "PatternModel",
    "load_package",
    "package_model",
    "read_manifest",
    "verify_package",
]

FORMAT = "indextts-dist/pattern-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS_DIR_ENV = "INDEXTTS_WEIGHTS_DIR"
"""Folder holding the official `gpt.pth` when `load_package` is not given `weights_dir`."""

PYFUNC_MODEL_CONFIG: dict[str, str] = {"device": "", "dtype": "float32"}
"""The `model_config` the pyfunc must be logged with. MLflow lets `load_model(uri, model_config=...)`
override only the keys a logged model declares (it drops the others with a warning), so these two
keys are what makes `--device/--dtype` reachable from MLflow. "" = the default device."""

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILE = "tokenizer/bpe.model"
CONFIG_FILE = "gpt_config.json"
SPEAKER_EMBEDDINGS_FILE = "speaker_embeddings.safetensors"
"""Second-stage speaker features (CAMPPlus style, ref_mel, prompt_condition); optional."""


class PackageError(ValueError):
    """A package (or its inputs) that is incomplete, inconsistent or meant for another base model."""


@dataclass
class PatternModel:
    """A loaded package: base + merged adapter, tokenizer, conditioning, and a ready generator."""

    model: UnifiedVoice
    tokenizer: TextTokenizer
    conditioning: GlobalConditioning
    manifest: dict[str, Any]
    generator: CodeGenerator
    path: Path
    placement: Placement
    """Where `model` (and the generator's prefix) live; the second stage goes to the same place."""

    @property
    def label(self) -> str | None:
        """TINY_LABEL for the tiny preset (its output is not speech), else None."""
        return self.manifest.get("label")


# -- building -----------------------------------------------------------------------------------------


def package_model(
    out_dir: str | Path,
    *,
    adapter_dir: str | Path,
    conditioning_path: str | Path,
    tokenizer_path: str | Path,
    gpt_config: GPTConfig,
    preset: str,
    seed: int,
    base_fingerprint: str,
    params: dict[str, Any],
    selection: dict[str, Any],
    reference_clips: list[Path],
    dataset_info: dict[str, Any] | None,
    speaker_embeddings: str | Path | None = None,
    dataset_info_path: str | Path | None = None,
) -> Path:
    """Validate the inputs, then write the package folder atomically; returns `out_dir`.

    `dataset_info_path` only names the dataset in errors (default: `dataset_info.json` beside the
    conditioning, where preprocess writes both)."""
    out_dir = Path(out_dir)
    adapter_dir = Path(adapter_dir)
    for name in ADAPTER_FILES:
        if not (adapter_dir / name).is_file():
            raise PackageError(f"{adapter_dir}: not a PEFT adapter folder ({name} missing)")
    lora = _lora_settings(adapter_dir / "adapter_config.json")
    conditioning = load_conditioning(conditioning_path, gpt_config)  # one-line error if it does not fit
    cond_base = conditioning.metadata.get("base_model_fingerprint")
    if cond_base != base_fingerprint:
        raise PackageError(
            f"{conditioning_path}: conditioning was computed on base {cond_base or '(unrecorded)'}, "
            f"the adapter's base is {base_fingerprint}"
        )
    tokenizer = TextTokenizer(tokenizer_path)
    info_path = Path(dataset_info_path or Path(conditioning_path).with_name(INFO_FILE))
    _check_tokenizer(tokenizer, Path(tokenizer_path), dataset_info, info_path)
    if tokenizer.vocab_size > gpt_config.number_text_tokens:
        raise PackageError(
            f"{tokenizer_path}: tokenizer has {tokenizer.vocab_size} pieces, "
            f"the model only {gpt_config.number_text_tokens}"
        )
    clips = [Path(c) for c in reference_clips]
    for clip in clips:
        if not clip.is_file():
            raise PackageError(f"{clip}: reference clip not found")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        (tmp / "adapter").mkdir()
        for name in ADAPTER_FILES:
            shutil.copyfile(adapter_dir / name, tmp / "adapter" / name)
        shutil.copyfile(conditioning_path, tmp / CONDITIONING_FILE)
        (tmp / "tokenizer").mkdir()
        shutil.copyfile(tokenizer_path, tmp / TOKENIZER_FILE)
        atomic_write_text(tmp / CONFIG_FILE, json.dumps(gpt_config.to_dict(), indent=1) + "\n")
        (tmp / "reference").mkdir()
        clip_names = _copy_clips(clips, tmp / "reference")
        if speaker_embeddings is not None:
            shutil.copyfile(speaker_embeddings, tmp / SPEAKER_EMBEDDINGS_FILE)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "indextts_dist_version": installed_version(),
            "preset": preset,
            "seed": int(seed),
            "base_fingerprint": base_fingerprint,
            "label": TINY_LABEL if preset == "tiny" else None,
            "conditioning": {"sha256": file_sha256(conditioning_path), "metadata": conditioning.metadata},
            "tokenizer": {"sha256": tokenizer.sha256, "vocab_size": tokenizer.vocab_size},
            "lora": lora,
            "params": params,
            "selection": selection,
            "dataset": _dataset_summary(dataset_info),
            "reference_clips": [f"reference/{n}" for n in clip_names],
            "speaker_embeddings": SPEAKER_EMBEDDINGS_FILE if speaker_embeddings is not None else None,
            "files": {rel: file_sha256(tmp / rel) for rel in _payload_files(tmp)},
        }
        atomic_write_text(
            tmp / MANIFEST, json.dumps(manifest, indent=1, default=str, ensure_ascii=False) + "\n"
        )
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the package is a shared artifact
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _check_tokenizer(
    tokenizer: TextTokenizer, path: Path, dataset_info: dict[str, Any] | None, info_path: Path
) -> None:
    """The packaged bpe.model must be the one the dataset's text ids were made with: another one
    maps the same ids to other pieces, so the adapter would be conditioned on text it never saw.
    A dataset_info without a tokenizer fingerprint (older datasets) has nothing to compare with."""
    fingerprints = (dataset_info or {}).get("fingerprints") or {}
    want = fingerprints.get("tokenizer") if isinstance(fingerprints, dict) else None
    if want and want != tokenizer.sha256:
        raise PackageError(
            f"{path}: tokenizer (sha256 {tokenizer.sha256[:12]}…) is not the one the dataset was "
            f"preprocessed with ({info_path}: fingerprints.tokenizer {str(want)[:12]}…); package "
            "the dataset's own bpe.model"
        )


def _lora_settings(config_path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise PackageError(f"{config_path}: unreadable adapter config ({exc})") from None
    targets = cfg.get("target_modules")
    return {
        "rank": cfg.get("r"),
        "alpha": cfg.get("lora_alpha"),
        "dropout": cfg.get("lora_dropout"),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "fan_in_fan_out": cfg.get("fan_in_fan_out"),
        "peft_version": cfg.get("peft_version"),
    }


def _copy_clips(clips: list[Path], dst: Path) -> list[str]:
    """Original names; a name used twice (clip_001.wav from two folders) gets its index in front."""
    names: list[str] = []
    for i, clip in enumerate(clips):
        name = clip.name if clip.name not in names else f"{i:03d}-{clip.name}"
        shutil.copyfile(clip, dst / name)
        names.append(name)
    return names


def _dataset_summary(info: dict[str, Any] | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"version": info.get("version"), **{k: v for k, v in info.items() if k != "version"}}


def _payload_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename `src` over `dst`; an existing `dst` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def installed_version() -> str:
    """The installed indextts-dist version: what a logged model's environment must install."""
    try:
        return importlib_metadata.version("indextts-dist")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


# -- reading ------------------------------------------------------------------------------------------


def read_manifest(package_dir: str | Path) -> dict[str, Any]:
    """The manifest, checked for format and version (one-line errors)."""
    path = Path(package_dir) / MANIFEST
    if not path.is_file():
        raise PackageError(f"{package_dir}: not a model package ({MANIFEST} missing)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise PackageError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageError(f"{path}: not an {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PackageError(
            f"{path}: package format version {version} is newer than this indextts-dist reads "
            f"({FORMAT_VERSION}); upgrade indextts-dist"
        )
    return manifest


def verify_package(package_dir: str | Path) -> dict[str, Any]:
    """Manifest plus every file present with the recorded sha256. Returns the manifest."""
    root = Path(package_dir)
    manifest = read_manifest(root)
    for rel, digest in manifest.get("files", {}).items():
        path = root / rel
        if not path.is_file():
            raise PackageError(f"{root}: {rel} is missing")
        if file_sha256(path) != digest:
            raise PackageError(f"{root}: {rel} does not match its sha256 in the manifest (corrupt or edited)")
    return manifest


def load_package(
    package_dir: str | Path,
    weights_dir: str | Path | None = None,
    placement: Placement | None = None,
) -> PatternModel:
    """Base from the manifest's preset (tiny: from its seed; official-v2: `weights_dir/gpt.pth`, or
    `$INDEXTTS_WEIGHTS_DIR`), checked against the recorded fingerprint, with the adapter merged.

    The adapter is merged in float32 on the host (one rounding of base + update, not two), then the
    merged model is moved to `placement` (default: `resolve_placement()`, i.e. CUDA when present,
    float32)."""
    placement = placement or resolve_placement()
    root = Path(package_dir)
    manifest = verify_package(root)
    preset = manifest["preset"]
    seed = int(manifest.get("seed", 0))
    config = GPTConfig.from_dict(json.loads((root / CONFIG_FILE).read_text()))
    weights = _weights_file(preset, weights_dir)
    have = fingerprint_of_base(preset, weights, seed=seed)
    want = manifest["base_fingerprint"]
    if have != want:
        raise PackageError(f"adapter was trained on base {want}, this base is {have}")
    base = build_model(preset, weights, config=config, seed=seed, with_conditioning_encoders=False)
    try:
        model = load_merged(base, root / "adapter")
    except (RuntimeError, ValueError, KeyError) as exc:
        raise PackageError(
            f"{root / 'adapter'}: adapter does not fit the base model ({_first_line(exc)})"
        ) from None
    placement.module(model.eval())
    tokenizer = TextTokenizer(root / TOKENIZER_FILE)
    conditioning = load_conditioning(root / CONDITIONING_FILE, config)
    generator = CodeGenerator(model, tokenizer, conditioning)
    return PatternModel(model, tokenizer, conditioning, manifest, generator, root, placement)


def _weights_file(preset: str, weights_dir: str | Path | None) -> Path | None:
    if preset == "tiny":
        return None
    folder = weights_dir or os.environ.get(WEIGHTS_DIR_ENV)
    if not folder:
        raise PackageError(
            f"preset {preset!r} needs the official weights: pass weights_dir or set {WEIGHTS_DIR_ENV}"
        )
    path = Path(folder) / "gpt.pth"
    if not path.is_file():
        raise PackageError(f"{path}: official GPT weights not found")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
