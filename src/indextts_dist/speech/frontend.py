"""Reference-side front end of IndexTTS2's second stage, in pure torch (S2MEL.md (b)).

Three recipes, each reproducing the official tooling bit-for-bit on CPU float32 so that
cached prompt features match the upstream pipeline without depending on torchaudio or librosa:

* :class:`SincResampler` / :func:`resample_22050_to_16000` — torchaudio's default
  ``Resample`` (sinc with Hann window, width 6, rolloff 0.99) (b.1);
* :func:`log_mel` — the BigVGAN/S2Mel log-mel spectrogram at 22 050 Hz (b.2);
* :func:`kaldi_fbank` — Kaldi-compatible 80-bin fbank at 16 kHz for CAMPPlus (b.3).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SincResampler",
    "kaldi_fbank",
    "log_mel",
    "resample_22050_to_16000",
    "slaney_mel_basis",
]


class SincResampler:
    """Band-limited resampler with torchaudio's ``Resample`` defaults (b.1).

    The kernel is built once in float64 and stored in float32, as upstream does; the only
    deliberate float32 step is ``j / n`` (the output phase), which upstream computes in float32
    and which moves results by ~3e-6 if done in float64.
    """

    def __init__(
        self,
        orig_freq: int,
        new_freq: int,
        lowpass_filter_width: int = 6,
        rolloff: float = 0.99,
    ) -> None:
        g = math.gcd(int(orig_freq), int(new_freq))
        self.orig = int(orig_freq) // g
        self.new = int(new_freq) // g
        self.identity = self.orig == self.new
        if self.identity:
            return
        o, n = self.orig, self.new
        base = min(o, n) * rolloff
        self.width = math.ceil(lowpass_filter_width * o / base)
        idx = torch.arange(-self.width, self.width + o, dtype=torch.float64)[None] / o
        phase = (torch.arange(0, n, dtype=torch.float32) / n).to(torch.float64)[:, None]
        u = ((idx - phase) * base).clamp(-lowpass_filter_width, lowpass_filter_width)
        window = torch.cos(u * math.pi / lowpass_filter_width / 2) ** 2
        x = u * math.pi
        sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(x) / x)
        kernel = sinc * window * (base / o)
        self.kernel = kernel.to(torch.float32)[:, None, :]  # [n, 1, 2W + o]

    def __call__(self, wav: Tensor) -> Tensor:
        """Resample ``[..., L]`` to ``[..., ceil(new * L / orig)]`` along the last axis."""
        if self.identity:
            return wav
        shape = wav.shape
        length = shape[-1]
        x = wav.reshape(-1, 1, length)
        x = F.pad(x, (self.width, self.width + self.orig))
        y = F.conv1d(x, self.kernel.to(device=x.device, dtype=x.dtype), stride=self.orig)
        y = y.transpose(1, 2).reshape(x.shape[0], -1)  # output index = frame * n + phase
        target = -(-self.new * length // self.orig)
        return y[:, :target].reshape(*shape[:-1], target)


@lru_cache(maxsize=4)
def _resampler(orig_freq: int, new_freq: int) -> SincResampler:
    return SincResampler(orig_freq, new_freq)


def resample_22050_to_16000(wav: Tensor) -> Tensor:
    """The 16 kHz copy of the prompt that feeds w2v-BERT and the fbank (S2MEL.md (a) step 2)."""
    return _resampler(22050, 16000)(wav)


def _hz_to_mel_slaney(f: Tensor) -> Tensor:
    linear = f / (200.0 / 3.0)
    log_part = 15.0 + torch.log(f.clamp(min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(f >= 1000.0, log_part, linear)


def _mel_to_hz_slaney(m: Tensor) -> Tensor:
    linear = m * (200.0 / 3.0)
    log_part = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (m - 15.0))
    return torch.where(m >= 15.0, log_part, linear)


def slaney_mel_basis(
    sr: int = 22050, n_fft: int = 1024, n_mels: int = 80, fmin: float = 0.0, fmax: float | None = None
) -> Tensor:
    """librosa's default (Slaney scale, Slaney area norm) mel filterbank ``[n_mels, n_fft//2+1]``.

    A fresh copy, so callers may modify it without touching the cached one used by :func:`log_mel`.
    """
    return _slaney_mel_basis(sr, n_fft, n_mels, fmin, fmax).clone()


@lru_cache(maxsize=4)
def _slaney_mel_basis(
    sr: int = 22050, n_fft: int = 1024, n_mels: int = 80, fmin: float = 0.0, fmax: float | None = None
) -> Tensor:
    """Cached Slaney filterbank.

    Ramps are rounded to float32 before the float64 normaliser is applied, because librosa
    stores them in a float32 array; this ordering is what makes the result bit-exact.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = torch.linspace(0.0, sr / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = _hz_to_mel_slaney(torch.tensor([float(fmin), fmax], dtype=torch.float64))
    edges = _mel_to_hz_slaney(torch.linspace(lo.item(), hi.item(), n_mels + 2, dtype=torch.float64))
    fdiff = edges[1:] - edges[:-1]
    rise = (fft_freqs[None] - edges[:n_mels, None]) / fdiff[:n_mels, None]
    fall = (edges[2:, None] - fft_freqs[None]) / fdiff[1:, None]
    ramps = torch.minimum(rise, fall).clamp(min=0.0).to(torch.float32)
    enorm = 2.0 / (edges[2:] - edges[:n_mels])
    return (ramps.to(torch.float64) * enorm[:, None]).to(torch.float32)


@lru_cache(maxsize=4)
def _periodic_hann(n: int) -> Tensor:
    return torch.hann_window(n, periodic=True, dtype=torch.float32)


def log_mel(wav_22k: Tensor) -> Tensor:
    """``ref_mel``: ln-mel of a 22 050 Hz wave ``[B, L]`` -> ``[B, 80, floor(L / 256)]`` (b.2).

    This is BigVGAN's training mel (n_fft 1024, hop 256, fmin 0, fmax Nyquist), i.e. the space
    S2Mel generates in, so the prompt must be mapped exactly the same way. ``L`` must exceed 384
    for the reflect padding.
    """
    n_fft, hop = 1024, 256
    pad = (n_fft - hop) // 2
    squeeze = wav_22k.dim() == 1
    x = wav_22k[None] if squeeze else wav_22k
    x = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    window = _periodic_hann(n_fft).to(device=x.device, dtype=x.dtype)
    spec = torch.stft(
        x,
        n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=window,
        center=False,
        onesided=True,
        return_complex=True,
    )
    mag = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)
    basis = _slaney_mel_basis(22050, 1024, 80, 0.0, None).to(device=x.device, dtype=x.dtype)
    out = torch.log(torch.clamp(torch.matmul(basis, mag), min=1e-5))
    return out[0] if squeeze else out


