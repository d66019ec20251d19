"""The assembled IndexTTS2 second stage: codes + GPT latents + speaker embeddings → 22 050 Hz waveform.

Components (all reused, reference-exact): the codec quantizer (`RepCodec`), the w2v-BERT features (for
the reference's S_ref), S2Mel (gpt_layer + length regulator + CFM/DiT), CAMPPlus (style) and BigVGAN.
Data flow: `shared/indextts2/S2MEL.md` (a).

Speaker embeddings (`speaking_patterns_guide.md`): `style` is CAMPPlus over the mean-removed Kaldi fbank
of each clip's 16 kHz copy, averaged over the speaker's clips; `ref_mel` (log-mel of the 22 050 Hz
reference, cut to 15 s) and `prompt_condition` (length regulator over the codec's quantized S_ref,
stretched to the ref_mel length) come from one reference clip, by default the longest.

Official weights layout (`SecondStage.official(weights_dir)`)::

    weights_dir/s2mel.pth                         S2Mel (['net'] groups cfm / length_regulator / gpt_layer)
    weights_dir/campplus_cn_common.bin            CAMPPlus state dict (torch file, weights_only)
    weights_dir/bigvgan/bigvgan_generator.pt      BigVGAN v2 22 kHz 80-band 256x generator
    weights_dir/bigvgan/config.json              (optional) its config; the official config if absent
    weights_dir/semantic_codec/model.safetensors  MaskGCT semantic codec
    weights_dir/w2v-bert-2.0/, weights_dir/wav2vec2bert_stats.pt   w2v-BERT 2.0 features
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from indextts_dist.audio import ClipRejected, load_audio
from indextts_dist.codec import EnhancedCodec, build_codec, load_codec
from indextts_dist.features import SemanticFeatures
from indextts_dist.model.checkpoint import CheckpointError
from indextts_dist.model.config import STYLE_DIM
from indextts_dist.placement import to_host
from indextts_dist.speech.bigvgan import BIGVGAN_TINY, BigVGAN, BigVGANConfig, build_bigvgan, load_bigvgan
from indextts_dist.speech.campplus import CAMPPLUS_TINY, CAMPPlus, build_campplus, load_campplus
from indextts_dist.speech.cfm import DEFAULT_CFG_RATE, DEFAULT_STEPS
from indextts_dist.speech.frontend import kaldi_fbank, log_mel, resample_22050_to_16000
from indextts_dist.speech.length_regulator import target_lengths
from indextts_dist.speech.s2mel import S2Mel, build_s2mel, codes_to_content, load_s2mel
from indextts_dist.speech.s2mel_config import s2mel_preset
from indextts_dist.utils.atomic import atomic_write_bytes

from ..errors import InputError, MissingFileError
from ..weights_layout import WeightsLayoutV25, weights_layout

__all__ = [
    "MAX_REFERENCE_S",
    "MIN_REFERENCE_S",
    "OUTPUT_SAMPLE_RATE",
    "SecondStage",
    "SpeakerEmbeddings",
    "load_speaker_embeddings",
    "save_speaker_embeddings",
]

OUTPUT_SAMPLE_RATE = 22050
MAX_REFERENCE_S = 15.0
"""The official prompt cut: the first 15 s (330 750 samples at 22 050 Hz)."""
MIN_REFERENCE_S = 0.5
"""Shortest usable clip: ≥ 43 mel frames, enough fbank frames for CAMPPlus and w2v-BERT frames for S_ref."""
SILENCE_PEAK = 1e-3
"""A clip whose absolute peak is below this (−60 dBFS) is treated as silent."""
TINY_GPT_DIM = 64
"""`indextts_dist.model.preset("tiny").model_dim`: the width of the tiny GPT's latents."""

_FORMAT = "indextts-speaker-embeddings-v1"


@dataclass(frozen=True)
class SpeakerEmbeddings:
    """style [S], ref_mel [80, T_ref], prompt_condition [T_ref, C] (float32 on the host as stored;
    `to` puts them beside a second stage that was moved)."""

    style: torch.Tensor
    ref_mel: torch.Tensor
    prompt_condition: torch.Tensor

    def __post_init__(self) -> None:
        _validate(self.style, self.ref_mel, self.prompt_condition, "speaker embeddings")

    def to(self, device: torch.device | str, dtype: torch.dtype) -> SpeakerEmbeddings:
        """The same embeddings on `device` in `dtype` (the second stage's placement)."""
        return SpeakerEmbeddings(
            *(t.to(device=device, dtype=dtype) for t in (self.style, self.ref_mel, self.prompt_condition))
        )


