"""Strict checkpoint loading: every accepted container, every refusal as one line naming the key."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from indextts_dist.model import (
    CheckpointError,
    UnifiedVoice,
    build_model,
    load_gpt_checkpoint,
    load_state_dict_file,
    preset,
)


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_model("tiny", seed=7).state_dict().items()}


def _assert_loaded(model: UnifiedVoice, state: dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("container", ["bare", "wrapped", "aliases"])
def test_torch_file_containers(tmp_path, tiny_state, container):
    state = dict(tiny_state)
    if container == "aliases":
        # What a post-init model or a community trainer saves: storage-sharing alias keys.
        state["gpt.wte.weight"] = state["mel_embedding.weight"]
        state["inference_model.lm_head.1.weight"] = state["mel_head.weight"]
    payload = {"model": state} if container == "wrapped" else state
    path = tmp_path / "gpt.pth"
    torch.save(payload, path)
    model = load_gpt_checkpoint(UnifiedVoice(preset("tiny")), path)
    _assert_loaded(model, tiny_state)


def test_safetensors_and_float16(tmp_path, tiny_state):
    path = tmp_path / "gpt.safetensors"
    save_file({k: v.half().contiguous() for k, v in tiny_state.items()}, str(path))
    model = load_gpt_checkpoint(UnifiedVoice(preset("tiny")), path)
    assert model.text_head.weight.dtype == torch.float32
    assert torch.equal(model.text_head.weight, tiny_state["text_head.weight"].half().float())


def test_missing_key_is_one_line_naming_it(tmp_path, tiny_state):
    state = dict(tiny_state)
    del state["speed_emb.weight"]
    torch.save(state, tmp_path / "gpt.pth")
    with pytest.raises(CheckpointError) as err:
        load_gpt_checkpoint(UnifiedVoice(preset("tiny")), tmp_path / "gpt.pth")
    assert "missing key 'speed_emb.weight'" in str(err.value)
    assert str(tmp_path / "gpt.pth") in str(err.value)
    assert "\n" not in str(err.value)


def test_extra_key_and_wrong_shape(tmp_path, tiny_state):
    state = dict(tiny_state, **{"gpt.wpe.weight": torch.zeros(3, 64)})
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected key 'gpt\.wpe\.weight'"):
        load_gpt_checkpoint(UnifiedVoice(preset("tiny")), tmp_path / "extra.pth")
    state = dict(tiny_state, **{"mel_head.bias": torch.zeros(5)})
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"key 'mel_head.bias' has shape \[5\]"):
        load_gpt_checkpoint(UnifiedVoice(preset("tiny")), tmp_path / "shape.pth")


class _Payload:
    """Anything that is not a plain tensor container must never be unpickled."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_to_unpickle_and_reports_bad_files(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    with evil.open("wb") as fh:
        pickle.dump({"model": _Payload()}, fh)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_state_dict_file(evil)
    assert "this must never run" not in capsys.readouterr().out
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable checkpoint"):
        load_state_dict_file(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict_file(tmp_path / "absent.pth")


def test_training_model_loads_full_checkpoint_without_encoders(tmp_path, tiny_state):
    torch.save(tiny_state, tmp_path / "gpt.pth")
    model = build_model("tiny", tmp_path / "gpt.pth", with_conditioning_encoders=False)
    assert not model.has_conditioning_encoders
    assert torch.equal(model.mel_head.weight, tiny_state["mel_head.weight"])


def test_official_preset_without_weights_is_a_clear_error():
    with pytest.raises(CheckpointError, match="needs its weights file"):
        build_model("official-v2")


def test_tiny_random_weights_do_not_depend_on_keeping_the_encoders():
    """Preprocess (with encoders) and training (without) must see the same tiny GPT for one seed."""
    full = build_model("tiny", seed=5).state_dict()
    lean = build_model("tiny", seed=5, with_conditioning_encoders=False).state_dict()
    assert set(lean) < set(full)
    assert all(torch.equal(lean[k], full[k]) for k in lean)
