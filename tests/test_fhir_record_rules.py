"""FHIR record rules of issue 25: records without a resolvable patient, the lower-severity record rules,
versions and deaths from the future, and implausible birth dates, from landing files to silver and gold."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
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


# --- implausible birth dates and deaths from the future (gold/patient_360) -------------------------------


def persons_frame(rows: list[tuple[str, str | None, str | None]]) -> pl.DataFrame:
    """identity/person rows (person_id, birth_date, deceased) with the other golden fields empty."""
    text = ("given", "family", "gender", "language", "address_line", "address_city", "address_state")
    return pl.DataFrame(
        {
            "person_id": [r[0] for r in rows],
            "source_records": [[f"ehr|{r[0]}"] for r in rows],
            "birth_date": [r[1] for r in rows],
            "deceased": [r[2] for r in rows],
            **{c: ["unknown" if c == "gender" else None] * len(rows) for c in text},
            "address_postal_code": [None] * len(rows),
            "phone": [None] * len(rows),
            "email": [None] * len(rows),
        },
        schema_overrides={c: pl.String for c in ("birth_date", "deceased", *text, "phone", "email")},
    )


def test_implausible_birth_dates_give_an_unknown_age_with_a_flag_and_the_contract_passes(
    tmp_path: Path,
) -> None:
    from pipelines.gold.patient_360 import build_patient_360
    from pipelines.gold.records import PersonRecords

    as_of = date(2026, 6, 30)
    persons = persons_frame(
        [
            ("a", "0000-01-01", None),
            ("b", "1885-03-02", None),
            ("c", "1900-01-01", None),
            ("d", "2031-02-03", None),  # after the as-of day + tolerance
            ("e", "1960-05-06", None),
            ("f", "1901-02-03", None),  # 125 on the as-of day: the oldest plausible age
            ("g", "1901-07-03", None),  # 124
            ("h", "1900-06-01", None),  # 126: older than anyone has lived
            ("i", "1970", None),  # a FHIR partial date: no whole-years age
            ("j", None, None),
        ]
    )
    records = PersonRecords(UPath(tmp_path / "lake"), persons, pl.DataFrame(schema={"person_id": pl.String}))
    view = build_patient_360(records, as_of)
    got = {r["person_id"]: (r["age"], r["age_flag"]) for r in view.iter_rows(named=True)}
    assert got == {
        "a": (None, "birth_date_too_early"),
        "b": (None, "birth_date_too_early"),
        "c": (None, "placeholder_birth_date"),
        "d": (None, "future_date"),
        "e": (66, None),
        "f": (125, None),
        "g": (124, None),
        "h": (None, "birth_date_too_early"),
        "i": (None, "birth_date_not_a_full_date"),
        "j": (None, None),
    }
    assert view.height == 10  # every person stays
    suite = load_suites(Path(__file__).resolve().parents[1] / "data_contracts" / "expectations" / "gold")
    filled = view.with_columns(pl.lit(0, pl.Int64).alias("open_care_gaps"))  # filled by the care-gap step
    outcome = check_table("patient_360", filled, suite["patient_360"])
    assert outcome.success, outcome.failures


def test_a_death_dated_after_the_as_of_day_does_not_make_a_person_deceased(tmp_path: Path) -> None:
    from pipelines.gold.patient_360 import build_patient_360
    from pipelines.gold.records import PersonRecords

    as_of = date(2026, 6, 30)
    persons = persons_frame(
        [
            ("a", "1950-01-01", "2026-06-29T10:00:00Z"),
            ("b", "1950-01-01", "2099-01-01T00:00:00Z"),  # a year typed wrong
            ("c", "1950-01-01", "2026-07-01"),  # inside the tolerance (one day)
            ("d", "1950-01-01", "true"),
            ("e", "1950-01-01", "false"),
            ("f", "1950-01-01", None),
        ]
    )
    records = PersonRecords(UPath(tmp_path / "lake"), persons, pl.DataFrame(schema={"person_id": pl.String}))
    view = build_patient_360(records, as_of)
    got = {r["person_id"]: (r["deceased"], r["deceased_flag"]) for r in view.iter_rows(named=True)}
    assert got == {
        "a": (True, None),
        "b": (False, "future_date"),
        "c": (True, None),
        "d": (True, None),
        "e": (False, None),
        "f": (False, None),
    }


def test_a_quantity_value_given_as_a_string_and_implausible_birth_dates_are_recorded_in_silver(
    landing: UPath, lake: UPath
) -> None:
    source = Path(landing) / "ehr"
    write_ndjson(
        source / "Patient.000.ndjson",
        [patient("p1"), patient("p2", birthDate="0000-01-01"), patient("p3", birthDate="1900-01-01")],
    )
    as_text = observation("o2", "p1")
    as_text["valueQuantity"] = {"value": "7.2", "unit": "%"}
    garbage = observation("o3", "p1")
    garbage["valueQuantity"] = {"value": "high", "unit": "%"}
    write_ndjson(source / "Observation.000.ndjson", [observation("o1", "p1"), as_text, garbage])
    ingest_landing(landing, lake, buckets=1)
    report = build_partition(lake, "00")
    values = dict(silver(lake, "observation").select("id", "value_quantity_value").iter_rows())
    assert values == {"o1": 7.1, "o2": 7.2, "o3": None}  # converted and kept, or nulled: both recorded
    assert report.type_coerced["observation.value_quantity_value"] == 1
    assert report.type_conflicts["observation.value_quantity_value"] == 1
    findings = silver(lake, "type_conflicts").drop("bucket", strict=False).sort("table", "reason_code")
    assert findings.rows() == [
        ("observation", "value_quantity_value", "type_conflict", 1, 1),
        ("patient", "birth_date", "birth_date_too_early", 0, 1),
        ("patient", "birth_date", "placeholder_birth_date", 0, 1),
    ]
    assert silver(lake, "patient").height == 3  # the birth dates stay as received


# --- versions from the future -------------------------------------------------------------------------


def version(pid: str, number: int, updated: str, family: str) -> dict[str, object]:
    return patient(pid, family, meta={"versionId": str(number), "lastUpdated": updated})


def test_a_version_dated_in_the_future_does_not_stay_current_for_ever(landing: UPath, lake: UPath) -> None:
    source = Path(landing) / "ehr"
    write_ndjson(
        source / "Patient.000.ndjson",
        [
            version("p1", 1, "2026-01-02T03:04:05Z", "First"),
            version("p1", 2, "2099-01-01T00:00:00Z", "Typo"),  # a year typed wrong
            version("p2", 1, "2026-01-02T03:04:05Z", "Only"),
        ],
    )
    ingest_landing(landing, lake, buckets=1)
    build_partition(lake, "00")
    # ordered without the untrusted lastUpdated: versionId 2 is the newest delivered
    assert dict(silver(lake, "patient_name").select("patient_id", "family").iter_rows()) == {
        "p1": "Typo",
        "p2": "Only",
    }
    patients = silver(lake, "patient").sort("id")
    assert patients["last_updated"].to_list()[0] is None  # not trusted for recency downstream either
    findings = silver(lake, "type_conflicts").drop("bucket", strict=False)
    assert findings.rows() == [("Patient", "meta.lastUpdated", "future_date", 0, 1)]
    # the next real version wins (before, the 2099 version won every later run)
    write_ndjson(source / "Patient.001.ndjson", [version("p1", 3, "2026-05-01T00:00:00Z", "Third")])
    ingest_landing(landing, lake, buckets=1)
    build_partition(lake, "00")
    assert dict(silver(lake, "patient_name").select("patient_id", "family").iter_rows())["p1"] == "Third"


def test_a_far_future_transaction_time_or_last_updated_is_not_the_as_of_day(
    landing: UPath, lake: UPath, caplog: pytest.LogCaptureFixture
) -> None:
    from pipelines.gold.as_of import resolve_as_of

    clock = datetime(2026, 7, 2, 12, tzinfo=UTC)
    for name, when in (("early", "2026-06-30T23:00:00Z"), ("typo", "2999-06-30T23:00:00Z")):
        folder = Path(landing) / name
        shutil.copytree(CORPUS / "bulk_manifest" / "clean", folder)
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
        (folder / "manifest.json").write_bytes(orjson.dumps({**manifest, "transactionTime": when}))
    ingest_landing(landing, lake, buckets=1)
    caplog.set_level(logging.WARNING)
    assert resolve_as_of(None, lake, clock) == date(2026, 6, 30)
    assert "1 Bulk export transaction time value(s) ignored" in caplog.text and "2999" not in caplog.text
    # without a trusted transaction time, the latest trusted lastUpdated; a future one is ignored too
    only_future = Path(landing).parent / "only_future"
    write_ndjson(
        only_future / "ehr" / "Patient.000.ndjson",
        [version("p1", 1, "2026-03-04T00:00:00Z", "A"), version("p2", 1, "2999-01-01T00:00:00Z", "B")],
    )
    other_lake = UPath(Path(lake).parent / "other_lake")
    ingest_landing(UPath(only_future), other_lake, buckets=1)
    assert resolve_as_of(None, other_lake, clock) == date(2026, 3, 4)
    assert resolve_as_of(date(2025, 1, 1), other_lake, clock) == date(2025, 1, 1)


def test_risk_features_give_no_age_for_an_implausible_birth_date(tmp_path: Path) -> None:
    from models.risk.features import person_points, point_in_time_features
    from pipelines.gold.records import PersonRecords

    persons = persons_frame(
        [
            ("a", "0000-01-01", None),
            ("b", "1885-03-02", None),
            ("c", "1900-01-01", None),
            ("d", "1960-05-06", None),
        ]
    )
    day = date(2026, 6, 30)
    records = PersonRecords(UPath(tmp_path / "lake"), persons, pl.DataFrame(schema={"person_id": pl.String}))
    features = point_in_time_features(records, person_points(persons, [day]), with_care_gaps=False)
    assert dict(features.select("person_id", "age").iter_rows()) == {
        "a": None,
        "b": None,
        "c": None,
        "d": 66.0,
    }


# --- repeated members ---------------------------------------------------------------------------------


def test_repeated_members_are_found_at_any_depth_by_both_checks() -> None:
    from pipelines.bronze.fhir_documents import _repeated_members
    from pipelines.bronze.lines import duplicate_members

    texts = [
        '{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}',  # the same name in different objects
        '{"a":1,"b":{"x":2,"x":3}}',
        '{"a" : 1, "a": 2}',
        '{"a":"{\\"a\\":1,\\"a\\":2}","b":[{"k":1},{"k":2}]}',  # repeats inside a string are text
        '{"a":[{"k":1,"j":2},{"k":1}],"z":{"k":{"k":1}}}',
        '{"a":[{"k":1},{"j":1,"j":2}]}',
        '{"a":{"b":{"c":1}},"a":{"b":{"c":1}}}',
        '{"a":"x\\\\","b":"\\":","c":1}',  # a string ending in a backslash, a string holding '":'
    ]
    expected = [False, True, True, False, False, True, True, False]
    assert duplicate_members(pl.Series(texts)).to_list() == expected
    documents = [t.encode() for t in texts]
    assert _repeated_members(documents, [orjson.loads(d) for d in documents]) == expected


def test_risk_points_keep_a_person_recorded_as_not_deceased(tmp_path: Path) -> None:
    from models.risk.features import person_points

    persons = persons_frame(
        [("a", "1960-01-01", "false"), ("b", "1960-01-01", "true"), ("c", "1960-01-01", None)]
    )
    points = person_points(persons, [date(2026, 6, 30)])
    assert sorted(points["person_id"].to_list()) == ["a", "c"]  # "true" without a date: when is unknown
