"""S2Mel (gpt_layer + length regulator + DiT/WaveNet estimator + Euler-CFG sampler) against the
official-code fixtures in `shared/indextts2/reference_s2mel_tiny.*` and the full-size key manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from indextts_dist.codec.quantizer import ResidualVQ
from indextts_dist.model.checkpoint import CheckpointError, strict_load_module
from indextts_dist.reference.s2mel import ESTIMATOR_TAPS
from indextts_dist.speech.cfm import euler_cfg_sample
from indextts_dist.speech.length_regulator import nearest_source_index, target_lengths
from indextts_dist.speech.s2mel import (
    S2Mel,
    build_s2mel,
    codes_to_content,
    load_s2mel,
    read_s2mel_checkpoint,
    strict_load_s2mel,
)
from indextts_dist.speech.s2mel_config import S2MelConfig

ATOL = 1e-4


@pytest.fixture(scope="module")
def ref(indextts2_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = load_file(str(indextts2_dir / "reference_s2mel_tiny.safetensors"))
    meta = json.loads((indextts2_dir / "reference_s2mel_tiny.json").read_text())
    return tensors, meta


def _part(tensors: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    prefix = f"model.{part}."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def model(ref) -> S2Mel:
    tensors, meta = ref
    return load_s2mel(_part(tensors, "s2mel"), meta["config"]["s2mel"])


@pytest.fixture(scope="module")
def quantizer(ref) -> ResidualVQ:
    tensors, meta = ref
    q = meta["config"]["codec_quantizer"]
    vq = ResidualVQ(q["num_quantizers"], q["hidden_size"], q["codebook_size"], q["codebook_dim"])
    state = {k.removeprefix("quantizer."): v for k, v in _part(tensors, "codec").items()}
    strict_load_module(vq, state, "reference codec quantizer", what="codec quantizer")
    return vq.eval()


def _close(name: str, got: torch.Tensor, want: torch.Tensor, atol: float = ATOL) -> None:
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {list(got.shape)} != {list(want.shape)}"
    diff = (got.float() - want.float()).abs().max().item()
    assert diff <= atol, f"{name}: max abs diff {diff:.3g} > {atol}"


# --- layout -----------------------------------------------------------------------------------


def test_meta_build_matches_manifest(indextts2_dir: Path) -> None:
    manifest = json.loads((indextts2_dir / "s2mel_state_dict_shapes.json").read_text())
    cfg = S2MelConfig.from_dict(manifest["config"])
    assert cfg == S2MelConfig()  # the default is the official config
    model = build_s2mel(cfg, device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    want = {k: v["shape"] for k, v in manifest["state_dict"].items()}
    assert list(ours) == list(want)  # same keys, same registration order
    assert ours == want
    buffers = {n for n, _ in model.named_buffers()}
    assert buffers == set(manifest["persistent_buffers"])
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameters"]
    for group, info in manifest["_meta"]["groups"].items():
        assert sum(1 for k in ours if k.startswith(group + ".")) == info["num_keys"]


def test_tiny_config_loads_strict(ref, model: S2Mel) -> None:
    tensors, _ = ref
    assert set(model.state_dict()) == set(_part(tensors, "s2mel"))


# --- loader -----------------------------------------------------------------------------------


def test_missing_key_is_one_line_error(ref) -> None:
    tensors, meta = ref
    state = _part(tensors, "s2mel")
    key = "cfm.estimator.wavenet.in_layers.1.conv.conv.weight_g"
    del state[key]
    with pytest.raises(CheckpointError) as err:
        load_s2mel(state, meta["config"]["s2mel"])
    msg = str(err.value)
    assert "\n" not in msg and key in msg and "missing" in msg


def test_wrong_shape_is_one_line_error(ref) -> None:
    tensors, meta = ref
    state = _part(tensors, "s2mel")
    state["gpt_layer.2.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match=r"gpt_layer\.2\.bias") as err:
        load_s2mel(state, meta["config"]["s2mel"])
    assert "\n" not in str(err.value)


def test_reads_official_net_container(ref, tmp_path: Path) -> None:
    tensors, meta = ref
    flat = _part(tensors, "s2mel")
    net: dict[str, dict[str, torch.Tensor]] = {
        "cfm": {},
        "length_regulator": {},
        "gpt_layer": {},
        "extra": {},
    }
    for k, v in flat.items():
        group, rest = k.split(".", 1)
        net[group]["module." + rest if group == "gpt_layer" else rest] = v
    net["extra"]["w"] = torch.zeros(1)
    path = tmp_path / "s2mel.pth"
    torch.save({"net": net, "iters": 3}, path)
    with pytest.warns(UserWarning, match="extra"):
        state = read_s2mel_checkpoint(path)
    assert state.keys() == flat.keys()
    model = build_s2mel(meta["config"]["s2mel"])
    strict_load_s2mel(model, state, str(path))
    del net["length_regulator"]["model.12.bias"]
    torch.save({"net": net}, path)
    with (
        pytest.raises(CheckpointError, match=r"length_regulator\.model\.12\.bias"),
        pytest.warns(UserWarning),
    ):
        load_s2mel(path, meta["config"]["s2mel"])


# --- content path -----------------------------------------------------------------------------


def test_target_lengths_rule() -> None:
    n = torch.arange(1, 50001)
    assert torch.equal(target_lengths(n), (172 * n) // 100)
    assert target_lengths(26).item() == 44


def test_nearest_index_float32_rule() -> None:
    idx = nearest_source_index(26, 44)
    assert idx[22].item() == 12  # the exact rational ⌊22·26/44⌋ = 13 would be wrong here
    x = torch.randn(1, 3, 26)
    for n_out in (26, 44, 52, 17, 90):
        want = torch.nn.functional.interpolate(x, size=n_out, mode="nearest")
        assert torch.equal(x[..., nearest_source_index(26, n_out)], want)


def test_content_path(ref, model: S2Mel, quantizer: ResidualVQ) -> None:
    tensors, _ = ref
    inp = lambda k: tensors[f"input.s2mel.{k}"]  # noqa: E731
    out = lambda k: tensors[f"output.s2mel.{k}"]  # noqa: E731
    with torch.no_grad():
        s_ref = codes_to_content(quantizer, inp("ref_codes"))
        _close("S_ref", s_ref, out("S_ref"))
        content = codes_to_content(quantizer, inp("codes"))
        _close("content_emb", content, out("content_emb"))
        prompt = model.prompt_condition(out("S_ref"), out("ref_mel").shape[-1])
        _close("prompt_condition", prompt, out("prompt_condition"))
        trace: dict = {}
        cond = model.generated_condition(out("content_emb"), inp("gpt_latent"), trace)
    _close("gpt_layer_out", trace["gpt_layer_out"], out("gpt_layer_out"))
    _close("S_infer", trace["S_infer"], out("S_infer"))
    assert torch.equal(trace["target_lengths"], out("target_lengths"))
    _close("cond", cond, out("cond"))


# --- estimator --------------------------------------------------------------------------------


def test_estimator_intermediates(ref, model: S2Mel) -> None:
    tensors, _ = ref
    inp = lambda k: tensors[f"input.s2mel.est_{k}"]  # noqa: E731
    trace: dict = {}
    with torch.no_grad():
        v = model.cfm.estimator(
            inp("x"), inp("prompt_x"), inp("x_lens"), inp("t"), inp("style"), inp("cond"), trace=trace
        )
    for name in ESTIMATOR_TAPS:  # the same taps `verify-reference --kind s2mel` checks
        _close(f"est_{name}", trace[name], tensors[f"output.s2mel.est_{name}"])
    _close("est_out", v, tensors["output.s2mel.est_out"])


# --- sampler + pipeline -----------------------------------------------------------------------


def test_pipeline_euler_cfg(ref, model: S2Mel, quantizer: ResidualVQ) -> None:
    tensors, _ = ref
    inp = lambda k: tensors[f"input.s2mel.{k}"]  # noqa: E731
    out = lambda k: tensors[f"output.s2mel.{k}"]  # noqa: E731
    steps = out("euler_t").shape[0]
    trace: dict = {}
    mel = model.infer(
        codes_to_content(quantizer, inp("codes")),
        inp("gpt_latent"),
        codes_to_content(quantizer, inp("ref_codes")),
        out("ref_mel"),
        inp("style"),
        n_timesteps=steps,
        noise=inp("noise"),
        trace=trace,
    )
    for name in ("prompt_condition", "cond", "cat_condition", "euler_t", "euler_x_in", "euler_v", "mel_full"):
        _close(name, trace[name], out(name))
    _close("mel", mel, out("mel"))


def test_ref_mel_from_frontend(ref) -> None:
    tensors, _ = ref
    from indextts_dist.speech.frontend import log_mel

    _close("ref_mel", log_mel(tensors["input.s2mel.ref_wav_22k"]), tensors["output.s2mel.ref_mel"])


def test_sampler_generator_is_ours(model: S2Mel) -> None:
    torch.manual_seed(0)
    mu = torch.randn(1, 12, model.cfg.content_dim)
    prompt, style = torch.randn(1, 80, 4), torch.randn(1, model.cfg.style_dim)
    state = torch.random.get_rng_state()
    a = euler_cfg_sample(
        model.cfm.estimator, mu, prompt, style, n_timesteps=2, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    b = euler_cfg_sample(
        model.cfm.estimator, mu, prompt, style, n_timesteps=2, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(a, b)
    assert a.shape == (1, 80, 12) and not a[..., :4].any()
    z = torch.randn(1, 80, 12, generator=torch.Generator().manual_seed(5))
    c = euler_cfg_sample(model.cfm.estimator, mu, prompt, style, n_timesteps=2, noise=z)
    assert torch.equal(a, c)
