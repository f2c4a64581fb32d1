"""The model registry: registering a model, the `@champion` alias and version tags.

`ckrun tune --register` and `ckrun run` promote a model by pointing an alias at a new version;
reading the alias back lets a re-run skip registering the same champion twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from ckrun.tracking.store import configure, quiet_loggers


def register_model(model_uri: str, name: str, alias: str = "champion") -> str:
    """Register `model_uri` under `name` and point `alias` at the new version."""
    configure()
    with quiet_loggers(("mlflow.tracking._model_registry.client", "mlflow.store.model_registry")):
        version = mlflow.register_model(model_uri, name)
    MlflowClient().set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def _alias_version(name: str, alias: str) -> Any:
    configure()
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def alias_run_id(name: str, alias: str = "champion") -> str | None:
    """The run whose model `name@alias` points at, or None when there is no such alias."""
    version = _alias_version(name, alias)
    return version.run_id if version is not None else None


def alias_tags(name: str, alias: str = "champion") -> dict[str, str]:
    """The tags of the version `name@alias` points at ({} when there is no such alias)."""
    version = _alias_version(name, alias)
    return dict(version.tags or {}) if version is not None else {}


def alias_version(name: str, alias: str = "champion") -> str | None:
    version = _alias_version(name, alias)
    return str(version.version) if version is not None else None


def tag_model_version(name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Tags on a registered model version (study, trial number, source run), for the registry UI."""
    configure()
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
