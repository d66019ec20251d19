"""`benchmarks/pattern_transfer.py --quick` end to end: the v1-vs-v2 experiment's machinery.

A few dozen clips and one epoch per model, so the numbers say nothing; what is checked is that every
arm ran through the real pipeline (preprocess on the mini preset, a fully fine-tuned per-clip base
exported as a base file, LoRA adapters with global and per-clip conditioning on it, `evaluate` with
both mel-position conventions and a held-out reference clip for v1) and that the table carries the
data's values and the mini preset's label.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indextts_dist.model import MINI_LABEL

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pattern_transfer.py"


def test_quick_run_exercises_every_arm(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    result = json.loads((tmp_path / "pattern_transfer.json").read_text())
    arms = {(r["model"], r["variant"], r["mel_positions"]) for r in result["rows"]}
    assert arms == {
        ("v2", "markers", "official"),
        ("v2", "markers", "training"),
        ("v1", "markers", "official"),
    }
    for row in result["rows"]:
        code = row["code"]
        assert code["codes_per_text_token"]["data"] > 0 and code["stop_rate"]["data"] == 1.0
        assert code["codes_per_text_token"]["adapted"] is not None and len(row["sanity"]) == 3
    md = (tmp_path / "pattern_transfer.md").read_text()
    assert result["label"] == MINI_LABEL and MINI_LABEL in md
    assert "| **v2**, training positions | 1 |" in md and "| training data | – |" in md  # the summary
    v1 = json.loads(next((tmp_path / "evaluations").glob("v1-*/evaluation.json")).read_text())
    assert v1["model"]["conditioning"] == "per-clip" and "held_out" in v1["model"]["reference_clip"]
    base = json.loads((tmp_path / "base_run" / "model" / "manifest.json").read_text())
    assert (base["method"], base["conditioning_kind"], base["preset"]) == ("full", "per-clip", "mini")
    v2 = json.loads((tmp_path / "runs" / "v2-markers-s0" / "model" / "manifest.json").read_text())
    assert (
        v2["method"] == "lora" and v2["base_fingerprint"] != base["base_fingerprint"]
    )  # the pretrained base
