"""MLflow for the trainer: metrics from the main process, the model package format, registration,
fetching. Loading a package into a runnable model is `inference.loaded.load_package`.

Names are imported lazily: importing `indextts_dist.tracking` (from every rank of a training job, or
to run `python -m indextts_dist.tracking.local_server`) loads neither mlflow nor torch by itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .local_server import LocalMlflowServer, ServerStartError
    from .metrics import MetricsLogger
    from .package import PackageError, package_model, read_manifest, verify_package
    from .registry import (
        ModelNotFoundError,
        RegisteredVersion,
        RegistrationError,
        RegistryError,
        fetch_model,
        register_command,
        register_package,
    )

_WHERE = {
    "LocalMlflowServer": "local_server",
    "ServerStartError": "local_server",
    "MetricsLogger": "metrics",
    "PackageError": "package",
    "package_model": "package",
    "read_manifest": "package",
    "verify_package": "package",
    "ModelNotFoundError": "registry",
    "RegisteredVersion": "registry",
    "RegistrationError": "registry",
    "RegistryError": "registry",
    "fetch_model": "registry",
    "register_command": "registry",
    "register_package": "registry",
}

__all__ = [
    "LocalMlflowServer",
    "MetricsLogger",
    "ModelNotFoundError",
    "PackageError",
    "RegisteredVersion",
    "RegistrationError",
    "RegistryError",
    "ServerStartError",
    "fetch_model",
    "package_model",
    "read_manifest",
    "register_command",
    "register_package",
    "verify_package",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
