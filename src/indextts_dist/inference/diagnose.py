"""`diagnose`: why a pattern model does not sound like the speaker — the guide's "Troubleshooting".

The guide's three questions, answered from the package alone: did the adapter learn anything
(per-layer norms of its updates; all-zero = "this adapter learned nothing"), is it used with the
conditioning it was trained against (sha256 and base fingerprint), and was the dataset built with ONE
global conditioning (`dataset_info.json` version). Then the effect itself: the base GPT and the
adapted one on the same texts with the same seed and the same conditioning, through the loaded model
every other door uses (`inference.loaded`), so the only difference is the adapter and what is
measured is what users get; the report carries each text's codes. Every finding is one line in
`problems`; the report is plain JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..conditioning import ConditioningError, load_conditioning
from ..dataset.layout import CONDITIONING_FILE, DATASET_VERSION
from ..errors import InputError
from ..generate import DecodingConfig
from ..model import CheckpointError, GPTConfig
from ..placement import Placement, resolve_placement
from ..tracking.package import MISSING, PackageError, PackageFiles, file_problems, read_manifest
from ..utils.hashing import file_sha256
from .adapter_norms import AdapterError, adapter_norms
from .code_stats import code_statistics, pause_code_set, stat_deltas
from .diagnose_table import format_table
from .loaded import load_package

__all__ = ["DATASET_VERSION", "check_conditioning", "check_dataset", "diagnose", "format_table"]


def diagnose(
    package_dir: str | Path,
    texts: Sequence[str],
    decoding: DecodingConfig,
    weights_dir: str | Path | None = None,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """The full report for a package folder (raises PackageError only when it is not a package).
    Base and adapted run on the same `placement` (default: `resolve_placement()`), so the only
    difference between their statistics is the adapter."""
    placement = placement or resolve_placement()
    root = Path(package_dir)
    manifest = read_manifest(root)
    texts = [t.strip() for t in texts]
    if not texts or not all(texts):
        raise InputError("diagnose needs at least one text, and no empty ones")
    if decoding.seed is None:  # base and adapted must draw the same random numbers
        decoding = dataclasses.replace(decoding, seed=0)

    # Blocking: the package would not load (or not as trained). Findings: it loads, but is weak.
    blocking = _file_problems(root, manifest)
    findings: list[str] = []
    if manifest.get("method", "lora") == "full":  # no adapter: every GPT weight was fine-tuned
        adapter: dict[str, Any] = {"error": "none (full fine-tuning: the package holds the whole GPT)"}
    else:
        try:
            norms = adapter_norms(PackageFiles(root).adapter)
            adapter = norms.to_dict()
            findings += norms.problems()
        except AdapterError as exc:
            adapter = {"error": str(exc)}
            blocking.append(str(exc))
    conditioning = check_conditioning(root, manifest)
    dataset = check_dataset(manifest)
    blocking += conditioning["problems"]
    findings += dataset["problems"]

    if blocking:
        stats: dict[str, Any] = {"skipped": "the package does not load as it is; fix the problems first"}
    else:
        try:
            stats = compare_base_and_adapted(root, texts, decoding, weights_dir, dataset, placement)
        except (PackageError, ConditioningError, CheckpointError) as exc:
            stats = {"skipped": str(exc)}
            blocking.append(str(exc))
    problems = blocking + findings
    return {
        "package": str(root),
        "model": {
            "preset": manifest.get("preset"),
            "label": manifest.get("label"),
            "base_fingerprint": manifest.get("base_fingerprint"),
            "selection": manifest.get("selection"),
        },
        "adapter": adapter,
        "conditioning": conditioning,
        "dataset": dataset,
        "statistics": stats,
        "problems": problems,
    }


def _file_problems(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    """Every payload file that is missing or edited (the conditioning file has its own check, which
    says what a different conditioning means)."""
    return [
        f"{rel} is missing from the package"
        if problem == MISSING
        else f"{rel} does not match its sha256 in the manifest (corrupt or edited)"
        for rel, problem in sorted(file_problems(root, manifest).items())
        if rel != CONDITIONING_FILE
    ]


def check_conditioning(root: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The package's conditioning file vs the one recorded when the adapter was packaged."""
    recorded = manifest.get("conditioning") or {}
    trained = recorded.get("sha256") or (manifest.get("files") or {}).get(CONDITIONING_FILE)
    base = manifest.get("base_fingerprint")
    out: dict[str, Any] = {
        "sha256": None,
        "trained_sha256": trained,
        "matches": None,
        "base_model_fingerprint": None,
        "base_fingerprint": base,
        "base_matches": None,
        "metadata": {},
        "problems": [],
    }
    files = PackageFiles(root)
    path = files.conditioning
    if not path.is_file():
        out["problems"].append(
            f"{CONDITIONING_FILE} is missing: the adapter only works with the conditioning it was "
            "trained with"
        )
        return out
    sha = out["sha256"] = file_sha256(path)
    if trained is not None:
        out["matches"] = sha == trained
        if sha != trained:
            differs = _metadata_differences(recorded.get("metadata") or {}, path)
            out["problems"].append(
                f"{CONDITIONING_FILE} is not the conditioning the adapter was trained with "
                f"(sha256 {sha[:12]}…, trained with {trained[:12]}…{differs}): patterns will not come "
                "back; use the package's own file or re-train against this one"
            )
    try:
        cfg = GPTConfig.from_dict(files.read_gpt_config()) if files.gpt_config.is_file() else None
        cond = load_conditioning(path, cfg)
    except (ConditioningError, PackageError) as exc:
        out["problems"].append(str(exc))
        return out
    out["metadata"] = cond.metadata
    cond_base = out["base_model_fingerprint"] = cond.metadata.get("base_model_fingerprint")
    out["base_matches"] = cond_base == base if cond_base and base else None
    if cond_base and base and cond_base != base:
        out["problems"].append(
            f"{CONDITIONING_FILE} was computed on base {cond_base[:12]}…, the adapter's base is {base[:12]}…"
        )
    return out


