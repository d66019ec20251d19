"""Euler sampler with classifier-free guidance for the S2Mel flow model (S2MEL.md (f)).

The noise comes from a `torch.Generator` the caller owns (or is passed in explicitly), never from
torch's global RNG, so sampling is reproducible and leaves other random streams untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from indextts_dist.speech.dit import DiTEstimator

__all__ = ["CFM", "DEFAULT_CFG_RATE", "DEFAULT_STEPS", "euler_cfg_sample"]

DEFAULT_STEPS = 25
DEFAULT_CFG_RATE = 0.7

Estimator = Callable[..., torch.Tensor]


@torch.no_grad()
def euler_cfg_sample(
    estimator: Estimator,
    mu: torch.Tensor,
    prompt: torch.Tensor,
    style: torch.Tensor,
    *,
    n_timesteps: int = DEFAULT_STEPS,
    cfg_rate: float = DEFAULT_CFG_RATE,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    trace: dict[str, list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    """mu [1, T, C], prompt (ref mel) [1, 80, T_ref], style [1, S] → mel [1, 80, T], prompt frames zero.

    z = `noise` if given, else randn([1, 80, T], generator=generator) × temperature. Each step calls the
    estimator once at batch 2 (conditional, unconditional with prompt/style/mu zeroed) and moves
    x ← x + dt · ((1 + r)·v_c − r·v_u). `trace` (a dict) collects per-step `t`, `x_in`, `v`.
    """
    if mu.shape[0] != 1:
        raise ValueError(f"the S2Mel sampler runs one segment at a time (B = 1), got batch {mu.shape[0]}")
    if n_timesteps < 1:
        raise ValueError(f"n_timesteps must be ≥ 1, got {n_timesteps}")
    length, mels = mu.shape[1], prompt.shape[1]
    t_ref = prompt.shape[-1]
    if t_ref > length:
        raise ValueError(f"prompt has {t_ref} frames but the condition only {length}")
    if noise is None:
        draw_on = generator.device if generator is not None else mu.device
        noise = torch.randn((1, mels, length), generator=generator, device=draw_on, dtype=torch.float32)
        z = noise.to(mu) * temperature
    else:
        if tuple(noise.shape) != (1, mels, length):
            raise ValueError(f"noise must have shape {[1, mels, length]}, got {list(noise.shape)}")
        z = noise.to(mu)
    t_span = torch.linspace(0, 1, n_timesteps + 1, device=mu.device, dtype=torch.float32)

    prompt_x = torch.zeros_like(z)
    prompt_x[..., :t_ref] = prompt
    x = z.clone()
    x[..., :t_ref] = 0
    x_lens = torch.tensor([length], device=mu.device)
    prompt_b = torch.cat([prompt_x, torch.zeros_like(prompt_x)])
    style_b = torch.cat([style, torch.zeros_like(style)])
    mu_b = torch.cat([mu, torch.zeros_like(mu)])

    t = t_span[0]
    for step in range(1, n_timesteps + 1):
        dt = t_span[step] - t_span[step - 1]
        v = estimator(torch.cat([x, x]), prompt_b, x_lens, t.reshape(1).expand(2), style_b, mu_b)
        if trace is not None:
            trace.setdefault("t", []).append(t.clone())
            trace.setdefault("x_in", []).append(x.clone())
            trace.setdefault("v", []).append(v.clone())
        v_c, v_u = v[:1], v[1:]
        x = x + dt * ((1.0 + cfg_rate) * v_c - cfg_rate * v_u)
        t = t + dt
        x[..., :t_ref] = 0
    return x


class CFM(nn.Module):
    """The `cfm` group: holds the estimator (keys `estimator.*`) and runs the sampler."""

    def __init__(self, estimator: DiTEstimator) -> None:
        super().__init__()
        self.estimator = estimator

    def inference(
        self, mu: torch.Tensor, prompt: torch.Tensor, style: torch.Tensor, **sampling: Any
    ) -> torch.Tensor:
        """`euler_cfg_sample` with this group's estimator; `sampling` are its keyword settings."""
        return euler_cfg_sample(self.estimator, mu, prompt, style, **sampling)
