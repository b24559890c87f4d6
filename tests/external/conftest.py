"""Real data made outside this project (../shared/data): skipped when absent, required in CI."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
import zstandard

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"external test data not found at {path}"
    if os.environ.get("PATIENT_INSIGHTS_REQUIRE_EXTERNAL") == "1":
        pytest.fail(message + " (PATIENT_INSIGHTS_REQUIRE_EXTERNAL=1)")
    pytest.skip(message + "; place the shared data folder beside the repository to run these tests")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def synthea_bundles(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 79-patient Synthea Bundle archive, unpacked into a temporary folder (once per session)."""
    archive = _require(shared_data / "synthea-r4-79-patients.tar.zst")
    target = tmp_path_factory.mktemp("synthea79")
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        tar.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def synthea_lake(synthea_bundles: Path, tmp_path_factory: pytest.TempPathFactory):
    """The Synthea bundles through bronze, silver (4 buckets) and identity, once per session. Tests read it
    and may add models; they do not rewrite its tables."""
    from upath import UPath

    from pipelines.bronze.ingest import ingest_landing
    from pipelines.identity.build import build_identity
    from pipelines.silver.build import build_partition, partition_keys

    lake = UPath(tmp_path_factory.mktemp("synthea_lake") / "lake")
    ingest_landing(UPath(synthea_bundles), lake, buckets=4)
    for key in partition_keys(4):
        build_partition(lake, key)
    build_identity(lake)
    return lake
