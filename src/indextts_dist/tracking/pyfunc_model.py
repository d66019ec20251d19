"""The registered model's pyfunc, as models-from-code: MLflow copies this file and runs it at load time.

Nothing is pickled: `mlflow.pyfunc.load_model("models:/NAME@ALIAS")` executes this file (which needs
only the installed `indextts-dist`), then `load_context` loads the package folder logged as the
artifact `package` into the same `LoadedModel` every other door uses (base + merged adapter +
tokenizer + conditioning; long texts segmented like `infer`). Absolute imports only: MLflow runs the
file by path, not as part of the package.

    model.predict(["Hello there.", "[UH] well"], params={"seed": 0, "max_new_tokens": 200})
    -> [[code, ...], [code, ...]]     (semantic codes per text, without the stop code)

Where it runs is the loader's choice, through MLflow's model config (same names and defaults as
`indextts-dist infer --device/--dtype`: CUDA when present, float32); the model must have been logged
with `model_config=PYFUNC_MODEL_CONFIG`, or MLflow drops the keys:

    mlflow.pyfunc.load_model(uri, model_config={"device": "cuda:1", "dtype": "bfloat16"})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import mlflow

from indextts_dist.errors import InputError
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.loaded import LoadedModel, load_package
from indextts_dist.placement import Placement, resolve_placement
from indextts_dist.tracking.package import PYFUNC_MODEL_CONFIG

__all__ = ["PatternCodesModel", "decoding_from_params", "placement_from_config", "texts_from_input"]

PLACEMENT_KEYS = tuple(PYFUNC_MODEL_CONFIG)


def texts_from_input(model_input: Any) -> list[str]:
    """A string, a list of strings, or a DataFrame with a `text` column (else its first column)."""
    if isinstance(model_input, str):
        return [model_input]
    columns = getattr(model_input, "columns", None)
    if columns is not None:  # pandas DataFrame (MLflow turns lists into one-column frames)
        column = "text" if "text" in columns else columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if isinstance(model_input, Mapping) and "text" in model_input:
        return texts_from_input(model_input["text"])
    if hasattr(model_input, "tolist"):  # numpy array / pandas Series
        model_input = model_input.tolist()
    if isinstance(model_input, (list, tuple)) and all(isinstance(t, str) for t in model_input):
        return list(model_input)
    raise InputError(
        "expected a text, a list of texts or a DataFrame with a 'text' column, "
        f"got {type(model_input).__name__}"
    )


def decoding_from_params(params: Mapping[str, Any] | None) -> DecodingConfig:
    """Any `DecodingConfig` field may be given; the rest keep the official defaults."""
    known = {f.name for f in dataclasses.fields(DecodingConfig)}
    values = {k: v for k, v in (params or {}).items() if v is not None or k == "seed"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown decoding params: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return DecodingConfig(**values)


def placement_from_config(model_config: Mapping[str, Any] | None) -> Placement:
    """`model_config` entries `device` and `dtype` (both optional) -> the checked placement."""
    config = dict(model_config or {})
    device, dtype = (str(config[k]) if config.get(k) not in (None, "") else None for k in PLACEMENT_KEYS)
    return resolve_placement(device, dtype)


class PatternCodesModel(mlflow.pyfunc.PythonModel):
    """Text -> semantic codes with the adapter, the global conditioning and the tokenizer it was
    trained with."""

    def __init__(self) -> None:
        self.loaded: LoadedModel | None = None

    def load_context(self, context: Any) -> None:
        placement = placement_from_config(getattr(context, "model_config", None))
        self.loaded = load_package(context.artifacts["package"], placement=placement)

    # `model_input` is deliberately unannotated: mlflow 3.17 turns any annotation on it into an
    # inferred signature that REPLACES the logged one, and that one has no params schema, so every
    # decoding param would be dropped (with a warning only). MLflow's "Add type hints to the
    # `predict` method" warning is therefore expected; it forces its own warning filter, so it
    # cannot be silenced here.
    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> Any:
        if self.loaded is None:
            raise RuntimeError("model not loaded (load it with mlflow.pyfunc.load_model)")
        texts = texts_from_input(model_input)
        results = self.loaded(texts, decoding_from_params(params), latents=False)
        return [[int(c) for c in r.codes.tolist()] for r in results]


mlflow.models.set_model(PatternCodesModel())
