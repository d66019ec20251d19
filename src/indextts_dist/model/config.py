"""The GPT-stage configuration: the official `gpt:` block of IndexTTS2's `config.yaml`, key for key.

Keeping the official key names means a user can paste the block from the released `config.yaml`
(or a reference file's `config`) and get the model that loads `gpt.pth` strictly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import InputError

__all__ = [
    "LANGUAGE_ROWS",
    "PRESETS",
    "RANDOM_PRESETS",
    "SPK_COND_MODES",
    "STYLE_DIM",
    "ConditionModuleConfig",
    "GPTConfig",
    "is_random_preset",
    "preset",
]

SPK_COND_MODES = ("conformer", "campplus")
"""The official `spk_cond_mode` values: v2's conformer + perceiver speaker path, 2.5's CAMPPlus row."""

STYLE_DIM = 192
"""Width of the CAMPPlus style vector that 2.5's `spk_emb_proj` maps to one prefix row."""

LANGUAGE_ROWS = 107
"""Rows of 2.5's `lang_embedding`: the 106 entries of the official `LANGUAGE_DICT` plus one never
indexed (SPEC_2_5 §1.1)."""


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class ConditionModuleConfig:
    """One conformer + perceiver conditioning path (the speaker or the emotion one)."""

    output_size: int = 512
    """Conformer width (also the perceiver's context width)."""
    linear_units: int = 2048
    """Conformer feed-forward inner width."""
    attention_heads: int = 8
    """Heads of the conformer's attention and of the perceiver's cross-attention (64 dims each)."""
    num_blocks: int = 6
    """Number of conformer blocks."""
    input_layer: str = "conv2d2"
    """Subsampling front; only `conv2d2` (stride-2 Conv2d, ~25 Hz) exists in IndexTTS2."""
    perceiver_mult: int = 2
    """Perceiver feed-forward multiplier (GEGLU inner width = int(dim * mult * 2 / 3))."""

    def __post_init__(self) -> None:
        if self.input_layer != "conv2d2":
            raise InputError(
                f"condition module input_layer {self.input_layer!r} is not supported (only conv2d2)"
            )
        if self.output_size % self.attention_heads:
            raise InputError(
                f"condition module output_size {self.output_size} is not divisible by "
                f"attention_heads {self.attention_heads}"
            )
        for name in ("output_size", "linear_units", "attention_heads", "num_blocks", "perceiver_mult"):
            if getattr(self, name) <= 0:
                raise InputError(f"condition module {name} must be positive, got {getattr(self, name)}")


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class GPTConfig:
    """The `gpt:` block of the official `config.yaml` (v2 and 2.5), with the same keys and meanings.

    `spk_cond_mode` is the constructor argument the official inference scripts pass beside the
    block ("conformer" for v2, "campplus" for 2.5); it is kept here so one config rebuilds either.
    """

    model_dim: int = 1280
    """Width of the GPT-2 backbone and of the 32 conditioning latents."""
    max_mel_tokens: int = 1815
    """Longest code sequence; the mel position table has max_mel_tokens + 2 + max_conditioning_inputs rows."""
    max_text_tokens: int = 600
    """Longest text; the text position table has max_text_tokens + 2 rows."""
    heads: int = 20
    """GPT-2 attention heads."""
    layers: int = 24
    """GPT-2 blocks."""
    number_text_tokens: int = 12000
    """Tokenizer size; the text embedding/head have number_text_tokens + 1 rows."""
    number_mel_codes: int = 8194
    """Semantic codebook size + start + stop."""
    start_mel_token: int = 8192
    """Code that opens the mel block."""
    stop_mel_token: int = 8193
    """Code that ends generation (and pads targets)."""
    start_text_token: int = 0
    """Id that opens the text block (SentencePiece `<s>`)."""
    stop_text_token: int = 1
    """Id that closes the text block (SentencePiece `</s>`)."""
    use_mel_codes_as_input: bool = True
    """v2 embeds codes with an `nn.Embedding`; False (a mel encoder) does not exist in v2."""
    train_solo_embeddings: bool = False
    """v2 has no solo embeddings."""
    mel_length_compression: int = 1024
    """Unused by v2; kept so the official block round-trips."""
    max_conditioning_inputs: int = 1
    """Adds one row to the mel position table (official constructor default)."""
    condition_num_latent: int = 32
    """Perceiver latents of the speaker path (rows of the conditioning prefix before e and speed)."""
    condition_type: str = "conformer_perceiver"
    """Only the v2 conditioning type is supported."""
    checkpointing: bool = True
    """Gradient checkpointing in the backbone during training; no effect on weights."""
    types: int = 1
    """Text token types (the text table has number_text_tokens * types + 1 rows)."""
    spk_cond_mode: str = "conformer"
    """'conformer' (v2: 34-row prefix, speed rows) or 'campplus' (2.5: 3-row prefix from a CAMPPlus
    style vector, `lang_embedding` on every text position)."""
    condition_module: ConditionModuleConfig = field(default_factory=ConditionModuleConfig)
    """Speaker conformer + perceiver (v2 only; 2.5 reads it from the block but builds nothing from it)."""
    emo_condition_module: ConditionModuleConfig = field(
        default_factory=lambda: ConditionModuleConfig(linear_units=1024, attention_heads=4, num_blocks=4)
    )
    """Emotion conformer + perceiver."""

    def __post_init__(self) -> None:
        if self.spk_cond_mode not in SPK_COND_MODES:
            raise InputError(
                f"spk_cond_mode {self.spk_cond_mode!r} is not supported; choose one of: "
                f"{', '.join(SPK_COND_MODES)}"
            )
        if self.condition_type != "conformer_perceiver":
            raise InputError(f"condition_type {self.condition_type!r} is not supported (IndexTTS2 v2 only)")
        if not self.use_mel_codes_as_input:
            raise InputError("use_mel_codes_as_input=false is not an IndexTTS2 v2 model")
        if self.train_solo_embeddings:
            raise InputError("train_solo_embeddings=true is not an IndexTTS2 v2 model")
        if self.model_dim % self.heads:
            raise InputError(f"model_dim {self.model_dim} is not divisible by heads {self.heads}")
        if not (
            0 <= self.start_mel_token < self.number_mel_codes
            and 0 <= self.stop_mel_token < self.number_mel_codes
        ):
            raise InputError("start/stop mel tokens must lie inside number_mel_codes")

    # Derived sizes -------------------------------------------------------------------------------
    @property
    def text_vocab_rows(self) -> int:
        """Rows of `text_embedding` / `text_head`."""
        return self.number_text_tokens * self.types + 1

    @property
    def mel_positions(self) -> int:
        """Rows of `mel_pos_embedding` (the official +2 +max_conditioning_inputs)."""
        return self.max_mel_tokens + 2 + self.max_conditioning_inputs

    @property
    def text_positions(self) -> int:
        """Rows of `text_pos_embedding`."""
        return self.max_text_tokens + 2

    @property
    def is_v25(self) -> bool:
        """The 2.5 layout: CAMPPlus speaker row, zero tail rows, language embedding."""
        return self.spk_cond_mode == "campplus"

    @property
    def version(self) -> str:
        """'v2' or 'v2.5': what a package records and what base weights it accepts."""
        return "v2.5" if self.is_v25 else "v2"

    @property
    def speaker_rows(self) -> int:
        """Rows of the stored speaker conditioning: 32 perceiver latents (v2) or proj(style) (2.5)."""
        return 1 if self.is_v25 else self.condition_num_latent

    @property
    def prefix_rows(self) -> int:
        """Conditioning prefix: the speaker rows (+ e), then two rows (v2: speed_emb[1], speed_emb[0];
        2.5: zeros). 34 for v2, 3 for 2.5."""
        return self.speaker_rows + 2

    @property
    def codebook_size(self) -> int:
        """Semantic codes proper (without start/stop)."""
        return self.number_mel_codes - 2

    # (De)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Build from an official `gpt:` block (extra unknown keys are an error, not silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown GPT config keys: {', '.join(unknown)}")
        values = dict(data)
        for key in ("condition_module", "emo_condition_module"):
            if key in values and isinstance(values[key], dict):
                values[key] = ConditionModuleConfig(**values[key])
        return cls(**values)


