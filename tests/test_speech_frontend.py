"""The S2Mel reference-side front end (S2MEL.md (b)) against the official fixtures, plus sanity checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from indextts_dist.speech.frontend import (
    SincResampler,
    kaldi_fbank,
    log_mel,
    resample_22050_to_16000,
    slaney_mel_basis,
)

ATOL = 1e-4  # S2MEL.md (k) "Verification and tolerance"; observed 0.0


@pytest.fixture(scope="module")
def ref(indextts2_dir: Path) -> dict[str, torch.Tensor]:
    keys = (
        "input.frontend.wav_22k",
        "output.frontend.wav_16k",
        "output.frontend.fbank",
        "input.campplus.feat",
        "input.s2mel.ref_wav_22k",
        "output.s2mel.ref_mel",
    )
    tensors = load_file(str(indextts2_dir / "reference_s2mel_tiny.safetensors"))
    return {k: tensors[k] for k in keys}


def test_resampler_matches_reference(ref: dict[str, torch.Tensor]) -> None:
    out = resample_22050_to_16000(ref["input.frontend.wav_22k"])
    expected = ref["output.frontend.wav_16k"]
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_kaldi_fbank_matches_reference(ref: dict[str, torch.Tensor]) -> None:
    wav16 = resample_22050_to_16000(ref["input.frontend.wav_22k"])
    fbank = torch.stack([kaldi_fbank(row) for row in wav16])
    torch.testing.assert_close(fbank, ref["output.frontend.fbank"], atol=ATOL, rtol=0)
    feat = fbank - fbank.mean(dim=1, keepdim=True)  # the CAMPPlus input
    torch.testing.assert_close(feat, ref["input.campplus.feat"], atol=ATOL, rtol=0)


def test_log_mel_matches_reference(ref: dict[str, torch.Tensor]) -> None:
    wav = ref["input.s2mel.ref_wav_22k"]
    mel = log_mel(wav)
    assert mel.shape == (1, 80, wav.shape[-1] // 256)
    torch.testing.assert_close(mel, ref["output.s2mel.ref_mel"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("length", [1000, 22050, 22051])
def test_resampler_keeps_sine_frequency_and_length(length: int) -> None:
    t = torch.arange(length, dtype=torch.float64) / 22050
    wav = torch.sin(2 * math.pi * 1000.0 * t).to(torch.float32)[None]
    out = resample_22050_to_16000(wav)
    assert out.shape == (1, math.ceil(length * 16000 / 22050))
    t16 = torch.arange(out.shape[-1], dtype=torch.float64) / 16000
    expected = torch.sin(2 * math.pi * 1000.0 * t16).to(torch.float32)[None]
    inner = slice(40, out.shape[-1] - 40)  # away from the zero-padded edges
    torch.testing.assert_close(out[:, inner], expected[:, inner], atol=2e-3, rtol=0)


def test_resampler_identity_and_shape() -> None:
    wav = torch.randn(2, 3, 500)
    assert SincResampler(22050, 22050)(wav) is wav
    res = SincResampler(22050, 16000)
    assert (res.orig, res.new, res.width, res.kernel.shape) == (441, 320, 9, (320, 1, 459))
    assert res(wav).shape == (2, 3, math.ceil(500 * 320 / 441))


@pytest.mark.parametrize("length", [400, 559, 560, 16000])
def test_kaldi_fbank_frame_count_and_silence(length: int) -> None:
    out = kaldi_fbank(torch.zeros(1, length))
    assert out.shape == (1 + (length - 400) // 160, 80)
    torch.testing.assert_close(out, torch.full_like(out, math.log(torch.finfo(torch.float32).eps)))
    with pytest.raises(ValueError):
        kaldi_fbank(torch.zeros(399))


def test_slaney_basis_properties() -> None:
    basis = slaney_mel_basis()
    assert basis.shape == (80, 513) and basis.dtype == torch.float32
    assert (basis >= 0).all() and (basis.sum(dim=1) > 0).all()
    peaks = basis.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()  # filters ordered by frequency


def test_log_mel_frame_count_unbatched() -> None:
    wav = 0.1 * torch.randn(2000)
    mel = log_mel(wav)
    assert mel.shape == (80, 2000 // 256)
    assert mel.min() >= math.log(1e-5) - 1e-6
