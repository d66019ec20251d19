"""An `evaluate` report as an MLflow run: tagged with the model it measured, metrics per side.

The run lives in the experiment `indextts-dist-evaluate` (or the one given) and is tagged
`indextts.kind = evaluation`, `model_name`, `model_version`, `model_alias` (the version the alias
pointed at when it was evaluated: aliases move, the run must still say what it measured), preset,
conditioning kind and label. Each statistic is logged as `SPACE.KEY.SIDE` (`code.stop_rate.base`,
`audio.wer.adapted`, `code.pause_code_share.transfer`, ...); the JSON report and the Markdown table
are its artifacts.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .metrics import first_line, mlflow_http_limits
from .registry import RegistryError, _parse_models_uri, _tracking_uri

__all__ = ["EVALUATION_EXPERIMENT", "log_evaluation", "model_reference"]

EVALUATION_EXPERIMENT = "indextts-dist-evaluate"


def model_reference(uri: str, tracking_uri: str | None) -> dict[str, str | None]:
    """name / version / alias of a `models:/` URI (the alias resolved to its version now); a
    folder has none of them."""
    if not uri.startswith("models:/"):
        return {"model_name": None, "model_version": None, "model_alias": None}
    from mlflow import MlflowClient

    name, kind, ref = _parse_models_uri(uri)
    if kind == "version":
        return {"model_name": name, "model_version": ref, "model_alias": None}
    if kind != "alias" or name is None:
        return {"model_name": name, "model_version": None, "model_alias": None}
    with _tracking_uri(tracking_uri), mlflow_http_limits(30):
        version = MlflowClient().get_model_version_by_alias(name, ref).version
    return {"model_name": name, "model_version": str(version), "model_alias": ref}


def _metrics(report: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for space in ("code", "audio"):
        for key, row in (report.get(space) or {}).items():
            for side in ("data", "base", "adapted", "transfer"):
                v = row.get(side)
                if isinstance(v, int | float) and math.isfinite(v):
                    out[f"{space}.{key}.{side}"] = float(v)
    return out


def log_evaluation(
    report: Mapping[str, Any],
    files: Sequence[Path],
    *,
    tracking_uri: str,
    reference: Mapping[str, str | None],
    experiment: str = EVALUATION_EXPERIMENT,
) -> str:
    """Log the run and return its id (a one-line `RegistryError` when the server refuses or is away)."""
    import mlflow

    model = report["model"]
    tags = {
        "indextts.kind": "evaluation",
        "model_uri": model["uri"],
        "preset": model["preset"],
        "conditioning": model["conditioning"],
        "method": model["method"],
        "label": model.get("label"),
        **reference,
    }
    params = {
        "seeds": ",".join(map(str, report["seeds"])),
        "texts": len(report["texts"]),
        **{f"decoding.{k}": v for k, v in report["decoding"].items()},
    }
    try:
        # stdout carries the report (`--json`): mlflow's "View run" line goes to stderr
        with _tracking_uri(tracking_uri), mlflow_http_limits(30), contextlib.redirect_stdout(sys.stderr):
            mlflow.set_experiment(experiment)
            name = f"evaluate {reference.get('model_name') or Path(model['uri']).name}"
            with mlflow.start_run(run_name=name) as run:
                mlflow.set_tags({k: str(v) for k, v in tags.items() if v is not None})
                mlflow.log_params(params)
                mlflow.log_metrics(_metrics(report))
                for path in files:
                    mlflow.log_artifact(str(path))
                return run.info.run_id
    except Exception as exc:
        raise RegistryError(f"could not log the evaluation to {tracking_uri} ({first_line(exc)})") from None
