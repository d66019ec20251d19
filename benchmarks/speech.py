"""Real-time factor (compute seconds per second of audio) of the second stage on CPU, in one run.

    .venv/bin/python benchmarks/speech.py            # tiny + mid-size, N = 100 codes (≈ 2 s of audio)
    .venv/bin/python benchmarks/speech.py --codes 50 --steps 10

Times S2Mel sampling (length regulator + `steps` Euler-CFG DiT calls at batch 2) and BigVGAN
separately, with a 200-frame prompt, at the tiny sizes and at a mid-size config (DiT hidden 256,
depth 8; BigVGAN upsample_initial_channel 512). Random weights: the numbers are about speed only.

Batching: the S2Mel sampler (`euler_cfg_sample`) runs one segment at a time (B = 1, as officially), so
S2Mel batching is per segment; only BigVGAN is batched here (B texts of the same length in one call
vs B calls), and the speed-up is reported.
"""

from __future__ import annotations

import argparse
import time

import torch

from indextts_dist.speech.bigvgan import BIGVGAN_TINY, BigVGANConfig, build_bigvgan
from indextts_dist.speech.length_regulator import target_lengths
from indextts_dist.speech.s2mel import build_s2mel
from indextts_dist.speech.s2mel_config import S2MelConfig, s2mel_preset

SR, HOP = 22050, 256


def mid_s2mel() -> S2MelConfig:
    return S2MelConfig(
        lr_channels=256,
        hidden_dim=256,
        num_heads=4,
        depth=8,
        content_dim=256,
        wavenet_hidden_dim=256,
        wavenet_layers=8,
        style_dim=192,
    )


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def run(name: str, s2cfg: S2MelConfig, bcfg: BigVGANConfig, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    s2mel, vocoder = build_s2mel(s2cfg).eval(), build_bigvgan(bcfg).eval()
    n, t_ref = args.codes, args.prompt_frames
    t_gen = int(target_lengths(n))
    audio_s = t_gen * HOP / SR
    g = torch.Generator().manual_seed(0)
    content = torch.randn(1, n, 1024, generator=g)
    latent = torch.randn(1, n, 1280, generator=g)
    s_ref = torch.randn(1, t_ref // 2, 1024, generator=g)
    ref_mel = torch.randn(1, 80, t_ref, generator=g)
    style = torch.randn(1, s2cfg.style_dim, generator=g)

    def s2():
        s2mel.infer(content, latent, s_ref, ref_mel, style, n_timesteps=args.steps, generator=g)

    mel = torch.randn(1, 80, t_gen, generator=g)
    mels = torch.randn(args.batch, 80, t_gen, generator=g)
    t_s2 = best_of(s2, args.repeats)
    t_voc = best_of(lambda: vocoder(mel), args.repeats)
    t_seq = best_of(lambda: [vocoder(mels[i : i + 1]) for i in range(args.batch)], args.repeats)
    t_bat = best_of(lambda: vocoder(mels), args.repeats)
    params = (
        sum(p.numel() for p in s2mel.parameters()) / 1e6,
        sum(p.numel() for p in vocoder.parameters()) / 1e6,
    )
    print(
        f"{name:5s} S2Mel {params[0]:6.1f}M, {args.steps} steps: {t_s2:7.3f} s  RTF {t_s2 / audio_s:6.3f} | "
        f"BigVGAN {params[1]:6.1f}M: {t_voc:7.3f} s  RTF {t_voc / audio_s:6.3f} | "
        f"BigVGAN batch {args.batch}: {t_seq:6.3f} s sequential vs {t_bat:6.3f} s batched, "
        f"speed-up x{t_seq / t_bat:4.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=100)
    ap.add_argument("--prompt-frames", type=int, default=200)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_gen = int(target_lengths(args.codes))
    print(
        f"CPU, {args.threads} threads, N = {args.codes} codes -> {t_gen} mel frames = "
        f"{t_gen * HOP / SR:.2f} s of audio, prompt {args.prompt_frames} frames; "
        "RTF = compute s / audio s (lower is faster)"
    )
    print(
        "S2Mel sampling is B = 1 per segment (the sampler rejects batches); batching measured on BigVGAN only"
    )
    run("tiny", s2mel_preset("tiny"), BIGVGAN_TINY, args)
    run("mid", mid_s2mel(), BigVGANConfig(upsample_initial_channel=512), args)


if __name__ == "__main__":
    main()
