"""The registered model's package FORMAT: writing the folder, reading its manifest, verifying it.

```
adapter/adapter_config.json, adapter/adapter_model.safetensors   PEFT LoRA adapter (method "lora"),
adapter/gpt_weights.safetensors                                  or the whole fine-tuned GPT (method "full")
global_conditioning.safetensors                                  the ONE conditioning it was trained with
tokenizer/bpe.model                                              SentencePiece model (v2), or
tokenizer/vocab.tiktoken                                         2.5's tiktoken vocabulary
gpt_config.json                                                  the GPT stage's config (official keys)
speaker_embeddings.safetensors                                   second-stage speaker features (optional)
reference/*                                                      the speaker's reference clip(s)
manifest.json                                                    what, from which base, why this checkpoint
```

The adapter only makes sense on the base it was trained on, with the conditioning it was trained
against; the manifest records how it was trained (`method`: lora | full; `conditioning_kind`:
global, or per-clip — a per-clip model is used with a reference clip's conditioning), the base
fingerprint and the sha256 of every file, so a mismatch is one clear line at load time instead of
quietly wrong speech. The folder is built in a temporary
sibling and renamed into place: a crash leaves the previous package or none, never half of one.

This module knows files, names and hashes only; it imports no model code. Assembling a runnable
model from a package (base + merged adapter + tokenizer + conditioning) is `inference.loaded`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

import sentencepiece as spm

from ..conditioning import ConditioningError, check_base, load_conditioning
from ..dataset.layout import CONDITIONING_FILE, INFO_FILE
from ..errors import UserError
from ..utils.atomic import atomic_write_text
from ..utils.hashing import file_sha256

__all__ = [
    "ADAPTER_DIR",
    "CONDITIONING_KINDS",
    "CONFIG_FILE",
    "EDITED",
    "FORMAT",
    "FORMAT_VERSION",
    "FULL_WEIGHTS_FILE",
    "MANIFEST",
    "METHODS",
    "MISSING",
    "PYFUNC_MODEL_CONFIG",
    "SPEAKER_EMBEDDINGS_FILE",
    "TIKTOKEN_FILE",
    "TOKENIZER_FILE",
    "PackageError",
    "PackageFiles",
    "file_problems",
    "installed_version",
    "package_model",
    "read_manifest",
    "verify_package",
]

FORMAT = "indextts-dist/pattern-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

PYFUNC_MODEL_CONFIG: dict[str, str] = {"device": "", "dtype": "float32"}
"""The `model_config` the pyfunc must be logged with. MLflow lets `load_model(uri, model_config=...)`
override only the keys a logged model declares (it drops the others with a warning), so these two
keys are what makes `--device/--dtype` reachable from MLflow. "" = the default device."""

ADAPTER_DIR = "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
FULL_WEIGHTS_FILE = "gpt_weights.safetensors"
"""Method "full": the whole fine-tuned GPT state dict, in the adapter folder's place."""
METHODS = ("lora", "full")
CONDITIONING_KINDS = ("global", "per-clip")
TOKENIZER_FILE = "tokenizer/bpe.model"
TIKTOKEN_FILE = "tokenizer/vocab.tiktoken"
"""A 2.5 package's copy of the tiktoken vocabulary (the manifest's `tokenizer.file` says which)."""
CONFIG_FILE = "gpt_config.json"
SPEAKER_EMBEDDINGS_FILE = "speaker_embeddings.safetensors"
"""Second-stage speaker features (CAMPPlus style, ref_mel, prompt_condition); optional."""


class PackageError(UserError, ValueError):
    """A package (or its inputs) that is incomplete, inconsistent or meant for another base model."""


