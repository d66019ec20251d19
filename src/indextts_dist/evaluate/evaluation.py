"""One evaluation: a loaded pattern model, held-out texts, seeds → the report (JSON + Markdown).

    report = evaluate_model(LoadedModel.load("models:/spk@candidate"), EvaluateOptions(out=Path("ev")))

Code space always (every preset): the adapted model and its base generate every text for every
seed through `LoadedModel`; each statistic is measured on the units of both and set beside the
training data's value from the package (`manifest.dataset.evaluation`, written by preprocess with
the same instrument). Audio space when there are wavs: `wavs` (adapted) and `base_wavs` folders
made elsewhere, or `render=True` (the package's second stage speaks what was generated; speech only
with real weights). The report says which preset and conditioning it measured and carries the
model's label (the tiny preset's random weights, the mini preset's "trained here on synthetic
speech"), so its numbers are never read as IndexTTS2 quality.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..generate import DecodingConfig
from ..inference.code_stats import pause_code_set
from ..inference.loaded import LoadedModel
from ..utils.atomic import atomic_write_text
from .audio_folder import AudioInstrument
from .code_measures import CODE_RATE
from .data_measures import instrument
from .report import format_markdown, rows, sanity
from .runner import generate_side, seeds_for
from .statistics import AUDIO_STATISTICS, CODE_STATISTICS
from .texts import HELD_OUT_TEXTS

__all__ = ["REPORT_JSON", "REPORT_MD", "EvaluateOptions", "data_record", "evaluate_model"]

REPORT_JSON = "evaluation.json"
REPORT_MD = "evaluation.md"


@dataclass
class EvaluateOptions:
    out: Path
    texts: list[str] = field(default_factory=lambda: list(HELD_OUT_TEXTS))
    decoding: DecodingConfig = field(default_factory=lambda: DecodingConfig(seed=0))
    seeds: int = 3
    wavs: Path | None = None
    base_wavs: Path | None = None
    render: bool = False
    batch_size: int = 8
    resamples: int = 1000
    whisper_model: str | None = None
    language: str | None = None
    uri: str | None = None
    """How the model was named (`models:/NAME@ALIAS` or the folder), for the report and the run."""
    reference_clip: Path | None = None
    """Generate with this clip's own conditioning (required for a per-clip model; both sides)."""


