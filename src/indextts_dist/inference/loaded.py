"""The one door into a pattern model: assembled once, then texts in, codes (and latents, wavs) out.

    from indextts_dist.inference.loaded import LoadedModel
    tts = LoadedModel.load("models:/my-speaker@candidate")           # or a local package folder
    for r in tts(["Life finds a way.", "Well, [UH] I think so."]):
        r.codes, r.latents                                           # semantic codes, GPT latents for S2Mel
    LoadedModel.load(uri, device="cuda:1", dtype="bfloat16")         # default: CUDA if present, float32

Every way in — `infer`, `generate`, `diagnose`, the MLflow pyfunc, the demo and this Python API —
runs texts through `LoadedModel.__call__`, so the same text, seed and settings give the same codes
whichever door they came through. A model comes from a package (`load_package`: base + merged
adapter + tokenizer + conditioning) or from parts (`load_parts`: a base, a conditioning file and a
tokenizer, for `generate`); `without_adapter()` is the same model on the bare base (diagnose).

Long texts are split into segments as the official inference does (SPEC §c.4); each segment is
generated on its own (segments of all texts share batches) and the results are joined in order.
The latents are what the official forward returns for (text, codes) at batch size 1: S2Mel's input.
The GPT and the second stage (loaded on first use) run on one placement (`indextts_dist.placement`);
codes and latents always come back as host tensors (int64 / float32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..conditioning import GlobalConditioning, load_conditioning
from ..errors import InputError, MissingFileError
from ..generate import DecodingConfig, generate_codes
from ..generate.text_to_codes import check_tokenizer_fits, conditioning_prefix
from ..lora import load_merged
from ..model import (
    RANDOM_PRESETS,
    SEEDED_PRESETS,
    TINY_LABEL,
    CheckpointError,
    GPTConfig,
    UnifiedVoice,
    preset_label,
    strict_load,
)
from ..placement import Placement, placement_of, resolve_placement, to_host
from ..text import LanguageTokenizer, TextTokenizer, tiny_tokenizer
from ..tracking.package import PackageError, PackageFiles, verify_package
from ..tracking.registry import fetch_model
from .base_model import BaseSpec, check_conditioning_base, weights_dir_or_env, weights_file
from .results import Synthesis
from .segment import MAX_SEGMENT_TOKENS, split_segments
from .speech_output import SpeechRenderer

__all__ = ["LoadedModel", "Synthesis", "load_package", "load_parts"]

DEFAULT_BATCH_SIZE = 8
"""Segments decoded together. Sampling draws depend on what shares a batch, so every door uses
this same default (and `infer --batch-size` changes it for all texts of one run alike)."""


class LoadedModel:
    """A GPT stage ready to run texts: model (placed), tokenizer, conditioning prefix, and where it
    came from (its base, and its package when it has one)."""

    def __init__(
        self,
        model: UnifiedVoice,
        tokenizer: TextTokenizer | LanguageTokenizer,
        conditioning: GlobalConditioning,
        base: BaseSpec | None = None,
        *,
        package: Path | None = None,
        manifest: Mapping[str, Any] | None = None,
        adapted: bool = False,
        weights_dir: Path | None = None,
        segment_tokens: int = MAX_SEGMENT_TOKENS,
    ) -> None:
        """`model` already on its placement (where the prefix and the second stage will go too).
        `base` says which base `model` is (or was merged into); None for a model built by hand
        (benchmarks): it has no label and cannot drop an adapter."""
        check_tokenizer_fits(model, tokenizer)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.conditioning = conditioning
        self.prefix = conditioning_prefix(model, conditioning)
        self.base = base
        self.package = package
        self.manifest: dict[str, Any] = dict(manifest or {})
        self.adapted = adapted
        """True when the package's adapter is merged into `model` (False: the bare base)."""
        self.weights_dir = weights_dir
        if model.cfg.is_v25 != isinstance(tokenizer, LanguageTokenizer):
            kind = "2.5 tiktoken" if model.cfg.is_v25 else "v2 SentencePiece"
            raise InputError(f"a {model.cfg.version} model needs the {kind} tokenizer")
        self.segment_tokens = min(segment_tokens, model.cfg.max_text_tokens)
        self._renderer: SpeechRenderer | None = None
        self.reference_clip: Path | None = None
        """The clip whose conditioning this model generates with (None: the package's own)."""

    # -- loading ----------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        model: str | Path,
        *,
        tracking_uri: str | None = None,
        cache_dir: str | Path = ".cache/indextts-dist-models",
        weights_dir: str | Path | None = None,
        segment_tokens: int = MAX_SEGMENT_TOKENS,
        device: str | None = None,
        dtype: str | None = None,
    ) -> LoadedModel:
        """`models:/NAME@ALIAS`, `models:/NAME/VERSION`, or a local package folder, loaded onto
        `device` (any torch device; default CUDA when present) in `dtype` (float32 | bfloat16 |
        float16; default float32). A bad device or dtype fails before anything is downloaded."""
        placement = resolve_placement(device, dtype)
        if str(model).startswith("models:/"):
            folder = fetch_model(str(model), cache_dir, tracking_uri=tracking_uri)
        else:
            folder = Path(model)
            if not folder.is_dir():
                raise MissingFileError(f"{folder}: no such model folder (or use a models:/NAME@ALIAS URI)")
        return load_package(
            folder, weights_dir=weights_dir, placement=placement, segment_tokens=segment_tokens
        )

    def without_adapter(self) -> LoadedModel:
        """The same tokenizer, conditioning, placement and segmentation on the bare base: what the
        adapter changes is all that differs. Builds the base again (the merged weights replaced it)."""
        if not self.adapted:
            return self
        if self.base is None:
            raise ValueError("this model records no base to rebuild (built by hand, without a BaseSpec)")
        base = self.placement.module(self.base.build())
        out = LoadedModel(
            base, self.tokenizer, self.conditioning, self.base, package=self.package, manifest=self.manifest,
            adapted=False, weights_dir=self.weights_dir, segment_tokens=self.segment_tokens,
        )  # fmt: skip
        out.reference_clip = self.reference_clip
        return out

    def with_reference_clip(self, clip: str | Path | None) -> LoadedModel:
        """The same model generating with the conditioning of `clip` (the way a per-clip model is
        used, `inference.clip_conditioning`); None keeps the package's own conditioning, which a
        per-clip model does not have a meaningful one of: it is refused in one line."""
        if clip is None:
            if self.conditioning_kind == "per-clip":
                raise InputError(
                    "this model was trained with per-clip conditioning: name the clip whose conditioning "
                    "it generates with (--reference-clip FILE, the guide's old way)"
                )
            return self
        if self.base is None:
            raise ValueError("this model records no base to compute a clip's conditioning on")
        from .clip_conditioning import clip_conditioning

        cond = clip_conditioning(clip, self.base, self.weights_dir)
        out = LoadedModel(
            self.model, self.tokenizer, cond, self.base, package=self.package, manifest=self.manifest,
            adapted=self.adapted, weights_dir=self.weights_dir, segment_tokens=self.segment_tokens,
        )  # fmt: skip
        out.reference_clip = Path(clip)
        return out

    # -- what it is -------------------------------------------------------------------------------

    @property
    def conditioning_kind(self) -> str:
        """`global` (the recipe) or `per-clip`, as the package records how it was trained."""
        return str(self.manifest.get("conditioning_kind", "global"))

    @property
    def label(self) -> str | None:
        """The package's recorded label, else TINY_LABEL for the tiny preset's random weights (its
        output is not speech, whatever door it came through), else None."""
        recorded = self.manifest.get("label")
        if recorded or self.base is None:
            return recorded
        if self.base.preset in SEEDED_PRESETS and self.base.weights is None:
            return TINY_LABEL
        return preset_label(self.base.preset) if self.base.preset == "mini" else None

    @property
    def placement(self) -> Placement:
        """Where the GPT runs (and where the second stage goes)."""
        return placement_of(self.model)

    # -- running texts ----------------------------------------------------------------------------

    def segment(self, prepared: str) -> list[list[int]]:
        """Text ids per segment of an already normalized text. 2.5: the text's pieces split to the
        limit minus the language prefix, each segment encoded again behind `<|lang|>` (SPEC_2_5
        §4.2 steps 7-8)."""
        tok = self.tokenizer
        if isinstance(tok, LanguageTokenizer):
            body = tok.body_ids(prepared)
            out, start = [], 0
            for seg in split_segments(tok.pieces(body), self.segment_tokens - tok.prefix_length):
                out.append(tok.encode_body(body[start : start + len(seg)]))
                start += len(seg)
            return out
        pieces = tok.tokenize_prepared(prepared)
        segments = split_segments(pieces, self.segment_tokens)
        return [[tok.piece_to_id(p) for p in seg] for seg in segments]

    def _langs(self, count: int) -> list[int] | None:
        """2.5: the tokenizer's language row for each of `count` texts; None for v2."""
        lang = self.tokenizer.language_id
        return None if lang is None else [lang] * count

    def __call__(
        self,
        texts: Sequence[str],
        decoding: DecodingConfig | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        latents: bool = True,
    ) -> list[Synthesis]:
        """One `Synthesis` per text. `latents=False` skips the extra forward per segment (codes only)."""
        decoding = decoding or DecodingConfig()
        split = [self.split_text(t) for t in texts]
        flat = [seg for _, segs in split for seg in segs]
        codes, stopped = self._generate(flat, decoding, batch_size)
        out, start = [], 0
        for text, (normalized, segments) in zip(texts, split, strict=True):
            rows = range(start, start + len(segments))
            start += len(segments)
            seg_codes = [codes[k] for k in rows]
            out.append(
                Synthesis(
                    text=text,
                    normalized=normalized,
                    segments=segments,
                    codes=torch.cat(seg_codes) if seg_codes else torch.zeros(0, dtype=torch.long),
                    latents=self._joined_latents(segments, seg_codes) if latents else None,
                    stopped=[stopped[k] for k in rows],
                    segment_codes=[int(c.numel()) for c in seg_codes],
                )
            )
        return out

    def split_text(self, text: str) -> tuple[str, list[list[int]]]:
        """(normalized text, text ids per segment): what `__call__` does to each text before decoding.
        Public for callers that schedule segments themselves (the server batches the segments of
        several requests together through `run_segments`)."""
        if not text.strip():
            raise InputError("empty text: nothing to synthesize")
        prepared = self.tokenizer.prepare(text)
        return prepared, self.segment(prepared)

    def run_segments(
        self,
        segments: Sequence[list[int]],
        decoding: DecodingConfig | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        text: str = "",
    ) -> list[Synthesis]:
        """One single-segment `Synthesis` (codes and latents) per segment of text ids, decoded
        `batch_size` at a time exactly as `__call__` decodes a text's segments; `text` is recorded."""
        codes, stopped = self._generate(list(segments), decoding or DecodingConfig(), batch_size)
        return [
            Synthesis(text=text, normalized=text, segments=[ids], codes=c,
                      latents=self._joined_latents([ids], [c]), stopped=[s], segment_codes=[int(c.numel())])
            for ids, c, s in zip(segments, codes, stopped, strict=True)
        ]  # fmt: skip

    def _generate(
        self, segments: list[list[int]], decoding: DecodingConfig, batch_size: int
    ) -> tuple[list[torch.Tensor], list[bool]]:
        """Codes and stop flags per segment, `batch_size` segments per `generate_codes` call."""
        codes: list[torch.Tensor] = []
        stopped: list[bool] = []
        for start in range(0, len(segments), batch_size):
            batch = segments[start : start + batch_size]
            result = generate_codes(self.model, self.prefix, batch, decoding, self._langs(len(batch)))
            codes.extend(result.codes)  # host int64 already
            stopped.extend(result.stopped)
        return codes, stopped

    def _joined_latents(self, segments: list[list[int]], codes: list[torch.Tensor]) -> torch.Tensor:
        if not segments:
            return torch.zeros(0, self.model.cfg.model_dim)
        return torch.cat([self.latents(ids, c) for ids, c in zip(segments, codes, strict=True)])

    @torch.no_grad()
    def latents(self, text_ids: list[int], codes: torch.Tensor) -> torch.Tensor:
        """The official forward at batch size 1: final-normed hidden states of the mel block [N, D],
        computed in the model's dtype (as the official half-precision inference does), returned as
        float32 on the host."""
        device = self.placement.device
        ids = torch.tensor([text_ids], device=device)
        langs = self._langs(1)
        out = self.model(self.prefix, ids, torch.tensor([len(text_ids)], device=device),
                         codes[None].to(device), torch.tensor([codes.numel()], device=device),
                         None if langs is None else torch.tensor(langs, device=device))  # fmt: skip
        return to_host(out.mel_latents[0])

    # -- the second stage -------------------------------------------------------------------------

    @property
    def renderer(self) -> SpeechRenderer:
        """S2Mel + BigVGAN with the package's speaker embeddings, on this model's placement; loaded
        on first use (codes-only runs never pay for it)."""
        if self._renderer is None:
            if self.package is None:
                raise PackageError("no package: the second stage needs a package's speaker embeddings")
            self._renderer = SpeechRenderer(
                self.package, self.manifest, self.weights_dir, placement=self.placement
            )
        return self._renderer

    def speak(
        self,
        texts: Sequence[str],
        decoding: DecodingConfig | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[tuple[Synthesis, np.ndarray]]:
        """Codes, latents AND the 22.05 kHz waveform per text, through the package's second stage
        (segments joined with 200 ms of silence). The tiny preset's waveforms are noise, not speech."""
        renderer = self.renderer
        seed = (decoding.seed if decoding else None) or 0
        return [(r, renderer.render(r, seed=seed)) for r in self(texts, decoding, batch_size)]


def load_package(
    package_dir: str | Path,
    weights_dir: str | Path | None = None,
    placement: Placement | None = None,
    segment_tokens: int = MAX_SEGMENT_TOKENS,
) -> LoadedModel:
    """Base from the manifest's preset (tiny: from its seed; official-v2: `weights_dir/gpt.pth`, or
    `$INDEXTTS_WEIGHTS_DIR`), checked against the recorded fingerprint, with the adapter merged.

    The adapter is merged in float32 on the host (one rounding of base + update, not two), then the
    merged model is moved to `placement` (default: `resolve_placement()`, i.e. CUDA when present,
    float32)."""
    placement = placement or resolve_placement()
    files = PackageFiles(Path(package_dir))
    manifest = verify_package(files.root)
    config = GPTConfig.from_dict(files.read_gpt_config())
    recorded = manifest.get("model_version", "v2")
    if recorded != config.version:
        raise PackageError(f"{files.root}: manifest says {recorded}, its GPT config is {config.version}")
    preset = manifest["preset"]
    base = BaseSpec(preset, weights_file(preset, weights_dir), int(manifest.get("seed", 0)), config)
    have, want = base.fingerprint(), manifest["base_fingerprint"]
    if have != want:
        raise PackageError(f"adapter was trained on base {want}, this base is {have}")
    try:
        if manifest.get("method", "lora") == "full":  # the whole fine-tuned GPT, on the base's config
            model = base.build()
            strict_load(model, load_file(str(files.full_weights)))
        else:
            model = load_merged(base.build(), files.adapter)
    except (RuntimeError, ValueError, KeyError, CheckpointError) as exc:
        raise PackageError(
            f"{files.adapter}: adapter does not fit the base model ({_first_line(exc)})"
        ) from None
    placement.module(model.eval())
    return LoadedModel(
        model,
        _tokenizer(files.tokenizer, config, manifest.get("language")),
        load_conditioning(files.conditioning, config),
        base,
        package=files.root,
        manifest=manifest,
        adapted=True,
        weights_dir=weights_dir_or_env(weights_dir),
        segment_tokens=segment_tokens,
    )


def load_parts(
    preset: str,
    conditioning: str | Path,
    *,
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    placement: Placement | None = None,
    segment_tokens: int = MAX_SEGMENT_TOKENS,
    language: str | None = None,
) -> LoadedModel:
    """A base (`weights`, or the tiny preset's seed-0 weights) with a conditioning file and a
    tokenizer (default for tiny: the tiny BPE), no adapter: what `generate` runs. The conditioning
    must have been computed on this base (one-line `ConditioningError` otherwise)."""
    placement = placement or resolve_placement()
    base = BaseSpec(preset, Path(weights) if weights else None)
    model = base.build()  # first: a missing official checkpoint is the first thing to say
    if tokenizer is not None:
        text = _tokenizer(Path(tokenizer), base.gpt_config, language)
    elif preset in RANDOM_PRESETS and not base.gpt_config.is_v25:
        text = tiny_tokenizer()
    else:
        raise InputError(
            f"preset {preset!r} needs its tokenizer (bpe.model, 2.5: the tiktoken file; generate: --bpe)"
        )
    cond = load_conditioning(conditioning, base.gpt_config)
    check_conditioning_base(cond, conditioning, base)
    placement.module(model)
    return LoadedModel(model, text, cond, base, segment_tokens=segment_tokens)


def _tokenizer(path: Path, config: GPTConfig, language: str | None) -> TextTokenizer | LanguageTokenizer:
    """v2's SentencePiece model, or 2.5's tiktoken file bound to the text language (default en)."""
    if config.is_v25:
        return LanguageTokenizer.from_file(path, language or "en")
    return TextTokenizer(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
