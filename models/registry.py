"""The model registry's layout and deployment pointer, shared by every model family.

`<lake>/models/<name>/<version>/` holds `model.joblib`, `model_card.md` and `metadata.json` (written last,
so a version is complete once its metadata exists); `<lake>/models/<name>/deployed.json` points at the
version in use, and an environment variable can pin another registered version for a run.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import joblib
from upath import UPath

from pipelines.lake import write_bytes_atomic

MODELS = "models"
DEPLOYED = "deployed.json"


class RegistryError(RuntimeError):
    """A model that cannot be used: missing, or not matching this code."""


def model_folder(lake: UPath, name: str) -> UPath:
    """The registry folder of one model."""
    return lake / MODELS / name


def has_version(lake: UPath, name: str, version: str) -> bool:
    """True when the version is fully registered (its metadata is written last)."""
    return (model_folder(lake, name) / version / "metadata.json").exists()


def save_version(
    lake: UPath, name: str, version: str, estimator: Any, metadata: dict[str, Any], card: str
) -> None:
    """Write a version: the estimator, its card, then its metadata."""
    folder = model_folder(lake, name) / version
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    write_bytes_atomic(buffer.getvalue(), folder / "model.joblib")
    write_bytes_atomic(card.encode(), folder / "model_card.md")
    write_bytes_atomic(json.dumps(metadata, indent=2, sort_keys=True).encode(), folder / "metadata.json")


def read_metadata(lake: UPath, name: str, version: str) -> dict[str, Any]:
    """The metadata of a registered version."""
    if not has_version(lake, name, version):
        raise RegistryError(f"model {name} version {version} is not in the registry")
    return json.loads((model_folder(lake, name) / version / "metadata.json").read_text())


def read_estimator(lake: UPath, name: str, version: str) -> Any:
    """The saved estimator of a registered version (the registry is trusted: it is written by us)."""
    with (model_folder(lake, name) / version / "model.joblib").open("rb") as handle:
        return joblib.load(handle)


def deploy(lake: UPath, name: str, version: str) -> None:
    """Point scoring at `version`."""
    if not has_version(lake, name, version):
        raise RegistryError(f"model {name} has no registered version {version}")
    write_bytes_atomic(json.dumps({"version": version}).encode(), model_folder(lake, name) / DEPLOYED)


def deployed_version(lake: UPath, name: str, pin_variable: str) -> str | None:
    """The version pinned in `pin_variable` (when it names this model) or the deployed one, else None."""
    pinned = os.environ.get(pin_variable)
    if pinned and pinned.startswith(f"{name}-"):
        return pinned
    pointer = model_folder(lake, name) / DEPLOYED
    if not pointer.exists():
        return None
    return str(json.loads(pointer.read_text())["version"])
