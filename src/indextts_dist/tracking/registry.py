"""Registering a model package in MLflow (ONE version per training run, with an alias) and fetching it.

The package is logged as a models-from-code pyfunc (`pyfunc_model.py` + the package folder as the
artifact `package`): loading it never unpickles anything, and needs only `indextts-dist` installed.
Registration is the last step of a long training run, so a tracking server that is briefly away must
not throw the result away: each step is retried with exponential backoff, and when it still fails
the package stays on disk and the error carries the one command that registers it later.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
import typing
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UserError
from ..generate import DecodingConfig
from .metrics import first_line, is_transient_error, mlflow_http_limits
from .package import PYFUNC_MODEL_CONFIG, PackageError, installed_version, verify_package

__all__ = [
    "PYFUNC_MODEL_FILE",
    "ModelNotFoundError",
    "RegisteredVersion",
    "RegistrationError",
    "RegistryError",
    "alias_version",
    "decoding_param_schema",
    "fetch_model",
    "model_signature",
    "register_command",
    "register_package",
]

PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")
T = TypeVar("T")


class RegistryError(UserError, RuntimeError):
    """The model registry could not be reached or refused a request (one line)."""


class RegistrationError(RegistryError):
    """Registration failed after retries; the message ends with the command that registers it later."""


class ModelNotFoundError(UserError, ValueError):
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` names something the registry does not have."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    alias: str
    model_uri: str
    """`models:/NAME/VERSION`: this exact version, whatever the alias points to later."""
    model_id: str | None = None
    """The logged model (`models:/m-<id>`) behind the version."""

    @property
    def alias_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


# -- signature ----------------------------------------------------------------------------------------


def decoding_param_schema() -> Any:
    """One inference param per `DecodingConfig` field, with its default. MLflow drops params that
    are not in the signature (with a warning only), so every field must be declared."""
    from mlflow.types import ParamSchema, ParamSpec

    hints = typing.get_type_hints(DecodingConfig)
    specs = []
    for field in dataclasses.fields(DecodingConfig):
        specs.append(ParamSpec(field.name, _mlflow_type(hints[field.name]), field.default))
    return ParamSchema(specs)


def _mlflow_type(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return "string"
    if args and typing.get_origin(hint) is not typing.Literal:  # Optional[X]
        hint = args[0]
    return {bool: "boolean", int: "long", float: "double", str: "string"}[hint]


def model_signature() -> Any:
    """Input: one unnamed string column, so a plain list of texts (or one text) is accepted as is."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string")]), params=decoding_param_schema())


# -- registration -------------------------------------------------------------------------------------


def register_command(
    package_dir: str | Path, tracking_uri: str, name: str, alias: str, run_id: str | None = None
) -> str:
    parts = [
        "indextts-dist", "register",
        "--package", str(package_dir),
        "--mlflow-uri", tracking_uri,
        "--register-name", name,
        "--alias", alias,
    ]  # fmt: skip
    if run_id:
        parts += ["--run-id", run_id]
    return shlex.join(parts)


def register_package(
    package_dir: str | Path,
    *,
    tracking_uri: str,
    name: str,
    alias: str = "candidate",
    run_id: str | None = None,
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout_s: int = 120,
) -> RegisteredVersion:
    """Log the package (attached to `run_id` when given), register it as a new version of `name`
    and point `alias` at it. Raises `RegistrationError` (with the later command) when it fails.

    Each step (log, register, alias) is tried up to `1 + retries` times on transient errors, waiting
    `backoff_s`, `2·backoff_s`, ... in between, so a success is never repeated by a later retry.
    A package that fails `verify_package` raises `PackageError` at once (nothing to retry)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import Model

    package_dir = Path(package_dir).resolve()
    manifest = verify_package(package_dir)  # a broken package is not worth retrying
    command = register_command(package_dir, tracking_uri, name, alias, run_id)
    summary = _summary(manifest)

    def log_model() -> str:
        client = MlflowClient()
        experiment_id = client.get_run(run_id).info.experiment_id if run_id else None
        # Without experiment_id, mlflow 3.17 files the logged model under the default experiment
        # even when it comes from a run in another experiment.
        logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id, experiment_id=experiment_id)
        with warnings.catch_warnings():
            # No input example on purpose: validating one would load the base model (official
            # weights) here, at the end of training.
            warnings.filterwarnings("ignore", message=r".*An input example was not provided")
            Model.log(
                artifact_path=None,
                name=name,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                model_id=logged.model_id,
                python_model=str(PYFUNC_MODEL_FILE),
                artifacts={"package": str(package_dir)},
                pip_requirements=[f"indextts-dist=={installed_version()}"],
                signature=model_signature(),
                model_config=dict(PYFUNC_MODEL_CONFIG),  # declared, so load_model may override them
                metadata={"indextts_dist": summary},
            )
        return logged.model_id

    def register(model_id: str) -> str:
        tags = {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in summary.items()}
        return str(mlflow.register_model(f"models:/{model_id}", name, tags=tags).version)

    def set_alias(version: str) -> None:
        MlflowClient().set_registered_model_alias(name, alias, version)

    attempts = max(1, retries + 1)
    with _tracking_uri(tracking_uri), mlflow_http_limits(timeout_s):
        try:
            model_id = _with_backoff(log_model, attempts, backoff_s)
            version = _with_backoff(lambda: register(model_id), attempts, backoff_s)
            _with_backoff(lambda: set_alias(version), attempts, backoff_s)
        except Exception as exc:
            raise RegistrationError(
                f"could not register {package_dir} as {name!r} at {tracking_uri} ({first_line(exc)}); "
                f"the package is kept; register it later with: {command}"
            ) from exc
    return RegisteredVersion(name, version, alias, f"models:/{name}/{version}", model_id)


def _with_backoff(step: Callable[[], T], attempts: int, backoff_s: float) -> T:
    """Retry transient failures (server away, 5xx) with waits of backoff_s, 2·backoff_s, ..."""
    for i in range(attempts):
        try:
            return step()
        except Exception as exc:
            if i == attempts - 1 or not is_transient_error(exc):
                raise
            time.sleep(backoff_s * 2**i)
    raise AssertionError("unreachable")


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a registry user wants to see without downloading the package."""
    keys = ("format_version", "preset", "seed", "base_fingerprint", "selection", "label")
    summary = {k: manifest.get(k) for k in keys if manifest.get(k) is not None}
    dataset = manifest.get("dataset") or {}
    if dataset.get("version"):
        summary["dataset_version"] = dataset["version"]
    return json.loads(json.dumps(summary, default=str))  # plain types for MLmodel's YAML


