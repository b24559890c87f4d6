"""The model registry's layout and deployment pointer, shared by every model family.

A registry is a folder (by default `<lake>/models`, which the pipeline scores with). `<registry>/<name>/
<version>/` holds `model.joblib`, `model_card.md`, any extra files and `metadata.json` (written last, so a
version is complete once its metadata exists); `<registry>/<name>/deployed.json` points at the version in
use and says when and why it was deployed, and an environment variable can pin another registered version
for a run.
"""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from typing import Any

import joblib
from upath import UPath

from pipelines.lake import write_bytes_atomic

MODELS = "models"
DEPLOYED = "deployed.json"


class RegistryError(RuntimeError):
    """A model that cannot be used: missing, or not matching this code."""


def registry_of(lake: UPath) -> UPath:
    """The registry the pipeline scores with: `<lake>/models`."""
    return lake / MODELS


def model_folder(registry: UPath, name: str) -> UPath:
    """The registry folder of one model."""
    return registry / name


def has_version(registry: UPath, name: str, version: str) -> bool:
    """True when the version is fully registered (its metadata is written last)."""
    return (model_folder(registry, name) / version / "metadata.json").exists()


def save_version(
    registry: UPath,
    name: str,
    version: str,
    estimator: Any,
    metadata: dict[str, Any],
    card: str,
    extra_files: dict[str, bytes] | None = None,
) -> None:
    """Write a version: the estimator, its card and extra files, then its metadata."""
    folder = model_folder(registry, name) / version
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    write_bytes_atomic(buffer.getvalue(), folder / "model.joblib")
    write_bytes_atomic(card.encode(), folder / "model_card.md")
    for file_name, content in (extra_files or {}).items():
        write_bytes_atomic(content, folder / file_name)
    write_bytes_atomic(json.dumps(metadata, indent=2, sort_keys=True).encode(), folder / "metadata.json")


def version_file(registry: UPath, name: str, version: str, file_name: str) -> UPath:
    """A file stored with a version (see `save_version`'s extra files)."""
    return model_folder(registry, name) / version / file_name


def read_metadata(registry: UPath, name: str, version: str) -> dict[str, Any]:
    """The metadata of a registered version."""
    if not has_version(registry, name, version):
        raise RegistryError(f"model {name} version {version} is not in the registry")
    return json.loads((model_folder(registry, name) / version / "metadata.json").read_text())


def read_estimator(registry: UPath, name: str, version: str) -> Any:
    """The saved estimator of a registered version (the registry is trusted: it is written by us)."""
    with (model_folder(registry, name) / version / "model.joblib").open("rb") as handle:
        return joblib.load(handle)


def deploy(registry: UPath, name: str, version: str, reason: str = "") -> None:
    """Point scoring at `version`, recording when, why, and which version it replaces."""
    if not has_version(registry, name, version):
        raise RegistryError(f"model {name} has no registered version {version}")
    previous = deployment(registry, name)
    if previous and previous.get("version") == version:
        return  # already deployed: keep the record of when and why
    record = {
        "version": version,
        "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": reason,
        "replaces": previous.get("version") if previous else None,
    }
    write_bytes_atomic(json.dumps(record, indent=2).encode(), model_folder(registry, name) / DEPLOYED)


def deployment(registry: UPath, name: str) -> dict[str, Any] | None:
    """The deployment record of a model (version, when, why, replaced version), or None."""
    pointer = model_folder(registry, name) / DEPLOYED
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text())


def deployed_version(registry: UPath, name: str, pin_variable: str) -> str | None:
    """The version pinned in `pin_variable` (when it names this model) or the deployed one, else None."""
    pinned = os.environ.get(pin_variable)
    if pinned and pinned.startswith(f"{name}-"):
        return pinned
    record = deployment(registry, name)
    return str(record["version"]) if record else None