def data_record(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The training data's evaluation record (empty for a package made before preprocess wrote one)."""
    info = manifest.get("dataset") or {}
    record = info.get("evaluation") if isinstance(info, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else {}


def _pause_codes(manifest: Mapping[str, Any], record: Mapping[str, Any]) -> set[int] | None:
    if record.get("pause_codes"):
        return {int(c) for c in record["pause_codes"]}
    return pause_code_set(manifest.get("dataset"))


def _audio_instrument(
    model: LoadedModel, opts: EvaluateOptions, record: Mapping[str, Any]
) -> AudioInstrument:
    """The ASR preprocess used (unless the options name another) and, when the package has
    speaker embeddings, the second stage's CAMPPlus and the speaker's mean style."""
    from ..transcribe import Transcriber

    asr = record.get("asr") or {}
    transcriber = Transcriber(
        model=opts.whisper_model or asr.get("whisper_model"), language=opts.language or asr.get("language")
    )
    if not model.manifest.get("speaker_embeddings"):
        return AudioInstrument(transcriber)
    renderer = model.renderer
    style = renderer.embeddings.style.float().cpu().numpy()
    return AudioInstrument(
        transcriber, lambda path: renderer.stage.clip_style(path).float().cpu().numpy(), style
    )


def base_side_key(base: LoadedModel, opts: EvaluateOptions, seeds: list[int], code_rate: float, pause) -> str:
    """What the base side's code units depend on: the base weights, the prefix it generates under,
    the texts, seeds and decoding, and the instrument. Equal keys give identical units."""
    h = hashlib.sha256()
    h.update(str(base.manifest.get("base_fingerprint")).encode())
    h.update(base.prefix.detach().float().cpu().numpy().tobytes())
    what = [opts.texts, seeds, opts.decoding.to_dict(), code_rate, sorted(pause or [])]
    h.update(json.dumps(what).encode())
    return h.hexdigest()


def evaluate_model(
    model: LoadedModel, opts: EvaluateOptions, log=None, base_cache: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run both sides, build the report, write `evaluation.json` and `evaluation.md` into `opts.out`.

    `base_cache` (any dict kept by the caller) lets several evaluations that share a base, a
    conditioning and a decoding — an experiment's adapters over seeds — generate the base once:
    the base side is a pure function of `base_side_key`. Code space only (audio is measured anew)."""
    say = log or (lambda line: print(f"[evaluate] {line}", file=sys.stderr))
    model = model.with_reference_clip(opts.reference_clip)
    record = data_record(model.manifest)
    # The data's codes per second, as preprocess measured them (25 for 2.5); v2's 50 before it recorded one.
    code_rate = float((record.get("instrument") or {}).get("code_rate", CODE_RATE))
    pause = _pause_codes(model.manifest, record)
    seeds = seeds_for(opts.decoding, opts.seeds)
    audio = _audio_instrument(model, opts, record) if (opts.wavs or opts.base_wavs or opts.render) else None
    notes: list[str] = []
    if not record:
        notes.append(
            "the package records no data evaluation (dataset preprocessed before `evaluate` "
            "existed): data values and transfer ratios are n/a; re-run preprocess"
        )
    if pause is None:
        notes.append("no pause codes recorded: the pause statistics are n/a")

    def side(name: str, m: LoadedModel):
        render_to = opts.out / "wavs" / name if opts.render else None
        return generate_side(
            name,
            m,
            opts.texts,
            opts.decoding,
            seeds,
            pause,
            batch_size=opts.batch_size,
            render_to=render_to,
            audio=audio,
            progress=say,
            code_rate=code_rate,
        )

    adapted = side("adapted", model)
    base_model = model.without_adapter()
    cacheable = base_cache is not None and audio is None and not opts.render
    key = base_side_key(base_model, opts, seeds, code_rate, pause) if cacheable else None
    if key is not None and key in base_cache:
        say("base: the same base, conditioning and decoding were generated before; reusing them")
        base = base_cache[key]
    else:
        base = side("base", base_model)
        if key is not None:
            base_cache[key] = base
    if opts.wavs is not None and audio is not None:
        adapted.audio_units = audio.measure_folder(opts.wavs, opts.texts)
    if opts.base_wavs is not None and audio is not None:
        base.audio_units = audio.measure_folder(opts.base_wavs, opts.texts)

    code = rows(CODE_STATISTICS, adapted.code_units, base.code_units, record.get("code"), opts.resamples)
    report: dict[str, Any] = {
        "model": {
            "uri": opts.uri or str(model.package),
            "package": str(model.package) if model.package else None,
            "preset": model.manifest.get("preset"),
            "label": model.label,
            "conditioning": model.conditioning_kind,
            "reference_clip": str(model.reference_clip) if model.reference_clip else None,
            "method": model.manifest.get("method", "lora"),
            "base_fingerprint": model.manifest.get("base_fingerprint"),
        },
        "decoding": opts.decoding.to_dict(),
        "seeds": seeds,
        "texts": list(opts.texts),
        "instrument": instrument(code_rate),
        "pause_codes": sorted(pause) if pause else None,
        "data": {
            "clips": record.get("clips"),
            "audio_clips": record.get("audio_clips"),
            "asr": record.get("asr"),
        },
        "code": code,
        "audio": None,
        "sanity": sanity(code),
        "per_text": {"adapted": adapted.per_text, "base": base.per_text},
        "notes": notes,
    }
    if adapted.audio_units or base.audio_units:
        report["audio"] = rows(
            AUDIO_STATISTICS, adapted.audio_units, base.audio_units, record.get("audio"), opts.resamples
        )
        report["audio_units"] = {"adapted": adapted.audio_units, "base": base.audio_units}
    if model.label:
        notes.append(model.label)
    if any(s["ok"] is False for s in report["sanity"]):
        notes.append(
            "the base is not sane on this decoding (see the sanity table): transfer ratios "
            "compare against a broken reference"
        )
    opts.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(opts.out / REPORT_JSON, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(opts.out / REPORT_MD, format_markdown(report))
    return report
