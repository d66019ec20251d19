"""Recompute the semantic codecs' reference outputs from a reference file's input: v2's RepCodec
(REFERENCE_CODEC.md) and 2.5's EnhancedCodec (REFERENCE_2_5.md §2)."""

from __future__ import annotations

import torch

from ..codec import CodecConfig, EnhancedCodec, RepCodec, new_codec, strict_load_codec
from .report import ReferenceError, ReferenceFile

__all__ = ["CODEC_ATOL", "recompute_codec", "recompute_codec_v25"]

CODEC_ATOL = 5e-5
"""Float tolerance. A faithful float32 re-implementation lands around 1e-6 to 1.1e-5 on the tiny
reference, depending on the CPU's kernels (1.1e-5 for `encoder_out` on an AVX2-only AMD EPYC);
REFERENCE_CODEC.md puts the smallest margin that could flip a code at 3.0e-4, far above this."""


def _load(ref: ReferenceFile, downsample_scale: int) -> tuple[RepCodec, torch.Tensor]:
    """The codec from the file's config (the constructor default `downsample_scale` comes from the
    verify kind when the block omits it, as the official blocks do), `model.*` loaded strictly."""
    config = {"downsample_scale": downsample_scale, **ref.meta["config"]}
    cfg = CodecConfig.from_dict(config)
    if cfg.downsample_scale != downsample_scale:
        raise ReferenceError(
            f"reference config has downsample_scale={cfg.downsample_scale}, "
            f"this kind needs {downsample_scale}"
        )
    model = new_codec(cfg).eval()
    strict_load_codec(model, {k: v.float() for k, v in ref.model.items()}, source="reference model.*")
    if "x" not in ref.inputs:
        raise ReferenceError("reference lacks input tensor(s): input.x")
    return model, ref.inputs["x"].float()


def _quantize_outputs(model: RepCodec, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What both codecs share; `vq2emb` is recomputed from OUR codes, so a wrong code shows up twice."""
    encoder_out = model.encode(x)
    codes, quantized = model.quantize(x)
    return {
        "encoder_out": encoder_out,
        "z_e": model.quantizer.quantizers[0].in_project(encoder_out),
        "codes": codes,
        "quantized": quantized,
        "vq2emb": model.quantizer.vq2emb(codes[None]),
    }


@torch.no_grad()
def recompute_codec(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Build `RepCodec` from the file's config, load `model.*` strictly, recompute every output."""
    return _quantize_outputs(*_load(ref, downsample_scale=1))


@torch.no_grad()
def recompute_codec_v25(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Build `EnhancedCodec`, load strictly, recompute the quantize path, `decode` of OUR codes (what
    S2Mel receives) and the codec's training forward (`forward_*`)."""
    model, x = _load(ref, downsample_scale=2)
    assert isinstance(model, EnhancedCodec)
    out = _quantize_outputs(model, x)
    out["down_gelu"] = model.downsample(x).transpose(1, 2)
    out["decoded"] = model.decode(out["codes"])
    x_rec, indices, loss = model.reconstruct(x)
    out.update(forward_x_rec=x_rec, forward_indices=indices, forward_recon_loss=loss)
    return out
