"""The silver ViewDefinitions over a real Synthea US Core bulk export (fhir-bulk-10-patients, read-only)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.sof import run_view
from tests.views_support import (
    SNOMED,
    bundle_resources,
    by_type,
    expected_rows_per_key,
    load_views,
    read_ndjson,
    row_mismatches,
    view_columns,
)

pytestmark = pytest.mark.external

VIEWS = load_views()
# resource types of the export that silver reads, and how many of each the export holds
EXPORTED = {
    "Patient": 13,
    "Encounter": 1215,
    "Condition": 555,
    "Procedure": 2056,
    "Immunization": 161,
    "MedicationRequest": 1745,
    "Organization": 43,
    "Practitioner": 43,
    "Device": 16,
}


@pytest.fixture(scope="module")
def bulk(shared_data: Path) -> dict[str, list[dict[str, Any]]]:
    """The export's resources by type (the client's log.ndjson holds no resources)."""
    folder = shared_data / "fhir-bulk-10-patients"
    return by_type(r for path in sorted(folder.glob("*.ndjson")) for r in read_ndjson(path))


@pytest.fixture(scope="module")
def bulk_rows(bulk: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {table: run_view(view, bulk.get(view["resource"], [])) for table, view in VIEWS.items()}


def test_export_holds_the_expected_resources(bulk: dict[str, list[dict[str, Any]]]) -> None:
    assert {t: len(bulk.get(t, [])) for t in EXPORTED} == EXPORTED


@pytest.mark.parametrize("table", sorted(VIEWS))
def test_rows_per_resource(
    table: str, bulk: dict[str, list[dict[str, Any]]], bulk_rows: dict[str, list[dict[str, Any]]]
) -> None:
    view = VIEWS[table]
    resources = bulk.get(view["resource"], [])
    key = view_columns(view)[0]["name"]
    assert Counter(row[key] for row in bulk_rows[table]) == expected_rows_per_key(table, resources)


@pytest.mark.parametrize("table", sorted(VIEWS))
def test_values_match_the_raw_json(
    table: str, bulk: dict[str, list[dict[str, Any]]], bulk_rows: dict[str, list[dict[str, Any]]]
) -> None:
    resources = bulk.get(VIEWS[table]["resource"], [])
    assert row_mismatches(table, bulk_rows[table], resources) == []


def test_spot_checks(
    bulk: dict[str, list[dict[str, Any]]], bulk_rows: dict[str, list[dict[str, Any]]]
) -> None:
    patients = {row["id"]: row for row in bulk_rows["patient"]}
    for patient in bulk["Patient"]:
        row = patients[patient["id"]]
        assert row["birth_date"] == patient["birthDate"]
        assert row["gender"] == patient["gender"]
        assert row["race_code"] is not None and row["ethnicity_code"] is not None  # US Core extensions
    assert sum(row["deceased_date_time"] is not None for row in patients.values()) == 3

    conditions = {row["id"]: row for row in bulk_rows["condition"]}
    for condition in bulk["Condition"]:
        snomed = [c for c in condition["code"]["coding"] if c["system"] == SNOMED]
        assert conditions[condition["id"]]["code"] == snomed[0]["code"]
        assert conditions[condition["id"]]["patient_id"] in patients

    # every clinical row names a Patient of the export
    for table in ("encounter", "condition", "procedure", "immunization", "medication_request", "device"):
        assert {row["patient_id"] for row in bulk_rows[table]} <= set(patients), table
    # Synthea writes encounter, procedure and medication links as resolvable Type/id references...
    encounters = {row["id"] for row in bulk_rows["encounter"]}
    for table in ("condition", "procedure", "immunization", "medication_request"):
        assert {row["encounter_id"] for row in bulk_rows[table]} <= encounters, table
    # ...but practitioners and organizations as conditional references (Practitioner?identifier=...),
    # which are not keys: the views leave those columns empty rather than guess
    assert {row["practitioner_id"] for row in bulk_rows["encounter"]} == {None}
    assert {row["requester_id"] for row in bulk_rows["medication_request"]} == {None}

    practitioners = bulk_rows["practitioner"]
    assert all(row["npi"] and len(row["npi"]) == 10 for row in practitioners)
    procedures = bulk_rows["procedure"]
    assert all(row["performed_start"] and row["performed_end"] for row in procedures)
    assert {row["vaccine_system"] for row in bulk_rows["immunization"]} == {"http://hl7.org/fhir/sid/cvx"}
    assert all(row["udi_device_identifier"] for row in bulk_rows["device"])


@pytest.fixture(scope="module")
def bundles(synthea_bundles: Path) -> dict[str, list[dict[str, Any]]]:
    """The 79-patient Synthea transaction Bundles' resources by type, references resolved as bronze does."""
    return by_type(r for path in sorted(synthea_bundles.rglob("*.json")) for r in bundle_resources(path))


@pytest.fixture(scope="module")
def bundle_rows(bundles: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {table: run_view(view, bundles.get(view["resource"], [])) for table, view in VIEWS.items()}


@pytest.mark.parametrize("table", sorted(VIEWS))
def test_bundles_rows_and_values(
    table: str, bundles: dict[str, list[dict[str, Any]]], bundle_rows: dict[str, list[dict[str, Any]]]
) -> None:
    view = VIEWS[table]
    resources = bundles.get(view["resource"], [])
    key = view_columns(view)[0]["name"]
    assert Counter(row[key] for row in bundle_rows[table]) == expected_rows_per_key(table, resources)
    assert row_mismatches(table, bundle_rows[table], resources) == []


def test_bundles_spot_checks(
    bundles: dict[str, list[dict[str, Any]]], bundle_rows: dict[str, list[dict[str, Any]]]
) -> None:
    assert len(bundle_rows["patient"]) == 79
    assert len(bundle_rows["observation"]) == len(bundles["Observation"]) > 10_000
    patients = {row["id"] for row in bundle_rows["patient"]}
    # urn:uuid references were resolved, so every observation names one of the 79 patients
    assert {row["patient_id"] for row in bundle_rows["observation"]} <= patients
    # these bundles carry blood pressure as separate CIEL-coded observations (5085 systolic), no panels
    systolic = [row for row in bundle_rows["observation"] if row["code"] and row["code"].startswith("5085")]
    assert systolic and all(row["value_quantity_value"] is not None for row in systolic)
    assert bundle_rows["observation_component"] == []