def _validate(style: torch.Tensor, ref_mel: torch.Tensor, prompt: torch.Tensor, source: str) -> None:
    if style.dim() != 1:
        raise InputError(f"{source}: style must be [S], got {list(style.shape)}")
    if ref_mel.dim() != 2 or ref_mel.shape[0] != 80 or ref_mel.shape[1] < 1:
        raise InputError(f"{source}: ref_mel must be [80, T], got {list(ref_mel.shape)}")
    if prompt.dim() != 2 or prompt.shape[0] != ref_mel.shape[1]:
        raise ValueError(
            f"{source}: prompt_condition must be [T_ref={ref_mel.shape[1]}, C], got {list(prompt.shape)}"
        )
    for name, t in (("style", style), ("ref_mel", ref_mel), ("prompt_condition", prompt)):
        if not t.is_floating_point() or not torch.isfinite(t).all():
            raise InputError(f"{source}: {name} must be finite floats")


def save_speaker_embeddings(
    emb: SpeakerEmbeddings, path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write `emb` as safetensors (keys style, ref_mel, prompt_condition), atomically. `metadata`
    (strings) is stored beside the format tag: preprocess records there which clips and which
    CAMPPlus the style comes from (`conditioning.speaker_metadata`)."""
    tensors = {
        "style": emb.style.detach().float().cpu().contiguous(),
        "ref_mel": emb.ref_mel.detach().float().cpu().contiguous(),
        "prompt_condition": emb.prompt_condition.detach().float().cpu().contiguous(),
    }
    return atomic_write_bytes(path, st_save(tensors, metadata={**(metadata or {}), "format": _FORMAT}))


def load_speaker_embeddings(
    path: str | Path, *, style_dim: int | None = None, condition_dim: int | None = None
) -> SpeakerEmbeddings:
    """Read and validate a file written by `save_speaker_embeddings` (one-line ValueError naming it)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: speaker embeddings file not found")
    try:
        tensors = st_load(path.read_bytes())
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a safetensors speaker-embeddings file ({reason})") from exc
    for key in ("style", "ref_mel", "prompt_condition"):
        if key not in tensors:
            raise InputError(f"{path}: missing tensor {key!r}")
    style, ref_mel, prompt = tensors["style"], tensors["ref_mel"], tensors["prompt_condition"]
    _validate(style, ref_mel, prompt, str(path))
    if style_dim is not None and style.shape[0] != style_dim:
        raise InputError(f"{path}: style has width {style.shape[0]}, the model expects {style_dim}")
    if condition_dim is not None and prompt.shape[1] != condition_dim:
        raise ValueError(
            f"{path}: prompt_condition has width {prompt.shape[1]}, the model expects {condition_dim}"
        )
    return SpeakerEmbeddings(style.float(), ref_mel.float(), prompt.float())


class SecondStage:
    """Codec quantizer + w2v-BERT features + S2Mel + CAMPPlus + BigVGAN, in eval mode.

    Built on the host in float32; `to(device, dtype)` moves the codec, S2Mel, CAMPPlus and BigVGAN
    together (the w2v-BERT features, used only to compute speaker embeddings, stay where they are and
    hand their output over), and every tensor made while rendering follows `self.device/dtype`.
    """

    def __init__(
        self,
        codec: nn.Module,
        features: SemanticFeatures,
        s2mel: S2Mel,
        campplus: CAMPPlus,
        bigvgan: BigVGAN,
    ) -> None:
        self.codec = codec.eval()
        self.features = features
        self.s2mel = s2mel.eval()
        self.campplus = campplus.eval()
        self.bigvgan = bigvgan.eval()
        if campplus.config.embedding_size != s2mel.cfg.style_dim:
            raise ValueError(
                f"CAMPPlus width {campplus.config.embedding_size} != S2Mel style_dim {s2mel.cfg.style_dim}"
            )
        if bigvgan.config.total_upsample != 256:
            raise InputError("BigVGAN must upsample 256x (hop 256)")
        if bigvgan.config.sampling_rate != OUTPUT_SAMPLE_RATE:
            raise ValueError(
                f"BigVGAN is a {bigvgan.config.sampling_rate} Hz vocoder; S2Mel's mels are "
                f"{OUTPUT_SAMPLE_RATE} Hz (use bigvgan_v2_22khz_80band_256x)"
            )

    # ------------------------------------------------------------------ placement
    def _modules(self) -> tuple[nn.Module, ...]:
        return (self.codec, self.s2mel, self.campplus, self.bigvgan)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> SecondStage:
        """Move the rendering modules (and CAMPPlus) to `device` in `dtype`; returns self."""
        for module in self._modules():
            module.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.s2mel.gpt_layer[0].weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.s2mel.gpt_layer[0].weight.dtype

    def _precision(self) -> torch.autocast:
        """Full precision: autocast off, every op in float32 as the reference does. Half precision:
        autocast in the stage's dtype, because S2Mel keeps float32 islands on purpose (RoPE, the
        timestep embedding's sinusoids, the length regulator's index math) and autocast is what
        lets their float32 outputs meet half-precision layers (matmuls and convolutions run in the
        stage's dtype, reductions autocast keeps in float32)."""
        half = torch.finfo(self.dtype).bits < 32
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=half)

    def _place(self, t: torch.Tensor) -> torch.Tensor:
        """An input on this stage's device, floating ones in its dtype."""
        if t.is_floating_point():
            return t.to(device=self.device, dtype=self.dtype)
        return t.to(device=self.device)

    # ------------------------------------------------------------------ construction
    @property
    def is_v25(self) -> bool:
        """IndexTTS-2.5's second stage: content from `EnhancedCodec.decode(codes)`, no GPT latents."""
        return isinstance(self.codec, EnhancedCodec)

    @classmethod
    def tiny(cls, seed: int = 0, gpt_dim: int = TINY_GPT_DIM, codec_preset: str = "tiny") -> SecondStage:
        """Seeded random weights at the tiny sizes (64-code codec, GPT width 64, tiny S2Mel etc.);
        the mini preset's is the same with its GPT width (256) and its 1024-code codec. The
        tiny-v2.5 one has the 25 Hz codec and a 192-wide style: 2.5's GPT projects that very
        CAMPPlus style (`spk_emb_proj` takes 192), so its CAMPPlus must give the official width."""
        codec = build_codec(codec_preset, seed=seed)
        features = SemanticFeatures.tiny(seed)
        camp_cfg = CAMPPLUS_TINY
        s2mel_cfg = replace(s2mel_preset("tiny"), gpt_latent_dim=gpt_dim)
        if isinstance(codec, EnhancedCodec):
            camp_cfg = replace(CAMPPLUS_TINY, embedding_size=STYLE_DIM)
            s2mel_cfg = replace(s2mel_cfg, style_dim=STYLE_DIM)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # The tiny S2Mel preset keeps the reference's 1280-wide gpt_layer; our tiny GPT emits 64.
            s2mel = build_s2mel(s2mel_cfg)
            campplus = build_campplus(camp_cfg)
            bigvgan = build_bigvgan(BIGVGAN_TINY)
        return cls(codec, features, s2mel, campplus, bigvgan)

    @classmethod
    def official(cls, weights_dir: str | Path, preset: str = "official-v2") -> SecondStage:
        """Load the released files from `weights_dir` (layout in the module docstring); preset
        `official-v2.5`: the same S2Mel/CAMPPlus/BigVGAN files with 2.5's `codec.pth`."""
        layout = weights_layout(preset, weights_dir)
        s2mel_path, campplus_path = layout.s2mel, layout.campplus
        bigvgan_dir, bigvgan_path = layout.bigvgan_dir, layout.bigvgan_generator
        codec_path = layout.codec if isinstance(layout, WeightsLayoutV25) else layout.semantic_codec
        w2v_config = layout.w2v_bert_dir / "config.json"
        for path in (s2mel_path, campplus_path, bigvgan_path, codec_path, w2v_config):
            if not path.is_file():
                raise MissingFileError(f"{path}: missing second-stage weights file")
        s2mel = load_s2mel(s2mel_path, "official-v2")
        try:
            camp_state = torch.load(str(campplus_path), map_location="cpu", weights_only=True)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(f"{campplus_path}: not a readable checkpoint ({reason})") from exc
        if not isinstance(camp_state, dict):
            raise CheckpointError(f"{campplus_path}: expected a state dict of tensors")
        campplus = load_campplus(camp_state)
        cfg_path = bigvgan_dir / "config.json"
        bcfg = BigVGANConfig.from_dict(json.loads(cfg_path.read_text())) if cfg_path.is_file() else None
        bigvgan = load_bigvgan(bigvgan_path, bcfg)
        codec = load_codec(codec_path, "official-v2.5" if isinstance(layout, WeightsLayoutV25) else preset)
        features = SemanticFeatures.official(weights_dir)
        return cls(codec, features, s2mel, campplus, bigvgan)

    # ------------------------------------------------------------------ reference side
    @staticmethod
    def _load_clip(path: str | Path) -> torch.Tensor:
        """22 050 Hz mono float32 [L], cut to 15 s; too-short / silent clips are a one-line ClipRejected."""
        audio = load_audio(path, OUTPUT_SAMPLE_RATE)[: int(MAX_REFERENCE_S * OUTPUT_SAMPLE_RATE)]
        seconds = audio.shape[0] / OUTPUT_SAMPLE_RATE
        if seconds < MIN_REFERENCE_S:
            raise ClipRejected(
                path, "too_short", f"{seconds:.2f} s; a reference clip needs at least {MIN_REFERENCE_S} s"
            )
        peak = float(np.max(np.abs(audio)))
        if peak < SILENCE_PEAK:
            db = 20 * math.log10(peak) if peak > 0 else float("-inf")
            raise ClipRejected(path, "silent", f"peak {db:.1f} dBFS; a reference clip must contain speech")
        return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))

    @torch.no_grad()
    def _style(self, wav_16k: torch.Tensor) -> torch.Tensor:
        fbank = kaldi_fbank(wav_16k)
        with self._precision():
            return self.campplus(self._place(fbank - fbank.mean(dim=0, keepdim=True))[None])[0]

    @torch.no_grad()
    def clip_style(self, path: str | Path) -> torch.Tensor:
        """One clip's CAMPPlus style [S] on this stage's device, computed exactly as
        `speaker_embeddings` computes each clip's before averaging: preprocess sums these per clip
        (with the GPT conditioning) so the speaker's mean style needs no second pass over the audio."""
        return self._style(resample_22050_to_16000(self._load_clip(path)[None])[0])

    @torch.no_grad()
    def _reference(self, wav_22k: torch.Tensor, wav_16k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ref_mel = log_mel(wav_22k[None])  # [1, 80, T_ref]
        feats = self.features(wav_16k.numpy())  # [N_ref, 1024]
        with self._precision():
            if self.is_v25:  # 2.5 regulates the reference's w2v-BERT features themselves (SPEC_2_5 §8)
                s_ref = self._place(feats[None])
            else:
                _, s_ref = self.codec.quantize(self._place(feats[None]))  # [1, N_ref, 1024]
            prompt = self.s2mel.prompt_condition(s_ref, ref_mel.shape[-1])  # [1, T_ref, C]
        return ref_mel[0], prompt[0]

    @torch.no_grad()
    def speaker_embeddings(
        self, clip_paths: Sequence[str | Path], reference: str | Path | None = None
    ) -> SpeakerEmbeddings:
        """style = mean CAMPPlus style over `clip_paths`; ref_mel + prompt_condition from `reference`
        (default: the longest clip, by duration after the 15 s cut)."""
        paths = [Path(p) for p in clip_paths]
        if not paths and reference is None:
            raise InputError("speaker_embeddings needs at least one clip")
        styles = []
        longest: tuple[int, torch.Tensor, torch.Tensor] | None = None
        for path in paths:
            wav = self._load_clip(path)
            wav16 = resample_22050_to_16000(wav[None])[0]
            styles.append(self._style(wav16))
            if longest is None or wav.shape[0] > longest[0]:
                longest = (wav.shape[0], wav, wav16)
        if reference is not None:
            wav = self._load_clip(reference)
            wav16 = resample_22050_to_16000(wav[None])[0]
            if not styles:
                styles.append(self._style(wav16))
        else:
            assert longest is not None
            _, wav, wav16 = longest
        ref_mel, prompt = self._reference(wav, wav16)
        style = torch.stack(styles).mean(dim=0)
        return SpeakerEmbeddings(*(to_host(t).contiguous() for t in (style, ref_mel, prompt)))

    # ------------------------------------------------------------------ generation side
    @torch.no_grad()
    def mel(
        self,
        codes: torch.Tensor,
        gpt_latents: torch.Tensor | None,
        emb: SpeakerEmbeddings,
        *,
        steps: int = DEFAULT_STEPS,
        cfg_rate: float = DEFAULT_CFG_RATE,
        seed: int = 0,
        speed: float = 1.0,
    ) -> torch.Tensor:
        """codes [N], gpt_latents [N, D] → generated mel [1, 80, ⌊1.72·N⌋] (prompt frames removed);
        `speed` ≠ 1 makes it ⌊1.72·N / speed⌋ frames (`length_regulator.target_lengths`).
        2.5 (`is_v25`): 25 Hz codes, `gpt_latents` unused (None), the content is
        `codec.decode(codes)` [1, 2N, 1024] and the mel has ⌊2N·1.72 / speed⌋ frames."""
        codes = torch.as_tensor(codes)
        if codes.dim() != 1 or codes.numel() == 0:
            raise ValueError(f"codes must be a non-empty [N] tensor, got shape {list(codes.shape)}")
        if not self.is_v25:
            self._check_latents(codes, gpt_latents)
        if emb.style.shape[0] != self.s2mel.cfg.style_dim:
            raise ValueError(
                f"style width {emb.style.shape[0]} != S2Mel style_dim {self.s2mel.cfg.style_dim}"
            )
        if emb.prompt_condition.shape[1] != self.s2mel.cfg.lr_channels:
            raise ValueError(
                f"prompt_condition width {emb.prompt_condition.shape[1]} != {self.s2mel.cfg.lr_channels}"
            )
        # The CFM noise is drawn in float32 by a generator on the stage's device and rounded to its
        # dtype, so a half-precision render starts from the float32 render's noise, rounded.
        with self._precision():
            if self.is_v25:
                content = self.codec.decode(self._place(codes.long())[None])  # [1, 2N, 1024]
                cond = self.s2mel.content_condition(self._place(content), speed=speed)
            else:
                assert gpt_latents is not None
                content = codes_to_content(self.codec, self._place(codes.long())[None])  # [1, N, 1024]
                cond = self.s2mel.generated_condition(
                    self._place(content), self._place(gpt_latents)[None], speed=speed
                )
            mu = torch.cat([self._place(emb.prompt_condition)[None], cond], dim=1)
            generator = torch.Generator(device=self.device).manual_seed(seed)
            mel_full = self.s2mel.cfm.inference(
                mu,
                self._place(emb.ref_mel)[None],
                self._place(emb.style)[None],
                n_timesteps=steps,
                cfg_rate=cfg_rate,
                generator=generator,
            )
        return mel_full[..., emb.ref_mel.shape[-1] :]

    def _check_latents(self, codes: torch.Tensor, gpt_latents: torch.Tensor | None) -> None:
        """v2's S2Mel input: one GPT latent per code, as wide as `gpt_layer` takes."""
        if gpt_latents is None or gpt_latents.dim() != 2 or gpt_latents.shape[0] != codes.shape[0]:
            shape = None if gpt_latents is None else list(gpt_latents.shape)
            raise ValueError(f"gpt_latents must be [N={codes.shape[0]}, D], got {shape}")
        width = self.s2mel.gpt_layer[0].in_features
        if gpt_latents.shape[1] != width:
            raise ValueError(f"gpt_latents have width {gpt_latents.shape[1]}, gpt_layer expects {width}")

    def content_frames(self, codes: int) -> int:
        """Content frames S2Mel regulates for `codes` codes: N (v2), 2N (2.5's decode at 50 Hz)."""
        return 2 * codes if self.is_v25 else codes

    @torch.no_grad()
    def synthesize(
        self, codes: torch.Tensor, gpt_latents: torch.Tensor | None, emb: SpeakerEmbeddings, **sampling: Any
    ) -> torch.Tensor:
        """→ float32 waveform [⌊1.72·N⌋ · 256] at 22 050 Hz, in [-1, 1], on this stage's device;
        `sampling` are `mel`'s settings (steps, cfg_rate, seed, speed)."""
        mel = self.mel(codes, gpt_latents, emb, **sampling)
        with self._precision():
            wav = self.bigvgan(self._place(mel))[0, 0]
        frames = self.content_frames(int(codes.shape[0]))
        expected = int(target_lengths(frames, sampling.get("speed", 1.0))) * 256
        if wav.shape[0] != expected:  # pragma: no cover - guaranteed by the 256x vocoder
            raise RuntimeError(f"vocoder produced {wav.shape[0]} samples, expected {expected}")
        return wav.float().contiguous()
