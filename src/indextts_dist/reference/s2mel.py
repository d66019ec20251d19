"""Recompute the second stage's reference outputs (S2MEL.md (k)) from a reference file's inputs.

The file holds four model parts (`model.s2mel.*`, `model.codec.quantizer.*`, `model.campplus.*`,
`model.bigvgan.*`) and four output groups (`output.frontend.*`, `output.campplus.*`,
`output.bigvgan.*`, `output.s2mel.*`). Every output is recomputed from `input.*` and the weights;
within the S2Mel pipeline each step consumes OUR upstream results (our ref_mel, our S_ref, our
content embedding), so a divergence upstream shows up downstream too.
"""

from __future__ import annotations

from typing import Any

import torch

from ..codec.quantizer import ResidualVQ
from ..model.checkpoint import strict_load_module
from ..speech.bigvgan import BigVGANConfig, load_bigvgan
from ..speech.campplus import CAMPPlusConfig, load_campplus
from ..speech.frontend import kaldi_fbank, log_mel, resample_22050_to_16000
from ..speech.s2mel import codes_to_content, load_s2mel
from ..speech.s2mel_config import S2MelConfig
from .report import ReferenceError, ReferenceFile

__all__ = ["ESTIMATOR_TAPS", "S2MEL_ATOL", "recompute_s2mel"]

S2MEL_ATOL = 1e-4
"""S2MEL.md (k): every float output within atol 1e-4 (observed <= 5e-6), integers exactly."""

ESTIMATOR_TAPS = (
    "t1",
    "t2",
    "cond_proj",
    "x_in",
    "block_out",
    "transformer_out",
    "skip_out",
    "wavenet_out",
    "final_layer_out",
)
_PIPELINE_TAPS = (
    "gpt_layer_out",
    "S_infer",
    "target_lengths",
    "cond",
    "prompt_condition",
    "cat_condition",
    "euler_t",
    "euler_x_in",
    "euler_v",
    "mel_full",
)


def _need(ref: ReferenceFile, *names: str) -> None:
    missing = [n for n in names if n not in ref.inputs]
    if missing:
        raise ReferenceError(f"reference lacks input tensor(s): {', '.join('input.' + n for n in missing)}")


def _part(ref: ReferenceFile, part: str) -> dict[str, torch.Tensor]:
    prefix = f"{part}."
    state = {k[len(prefix) :]: v for k, v in ref.model.items() if k.startswith(prefix)}
    if not state:
        raise ReferenceError(f"reference lacks model.{part}.* tensors")
    return state


def _config(ref: ReferenceFile, name: str) -> dict[str, Any]:
    cfg = ref.meta["config"].get(name)
    if not isinstance(cfg, dict):
        raise ReferenceError(f"reference config lacks the '{name}' block")
    return cfg


def _wanted(ref: ReferenceFile, group: str) -> bool:
    return any(k.startswith(group + ".") for k in ref.outputs)


def build_quantizer(ref: ReferenceFile) -> ResidualVQ:
    """The codec quantizer from `config.codec_quantizer` and `model.codec.quantizer.*`, strictly loaded."""
    q = _config(ref, "codec_quantizer")
    vq = ResidualVQ(q["num_quantizers"], q["hidden_size"], q["codebook_size"], q["codebook_dim"])
    state = {k.removeprefix("quantizer."): v.float() for k, v in _part(ref, "codec").items()}
    strict_load_module(vq, state, "reference model.codec.*", what="codec quantizer")
    return vq.eval()


