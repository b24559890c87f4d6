"""Identity on the 79-patient Synthea bundles: one person per Patient (no two real people merged)."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.identity.build import build_identity
from pipelines.lake import read_table
from pipelines.silver.build import build_partition, partition_keys

pytestmark = pytest.mark.external


def test_every_synthea_patient_is_exactly_one_person(synthea_bundles: Path, tmp_path: Path) -> None:
    lake = UPath(tmp_path / "lake")
    ingest_landing(UPath(synthea_bundles), lake, buckets=4)
    for key in partition_keys(4):
        build_partition(lake, key)
    report = build_identity(lake)
    patients = read_table(lake, "silver", "patient")
    links = read_table(lake, "identity", "person_link")
    assert patients.height == report.records == links.height > 0
    assert links["person_id"].n_unique() == patients.height == report.persons