def _tiny(**overrides: Any) -> GPTConfig:
    """The tiny preset: the reference file's shapes, a 256-piece tokenizer and a 64-code codebook.

    Random weights: it exists so tests, CI and the demo run the same code fast. It does not speak.
    """
    values: dict[str, Any] = {
        "model_dim": 64,
        "max_mel_tokens": 400,
        "max_text_tokens": 120,
        "heads": 4,
        "layers": 2,
        "number_text_tokens": 256,
        "number_mel_codes": 66,
        "start_mel_token": 64,
        "stop_mel_token": 65,
        "checkpointing": False,
        "condition_module": ConditionModuleConfig(
            output_size=32, linear_units=64, attention_heads=4, num_blocks=2, perceiver_mult=2
        ),
        "emo_condition_module": ConditionModuleConfig(
            output_size=32, linear_units=48, attention_heads=2, num_blocks=1, perceiver_mult=2
        ),
    }
    values.update(overrides)
    return GPTConfig(**values)


def _mini() -> GPTConfig:
    """The mini preset: the same code at a size that LEARNS on 2 CPU cores (4 layers × 256), with
    the tiny BPE, the tiny random w2v-BERT and a 1024-code random codec (`codec_preset("mini")`):
    large enough that the official repetition penalty over every code already said does not exhaust
    the vocabulary within a sentence. Its weights start random; a mini base is pretrained here on
    synthetic speech (`train --method full`). Not IndexTTS2 quality (`model.MINI_LABEL`)."""
    return GPTConfig(
        model_dim=256,
        max_mel_tokens=800,
        max_text_tokens=120,
        heads=4,
        layers=4,
        number_text_tokens=256,
        number_mel_codes=1026,
        start_mel_token=1024,
        stop_mel_token=1025,
        checkpointing=False,
        condition_module=ConditionModuleConfig(
            output_size=64, linear_units=128, attention_heads=4, num_blocks=2, perceiver_mult=2
        ),
        emo_condition_module=ConditionModuleConfig(
            output_size=32, linear_units=64, attention_heads=2, num_blocks=1, perceiver_mult=2
        ),
    )