def recompute_frontend(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """`frontend.wav_16k` and `frontend.fbank` from `input.frontend.wav_22k` (S2MEL.md (b.1), (b.3))."""
    _need(ref, "frontend.wav_22k")
    wav16 = resample_22050_to_16000(ref.inputs["frontend.wav_22k"].float())
    fbank = torch.stack([kaldi_fbank(row) for row in wav16])
    return {"frontend.wav_16k": wav16, "frontend.fbank": fbank}


def recompute_campplus(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Every `campplus.*` stage and the style from `input.campplus.feat` (S2MEL.md (c))."""
    _need(ref, "campplus.feat")
    cfg = CAMPPlusConfig.from_dict(_config(ref, "campplus"))
    model = load_campplus({k: v.float() for k, v in _part(ref, "campplus").items()}, cfg)
    stages: dict[str, torch.Tensor] = {}
    style = model(ref.inputs["campplus.feat"].float(), stages)
    out = {f"campplus.{k}": v for k, v in stages.items() if k != "dense"}
    out["campplus.style"] = style
    return out


def recompute_bigvgan(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Every `bigvgan.*` tap from `input.bigvgan.mel`; `act_out` from `input.bigvgan.act_x` (S2MEL.md (g))."""
    _need(ref, "bigvgan.mel")
    cfg = BigVGANConfig.from_dict(_config(ref, "bigvgan"))
    model = load_bigvgan({k: v.float() for k, v in _part(ref, "bigvgan").items()}, cfg)
    _, taps = model.forward_with_intermediates(ref.inputs["bigvgan.mel"].float())
    out = {f"bigvgan.{k}": v for k, v in taps.items()}
    if "bigvgan.act_x" in ref.inputs:
        out["bigvgan.act_out"] = model.resblocks[0].activations[0](ref.inputs["bigvgan.act_x"].float())
    return out


def recompute_s2mel_stage(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """The `s2mel.*` outputs: ref_mel, content path, estimator taps, Euler-CFG sampler (S2MEL.md (a)-(f))."""
    _need(ref, "s2mel.codes", "s2mel.gpt_latent", "s2mel.ref_codes", "s2mel.ref_wav_22k", "s2mel.style")
    cfg = S2MelConfig.from_dict(_config(ref, "s2mel"))
    model = load_s2mel({k: v.float() for k, v in _part(ref, "s2mel").items()}, cfg)
    quantizer = build_quantizer(ref)
    inp = lambda k: ref.inputs[f"s2mel.{k}"]  # noqa: E731
    out: dict[str, torch.Tensor] = {}

    ref_mel = log_mel(inp("ref_wav_22k").float())
    s_ref = codes_to_content(quantizer, inp("ref_codes").long())
    content = codes_to_content(quantizer, inp("codes").long())
    out.update({"s2mel.ref_mel": ref_mel, "s2mel.S_ref": s_ref, "s2mel.content_emb": content})

    steps = ref.outputs["s2mel.euler_t"].shape[0] if "s2mel.euler_t" in ref.outputs else 25
    trace: dict[str, Any] = {}
    mel = model.infer(
        content,
        inp("gpt_latent").float(),
        s_ref,
        ref_mel,
        inp("style").float(),
        n_timesteps=steps,
        noise=inp("noise").float() if "s2mel.noise" in ref.inputs else None,
        trace=trace,
    )
    out.update({f"s2mel.{k}": trace[k] for k in _PIPELINE_TAPS if k in trace})
    out["s2mel.mel"] = mel

    est = ("est_x", "est_prompt_x", "est_x_lens", "est_t", "est_style", "est_cond")
    if all(f"s2mel.{k}" in ref.inputs for k in est):
        taps: dict[str, Any] = {}
        v = model.cfm.estimator(
            inp("est_x").float(),
            inp("est_prompt_x").float(),
            inp("est_x_lens").long(),
            inp("est_t").float(),
            inp("est_style").float(),
            inp("est_cond").float(),
            trace=taps,
        )
        out.update({f"s2mel.est_{k}": taps[k] for k in ESTIMATOR_TAPS if k in taps})
        out["s2mel.est_out"] = v
    return out


@torch.no_grad()
def recompute_s2mel(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Recompute every `output.*` group present in the file (frontend, campplus, bigvgan, s2mel)."""
    out: dict[str, torch.Tensor] = {}
    for group, fn in (
        ("frontend", recompute_frontend),
        ("campplus", recompute_campplus),
        ("bigvgan", recompute_bigvgan),
        ("s2mel", recompute_s2mel_stage),
    ):
        if _wanted(ref, group):
            out.update(fn(ref))
    return out
