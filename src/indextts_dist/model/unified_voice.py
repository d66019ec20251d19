"""IndexTTS2's GPT stage (`UnifiedVoice`): conditioning encoders, embeddings, GPT-2 backbone, heads.

Reads top to bottom as SPEC.md §a, §b and §e. The backbone is `transformers.GPT2Model` with its token
table deleted and its position table replaced by zeros: every position signal comes from our own
learned text/mel tables, and the conditioning prefix gets none.

One class serves both releases, switched by `GPTConfig.spk_cond_mode` as in the official code
(SPEC_2_5 §0): v2 ("conformer") builds the speaker conformer + perceiver and `speed_emb` (34-row
prefix); 2.5 ("campplus") builds `spk_emb_proj` (a CAMPPlus style vector -> one row, then two zero
rows: a 3-row prefix) and `lang_embedding`, added to every text position. Everything else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model

from .config import LANGUAGE_ROWS, STYLE_DIM, GPTConfig
from .conformer import FEATURE_DIM, ConformerEncoder
from .perceiver import PerceiverResampler

__all__ = ["CONDITIONING_MODULES", "MelPositions", "TeacherForced", "UnifiedVoice"]

MelPositions = Literal["training", "official"]
"""Mel positions of a teacher-forced block `[start, c1..cL, stop]`: 'training' = 0, 1, ..., L+1 (the
official training forward); 'official' = 0, 2, 3, ..., L+2, the positions official inference gives
(generated code k sits at k + 1, SPEC §f / SPEC_2_5 §5.3), so training can match what generation sees."""

EMO_PERCEIVER_DIM = 1024
"""The emotion perceiver always works at 1024 dims; `emovec_layer` maps it to model_dim."""

CONDITIONING_MODULES = (
    "conditioning_encoder",
    "perceiver_encoder",
    "spk_emb_proj",
    "emo_conditioning_encoder",
    "emo_perceiver_encoder",
    "emovec_layer",
    "emo_layer",
)
"""Top-level modules only needed to *compute* a conditioning, not to train or generate with one."""


class ZeroPositions(nn.Module):
    """Stands in for GPT-2's `wpe`: the backbone must add no positional signal of its own.

    Returns a 0-dim zero: broadcasting adds nothing, and a 0-dim tensor never changes the dtype of
    `inputs_embeds` (bf16 stays bf16 even though DeepSpeed keeps buffers in fp32).
    """

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), device=position_ids.device)


class LearnedPositions(nn.Module):
    """A learned table indexed 0..len-1 within one segment (key `*.emb.weight`)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(rows, dim)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        return self.at(torch.arange(offset, offset + length, device=self.emb.weight.device))

    def at(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows at explicit positions (any shape), with a one-line error past the table."""
        rows = self.emb.num_embeddings
        if idx.numel() and int(idx.max()) >= rows:
            raise ValueError(f"sequence of {int(idx.max()) + 1} positions exceeds the table's {rows} rows")
        return self.emb(idx)


def mel_position_ids(length: int, mode: MelPositions, device: torch.device) -> torch.Tensor:
    """Positions of a mel block of `length` rows under `mode` (see `MelPositions`)."""
    idx = torch.arange(length, device=device)
    if mode == "official":
        return torch.where(idx > 0, idx + 1, idx)
    if mode != "training":
        raise ValueError(f"mel_positions must be 'training' or 'official', got {mode!r}")
    return idx


def build_backbone(cfg: GPTConfig) -> GPT2Model:
    """GPT-2 as the official model builds it (SPEC §a): wte deleted, wpe zeroed."""
    gpt_config = GPT2Config(
        vocab_size=256,
        n_positions=cfg.mel_positions + cfg.text_positions,
        n_embd=cfg.model_dim,
        n_layer=cfg.layers,
        n_head=cfg.heads,
        use_cache=True,
        bos_token_id=None,  # the backbone never sees token ids
        eos_token_id=None,
    )
    gpt = GPT2Model(gpt_config)
    del gpt.wte
    gpt.wpe = ZeroPositions()
    return gpt


@dataclass
class TeacherForced:
    """What one teacher-forced pass computes (logits are [B, len, V], positions aligned with targets)."""

    text_logits: torch.Tensor
    mel_logits: torch.Tensor
    text_targets: torch.Tensor
    mel_targets: torch.Tensor
    mel_latents: torch.Tensor
    """Final-normed hidden states of the mel block without its last two rows: what S2Mel consumes."""


def pad_and_align(
    ids: torch.Tensor, lengths: torch.Tensor, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official alignment (SPEC §e.1-2): stop over padding plus one appended, start prepended for inputs."""
    positions = torch.arange(ids.size(1), device=ids.device)[None, :]
    ids = torch.where(positions < lengths[:, None], ids, torch.full_like(ids, stop))
    ids = nn.functional.pad(ids, (0, 1), value=stop)
    inputs = nn.functional.pad(ids, (1, 0), value=start)
    targets = nn.functional.pad(ids, (0, 1), value=stop)
    return inputs, targets


class UnifiedVoice(nn.Module):
    """The GPT stage. Build with `with_conditioning_encoders=False` to train or generate from a stored
    conditioning: the encoders (a third of the parameters at v2 size) are then never allocated."""

    def __init__(self, cfg: GPTConfig, with_conditioning_encoders: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.model_dim
        if with_conditioning_encoders:
            spk, emo = cfg.condition_module, cfg.emo_condition_module
            if cfg.is_v25:
                self.spk_emb_proj = nn.Linear(STYLE_DIM, d)
            else:
                self.conditioning_encoder = ConformerEncoder(spk, FEATURE_DIM)
                self.perceiver_encoder = PerceiverResampler(
                    d, spk.output_size, cfg.condition_num_latent, spk.attention_heads, spk.perceiver_mult
                )
            self.emo_conditioning_encoder = ConformerEncoder(emo, FEATURE_DIM)
            self.emo_perceiver_encoder = PerceiverResampler(
                EMO_PERCEIVER_DIM, emo.output_size, 1, emo.attention_heads, emo.perceiver_mult
            )
        self.text_embedding = nn.Embedding(cfg.text_vocab_rows, d)
        if cfg.is_v25:
            self.lang_embedding = nn.Embedding(LANGUAGE_ROWS, d)
        if with_conditioning_encoders:
            self.emo_layer = nn.Linear(d, d)
            self.emovec_layer = nn.Linear(EMO_PERCEIVER_DIM, d)
        self.mel_embedding = nn.Embedding(cfg.number_mel_codes, d)
        self.gpt = build_backbone(cfg)
        self.mel_pos_embedding = LearnedPositions(cfg.mel_positions, d)
        self.text_pos_embedding = LearnedPositions(cfg.text_positions, d)
        self.final_norm = nn.LayerNorm(d, eps=1e-5)
        self.text_head = nn.Linear(d, cfg.text_vocab_rows)
        self.mel_head = nn.Linear(d, cfg.number_mel_codes)
        if not cfg.is_v25:
            self.speed_emb = nn.Embedding(2, d)
            nn.init.zeros_(self.speed_emb.weight)
        nn.init.normal_(self.text_embedding.weight, std=0.02)
        nn.init.normal_(self.mel_embedding.weight, std=0.02)

    @property
    def has_conditioning_encoders(self) -> bool:
        return hasattr(self, "emo_conditioning_encoder")

    def drop_conditioning_encoders(self) -> UnifiedVoice:
        """Free the encoders (e.g. after building random weights in the one canonical order)."""
        for name in CONDITIONING_MODULES:
            if hasattr(self, name):
                delattr(self, name)
        return self

    # Conditioning (SPEC §b) ---------------------------------------------------------------------
    def _require_encoders(self) -> None:
        if not self.has_conditioning_encoders:
            raise RuntimeError("this UnifiedVoice was built without conditioning encoders")

    def get_conditioning(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """v2: w2v-BERT features [B, T, 1024] with true lengths -> speaker latents [B, 32, D]."""
        self._require_encoders()
        if self.cfg.is_v25:
            raise RuntimeError("a 2.5 (campplus) UnifiedVoice takes a CAMPPlus style: use project_style")
        hidden, mask = self.conditioning_encoder(feats, lengths)
        return self.perceiver_encoder(hidden, mask)

    def project_style(self, style: torch.Tensor) -> torch.Tensor:
        """2.5: CAMPPlus style [B, 192] (or [B, 1, 192]) -> the speaker row [B, 1, D] (`spk_emb_proj`)."""
        self._require_encoders()
        if not self.cfg.is_v25:
            raise RuntimeError("a v2 (conformer) UnifiedVoice has no spk_emb_proj: use get_conditioning")
        rows = self.spk_emb_proj(style)
        return rows if rows.dim() == 3 else rows.unsqueeze(1)

    def get_emo_raw(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Emotion conformer + perceiver: [B, 1024] (before `emovec_layer`)."""
        self._require_encoders()
        hidden, mask = self.emo_conditioning_encoder(feats, lengths)
        return self.emo_perceiver_encoder(hidden, mask).squeeze(1)

    def get_emo_vec(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The emotion vector e [B, D] = emo_layer(emovec_layer(emo_raw))."""
        return self.emo_layer(self.emovec_layer(self.get_emo_raw(feats, lengths)))

    def merge_emo_vec(
        self,
        base_feats: torch.Tensor,
        emo_feats: torch.Tensor,
        base_lengths: torch.Tensor,
        emo_lengths: torch.Tensor,
        alpha: float,
    ) -> torch.Tensor:
        """`base + alpha * (emo - base)` of the two prompts' emotion vectors (the official
        `merge_emovec`): alpha 1 is the emotion prompt's vector, 0 the speaker prompt's."""
        base = self.get_emo_vec(base_feats, base_lengths)
        return base + alpha * (self.get_emo_vec(emo_feats, emo_lengths) - base)

    def build_prefix(self, spk_rows: torch.Tensor, emo_vec: torch.Tensor) -> torch.Tensor:
        """[S + e ; tail]: the conditioning prefix [B, prefix_rows, D] (batch dims broadcast).

        S is the speaker conditioning (v2: 32 latents; 2.5: the one `project_style` row); the two tail
        rows are `speed_emb[1], speed_emb[0]` in v2 and zeros in 2.5 (SPEC_2_5 §3.3)."""
        if spk_rows.dim() == 2:
            spk_rows = spk_rows.unsqueeze(0)
        if emo_vec.dim() == 1:
            emo_vec = emo_vec.unsqueeze(0)
        batch = max(spk_rows.size(0), emo_vec.size(0))
        body = (spk_rows + emo_vec.unsqueeze(1)).expand(batch, -1, -1)
        if self.cfg.is_v25:
            tail = body.new_zeros(2, body.size(-1))
        else:
            tail = self.speed_emb.weight[[1, 0]].to(body.dtype)
        return torch.cat([body, tail.unsqueeze(0).expand(batch, -1, -1)], dim=1)

    # Sequences (SPEC §e) -------------------------------------------------------------------------
    def align_text(self, text_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_and_align(text_ids, lengths, self.cfg.start_text_token, self.cfg.stop_text_token)

    def align_mel(self, codes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_and_align(codes, lengths, self.cfg.start_mel_token, self.cfg.stop_mel_token)

    def embed_text(self, text_inputs: torch.Tensor, langs: torch.Tensor | None = None) -> torch.Tensor:
        """Token rows + text positions (+ 2.5's `lang_embedding(langs)` on every position).

        A 2.5 model needs `langs` ([B] `LANGUAGE_DICT` indices): official inference adds the row and
        its teacher forcing without it differs by ~1.3 in the logits (SPEC_2_5 §5.2). Only the
        reference check of the official no-language forward calls `embed_text_rows` without it."""
        emb = self.embed_text_rows(text_inputs)
        if self.cfg.is_v25:
            if langs is None:
                raise ValueError("a 2.5 UnifiedVoice needs the language ids (langs) of its texts")
            emb = emb + self.lang_embedding(langs.to(text_inputs.device)).unsqueeze(1)
        elif langs is not None:
            raise ValueError("a v2 UnifiedVoice has no language embedding; langs must be None")
        return emb

    def embed_text_rows(self, text_inputs: torch.Tensor) -> torch.Tensor:
        """`text_embedding + text_pos`, without any language row (the official training forward)."""
        return self.text_embedding(text_inputs) + self.text_pos_embedding(text_inputs.size(1))

    def embed_mel(
        self, mel_inputs: torch.Tensor, position_offset: int = 0, mel_positions: MelPositions = "training"
    ) -> torch.Tensor:
        """Code rows + mel positions; `position_offset` places a one-code step while decoding."""
        if position_offset:
            positions = self.mel_pos_embedding(mel_inputs.size(1), position_offset)
        else:
            idx = mel_position_ids(mel_inputs.size(1), mel_positions, mel_inputs.device)
            positions = self.mel_pos_embedding.at(idx)
        return self.mel_embedding(mel_inputs) + positions

    def hidden(
        self, prefix: torch.Tensor, text_emb: torch.Tensor, mel_emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One causal pass over [prefix | text | mel] with no attention mask (as the official forward):
        returns the final-normed hidden states of the text block and of the mel block."""
        emb = torch.cat([prefix.to(text_emb.dtype), text_emb, mel_emb], dim=1)
        out = self.gpt(inputs_embeds=emb, use_cache=False).last_hidden_state
        h = self.final_norm(out[:, prefix.size(1) :])
        return h[:, : text_emb.size(1)], h[:, text_emb.size(1) :]

    def forward(
        self,
        prefix: torch.Tensor,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        codes: torch.Tensor,
        code_lengths: torch.Tensor,
        langs: torch.Tensor | None = None,
        mel_positions: MelPositions = "training",
    ) -> TeacherForced:
        """Teacher-forced pass: prefix [B|1, prefix_rows, D], padded text ids and codes with their true
        lengths, and (2.5) the language ids of the texts."""
        text_inputs, text_targets = self.align_text(text_ids, text_lengths)
        mel_inputs, mel_targets = self.align_mel(codes, code_lengths)
        if prefix.size(0) != text_ids.size(0):
            prefix = prefix.expand(text_ids.size(0), -1, -1)
        text_emb = self.embed_text(text_inputs, langs)
        h_text, h_mel = self.hidden(prefix, text_emb, self.embed_mel(mel_inputs, mel_positions=mel_positions))
        return self._teacher_forced(h_text, h_mel, text_targets, mel_targets)

    def _teacher_forced(
        self, h_text: torch.Tensor, h_mel: torch.Tensor, text_targets: torch.Tensor, mel_targets: torch.Tensor
    ) -> TeacherForced:
        return TeacherForced(
            text_logits=self.text_head(h_text),
            mel_logits=self.mel_head(h_mel),
            text_targets=text_targets,
            mel_targets=mel_targets,
            mel_latents=h_mel[:, :-2],
        )

    # duplicates: the same five inputs as `forward` on purpose: one batch, two layouts (padded as the
    # official forward, or packed as at batch size 1); callers switch layout, not arguments.
    def forward_packed(
        self,
        prefix: torch.Tensor,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        codes: torch.Tensor,
        code_lengths: torch.Tensor,
        langs: torch.Tensor | None = None,
        mel_positions: MelPositions = "training",
    ) -> TeacherForced:
        """Teacher-forced pass where each item is laid out as it is at batch size 1:
        `[prefix | <s> text </s> | <start> codes <stop>]`, right-padded, with an attention mask.

        The official forward keeps the text block at its padded width and attends the padding, so an
        item's logits change with the other items' lengths. Here every real position sees exactly
        what it sees alone (and at inference), so a batch's loss is independent of its padding.
        Outputs have the official shapes; positions past an item's length hold junk (masked by the loss).
        `langs` (2.5: the language row on every text position) and `mel_positions` (the training
        layout, or the one official inference gives) are as in `forward`.
        """
        text_inputs, text_targets = self.align_text(text_ids, text_lengths)
        mel_inputs, mel_targets = self.align_mel(codes, code_lengths)
        batch, rows = text_ids.size(0), prefix.size(1)
        text_emb = self.embed_text(text_inputs, langs)
        mel_emb = self.embed_mel(mel_inputs, mel_positions=mel_positions)
        text_w, mel_w = text_emb.size(1), mel_emb.size(1)
        device = text_emb.device
        width = rows + text_w + mel_w
        text_span = text_lengths[:, None] + 2
        j_text = torch.arange(text_w, device=device)[None, :]
        j_mel = torch.arange(mel_w, device=device)[None, :]
        text_pos = rows + j_text.expand(batch, -1)
        mel_pos = rows + text_span + j_mel  # the mel block starts right after this item's own text
        seq = torch.zeros(batch, width, text_emb.size(-1), dtype=text_emb.dtype, device=device)
        seq[:, :rows] = prefix.to(text_emb.dtype).expand(batch, -1, -1)
        b = torch.arange(batch, device=device)[:, None]
        text_real = j_text < text_span
        mel_real = j_mel < code_lengths[:, None] + 2
        seq = seq.index_put((b.expand_as(text_pos)[text_real], text_pos[text_real]), text_emb[text_real])
        seq = seq.index_put((b.expand_as(mel_pos)[mel_real], mel_pos[mel_real]), mel_emb[mel_real])
        length = rows + text_span[:, 0] + code_lengths + 2
        mask = (torch.arange(width, device=device)[None, :] < length[:, None]).long()
        hidden = self.final_norm(
            self.gpt(inputs_embeds=seq, attention_mask=mask, use_cache=False).last_hidden_state
        )
        h_mel = hidden[b, mel_pos.clamp_max(width - 1)]
        return self._teacher_forced(hidden[b, text_pos], h_mel, text_targets, mel_targets)