def _kaldi_mel(f: Tensor) -> Tensor:
    return 1127.0 * torch.log(1.0 + f / 700.0)


@lru_cache(maxsize=4)
def _kaldi_mel_bank(num_bins: int = 80, n_fft: int = 512, sample_rate: float = 16000.0) -> Tensor:
    """Kaldi triangles ``[num_bins, n_fft//2 + 1]`` between 20 Hz and Nyquist, no area norm.

    Evaluated in float32 with float64 Python scalars for the band edges, as upstream does; the
    Nyquist column is zero.
    """
    low_freq, high_freq = 20.0, sample_rate / 2.0
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float32)[:, None]
    left = mel_low + b * delta
    center = mel_low + (b + 1.0) * delta
    right = mel_low + (b + 2.0) * delta
    n_half = n_fft // 2
    mel = _kaldi_mel((sample_rate / n_fft) * torch.arange(n_half, dtype=torch.float32))[None]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    bank = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(bank, (0, 1))


@lru_cache(maxsize=4)
def _povey_window(n: int) -> Tensor:
    return torch.hann_window(n, periodic=False, dtype=torch.float32).pow(0.85)


def kaldi_fbank(wav_16k: Tensor) -> Tensor:
    """Kaldi 80-bin log fbank of a 16 kHz wave, ``[L]`` or channel 0 of ``[C, L]`` -> ``[F, 80]`` (b.3).

    Equivalent to ``torchaudio.compliance.kaldi.fbank(w, num_mel_bins=80, dither=0,
    sample_frequency=16000)`` on the unscaled float wave: 25 ms / 10 ms snip-edges frames, DC
    removal, pre-emphasis 0.97, Povey window, 512-point power spectrum, ln with a float32-eps
    floor. ``F = 1 + (L - 400) // 160``. The per-bin time-mean subtraction that CAMPPlus expects
    is *not* applied here (``feat - feat.mean(0)`` is the caller's step).
    """
    frame, shift, n_fft = 400, 160, 512
    x = wav_16k[0] if wav_16k.dim() == 2 else wav_16k
    if x.shape[-1] < frame:
        raise ValueError(f"kaldi_fbank needs at least {frame} samples, got {x.shape[-1]}")
    frames = x.unfold(0, frame, shift)  # [F, 400]
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - 0.97 * prev
    frames = frames * _povey_window(frame).to(device=x.device, dtype=x.dtype)
    frames = F.pad(frames, (0, n_fft - frame))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    bank = _kaldi_mel_bank().to(device=x.device, dtype=x.dtype)
    energies = torch.mm(power, bank.T)
    return torch.log(torch.clamp(energies, min=torch.finfo(torch.float32).eps))
