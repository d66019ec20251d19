"""The assembled S2Mel model (groups `cfm`, `length_regulator`, `gpt_layer`) and its strict loader.

Data flow (S2MEL.md (a)) for one segment, B = 1:
  S_ref = vq2emb(ref_codes)ᵀ;  prompt_condition = LR(S_ref, [T_ref])
  S_infer = vq2emb(codes)ᵀ + gpt_layer(latent);  cond = LR(S_infer, [⌊1.72·N⌋])
  mel_full = Euler-CFG(mu = prompt_condition ‖ cond, prompt = ref_mel, style);  mel = mel_full[..., T_ref:]

Unlike the official loader (which silently drops unknown keys and leaves missing ones random), the
loader here fails with one line naming the first missing key or wrong shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from indextts_dist.model.checkpoint import CheckpointError, load_state_dict_file, strict_load_module
from indextts_dist.speech.cfm import CFM, DEFAULT_CFG_RATE, DEFAULT_STEPS
from indextts_dist.speech.dit import DiTEstimator
from indextts_dist.speech.length_regulator import GPTLayer, LengthRegulator, target_lengths
from indextts_dist.speech.s2mel_config import S2MelConfig, s2mel_preset

__all__ = [
    "S2MEL_GROUPS",
    "S2Mel",
    "build_s2mel",
    "codes_to_content",
    "load_s2mel",
    "read_s2mel_checkpoint",
    "strict_load_s2mel",
]

S2MEL_GROUPS = ("cfm", "length_regulator", "gpt_layer")


def codes_to_content(codec: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """codes [B, N] → time-major content embedding [B, N, 1024] via the codec quantizer's vq2emb.

    `codec` is a `RepCodec` (uses `codes_to_embedding`) or its `ResidualVQ` quantizer.
    """
    if hasattr(codec, "codes_to_embedding"):
        emb = codec.codes_to_embedding(codes)
    else:
        emb = codec.vq2emb(codes[None])
    return emb.transpose(1, 2)


class S2Mel(nn.Module):
    """`MyModel.models` of the release: `cfm.estimator.*`, `length_regulator.*`, `gpt_layer.*`."""

    def __init__(self, cfg: S2MelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cfm = CFM(DiTEstimator(cfg))
        self.length_regulator = LengthRegulator(cfg)
        self.gpt_layer = GPTLayer(cfg.gpt_latent_dim)

    def prompt_condition(self, s_ref: torch.Tensor, t_ref: int) -> torch.Tensor:
        """S_ref [1, N_ref, 1024] → [1, T_ref, C], stretched to the actual prompt mel length."""
        return self.length_regulator(s_ref, torch.tensor([t_ref], device=s_ref.device))

    def generated_condition(
        self,
        content_emb: torch.Tensor,
        gpt_latent: torch.Tensor,
        trace: dict[str, Any] | None = None,
        *,
        speed: float = 1.0,
    ) -> torch.Tensor:
        """vq2emb(codes)ᵀ [1, N, 1024] + gpt_layer(latent [1, N, 1280]) → cond [1, ⌊1.72·N⌋, C]
        (⌊1.72·N / speed⌋ frames for a `speed` other than 1, see `target_lengths`)."""
        if content_emb.shape[:2] != gpt_latent.shape[:2]:
            raise ValueError(
                f"codes and GPT latents disagree: {list(content_emb.shape[:2])} "
                f"vs {list(gpt_latent.shape[:2])}"
            )
        g = self.gpt_layer(gpt_latent)
        s_infer = content_emb + g
        cond, lens = self._regulate(s_infer, speed)
        if trace is not None:
            trace.update(gpt_layer_out=g, S_infer=s_infer, target_lengths=lens, cond=cond)
        return cond

    def content_condition(self, content: torch.Tensor, *, speed: float = 1.0) -> torch.Tensor:
        """IndexTTS-2.5: the codec's decoded content alone (`EnhancedCodec.decode(codes)`, [1, 2T',
        1024] at 50 Hz; no GPT latents, no `gpt_layer`) → cond [1, ⌊2T'·1.72 / speed⌋, C]
        (SPEC_2_5 §5.1, §8)."""
        return self._regulate(content, speed)[0]

    def _regulate(self, content: torch.Tensor, speed: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The length regulator at the official target length of `content`'s frames."""
        n = torch.full((content.shape[0],), content.shape[1], dtype=torch.int64)
        lens = target_lengths(n, speed).to(content.device)
        return self.length_regulator(content, lens), lens

    # duplicates: the sampler's keyword settings repeated: they are S2Mel's public API, passed on
    # unchanged to `CFM.inference` / `euler_cfg_sample`.
    @torch.no_grad()
    def infer(
        self,
        content_emb: torch.Tensor,
        gpt_latent: torch.Tensor,
        s_ref: torch.Tensor,
        ref_mel: torch.Tensor,
        style: torch.Tensor,
        *,
        n_timesteps: int = DEFAULT_STEPS,
        cfg_rate: float = DEFAULT_CFG_RATE,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        trace: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """One segment (B = 1) → generated mel [1, 80, ⌊1.72·N⌋] (prompt frames cut off).

        content_emb = vq2emb(codes)ᵀ [1, N, 1024] (see `codes_to_content`), s_ref = vq2emb(ref_codes)ᵀ,
        ref_mel [1, 80, T_ref], style [1, S]. Runs in float32 with autocast off, as officially.
        """
        device_type = content_emb.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            t_ref = ref_mel.shape[-1]
            prompt_cond = self.prompt_condition(s_ref.float(), t_ref)
            cond = self.generated_condition(content_emb.float(), gpt_latent.float(), trace)
            mu = torch.cat([prompt_cond, cond], dim=1)
            euler: dict[str, list[torch.Tensor]] = {}
            mel_full = self.cfm.inference(
                mu,
                ref_mel.float(),
                style.float(),
                n_timesteps=n_timesteps,
                cfg_rate=cfg_rate,
                noise=noise,
                generator=generator,
                trace=euler if trace is not None else None,
            )
        if trace is not None:
            trace.update(
                prompt_condition=prompt_cond,
                cat_condition=mu,
                euler_t=torch.stack(euler["t"]),
                euler_x_in=torch.stack(euler["x_in"]),
                euler_v=torch.stack(euler["v"]),
                mel_full=mel_full,
            )
        return mel_full[..., t_ref:]


def _resolve(cfg: S2MelConfig | Mapping[str, Any] | str | None) -> S2MelConfig:
    if cfg is None:
        return s2mel_preset("official-v2")
    if isinstance(cfg, S2MelConfig):
        return cfg
    if isinstance(cfg, str):
        return s2mel_preset(cfg)
    return S2MelConfig.from_dict(cfg)


def build_s2mel(cfg: S2MelConfig | Mapping[str, Any] | str | None = None, device: str | None = None) -> S2Mel:
    """Build (random init; `device="meta"` for a weightless layout check)."""
    if device is None:
        return S2Mel(_resolve(cfg))
    with torch.device(device):
        return S2Mel(_resolve(cfg))


def read_s2mel_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read `s2mel.pth` (`['net'][group][key]`, `module.` stripped) or a flat `<group>.<key>` file.

    Only the three model groups are kept; other groups / top-level entries (optimizer, ema, …) are
    ignored, as by the official loader, but reported with a warning.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_state_dict_file(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from exc
    if isinstance(data, Mapping) and "net" in data and isinstance(data["net"], Mapping):
        net = data["net"]
        missing = [g for g in S2MEL_GROUPS if g not in net]
        if missing:
            raise CheckpointError(f"{path}: missing group {missing[0]!r} in ['net'] (has {sorted(net)})")
        other = sorted(set(net) - set(S2MEL_GROUPS))
        if other:
            warnings.warn(f"{path}: ignoring ['net'] group(s) {other}", stacklevel=2)
        flat: dict[str, torch.Tensor] = {}
        for group in S2MEL_GROUPS:
            for key, value in net[group].items():
                key = key.removeprefix("module.")
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{path}: ['net'][{group!r}][{key!r}] is not a tensor")
                flat[f"{group}.{key}"] = value
        return flat
    if isinstance(data, Mapping) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {k.removeprefix("module."): v for k, v in data.items()}
    raise CheckpointError(f"{path}: expected s2mel.pth (['net'] of group state dicts) or a flat state dict")


def strict_load_s2mel(
    model: S2Mel, state: Mapping[str, torch.Tensor], source: str = "S2Mel checkpoint"
) -> None:
    """Every model key must be present with the right shape (one-line `CheckpointError` otherwise).

    Keys outside the three groups are ignored; extra keys inside them are reported, not silently dropped.
    """
    ours = {k: v for k, v in state.items() if k.split(".", 1)[0] in S2MEL_GROUPS}
    expected = model.state_dict()
    extra = [k for k in ours if k not in expected]
    if extra:
        warnings.warn(
            f"{source}: ignoring {len(extra)} key(s) the model does not have, first {extra[0]!r}",
            stacklevel=2,
        )
        ours = {k: v for k, v in ours.items() if k in expected}
    strict_load_module(model, ours, source, what="S2Mel")


def load_s2mel(
    path_or_state: str | Path | Mapping[str, torch.Tensor],
    cfg: S2MelConfig | Mapping[str, Any] | str | None = None,
) -> S2Mel:
    """Build for `cfg` (default: the official config), load strictly, eval."""
    if isinstance(path_or_state, (str, Path)):
        state, source = read_s2mel_checkpoint(path_or_state), str(path_or_state)
    else:
        state, source = dict(path_or_state), "S2Mel state dict"
    model = build_s2mel(cfg)
    strict_load_s2mel(model, state, source)
    return model.eval()
