"""KV-cached autoregressive decoding of semantic codes from a conditioning prefix and text.

Mirrors the official inference path (SPEC §f, SPEC_2_5 §5.3): the prompt is `[prefix ; text]` (34
prefix rows in v2, 3 in 2.5, whose text rows also carry the language row), left-padded over the
batch, then the start code; every new code is embedded with `mel_embedding` plus a learned mel
position. By default that position follows the official path, where the k-th generated code gets
position k + 1 (one slot later than training); `mel_positions="training"` gives position k, the one
the model saw during training. Greedy, sampling and HF-style beam search/beam-sample are supported.

Placement: everything made while decoding (token ids, masks, the prompt, the KV cache) is created on
the device and in the dtype of the model's parameters, so the model runs wherever it was moved
(`indextts_dist.placement`). Scores are float32 whatever the model's dtype (see `_MelHead`); the codes
come back on the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from ..errors import InputError
from ..model.unified_voice import UnifiedVoice
from ..placement import placement_of, to_host
from .beams import BeamHypotheses
from .processors import apply_processors

__all__ = ["DecodingConfig", "GenerationResult", "generate_codes", "prepare_prompt"]


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class DecodingConfig:
    """Decoding settings; defaults are the official `IndexTTS2.infer` ones (SPEC §f.3)."""

    do_sample: bool = True
    """Sample (True) or take the best scores (False: greedy, or beam search with num_beams > 1)."""
    num_beams: int = 3
    """Beams; 1 = plain greedy/sampling."""
    top_k: int = 30
    """Keep the k best codes when sampling (0 = off)."""
    top_p: float = 0.8
    """Nucleus threshold when sampling (1.0 = off)."""
    temperature: float = 0.8
    """Divides the scores when sampling."""
    repetition_penalty: float = 10.0
    """HF repetition penalty over every code already in the sequence."""
    length_penalty: float = 0.0
    """Beam hypotheses are ranked by sum_logprobs / generated_len ** length_penalty."""
    max_new_tokens: int = 1500
    """Cap on generated codes (the official inference cap)."""
    mel_positions: Literal["official", "training"] = "official"
    """'official': generated code k at mel position k + 1 (bit-faithful); 'training': position k."""
    penalize_prompt_ids: bool = True
    """HF also penalises the ids of the (fake) prompt, 1 and the start code; keep for faithfulness."""
    seed: int | None = None
    """Seed of the sampling generator (None: non-deterministic)."""
    use_kv_cache: bool = True
    """False recomputes the whole sequence each step: the baseline that validates and measures the cache."""

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise InputError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise InputError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise InputError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.mel_positions not in ("official", "training"):
            raise InputError(f"mel_positions must be 'official' or 'training', got {self.mel_positions!r}")

    @classmethod
    def greedy(cls, max_new_tokens: int = 1500, **overrides: object) -> DecodingConfig:
        """Deterministic argmax decoding with no repetition penalty."""
        values: dict[str, object] = {
            "do_sample": False,
            "num_beams": 1,
            "repetition_penalty": 1.0,
            "max_new_tokens": max_new_tokens,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class GenerationResult:
    """Codes per input text (without the stop code) and whether each one stopped by itself."""

    codes: list[torch.Tensor]
    stopped: list[bool]


@dataclass
class Prompt:
    embeddings: torch.Tensor  # [B, P, D], left-padded, ends with the start code
    attention_mask: torch.Tensor  # [B, P]


def _strip_text_ids(ids: Sequence[int], model: UnifiedVoice) -> list[int]:
    special = {model.cfg.start_text_token, model.cfg.stop_text_token}
    return [int(i) for i in ids if int(i) not in special]


def _language_ids(
    model: UnifiedVoice, langs: Sequence[int] | None, count: int, device: torch.device
) -> list[torch.Tensor | None]:
    """One `[1]` language id per text for a 2.5 model (None for v2): what `embed_text` adds."""
    if not model.cfg.is_v25:
        if langs is not None:
            raise InputError("a v2 model takes no language ids")
        return [None] * count
    if langs is None or len(langs) != count:
        raise InputError(f"a 2.5 model needs one language id per text ({count} texts)")
    return [torch.tensor([int(lang)], device=device) for lang in langs]


def prepare_prompt(
    model: UnifiedVoice,
    prefix: torch.Tensor,
    texts: Sequence[Sequence[int]],
    langs: Sequence[int] | None = None,
) -> Prompt:
    """`[pad… ; prefix ; <s> text </s>] + [start code at mel position 0]`, left-padded (SPEC §f.1).

    Every 0 and 1 in a text is deleted before `<s>`/`</s>` are added (the official
    `prepare_gpt_inputs`; in 2.5 that also removes standalone `!` and `"`, SPEC_2_5 §4.3). A 2.5
    model needs `langs`, one `LANGUAGE_DICT` index per text."""
    cfg = model.cfg
    place = placement_of(model.mel_embedding)
    device, dtype = place.device, place.dtype
    if prefix.dim() == 2:
        prefix = prefix.unsqueeze(0)
    if prefix.size(0) not in (1, len(texts)):
        raise ValueError(f"prefix batch {prefix.size(0)} does not match {len(texts)} texts")
    lang_ids = _language_ids(model, langs, len(texts), device)
    rows = []
    for i, ids in enumerate(texts):
        ids = _strip_text_ids(ids, model)
        if len(ids) + 2 > cfg.text_positions:
            raise InputError(f"text of {len(ids)} tokens exceeds the model's limit of {cfg.max_text_tokens}")
        text = torch.tensor([cfg.start_text_token, *ids, cfg.stop_text_token], device=device)[None]
        item_prefix = prefix[i if prefix.size(0) > 1 else 0].to(device=device, dtype=dtype)
        rows.append(torch.cat([item_prefix, model.embed_text(text, lang_ids[i])[0]], dim=0))
    width = max(r.size(0) for r in rows)
    emb = torch.zeros(len(rows), width, cfg.model_dim, device=device, dtype=dtype)
    mask = torch.zeros(len(rows), width + 1, dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        emb[i, width - r.size(0) :] = r
        mask[i, width - r.size(0) :] = 1
    start = model.embed_mel(torch.full((len(rows), 1), cfg.start_mel_token, device=device))
    return Prompt(torch.cat([emb, start], dim=1), mask)


class _MelHead:
    """`final_norm` + `mel_head` on the last position, computed in float32 whatever the model's dtype.

    Why: in bfloat16 a logit keeps ~3 significant digits, so near-ties between codes flip, and the
    repetition penalty (x10), temperature, softmax and top-p cumsum all amplify that rounding into
    different codes. Upcasting only the last hidden state and the head (one [D] x [D, V] product per
    step, the weights converted once per `generate_codes` call) makes the scores as exact as the
    backbone's hidden state allows, at a cost that is negligible next to the transformer layers.
    In float32 it is bit-identical to `model.mel_head(model.final_norm(h))`.
    """

    def __init__(self, model: UnifiedVoice) -> None:
        norm, head = model.final_norm, model.mel_head
        self.shape, self.eps = norm.normalized_shape, norm.eps
        self.norm_weight, self.norm_bias = norm.weight.float(), norm.bias.float()
        self.weight = head.weight.float()
        self.bias = head.bias.float() if head.bias is not None else None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        h = F.layer_norm(hidden[:, -1].float(), self.shape, self.norm_weight, self.norm_bias, self.eps)
        return F.linear(h, self.weight, self.bias)


def _next_position(cfg: DecodingConfig, generated: int) -> int:
    """Mel position of the `generated`-th generated code (1-based)."""
    return generated + 1 if cfg.mel_positions == "official" else generated


@torch.no_grad()
def generate_codes(
    model: UnifiedVoice,
    prefix: torch.Tensor,
    texts: Sequence[Sequence[int]],
    cfg: DecodingConfig | None = None,
    langs: Sequence[int] | None = None,
    step_logits: list[torch.Tensor] | None = None,
) -> GenerationResult:
    """Generate semantic codes for each text under `prefix` ([R, D], [1, R, D] or [B, R, D]; R = the
    model's `prefix_rows`). A 2.5 model needs `langs` (one per text). With `step_logits` given (and
    one beam), each step's raw float32 scores [B, V] are appended to it, before any processor:
    what HF's `output_logits` returns, so a reference can check every step."""
    cfg = cfg or DecodingConfig()
    if not texts:
        return GenerationResult([], [])
    mcfg = model.cfg
    limit = mcfg.mel_positions - 1 - (1 if cfg.mel_positions == "official" else 0)
    max_new = min(cfg.max_new_tokens, limit)
    prompt = prepare_prompt(model, prefix, texts, langs)
    generator = torch.Generator(device=prompt.embeddings.device)
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    if cfg.num_beams == 1:
        return _decode_single(model, prompt, cfg, max_new, generator, step_logits)
    if step_logits is not None:
        raise InputError("step_logits are only recorded with num_beams = 1")
    return _decode_beams(model, prompt, cfg, max_new, generator)