V25_TEXT_TOKENS = 60509
"""2.5's `number_text_tokens`: the tiktoken vocabulary's 58,836 ranks + 1,673 specials (cfg:9)."""

PRESETS: dict[str, GPTConfig] = {
    "official-v2": GPTConfig(),
    "tiny": _tiny(),
    # The `gpt:` block of configs/config_v2_5.yaml@aa01d63 (SPEC_2_5 §1.2) with spk_cond_mode="campplus".
    "official-v2.5": GPTConfig(number_text_tokens=V25_TEXT_TOKENS, spk_cond_mode="campplus"),
    # The tiny sizes in the 2.5 layout. The text table keeps the full 2.5 vocabulary so the real
    # tiktoken front end's ids (up to 60,508) fit; everything else is as small as `tiny`.
    "tiny-v2.5": _tiny(number_text_tokens=V25_TEXT_TOKENS, spk_cond_mode="campplus"),
    "mini": _mini(),
}


RANDOM_PRESETS: tuple[str, ...] = ("tiny", "tiny-v2.5", "mini")
"""Presets whose base is drawn from a seed (unless a weights file is given), with seeded random
w2v-BERT and codec too (the v2 ones a tiny BPE trained on the fly; tiny-v2.5 the real tiktoken file
shipped with the references): no weights file is needed to run them."""


def is_random_preset(name: str) -> bool:
    """True for the tiny and mini presets, whose weights are drawn from a seed unless a file is given."""
    return name in RANDOM_PRESETS


def preset(name: str) -> GPTConfig:
    """Return a named preset (`official-v2`, `tiny`, `mini`, `official-v2.5` or `tiny-v2.5`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