def _metadata_differences(trained: Mapping[str, Any], path: Path) -> str:
    """`; num_clips 3 -> 5` for the recorded metadata keys that changed (empty when unreadable)."""
    try:
        now = load_conditioning(path).metadata
    except ConditioningError:
        return ""
    changed = [f"{k} {trained[k]} -> {now.get(k)}" for k in sorted(trained) if str(trained[k]) != now.get(k)]
    return f"; {', '.join(changed)}" if changed else ""


def check_dataset(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Was the training data built with ONE global conditioning (the guide's step 2 check)?"""
    info = manifest.get("dataset") or manifest.get("dataset_info")
    version = info.get("version") if isinstance(info, Mapping) else None
    out: dict[str, Any] = {"version": version, "ok": version == DATASET_VERSION, "problems": []}
    if not isinstance(info, Mapping):
        out["problems"].append(
            "the package records no dataset_info.json: cannot tell whether the dataset was built with "
            f"global conditioning (expected version {DATASET_VERSION!r})"
        )
    elif version != DATASET_VERSION:
        out["problems"].append(
            f"dataset version is {version!r}, not {DATASET_VERSION!r}: the training data was not built "
            "with ONE global conditioning; re-run preprocess, then train again"
        )
    if isinstance(info, Mapping):
        markers = info.get("markers") or {}
        out["marker_counts"] = markers.get("counts") if isinstance(markers, Mapping) else None
        codes = pause_code_set(info)
        out["pause_codes"] = sorted(codes) if codes is not None else None
    return out


def compare_base_and_adapted(
    root: Path,
    texts: list[str],
    decoding: DecodingConfig,
    weights_dir: str | Path | None,
    dataset: Mapping[str, Any],
    placement: Placement | None = None,
) -> dict[str, Any]:
    """The loaded model every door uses, run twice on the same texts, seed and placement: with the
    adapter (load_package checks everything), then `without_adapter()`, so the only difference is
    the adapter and what is measured is what users get (long texts segmented the same way)."""
    pause = set(dataset["pause_codes"]) if dataset.get("pause_codes") is not None else None
    model = load_package(root, weights_dir, placement or resolve_placement())
    adapted = code_statistics(model(texts, decoding, latents=False), pause)
    model = model.without_adapter()  # rebinding drops the merged GPT
    base = code_statistics(model(texts, decoding, latents=False), pause)
    return {
        "decoding": decoding.to_dict(),
        "base": base,
        "adapted": adapted,
        "delta": stat_deltas(base, adapted),
    }
