"""IndexTTS2's GPT stage (`UnifiedVoice`): conditioning encoders, embeddings, GPT-2 backbone, heads.

Reads top to bottom as SPEC.md §a, §b and §e. The backbone is `transformers.GPT2Model` with its token
table deleted and its position table replaced by zeros: every position signal comes from our own
learned text/mel tables, and the 34-row conditioning prefix gets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model

from .config import GPTConfig
from .conformer import FEATURE_DIM, ConformerEncoder
from .perceiver import PerceiverResampler

__all__ = ["CONDITIONING_MODULES", "TeacherForced", "UnifiedVoice"]

EMO_PERCEIVER_DIM = 1024
"""The emotion perceiver always works at 1024 dims; `emovec_layer` maps it to model_dim."""

CONDITIONING_MODULES = (
    "conditioning_encoder",
    "perceiver_encoder",
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
        if offset + length > self.emb.num_embeddings:
            raise ValueError(
                f"sequence of {offset + length} positions exceeds the table's {self.emb.num_embeddings} rows"
            )
        idx = torch.arange(offset, offset + length, device=self.emb.weight.device)
        return self.emb(idx)


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
            self.conditioning_encoder = ConformerEncoder(spk, FEATURE_DIM)
            self.perceiver_encoder = PerceiverResampler(
                d, spk.output_size, cfg.condition_num_latent, spk.attention_heads, spk.perceiver_mult
            )
            self.emo_conditioning_encoder = ConformerEncoder(emo, FEATURE_DIM)
            self.emo_perceiver_encoder = PerceiverResampler(
                EMO_PERCEIVER_DIM, emo.output_size, 1, emo.attention_heads, emo.perceiver_mult
            )
        self.text_embedding = nn.Embedding(cfg.text_vocab_rows, d)
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
        self.speed_emb = nn.Embedding(2, d)
        nn.init.normal_(self.text_embedding.weight, std=0.02)
        nn.init.normal_(self.mel_embedding.weight, std=0.02)
        nn.init.zeros_(self.speed_emb.weight)

    @property
    def has_conditioning_encoders(self) -> bool:
        return hasattr(self, "conditioning_encoder")

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
        """w2v-BERT features [B, T, 1024] with true lengths -> speaker latents [B, 32, D]."""
        self._require_encoders()
        hidden, mask = self.conditioning_encoder(feats, lengths)
        return self.perceiver_encoder(hidden, mask)

    def get_emo_raw(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Emotion conformer + perceiver: [B, 1024] (before `emovec_layer`)."""
        self._require_encoders()
        hidden, mask = self.emo_conditioning_encoder(feats, lengths)
        return self.emo_perceiver_encoder(hidden, mask).squeeze(1)

    def get_emo_vec(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The emotion vector e [B, D] = emo_layer(emovec_layer(emo_raw))."""
        return self.emo_layer(self.emovec_layer(self.get_emo_raw(feats, lengths)))

    def build_prefix(self, spk_latents: torch.Tensor, emo_vec: torch.Tensor) -> torch.Tensor:
        """[L + e ; speed_emb[1] ; speed_emb[0]]: the 34-row prefix, [B, 34, D] (batch dims broadcast)."""
        if spk_latents.dim() == 2:
            spk_latents = spk_latents.unsqueeze(0)
        if emo_vec.dim() == 1:
            emo_vec = emo_vec.unsqueeze(0)
        batch = max(spk_latents.size(0), emo_vec.size(0))
        body = (spk_latents + emo_vec.unsqueeze(1)).expand(batch, -1, -1)
        speed = self.speed_emb.weight[[1, 0]].to(body.dtype)
        return torch.cat([body, speed.unsqueeze(0).expand(batch, -1, -1)], dim=1)

    # Sequences (SPEC §e) -------------------------------------------------------------------------
    def align_text(self, text_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_and_align(text_ids, lengths, self.cfg.start_text_token, self.cfg.stop_text_token)

    def align_mel(self, codes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_and_align(codes, lengths, self.cfg.start_mel_token, self.cfg.stop_mel_token)

    def embed_text(self, text_inputs: torch.Tensor) -> torch.Tensor:
        return self.text_embedding(text_inputs) + self.text_pos_embedding(text_inputs.size(1))

    def embed_mel(self, mel_inputs: torch.Tensor, position_offset: int = 0) -> torch.Tensor:
        positions = self.mel_pos_embedding(mel_inputs.size(1), position_offset)
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
    ) -> TeacherForced:
        """Teacher-forced pass: prefix [B|1, 34, D], padded text ids and codes with their true lengths."""
        text_inputs, text_targets = self.align_text(text_ids, text_lengths)
        mel_inputs, mel_targets = self.align_mel(codes, code_lengths)
        if prefix.size(0) != text_ids.size(0):
            prefix = prefix.expand(text_ids.size(0), -1, -1)
        h_text, h_mel = self.hidden(prefix, self.embed_text(text_inputs), self.embed_mel(mel_inputs))
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
    ) -> TeacherForced:
        """Teacher-forced pass where each item is laid out as it is at batch size 1:
        `[prefix | <s> text </s> | <start> codes <stop>]`, right-padded, with an attention mask.

        The official forward keeps the text block at its padded width and attends the padding, so an
        item's logits change with the other items' lengths. Here every real position sees exactly
        what it sees alone (and at inference), so a batch's loss is independent of its padding.
        Outputs have the official shapes; positions past an item's length hold junk (masked by the loss).
        """
        text_inputs, text_targets = self.align_text(text_ids, text_lengths)
        mel_inputs, mel_targets = self.align_mel(codes, code_lengths)
        batch, rows = text_ids.size(0), prefix.size(1)
        text_emb, mel_emb = self.embed_text(text_inputs), self.embed_mel(mel_inputs)
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