class ModelConfig(Protocol):
    """What packaging needs of the GPT config (`model.GPTConfig`), named without importing it."""

    number_text_tokens: int

    @property
    def version(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


# -- building -----------------------------------------------------------------------------------------


def package_model(
    out_dir: str | Path,
    *,
    adapter_dir: str | Path,
    conditioning_path: str | Path,
    tokenizer_path: str | Path,
    gpt_config: ModelConfig,
    preset: str,
    seed: int,
    base_fingerprint: str,
    params: dict[str, Any],
    selection: dict[str, Any],
    reference_clips: list[Path],
    dataset_info: dict[str, Any] | None,
    speaker_embeddings: str | Path | None = None,
    dataset_info_path: str | Path | None = None,
    label: str | None = None,
    method: str = "lora",
    conditioning_kind: str = "global",
    language: str | None = None,
) -> Path:
    """Validate the inputs, then write the package folder atomically; returns `out_dir`.

    `dataset_info_path` only names the dataset in errors (default: `dataset_info.json` beside the
    conditioning, where preprocess writes both). `label` is the note every output of this model
    carries (`model.TINY_LABEL` for the tiny preset's random weights); the caller knows what its
    preset means, the format only records it. `method` "full": `adapter_dir` holds
    FULL_WEIGHTS_FILE instead of a PEFT adapter. A 2.5 model (`gpt_config.version` "v2.5") packs
    its tiktoken vocabulary and the dataset's text `language` (its `<|lang|>` and language row)."""
    out_dir = Path(out_dir)
    adapter_dir = Path(adapter_dir)
    if method not in METHODS or conditioning_kind not in CONDITIONING_KINDS:
        raise PackageError(f"unknown training method {method!r} or conditioning kind {conditioning_kind!r}")
    files = ADAPTER_FILES if method == "lora" else (FULL_WEIGHTS_FILE,)
    for name in files:
        if not (adapter_dir / name).is_file():
            what = "PEFT adapter folder" if method == "lora" else "full fine-tuning checkpoint folder"
            raise PackageError(f"{adapter_dir}: not a {what} ({name} missing)")
    lora = _lora_settings(adapter_dir / "adapter_config.json") if method == "lora" else None
    # The conditioning module's own reader: a one-line ConditioningError if it does not fit the model.
    conditioning_metadata = load_conditioning(conditioning_path, gpt_config).metadata  # type: ignore[arg-type]
    _check_conditioning_base(conditioning_metadata, base_fingerprint, conditioning_path)
    version = gpt_config.version
    if (version == "v2.5") != (language is not None):
        raise PackageError(f"a {version} package {'needs' if language is None else 'takes no'} text language")
    tokenizer = _tokenizer_summary(Path(tokenizer_path), version)
    info_path = Path(dataset_info_path or Path(conditioning_path).with_name(INFO_FILE))
    _check_tokenizer(tokenizer["sha256"], Path(tokenizer_path), dataset_info, info_path)
    if tokenizer["vocab_size"] > gpt_config.number_text_tokens:
        raise PackageError(
            f"{tokenizer_path}: tokenizer has {tokenizer['vocab_size']} pieces, "
            f"the model only {gpt_config.number_text_tokens}"
        )
    clips = [Path(c) for c in reference_clips]
    for clip in clips:
        if not clip.is_file():
            raise PackageError(f"{clip}: reference clip not found")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        (tmp / ADAPTER_DIR).mkdir()
        for name in files:
            shutil.copyfile(adapter_dir / name, tmp / ADAPTER_DIR / name)
        shutil.copyfile(conditioning_path, tmp / CONDITIONING_FILE)
        (tmp / TOKENIZER_FILE).parent.mkdir()
        shutil.copyfile(tokenizer_path, tmp / tokenizer["file"])
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
            "model_version": version,
            "language": language,
            "seed": int(seed),
            "base_fingerprint": base_fingerprint,
            "label": label,
            "method": method,
            "conditioning_kind": conditioning_kind,
            "conditioning": {"sha256": file_sha256(conditioning_path), "metadata": conditioning_metadata},
            "tokenizer": tokenizer,
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


def _check_conditioning_base(metadata: dict[str, str], want: str, path: str | Path) -> None:
    """The shared rule (`conditioning.check_base`) on the file's metadata, as a packaging error."""
    try:
        check_base(metadata, want, str(path), "the adapter's base")
    except ConditioningError as exc:
        raise PackageError(str(exc)) from exc


def _tokenizer_summary(path: Path, version: str = "v2") -> dict[str, Any]:
    """sha256, piece count and packaged name of the vocabulary: a SentencePiece model read with
    sentencepiece itself (v2), or 2.5's tiktoken file, whose `base64 rank` lines are its mergeable
    ranks (the text front end is model code this module does not import)."""
    if version == "v2.5":
        try:
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        except OSError as exc:
            raise PackageError(f"{path}: not a readable tiktoken vocabulary ({_first_line(exc)})") from None
        if not lines or any(len(line.split()) != 2 for line in lines):
            raise PackageError(f"{path}: not a tiktoken vocabulary (lines of `base64 rank`)")
        return {"sha256": file_sha256(path), "vocab_size": len(lines), "file": TIKTOKEN_FILE}
    try:
        blob = path.read_bytes()
        processor = spm.SentencePieceProcessor()
        processor.LoadFromSerializedProto(blob)
    except Exception as exc:  # OSError, or sentencepiece's RuntimeError/OSError on a bad file
        raise PackageError(f"{path}: not a readable SentencePiece model ({_first_line(exc)})") from None
    pieces = int(processor.get_piece_size())
    return {"sha256": file_sha256(path), "vocab_size": pieces, "file": TOKENIZER_FILE}


def _check_tokenizer(sha256: str, path: Path, dataset_info: dict[str, Any] | None, info_path: Path) -> None:
    """The packaged bpe.model must be the one the dataset's text ids were made with: another one
    maps the same ids to other pieces, so the adapter would be conditioned on text it never saw.
    A dataset_info without a tokenizer fingerprint (older datasets) has nothing to compare with."""
    fingerprints = (dataset_info or {}).get("fingerprints") or {}
    want = fingerprints.get("tokenizer") if isinstance(fingerprints, dict) else None
    if want and want != sha256:
        raise PackageError(
            f"{path}: tokenizer (sha256 {sha256[:12]}…) is not the one the dataset was "
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
    for rel, problem in file_problems(root, manifest).items():
        if problem == MISSING:
            raise PackageError(f"{root}: {rel} is missing")
        raise PackageError(f"{root}: {rel} does not match its sha256 in the manifest (corrupt or edited)")
    return manifest


MISSING, EDITED = "missing", "edited"


def file_problems(package_dir: str | Path, manifest: Mapping[str, Any]) -> dict[str, str]:
    """Payload file -> MISSING or EDITED, for each one not as the manifest recorded it (in manifest
    order). `verify_package` refuses the first; `diagnose` reports them all."""
    root = Path(package_dir)
    found = {}
    for rel, digest in (manifest.get("files") or {}).items():
        path = root / rel
        if not path.is_file():
            found[rel] = MISSING
        elif file_sha256(path) != digest:
            found[rel] = EDITED
    return found


@dataclass(frozen=True)
class PackageFiles:
    """Where each part of a package lives: the names are spelled here only."""

    root: Path

    @property
    def adapter(self) -> Path:
        return self.root / ADAPTER_DIR

    @property
    def full_weights(self) -> Path:
        return self.root / ADAPTER_DIR / FULL_WEIGHTS_FILE

    @property
    def conditioning(self) -> Path:
        return self.root / CONDITIONING_FILE

    @property
    def tokenizer(self) -> Path:
        """The packaged vocabulary: 2.5's tiktoken copy when there is one, else bpe.model."""
        tiktoken = self.root / TIKTOKEN_FILE
        return tiktoken if tiktoken.is_file() else self.root / TOKENIZER_FILE

    @property
    def gpt_config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def speaker_embeddings(self) -> Path:
        return self.root / SPEAKER_EMBEDDINGS_FILE

    def read_gpt_config(self) -> dict[str, Any]:
        """The GPT config as recorded (official keys); `model.GPTConfig.from_dict` reads it."""
        try:
            config = json.loads(self.gpt_config.read_text())
        except (OSError, ValueError) as exc:
            raise PackageError(f"{self.gpt_config}: unreadable GPT config ({_first_line(exc)})") from None
        if not isinstance(config, dict):
            raise PackageError(f"{self.gpt_config}: not a GPT config (a JSON object)")
        return config


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
