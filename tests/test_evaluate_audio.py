"""`evaluate` end to end in audio space: a hesitant speaker's data, hesitant vs fluent wavs.

A hesitant espeak-ng speaker (fillers at phrase starts, silences of 0.4–1.0 s, repeated words) is
preprocessed for real (faster-whisper for half the clips, a transcript CSV for the other half, so
both ways of getting text record pause codes measured on the audio); a tiny package is made from
that dataset and registered on a real MLflow server; `indextts-dist evaluate` pulls it by alias and
measures, with the transcriber preprocess used, held-out sentences spoken by the same hesitant
speaker (`--wavs`) and by a fluent one (`--base-wavs`). The hesitant wavs must land near the
hesitant training data and the fluent ones far from it, so the transfer ratio of the "adapted" side
(the hesitant wavs) is near 1. The evaluation run must be in MLflow with the model's name, version
and alias.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from indextts_dist.corpus.speakers import FLUENT, HESITANT, sentences, speaker_corpus
from indextts_dist.distributed import World
from indextts_dist.evaluate.texts import HELD_OUT_TEXTS
from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import TINY_LABEL, base_fingerprint, build_model, preset
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.preprocess.shards import read_tar_samples
from indextts_dist.text import tiny_model_path
from indextts_dist.tracking import LocalMlflowServer, package_model, register_package

pytestmark = pytest.mark.slow
VOICE = ["en-us+m3"]
HELD_OUT = list(HELD_OUT_TEXTS[:3])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hesitant")
    clips = speaker_corpus(root / "audio", sentences(6, seed=5), style=HESITANT, voices=VOICE, seed=1)
    csv = root / "transcripts.csv"
    csv.write_text("file,text\n" + "".join(f"{c.path.name},{c.expected}\n" for c in clips[::2]))
    out = root / "data"
    run_preprocess(
        PreprocessOptions(audio_dir=root / "audio", out=out, transcripts=csv, clips_per_shard=3),
        World(0, 1, 0),
    )
    return out


@pytest.fixture(scope="module")
def package(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("package")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = apply_lora(build_model("tiny", with_conditioning_encoders=False), LoraSettings(4, 8, 0.0))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape) * 0.05)
    model.save_pretrained(str(root / "adapter"), safe_serialization=True)
    info = json.loads((dataset / "dataset_info.json").read_text())
    return package_model(
        root / "package",
        adapter_dir=root / "adapter",
        conditioning_path=dataset / "global_conditioning.safetensors",
        tokenizer_path=tiny_model_path(),
        gpt_config=preset("tiny"),
        preset="tiny",
        seed=0,
        base_fingerprint=base_fingerprint("tiny"),
        params={},
        selection={"select": "best"},
        reference_clips=[dataset / info["reference_files"][0]],
        dataset_info=info,
        speaker_embeddings=dataset / "speaker_embeddings.safetensors",
        label=TINY_LABEL,
    )


def test_pause_codes_come_from_the_audio_with_a_csv_too(dataset: Path) -> None:
    metas = [s["json"] for tar in sorted(dataset.glob("shard-*.tar")) for s in read_tar_samples(tar)]
    csv_clips = [m for m in metas if m["transcript_source"] == "csv"]
    assert len(csv_clips) == 3 and all(m["pause_codes"] for m in csv_clips)
    assert all("audio_measures" not in m for m in csv_clips)  # no ASR ran for them
    info = json.loads((dataset / "dataset_info.json").read_text())
    evaluation = info["evaluation"]
    assert evaluation["pause_codes"] == sorted(int(c) for c in info["markers"]["pause_codes"])
    assert evaluation["clips"] == 6 and evaluation["audio_clips"] == 3
    assert evaluation["code"]["pauses_per_100_tokens"]["value"] > 0
    assert evaluation["audio"]["fillers_per_100_words"]["value"] > 5
    assert evaluation["audio"]["speaker_similarity"]["value"] > 0.9  # one voice


def test_hesitant_wavs_score_near_the_hesitant_data(package: Path, tmp_path: Path) -> None:
    hesitant = tmp_path / "hesitant"
    fluent = tmp_path / "fluent"
    speaker_corpus(hesitant, HELD_OUT, style=HESITANT, voices=VOICE, seed=9)
    speaker_corpus(fluent, HELD_OUT, style=FLUENT, voices=VOICE, seed=9)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(HELD_OUT) + "\n")
    out = tmp_path / "evaluation"
    with LocalMlflowServer(tmp_path / "mlflow") as server:
        register_package(package, tracking_uri=server.uri, name="hesitant-speaker", alias="candidate")
        env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), MLFLOW_DISABLE_TELEMETRY="true")
        exe = Path(sys.executable).parent / "indextts-dist"
        cmd = [
            str(exe),
            "evaluate",
            "--model",
            "models:/hesitant-speaker@candidate",
            "--mlflow-uri",
            server.uri,
            "--texts",
            str(texts),
            "--wavs",
            str(hesitant),
            "--base-wavs",
            str(fluent),
            "--seeds",
            "1",
            "--max-codes",
            "30",
            "--out",
            str(out),
            "--json",
            "--device",
            "cpu",
            "--resamples",
            "200",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        report = json.loads(proc.stdout)
        from mlflow import MlflowClient

        client = MlflowClient(server.uri)
        (run,) = client.search_runs([client.get_experiment_by_name("indextts-dist-evaluate").experiment_id])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert report == json.loads((out / "evaluation.json").read_text()) | {"mlflow_run_id": run.info.run_id}
    audio = report["audio"]
    for key in ("pauses_per_100_words", "fillers_per_100_words", "words_per_minute"):
        row = audio[key]
        assert abs(row["adapted"] - row["data"]) < abs(row["base"] - row["data"]), (key, row)
    for key in ("pauses_per_100_words", "fillers_per_100_words"):
        assert 0.5 <= audio[key]["transfer"] <= 1.5, (key, audio[key])
        assert audio[key]["base"] < 2  # the fluent speaker barely pauses or hesitates
    assert audio["wer"]["adapted"] < 0.5 and audio["wer"]["base"] < 0.5  # it said the intended words
    assert -1 <= audio["speaker_similarity"]["adapted"] <= 1
    assert report["code"]["stop_rate"]["data"] == 1.0
    assert report["model"]["label"] == TINY_LABEL and TINY_LABEL in (out / "evaluation.md").read_text()
    tags, metrics = run.data.tags, run.data.metrics
    assert (tags["model_name"], tags["model_version"], tags["model_alias"]) == (
        "hesitant-speaker",
        "1",
        "candidate",
    )
    assert tags["indextts.kind"] == "evaluation" and tags["conditioning"] == "global"
    assert metrics["audio.fillers_per_100_words.adapted"] == pytest.approx(
        audio["fillers_per_100_words"]["adapted"]
    )
    assert artifacts == {"evaluation.json", "evaluation.md"}


def test_render_speaks_both_sides_through_the_second_stage_and_measures_them(
    package: Path, tmp_path: Path
) -> None:
    """`--render`: the package's second stage speaks what each side generated (the tiny stage makes
    noise: the machinery, not speech), the wavs land beside the report and are measured."""
    from indextts_dist.evaluate.evaluation import EvaluateOptions, evaluate_model
    from indextts_dist.generate import DecodingConfig
    from indextts_dist.inference.loaded import LoadedModel

    opts = EvaluateOptions(
        out=tmp_path,
        texts=HELD_OUT[:1],
        seeds=1,
        render=True,
        resamples=50,
        decoding=DecodingConfig(seed=0, max_new_tokens=30),
    )
    report = evaluate_model(LoadedModel.load(package, device="cpu"), opts, log=lambda _: None)
    for side in ("adapted", "base"):
        (wav,) = sorted((tmp_path / "wavs" / side).glob("*.wav"))
        assert wav.with_suffix(".txt").read_text().strip() == HELD_OUT[0]
        assert report["per_text"][side][0]["wav"] == str(wav)
        (unit,) = report["audio_units"][side]
        assert unit["clips"] == 1 and unit["reference_words"] == len(HELD_OUT[0].split())
    assert report["audio"]["wer"]["adapted"] is not None


def test_a_shared_base_cache_generates_the_base_once(package: Path, tmp_path: Path) -> None:
    """Evaluations that share a base, conditioning and decoding reuse the base side from the
    caller's cache (what the v1-vs-v2 experiment does over adapters); a new decoding seed misses."""
    from indextts_dist.evaluate.evaluation import EvaluateOptions, evaluate_model
    from indextts_dist.generate import DecodingConfig
    from indextts_dist.inference.loaded import LoadedModel

    model = LoadedModel.load(package, device="cpu")
    said: list[str] = []

    def run(seed: int, cache: dict | None, out: str) -> dict:
        decoding = DecodingConfig(seed=seed, max_new_tokens=20)
        opts = EvaluateOptions(
            out=tmp_path / out, texts=HELD_OUT[:2], seeds=1, resamples=20, decoding=decoding
        )
        return evaluate_model(model, opts, log=said.append, base_cache=cache)

    cache: dict = {}
    first, again = run(0, cache, "a"), run(0, cache, "b")
    assert len(cache) == 1 and any("reusing" in line for line in said)
    assert again["per_text"]["base"] == first["per_text"]["base"] == run(0, None, "c")["per_text"]["base"]
    run(1, cache, "d")
    assert len(cache) == 2
