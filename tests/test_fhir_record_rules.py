"""FHIR record rules of issue 25: records without a resolvable patient, the lower-severity record rules,
versions and deaths from the future, and implausible birth dates, from landing files to silver and gold."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import polars as pl
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.lake import read_table
from pipelines.silver.build import build_partition, partition_keys
from pipelines.silver.expectations import check_table, load_suites
from pipelines.silver.views import load_views, patient_reference_elements
from tests.conftest import observation, patient, write_ndjson

CORPUS = Path(__file__).resolve().parent / "corpus"


def silver(lake: UPath, table: str) -> pl.DataFrame:
    files = sorted((Path(lake) / "silver" / table).glob("**/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else pl.DataFrame()


def silver_contract_failures(lake: UPath) -> dict[str, list[str]]:
    """Every silver table's contract over all its partitions: table -> failures (empty when it passes)."""
    suites = load_suites()
    failures = {}
    for view in load_views():
        frame = silver(lake, view.name)
        if frame.height:
            outcome = check_table(view.name, frame.drop("bucket", strict=False), suites[view.name])
            if not outcome.success:
                failures[view.name] = outcome.failures
    return failures


def test_the_types_silver_keeps_per_patient_come_from_the_contracts(tmp_path: Path) -> None:
    elements = patient_reference_elements()
    assert elements["Observation"] == "subject" and elements["Immunization"] == "patient"
    assert elements["Coverage"] == "beneficiary"
    for no_patient in ("Organization", "Practitioner", "Location", "Medication", "Patient"):
        assert no_patient not in elements
    # a view whose suite does not require patient_id is not listed; one whose suite does, is
    views, suites = tmp_path / "views", tmp_path / "expectations"
    views.mkdir(), suites.mkdir()
    column = {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"}
    for name, resource in (("flag", "Flag"), ("goal", "Goal")):
        view = {
            "resourceType": "ViewDefinition",
            "name": name,
            "resource": resource,
            "select": [{"column": [column]}],
        }
        (views / f"{name}.json").write_bytes(orjson.dumps(view))
    not_null = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}}
    (suites / "flag.json").write_bytes(orjson.dumps({"name": "flag", "expectations": [not_null]}))
    (suites / "goal.json").write_bytes(orjson.dumps({"name": "goal", "expectations": []}))
    assert patient_reference_elements(views) == {"Flag": "subject"}


def test_records_without_a_resolvable_patient_are_quarantined_and_silver_contracts_pass(
    landing: UPath, lake: UPath
) -> None:
    source = Path(landing) / "ehr"
    write_ndjson(
        source / "Patient.000.ndjson",
        [patient("p1"), patient("p2")],
    )
    no_subject = observation("o-none", "p1")
    del no_subject["subject"]
    contained = observation("o-contained", "p1", contained=[patient("c1")])
    contained["subject"] = {"reference": "#c1"}
    write_ndjson(
        source / "Observation.000.ndjson",
        [observation("o1", "p1"), no_subject, contained, observation("o2", "p2")],
    )
    write_ndjson(
        source / "Organization.000.ndjson",
        [{"resourceType": "Organization", "id": "org1", "name": "A clinic"}],
    )
    bundles = Path(landing) / "bundles"
    bundles.mkdir()
    (bundles / "source.yaml").write_text("format: fhir\n")
    shutil.copy(CORPUS / "fhir_bundle" / "unresolved_urn_uuid.json", bundles / "b1.json")
    ingest_landing(landing, lake, buckets=2)
    quarantine = read_table(lake, "bronze", "quarantine")
    assert sorted(
        quarantine.filter(pl.col("reason_code") == "no_patient_reference")["entry"].to_list(), key=str
    ) == [
        2,
        None,
        None,
    ]
    for key in partition_keys(2):
        build_partition(lake, key)
    assert silver_contract_failures(lake) == {}
    observations = silver(lake, "observation")
    assert sorted(observations["id"].to_list()) == ["o1", "o1", "o2"]  # ehr's o1, o2 and the bundle's o1
    assert silver(lake, "organization").height == 2
