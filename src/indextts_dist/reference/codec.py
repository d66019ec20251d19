"""Recompute the semantic codec's reference outputs (REFERENCE_CODEC.md) from a reference file's input."""

from __future__ import annotations

import torch

from ..codec import CodecConfig, RepCodec, strict_load_codec
from .report import ReferenceError, ReferenceFile

__all__ = ["CODEC_ATOL", "recompute_codec"]

CODEC_ATOL = 5e-5
"""Float tolerance. A faithful float32 re-implementation lands around 1e-6 to 1.1e-5 on the tiny
reference, depending on the CPU's kernels (1.1e-5 for `encoder_out` on an AVX2-only AMD EPYC);
REFERENCE_CODEC.md puts the smallest margin that could flip a code at 3.0e-4, far above this."""


@torch.no_grad()
def recompute_codec(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Build `RepCodec` from the file's config, load `model.*` strictly, recompute every output from input.x.

    `vq2emb` is recomputed from OUR codes, so a wrong code shows up twice (codes and vq2emb).
    """
    model = RepCodec(CodecConfig.from_dict(ref.meta["config"])).eval()
    strict_load_codec(model, {k: v.float() for k, v in ref.model.items()}, source="reference model.*")
    if "x" not in ref.inputs:
        raise ReferenceError("reference lacks input tensor(s): input.x")
    x = ref.inputs["x"].float()
    encoder_out = model.encode(x)
    codes, quantized = model.quantize(x)
    return {
        "encoder_out": encoder_out,
        "z_e": model.quantizer.quantizers[0].in_project(encoder_out),
        "codes": codes,
        "quantized": quantized,
        "vq2emb": model.quantizer.vq2emb(codes[None]),
    }
