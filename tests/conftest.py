"""Shared fixtures: temporary landing/lake folders and helpers to write landing files."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from upath import UPath

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture
def landing(tmp_path: Path) -> UPath:
    """An empty landing folder."""
    folder = tmp_path / "landing"
    folder.mkdir()
    return UPath(folder)


@pytest.fixture
def lake(tmp_path: Path) -> UPath:
    """An empty lake folder."""
    return UPath(tmp_path / "lake")


def write_ndjson(path: UPath | Path, records: list[object]) -> None:
    """Write records as NDJSON (objects serialized, bytes written as they are)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    Path(path).write_bytes(b"\n".join(lines) + b"\n")


def patient(pid: str, family: str = "Testperson", **extra: object) -> dict[str, object]:
    """A small valid Patient resource."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": "1", "lastUpdated": "2026-01-02T03:04:05Z"},
        "name": [{"family": family, "given": ["Ann"]}],
        "birthDate": "1970-01-01",
        **extra,
    }


def observation(oid: str, pid: str, **extra: object) -> dict[str, object]:
    """A small valid Observation for a patient."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 7.1, "unit": "%"},
        **extra,
    }
