"""Recompute the IndexTTS-2.5 GPT stage's reference outputs (REFERENCE_2_5.md §1) from the inputs.

The same `UnifiedVoice` as v2 in its "campplus" mode. The file holds the official training-style
forward without the language row (`*_nolang`, `mel_latents`) and the inference-consistent one with it
(`text_logits`, `mel_logits`, `mel_latents_lang`); both are recomputed, and so is greedy decoding
(codes and every step's raw logits, which exercise the +1 mel-position skip and the language row).
"""

from __future__ import annotations

import torch

from ..generate import prepare_prompt
from ..model import UnifiedVoice
from .gpt import aligned_sequences, greedy_padded, load_reference_model, need_inputs
from .report import ReferenceFile

__all__ = ["recompute_gpt_v25"]

_INPUTS = (
    "campplus", "emo_feats", "emo_feat_lengths", "spk_feats", "spk_feat_lengths",
    "text_ids", "text_lengths", "langs", "codes", "code_lengths", "alpha",
)  # fmt: skip


def _items(ids: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    return [row[: int(n)].tolist() for row, n in zip(ids, lengths, strict=True)]


def _prefill_quirk(
    model: UnifiedVoice, conds: torch.Tensor, ids: torch.Tensor, lang: int
) -> dict[str, torch.Tensor]:
    """The official prefill for one text with 0s and 1s inside (`prepare_gpt_inputs`).

    The official code deletes the 0/1 ids but keeps the text block at the *raw* width, so the prompt
    gets as many extra left-padding rows as ids were deleted. They are masked, so nothing the model
    computes depends on them; they are added here only to compare shapes with the file. The ids HF
    sees are 1 everywhere and the start code last (what `generate`'s `_initial_seen` penalises)."""
    prompt = prepare_prompt(model, conds, [ids[0].tolist()], [lang])
    official_rows = conds.size(1) + ids.size(1) + 2
    extra = official_rows - (prompt.embeddings.size(1) - 1)
    embeds = torch.nn.functional.pad(prompt.embeddings[:, :-1], (0, 0, extra, 0))
    mask = torch.nn.functional.pad(prompt.attention_mask, (extra, 0))
    fake_ids = torch.ones_like(mask)
    fake_ids[:, -1] = model.cfg.start_mel_token
    return {"prefill_embeds_quirk": embeds, "prefill_mask_quirk": mask, "prefill_ids_quirk": fake_ids}


@torch.no_grad()
def recompute_gpt_v25(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Build the 2.5 `UnifiedVoice` from the file's config, load `model.*` strictly, recompute every
    output from the inputs alone (our own conditioning feeds our own logits)."""
    model = load_reference_model(ref, "campplus")
    need_inputs(ref, *_INPUTS)
    inp = ref.inputs
    emo_feats, emo_lengths = inp["emo_feats"].float(), inp["emo_feat_lengths"].long()
    spk_feats, spk_lengths = inp["spk_feats"].float(), inp["spk_feat_lengths"].long()
    text_ids, text_lengths = inp["text_ids"].long(), inp["text_lengths"].long()
    codes, code_lengths = inp["codes"].long(), inp["code_lengths"].long()
    langs = inp["langs"].long()

    spk = model.project_style(inp["campplus"].float())
    emo_raw = model.get_emo_raw(emo_feats, emo_lengths)
    emo_vec = model.emo_layer(model.emovec_layer(emo_raw))
    merged = model.merge_emo_vec(spk_feats, emo_feats, spk_lengths, emo_lengths, float(inp["alpha"]))
    conds = model.build_prefix(spk, emo_vec)
    out = {
        "spk_latent": spk,
        "emo_raw": emo_raw,
        "emo_vec": emo_vec,
        "emo_vec_merged": merged,
        "conds": conds,
    }
    out.update(aligned_sequences(model, text_ids, text_lengths, codes, code_lengths))
    out["lang_rows"] = model.lang_embedding(langs)

    # The official training forward: no language row.
    h_text, h_mel = model.hidden(
        conds, model.embed_text_rows(out["text_inputs"]), model.embed_mel(out["mel_inputs"])
    )
    out["text_logits_nolang"] = model.text_head(h_text).transpose(1, 2)  # official logits are vocab-major
    out["mel_logits_nolang"] = model.mel_head(h_mel).transpose(1, 2)
    out["mel_latents"] = h_mel[:, :-2]
    # Teacher forcing consistent with inference: the language row on every text position.
    tf = model(conds, text_ids, text_lengths, codes, code_lengths, langs=langs)
    out["text_logits"] = tf.text_logits.transpose(1, 2)
    out["mel_logits"] = tf.mel_logits.transpose(1, 2)
    out["mel_latents_lang"] = tf.mel_latents

    texts = _items(text_ids, text_lengths)
    if "greedy_codes" in ref.outputs or "greedy_step_logits" in ref.outputs:
        key = "greedy_codes" if "greedy_codes" in ref.outputs else "greedy_step_logits"
        steps = ref.outputs[key].shape[1]
        logits: list[torch.Tensor] = []
        out["greedy_codes"] = greedy_padded(model, conds[:1], texts[:1], steps, langs[:1].tolist(), logits)
        out["greedy_step_logits"] = torch.stack(logits, dim=1)
    if "greedy_codes_batch" in ref.outputs:
        steps = ref.outputs["greedy_codes_batch"].shape[1]
        out["greedy_codes_batch"] = greedy_padded(model, conds, texts, steps, langs.tolist())
    if "text_ids_quirk" in inp:
        out.update(_prefill_quirk(model, conds[:1], inp["text_ids_quirk"].long(), int(langs[0])))
    return out