@contextmanager
def _tracking_uri(uri: str | None) -> Iterator[None]:
    """mlflow's logging and registration helpers read the global tracking URI; set it only for the
    duration of the call and give the process back what it had."""
    import mlflow

    if uri is None:
        yield
        return
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it


# -- fetching -----------------------------------------------------------------------------------------


def fetch_model(uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` -> the package folder, downloaded under `dst`.

    `tracking_uri` defaults to MLflow's own resolution (`MLFLOW_TRACKING_URI`)."""
    import mlflow

    name, ref_kind, ref = _parse_models_uri(uri)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    with _tracking_uri(tracking_uri), mlflow_http_limits(120, max_retries=2):
        where = mlflow.get_tracking_uri()
        try:
            if name is not None:
                _check_exists(name, ref_kind, ref, uri, where)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
        except ModelNotFoundError:
            raise
        except Exception as exc:
            raise RegistryError(f"could not fetch {uri} from {where} ({first_line(exc)})") from None
    return _package_in(local, uri)


def alias_version(uri: str, *, tracking_uri: str | None = None) -> str:
    """The version `models:/NAME@ALIAS` points to now (one registry call, no download): what a
    server following the alias polls. Raises `ModelNotFoundError` / `RegistryError` (one line)."""
    import mlflow
    from mlflow import MlflowClient

    name, kind, alias = _parse_models_uri(uri)
    if name is None or kind != "alias":
        raise ModelNotFoundError(f"{uri}: following needs an alias, models:/NAME@ALIAS")
    with _tracking_uri(tracking_uri), mlflow_http_limits(30, max_retries=1):
        where = mlflow.get_tracking_uri()
        try:
            _check_exists(name, kind, alias, uri, where)
            return str(MlflowClient().get_model_version_by_alias(name, alias).version)
        except ModelNotFoundError:
            raise
        except Exception as exc:
            raise RegistryError(f"could not resolve {uri} at {where} ({first_line(exc)})") from None


def _parse_models_uri(uri: str) -> tuple[str | None, str, str]:
    """(name, 'alias'|'version'|'id', ref); name is None for a logged-model id `models:/m-<id>`."""
    if not uri.startswith("models:/"):
        raise ModelNotFoundError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias:
            return name, "alias", alias
    elif "/" in rest:
        name, version = rest.split("/", 1)
        if name and version.isdigit():
            return name, "version", version
    elif rest.startswith("m-"):
        return None, "id", rest
    raise ModelNotFoundError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")


def _check_exists(name: str, kind: str, ref: str, uri: str, where: str) -> None:
    """Name the missing piece (model, alias or version) instead of MLflow's REST error text."""
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException

    client = MlflowClient()
    try:
        registered = client.get_registered_model(name)
    except RestException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFoundError(f"{uri}: no registered model named {name!r} at {where}") from None
        raise
    if kind == "alias" and ref not in (registered.aliases or {}):
        have = ", ".join(f"@{a}->v{v}" for a, v in sorted((registered.aliases or {}).items())) or "none"
        raise ModelNotFoundError(f"{uri}: model {name!r} has no alias {ref!r} (aliases: {have})")
    if kind == "version":
        try:
            client.get_model_version(name, ref)
        except RestException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ModelNotFoundError(f"{uri}: model {name!r} has no version {ref}") from None
            raise


def _package_in(model_dir: Path, uri: str) -> Path:
    """The package folder inside a downloaded MLflow model, found through its MLmodel file."""
    import yaml

    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise PackageError(f"{uri}: not an MLflow model (no MLmodel file)")
    spec = yaml.safe_load(mlmodel.read_text()) or {}
    artifacts = (spec.get("flavors", {}).get("python_function", {}) or {}).get("artifacts") or {}
    rel = (artifacts.get("package") or {}).get("path")
    if not rel:
        raise PackageError(f"{uri}: not an indextts-dist model (no 'package' artifact)")
    package = model_dir / rel
    verify_package(package)
    return package