def _initial_seen(model: UnifiedVoice, rows: int, cfg: DecodingConfig, device: torch.device) -> torch.Tensor:
    seen = torch.zeros(rows, model.cfg.number_mel_codes, dtype=torch.bool, device=device)
    if cfg.penalize_prompt_ids:
        # HF's prompt ids are 1 for every prefix/text slot and the start code; both get penalised.
        seen[:, [1, model.cfg.start_mel_token]] = True
    return seen


class _Backbone:
    """Runs the GPT over a growing sequence: with a KV cache (one new position per step), or, as the
    baseline that validates the cache and that `benchmarks/generate.py` measures, by recomputing the
    whole sequence every step."""

    def __init__(self, model: UnifiedVoice, use_cache: bool) -> None:
        self.model = model
        self.head = _MelHead(model)
        self.cache = DynamicCache() if use_cache else None
        self.history: torch.Tensor | None = None

    def _run(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            self.history = emb if self.history is None else torch.cat([self.history, emb], dim=1)
            out = self.model.gpt(inputs_embeds=self.history, attention_mask=mask, use_cache=False)
        else:
            out = self.model.gpt(inputs_embeds=emb, attention_mask=mask, cache=self.cache, use_cache=True)
        return self.head(out.last_hidden_state)

    def start(self, prompt_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._run(prompt_emb, mask)

    def step(self, tokens: torch.Tensor, mask: torch.Tensor, position: int) -> torch.Tensor:
        return self._run(self.model.embed_mel(tokens[:, None], position_offset=position), mask)

    def reorder(self, rows: torch.Tensor) -> None:
        if self.cache is not None:
            self.cache.reorder_cache(rows)
        elif self.history is not None:
            self.history = self.history[rows]


def _decode_single(
    model: UnifiedVoice,
    prompt: Prompt,
    cfg: DecodingConfig,
    max_new: int,
    generator: torch.Generator,
    step_logits: list[torch.Tensor] | None = None,
) -> GenerationResult:
    batch = prompt.embeddings.size(0)
    device = prompt.embeddings.device
    stop = model.cfg.stop_mel_token
    backbone = _Backbone(model, cfg.use_kv_cache)
    mask = prompt.attention_mask
    logits = backbone.start(prompt.embeddings, mask)
    seen = _initial_seen(model, batch, cfg, device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    generated: list[torch.Tensor] = []
    for step in range(1, max_new + 1):
        if step_logits is not None:
            step_logits.append(logits)
        scores = apply_processors(
            logits, seen, penalty=cfg.repetition_penalty, do_sample=cfg.do_sample,
            temp=cfg.temperature, k=cfg.top_k, p=cfg.top_p, min_keep=1,
        )  # fmt: skip
        if cfg.do_sample:
            tokens = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)
        else:
            tokens = scores.argmax(-1)
        tokens = torch.where(finished, torch.full_like(tokens, stop), tokens)
        generated.append(tokens)
        seen[torch.arange(batch, device=device), tokens] = True
        finished |= tokens == stop
        if bool(finished.all()) or step == max_new:
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        logits = backbone.step(tokens, mask, _next_position(cfg, step))
    return _collect(torch.stack(generated, dim=1), stop)


def _collect(rows: torch.Tensor, stop: int) -> GenerationResult:
    codes, stopped = [], []
    for row in to_host(rows):
        hits = (row == stop).nonzero()
        end = int(hits[0]) if len(hits) else row.numel()
        codes.append(row[:end])
        stopped.append(bool(len(hits)))
    return GenerationResult(codes, stopped)


def _decode_beams(
    model: UnifiedVoice, prompt: Prompt, cfg: DecodingConfig, max_new: int, generator: torch.Generator
) -> GenerationResult:
    """HF beam search / beam-sample with its BeamSearchScorer rules (SPEC §f.3)."""
    beams = cfg.num_beams
    batch = prompt.embeddings.size(0)
    device = prompt.embeddings.device
    stop = model.cfg.stop_mel_token
    vocab = model.cfg.number_mel_codes
    rows = batch * beams
    emb = prompt.embeddings.repeat_interleave(beams, dim=0)
    mask = prompt.attention_mask.repeat_interleave(beams, dim=0)
    backbone = _Backbone(model, cfg.use_kv_cache)
    logits = backbone.start(emb, mask)
    seen = _initial_seen(model, rows, cfg, device)
    beam_scores = logits.new_zeros(batch, beams)  # float32 scores, on the model's device
    beam_scores[:, 1:] = -1e9  # all beams start identical: let only the first one expand
    beam_scores = beam_scores.view(-1)
    hyps = [BeamHypotheses(beams, cfg.length_penalty) for _ in range(batch)]
    done = [False] * batch
    sequences = torch.zeros(rows, 0, dtype=torch.long, device=device)
    keep = 2 * beams
    for step in range(1, max_new + 1):
        log_probs = torch.log_softmax(logits, dim=-1)
        processed = apply_processors(
            log_probs, seen, penalty=cfg.repetition_penalty, do_sample=cfg.do_sample,
            temp=cfg.temperature, k=cfg.top_k, p=cfg.top_p, min_keep=2,
        )  # fmt: skip
        scores = (processed + beam_scores[:, None]).view(batch, beams * vocab)
        if cfg.do_sample:
            picks = torch.multinomial(scores.softmax(-1), keep, generator=generator)
            pick_scores = torch.gather(scores, -1, picks)
            pick_scores, order = torch.sort(pick_scores, descending=True, dim=-1)
            picks = torch.gather(picks, -1, order)
        else:
            pick_scores, picks = torch.topk(scores, keep, dim=-1)
        # One device -> host copy per step: the scorer's bookkeeping is plain Python.
        host_picks, host_scores = picks.tolist(), pick_scores.tolist()
        next_scores = [[0.0] * beams for _ in range(batch)]
        next_tok = [[stop] * beams for _ in range(batch)]
        next_row = [[0] * beams for _ in range(batch)]
        for b in range(batch):
            if done[b]:
                next_row[b] = [b * beams] * beams
                continue
            slot = 0
            for rank in range(keep):
                token = host_picks[b][rank] % vocab
                row = b * beams + host_picks[b][rank] // vocab
                score = host_scores[b][rank]
                if token == stop:
                    if rank < beams:
                        hyps[b].add(sequences[row].clone(), score, step - 1)
                    continue
                next_scores[b][slot], next_tok[b][slot], next_row[b][slot] = score, token, row
                slot += 1
                if slot == beams:
                    break
            done[b] = done[b] or hyps[b].is_done(max(host_scores[b]), step - 1)
        next_beam_scores = torch.tensor(next_scores, dtype=logits.dtype, device=device)
        next_tokens = torch.tensor(next_tok, dtype=torch.long, device=device)
        next_rows = torch.tensor(next_row, dtype=torch.long, device=device)
        beam_idx = next_rows.view(-1)
        beam_scores = next_beam_scores.view(-1)
        tokens = next_tokens.view(-1)
        sequences = torch.cat([sequences[beam_idx], tokens[:, None]], dim=1)
        seen = seen[beam_idx]
        seen[torch.arange(rows, device=device), tokens] = True
        if all(done) or step == max_new:
            break
        backbone.reorder(beam_idx)
        mask = torch.cat([mask[beam_idx], mask.new_ones(rows, 1)], dim=1)
        logits = backbone.step(tokens, mask, _next_position(cfg, step))
    codes, stopped = [], []
    final_scores = beam_scores.tolist()
    for b in range(batch):
        if not done[b]:
            for j in range(beams):
                row = b * beams + j
                hyps[b].add(sequences[row].clone(), final_scores[row], sequences.size(1), stopped=False)
        best, reached_stop = hyps[b].best()
        codes.append(to_host(best))
        stopped.append(reached_stop)
    return GenerationResult(codes, stopped)
