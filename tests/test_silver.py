"""Silver from bronze: latest version wins, deletions apply, declared types, identical re-runs."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.generate import generate_landing
from pipelines.incremental import buckets_to_rebuild
from pipelines.silver.build import build_partition, partition_keys
from pipelines.silver.current import current_resources
from pipelines.silver.views import load_views
from tests.conftest import observation, patient, write_ndjson

PATIENT_VIEW = {
    "resourceType": "ViewDefinition",
    "name": "patient",
    "status": "active",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "gender", "path": "gender", "type": "code"},
                {"name": "birth_date", "path": "birthDate", "type": "date"},
                {"name": "multiple_birth", "path": "multipleBirth.ofType(integer)", "type": "integer"},
            ]
        }
    ],
}
COMPONENT_VIEW = {
    "resourceType": "ViewDefinition",
    "name": "observation_value",
    "status": "active",
    "resource": "Observation",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
            ]
        }
    ],
}


@pytest.fixture
def views(tmp_path: Path):
    folder = tmp_path / "views"
    folder.mkdir()
    for definition in (PATIENT_VIEW, COMPONENT_VIEW):
        (folder / f"{definition['name']}.json").write_bytes(orjson.dumps(definition))
    return load_views(folder)


def silver(lake: UPath, table: str) -> pl.DataFrame:
    return pl.read_parquet(str(lake / "silver" / table / "**" / "*.parquet"), hive_partitioning=True)


def test_latest_version_wins_and_deletes_apply() -> None:
    upserts = pl.LazyFrame(
        {
            "source": ["a", "a", "a", "a"],
            "resource_type": ["Observation"] * 4,
            "resource_id": ["o1", "o1", "o2", "o3"],
            "version_id": ["1", "2", "1", "1"],
            "last_updated": pl.Series(
                ["2026-01-01T00:00:00", "2026-02-01T00:00:00", "2026-01-01T00:00:00", "2026-03-01T00:00:00"]
            ).str.to_datetime(time_zone="UTC"),
            "ingest_run_id": ["r1", "r1", "r1", "r1"],
            "file": ["f", "f", "f", "f"],
            "line": [1, 2, 3, 4],
            "entry": [None, None, None, None],
            "raw": ["v1", "v2", "x", "y"],
        }
    )
    deletes = pl.LazyFrame(
        {
            "source": ["a", "a"],
            "resource_type": ["Observation", "Observation"],
            "resource_id": ["o2", "o3"],
            "deleted_at": pl.Series(["2026-02-15T00:00:00", "2026-02-15T00:00:00"]).str.to_datetime(
                time_zone="UTC"
            ),
        }
    )
    current = current_resources(upserts, deletes).collect().sort("resource_id")
    # o1: version 2 wins; o2: deleted after its last update; o3: updated after the delete, so it is back
    assert current.select("resource_id", "raw").rows() == [("o1", "v2"), ("o3", "y")]


def test_silver_partition_from_bronze(landing: UPath, lake: UPath, views) -> None:
    drifted = patient("p3", multipleBirth=2)
    drifted["multipleBirthInteger"] = "twins"  # a string where the view declares an integer
    del drifted["multipleBirth"]
    newer = {
        **patient("p1"),
        "meta": {"versionId": "2", "lastUpdated": "2026-05-01T00:00:00Z"},
        "gender": "female",
    }
    write_ndjson(Path(landing) / "ehr" / "Patient.000.ndjson", [patient("p1"), patient("p2"), drifted, newer])
    write_ndjson(
        Path(landing) / "ehr" / "Observation.000.ndjson",
        [observation(f"o{i}", f"p{i % 3 + 1}") for i in range(9)],
    )
    ingest_landing(landing, lake, buckets=2)
    reports = [build_partition(lake, key, views) for key in partition_keys(2)]
    patients = silver(lake, "patient").sort("id")
    assert patients["id"].to_list() == ["p1", "p2", "p3"]
    assert patients.filter(pl.col("id") == "p1")["gender"].item() == "female"  # the newer version
    assert patients["birth_date"].to_list() == ["1970-01-01"] * 3  # FHIR dates stay text
    assert patients.schema["multiple_birth"] == pl.Int64
    assert sum(r.type_conflicts["patient.multiple_birth"] for r in reports) == 1  # counted, not hidden
    conflicts = silver(lake, "type_conflicts")
    assert conflicts.select("table", "column", "values_nulled").rows() == [("patient", "multiple_birth", 1)]
    values = silver(lake, "observation_value")
    assert values.height == 9 and values["value"].to_list() == [7.1] * 9
    # each observation sits in the bucket of its patient
    buckets = dict(zip(patients["id"], patients["bucket"], strict=True))
    assert all(buckets[p] == b for p, b in zip(values["patient_id"], values["bucket"], strict=True))


def test_rebuilding_unchanged_bronze_writes_identical_files(tmp_path: Path, views) -> None:
    generate_landing(tmp_path / "landing", 30, seed=2)
    lake = UPath(tmp_path / "lake")
    ingest_landing(UPath(tmp_path / "landing"), lake, buckets=2)
    for key in partition_keys(2):
        build_partition(lake, key, views)
    first = {p: p.read_bytes() for p in Path(lake / "silver").rglob("*.parquet")}
    for key in partition_keys(2):
        build_partition(lake, key, views)
    assert {p: p.read_bytes() for p in Path(lake / "silver").rglob("*.parquet")} == first
    truth = orjson.loads((tmp_path / "ground_truth" / "summary.json").read_bytes())
    deleted = {d["id"] for d in truth["deleted_ids"] if d["type"] == "Observation"}
    assert deleted and not deleted & set(silver(lake, "observation_value")["id"].to_list())


def test_buckets_to_rebuild() -> None:
    keys = partition_keys(4)
    assert buckets_to_rebuild(["01", "03"], keys) == ["01", "03"]
    assert buckets_to_rebuild([], keys) == []
    assert buckets_to_rebuild(["00", "shared"], keys) == keys


def test_expectation_suites_cover_every_view_and_report_without_values() -> None:
    from pipelines.silver.expectations import check_table, load_suites

    suites = load_suites()
    assert set(suites) == {view.name for view in load_views()}
    secret = "Zeppelina-Contract-Probe"
    values = {
        "source": ["ehr_a", "ehr_a", "ehr_a"],
        "id": ["p1", "p1", "p2"],
        "gender": ["female", secret, "male"],
        "birth_date": ["1970-01-01", "1970-13", "not a date"],
    }
    patient_view = next(view for view in load_views() if view.name == "patient")
    frame = pl.DataFrame(
        {name: values.get(name, [None] * 3) for name in ["source", *patient_view.dtypes]},
        schema={"source": pl.String, **patient_view.dtypes},
    )
    outcome = check_table("patient", frame, suites["patient"])
    assert not outcome.success
    text = "; ".join(outcome.failures)
    assert "expect_compound_columns_to_be_unique(source,id): 2 unexpected" in text
    assert "expect_column_values_to_be_in_set(gender): 1 unexpected" in text
    assert "birth_date" in text and secret not in text and "not a date" not in text
    clean = frame.filter(pl.col("id") == "p2").with_columns(pl.lit("1980-02-29").alias("birth_date"))
    assert check_table("patient", clean, suites["patient"]).success


def test_pair_expectations_run_on_distinct_pairs_and_missing_columns_still_fail() -> None:
    from pipelines.silver.expectations import EXPECTATIONS_DIR, check_table, load_suites, suite_columns

    suite = {
        "name": "pairs",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "metric"}},
            {
                "type": "expect_column_pair_values_to_be_in_set",
                "kwargs": {"column_A": "metric", "column_B": "unit", "value_pairs_set": [["weight", "kg"]]},
            },
        ],
    }
    assert suite_columns(suite) == ["metric", "unit"]
    good = pl.DataFrame({"metric": ["weight"] * 5, "unit": ["kg"] * 5, "other": list("abcde")})
    assert check_table("pairs", good, suite).success
    secret = "Zeppelina-Unit"
    bad = pl.DataFrame({"metric": ["weight"] * 6, "unit": ["kg", secret, secret, "lb", "kg", "lb"]})
    outcome = check_table("pairs", bad, suite)
    assert not outcome.success and outcome.evaluated == 2
    assert outcome.failures == ["expect_column_pair_values_to_be_in_set(metric,unit): 2 unexpected pairs"]
    assert secret not in "".join(outcome.failures)
    missing = check_table("pairs", good.drop("unit"), suite)
    assert not missing.success and "metric,unit" in missing.failures[0]
    # the shipped device suite uses the pair check; a wrong unit for a metric fails it
    readings = load_suites(EXPECTATIONS_DIR / "devices")["device_reading"]
    assert any(e["type"] == "expect_column_pair_values_to_be_in_set" for e in readings["expectations"])


def test_schema_drift_does_not_break_or_drop(landing: UPath, lake: UPath, views) -> None:
    odd = [
        {**patient("d1"), "_birthDate": {"extension": [{"url": "http://x", "valueString": "approx"}]}},
        {
            **patient("d2"),
            "contained": [{"resourceType": "Practitioner", "id": "c1"}],
            "unknownElement": {"a": [1]},
        },
        {**patient("d3"), "name": [], "extension": [{"url": "http://y", "valueDecimal": 1.5}]},
        {**patient("d4"), "multipleBirthInteger": 2, "text": {"div": "x" * 2_000_000}},
        {**patient("d5"), "multipleBirthInteger": "three"},  # the same element as text: widened, then counted
    ]
    write_ndjson(Path(landing) / "ehr" / "Patient.000.ndjson", odd)
    ingest_landing(landing, lake, buckets=1)
    reports = [build_partition(lake, key, views) for key in partition_keys(1)]
    rows = silver(lake, "patient").sort("id")
    assert rows["id"].to_list() == ["d1", "d2", "d3", "d4", "d5"]
    assert rows["birth_date"].to_list() == ["1970-01-01"] * 5
    assert rows.filter(pl.col("id") == "d4")["multiple_birth"].item() == 2
    assert rows.filter(pl.col("id") == "d5")["multiple_birth"].item() is None
    assert sum(r.type_conflicts["patient.multiple_birth"] for r in reports) == 1
    assert sum(r.decoders["polars"] for r in reports) == 1  # pyarrow refused the mixed types; Polars widened


def test_declared_types_convert_leniently_and_count_what_does_not_fit() -> None:
    from pipelines.silver.build import _typed
    from pipelines.silver.views import SilverView

    silver_view = SilverView(
        "t",
        {},
        None,
        {"obj": pl.String(), "flag": pl.Boolean(), "n": pl.Int64(), "items": pl.String()},  # type: ignore[arg-type]
    )
    rows = pl.DataFrame(
        {
            "source": ["a", "a"],
            "obj": [{"x": 1}, None],
            "flag": ["true", "maybe"],
            "n": ["7", "seven"],
            "items": [[1, 2], None],
        }
    )
    typed, nulled, _ = _typed(rows, silver_view)
    assert typed.rows() == [("a", '{"x":1}', True, 7, "[1,2]"), ("a", None, None, None, None)]
    assert nulled == {"flag": 1, "n": 1}


def test_dates_in_another_form_are_nulled_and_counted_so_no_record_fails_the_contract() -> None:
    """A birth date given as the number 19700101 and a lastUpdated written "2026-01-02T03:04:05 UTC"
    reached silver as text the patient contract refuses, failing every later run (issue 25)."""
    from pipelines.silver.build import _typed
    from pipelines.silver.views import SilverView

    definition = {
        "select": [
            {"column": [{"name": "born", "path": "birthDate", "type": "date"}]},
            {"column": [{"name": "updated", "path": "meta.lastUpdated", "type": "instant"}]},
        ]
    }
    silver_view = SilverView("t", definition, None, {"born": pl.String(), "updated": pl.String()})  # type: ignore[arg-type]
    rows = pl.DataFrame(
        {
            "source": ["a", "a", "a"],
            "born": ["1970-01-01", "19700101", "0000-01-01"],  # the last has the form: kept, flagged later
            "updated": ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05 UTC", None],
        }
    )
    typed, nulled, _ = _typed(rows, silver_view)
    assert typed["born"].to_list() == ["1970-01-01", None, "0000-01-01"]
    assert typed["updated"].to_list() == ["2026-01-02T03:04:05Z", None, None]
    assert nulled == {"born": 1, "updated": 1}


def test_a_new_export_rebuilds_only_touched_buckets_and_matches_a_full_rebuild(
    landing: UPath, lake: UPath, views, tmp_path: Path
) -> None:
    write_ndjson(Path(landing) / "ehr" / "Patient.000.ndjson", [patient(f"p{i}") for i in range(12)])
    write_ndjson(
        Path(landing) / "ehr" / "Observation.000.ndjson",
        [observation(f"o{i}", f"p{i % 12}") for i in range(24)],
    )
    ingest_landing(landing, lake, buckets=4)
    for key in partition_keys(4):
        build_partition(lake, key, views)
    before = {p: p.read_bytes() for p in Path(lake / "silver").rglob("data.parquet")}

    # the next export: one new observation and a newer version of another, both for patient p5
    newer = {**observation("o5", "p5"), "meta": {"versionId": "2", "lastUpdated": "2026-06-01T00:00:00Z"}}
    write_ndjson(Path(landing) / "ehr" / "Observation.001.ndjson", [observation("o-new", "p5"), newer])
    report = ingest_landing(landing, lake, buckets=4)
    touched = buckets_to_rebuild(report.buckets_touched("fhir_resources"), partition_keys(4))
    assert len(touched) == 1
    for key in touched:
        build_partition(lake, key, views)
    after = {p: p.read_bytes() for p in Path(lake / "silver").rglob("data.parquet")}
    changed = {p.parent.name for p in after if after[p] != before.get(p)}
    assert changed == {f"bucket={touched[0]}"}  # untouched buckets were not rewritten

    full = UPath(tmp_path / "full-lake")
    ingest_landing(landing, full, buckets=4)
    for key in partition_keys(4):
        build_partition(full, key, views)
    for table in ("patient", "observation_value"):
        assert silver(full, table).sort("id").equals(silver(lake, table).sort("id")), table
    assert silver(lake, "observation_value").height == 25
