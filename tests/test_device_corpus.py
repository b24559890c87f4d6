"""Device corpus cases (tests/corpus) through silver and gold: ingest, `device_reading`, the derived tables.

The landing test (`test_corpus.py`) proves bronze keeps or quarantines these records; here the same files
go on through the device job, which must never stop on one record: values no column can hold (NaN,
±Infinity, `1e309`, `1e308`) and readings dated past the as-of day become rejects with a reason code that
the README documents, and the derived tables (daily figures, alerts) never use them.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.devices.build import DEVICE_READING, DEVICE_READING_REJECTS, build_device_partition
from pipelines.devices.gold import DEVICE_ALERTS, DEVICE_DAILY, GOLD, build_device_gold
from pipelines.future_dates import FUTURE_TOLERANCE_ENV
from pipelines.lake import parquet_files, read_table, table_path
from pipelines.layout import patient_bucket_keys
from pipelines.silver.build import SILVER
from tests.corpus.cases import LANDING_CASES, MARKERS, Case, place

README = Path(__file__).resolve().parents[1] / "README.md"
BUCKETS = 4
AS_OF = date(2026, 1, 2)
BY_PATH = {item.path: item for item in LANDING_CASES}


def documented_reject_codes() -> set[str]:
    """The reject reason codes the README lists for `device_reading_rejects`."""
    text = README.read_text(encoding="utf-8")
    paragraph = text.split("Reject reason codes in `device_reading_rejects`", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z_0-9]+)`", paragraph))


def device_run(tmp_path: Path, *paths: str, enrolment: str | None = None) -> dict[str, pl.DataFrame]:
    """Ingest the corpus cases (and an enrolment file), build every device partition and its gold tables
    as of AS_OF; the tables read back."""
    landing, lake = tmp_path / "landing", UPath(tmp_path / "lake")
    for path in paths:
        item: Case = BY_PATH[path]
        place(item, landing / f"{item.reader}__{item.name}")
    if enrolment is not None:
        (landing / "enrolment").mkdir(parents=True)
        (landing / "enrolment" / "source.yaml").write_text("format: device_enrolment\n")
        (landing / "enrolment" / "enrolment.csv").write_text(enrolment)
    ingest_landing(UPath(landing), lake, buckets=BUCKETS, workers=1)
    for key in patient_bucket_keys(BUCKETS):
        build_device_partition(lake, key, BUCKETS, AS_OF)
    for key in patient_bucket_keys(BUCKETS):
        build_device_gold(lake, key, BUCKETS, AS_OF)
    tables = {}
    for layer, name in (
        (SILVER, DEVICE_READING),
        (SILVER, DEVICE_READING_REJECTS),
        (GOLD, DEVICE_DAILY),
        (GOLD, DEVICE_ALERTS),
    ):
        assert parquet_files(table_path(lake, layer, name)), name
        tables[name] = read_table(lake, layer, name)
    rejects = tables[DEVICE_READING_REJECTS]
    assert set(rejects["reason_code"].to_list()) <= documented_reject_codes()
    assert not [r for r in rejects["reason"].to_list() if any(m in r for m in MARKERS)]
    return tables


def outcome(tables: dict[str, pl.DataFrame]) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Per record position (the part of `raw_ref` after the file): the metrics kept, the reject codes."""

    def where(ref: str) -> str:
        return re.split(r"[:#]", ref)[-1]

    kept: dict[str, set[str]] = {}
    for ref, metric in tables[DEVICE_READING].select("raw_ref", "metric").iter_rows():
        kept.setdefault(where(ref), set()).add(metric)
    rejected: dict[str, set[str]] = {}
    for ref, code in tables[DEVICE_READING_REJECTS].select("raw_ref", "reason_code").iter_rows():
        rejected.setdefault(where(ref), set()).add(code)
    return {k: ",".join(sorted(v)) for k, v in kept.items()}, rejected


# issue 25: devices — values a column cannot hold
HUGE_VALUES: dict[str, tuple[dict[str, str], dict[str, set[str]]]] = {
    # lines 3 and 4 hold 1e309 / -1e309, which no JSON parser reads: bronze quarantines them (invalid_json)
    "omh_ndjson/huge_values.ndjson": (
        {"1": "heart_rate"},
        {"2": {"value_out_of_range"}, "5": {"value_out_of_range"}, "6": {"value_out_of_range"}},
    ),
    "omh_json/huge_values.json": (
        {"0": "heart_rate"},
        {"1": {"value_out_of_range"}, "2": {"value_out_of_range"}, "3": {"value_out_of_range"}},
    ),
    "device_csv/non_finite_values.csv": (
        {"2": "systolic_blood_pressure"},
        {
            **{str(line): {"non_finite_value"} for line in range(3, 10)},  # inf -inf NaN nan Infinity ±1e309
            "10": {"value_out_of_range"},  # 1e308
            "11": {"value_out_of_range"},  # 1e13
            "12": {"invalid_value"},  # not a number at all
        },
    ),
    "ihealth/huge_values.json": (
        {"0": "diastolic_blood_pressure,heart_rate,systolic_blood_pressure", "1": "diastolic_blood_pressure"},
        {"1": {"value_out_of_range"}, "2": {"invalid_time_frame"}},  # HP 1e308 and HR 1e13; MDate 9e18
    ),
    "withings/huge_values.json": (
        {"0": "body_weight"},
        # 1 × 10^400 is infinite; a pulse of 1e308; an epoch second of 9e18 (wrapped to year -61760 before);
        # an exponent of 2^64 - 1 (no 64-bit integer holds it: it was read as 0, giving 5 kg)
        {
            "1": {"non_finite_value"},
            "2": {"value_out_of_range"},
            "3": {"invalid_time_frame"},
            "4": {"non_finite_value"},
        },
    ),
    "fitbit/huge_values.json": (
        {"0": "body_weight"},
        {"1": {"value_out_of_range"}, "2": {"value_out_of_range"}},
    ),
    # issue 27: positions are the export's elements (0 and 1 are ExportDate and Me)
    "apple_health/huge_values.xml": (
        {"2": "heart_rate"},
        {
            **{str(entry): {"non_finite_value"} for entry in range(3, 7)},  # NaN 1e309 -1e309 INF
            "7": {"value_out_of_range"},  # 1e308
            "8": {"value_out_of_range"},  # 1e13
            "9": {"invalid_value"},  # not a number at all
        },
    ),
    "wide_csv/non_finite_values.csv": (
        {"2": "body_weight"},
        {
            **{str(line): {"non_finite_value"} for line in range(3, 7)},  # inf NaN 1e309 -1e309
            "7": {"value_out_of_range"},  # 1e308
            "8": {"value_out_of_range"},  # 1e13
            "9": {"invalid_value"},
        },
    ),
}


@pytest.mark.parametrize("path", sorted(HUGE_VALUES))
def test_values_no_column_can_hold_are_rejects_and_never_stop_the_device_job(
    path: str, tmp_path: Path
) -> None:
    tables = device_run(tmp_path, path)
    assert outcome(tables) == HUGE_VALUES[path]
    values = tables[DEVICE_READING]["value"]
    assert values.is_finite().all() and (values.abs() <= 1e12).all()


def test_one_device_source_with_huge_values_does_not_stop_the_others(tmp_path: Path) -> None:
    tables = device_run(tmp_path, *sorted(HUGE_VALUES), "omh_ndjson/clean.ndjson")
    clean = tables[DEVICE_READING].filter(pl.col("source") == "omh_ndjson__clean")
    assert clean.height == 2  # dp-1 and dp-2 are the same reading: one row, two uploads
    assert clean["uploads"].to_list() == [2, 2]


# issue 25: devices — readings from the future
ENROLMENT = (
    "vendor,vendor_user_id,device_id,device_type,patient_source,patient_id,enrolled_on,unenrolled_on\n"
    "openmhealth,omh-user-1,dev-1,blood_pressure_monitor,ehr_a,p1,2025-01-01,\n"
    "generic,bp-user-1,SN-1,blood_pressure_monitor,ehr_a,p2,2025-01-01,\n"
    "apple_health,ah-user-1,cuff,blood_pressure_monitor,ehr_a,p3,2025-01-01,\n"
)


@pytest.mark.parametrize(
    ("path", "beyond", "within"),
    [
        ("omh_ndjson/future_readings.ndjson", ["2", "4"], "3"),
        ("device_csv/future_readings.csv", ["3", "5"], "4"),
        ("apple_health/future_readings.xml", ["3", "5"], "4"),  # blood-pressure correlations
    ],
)
def test_readings_past_the_as_of_day_are_rejected_and_never_fire_alerts(
    path: str, beyond: list[str], within: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The year 3000 and midnight two days past the as-of day are from the future (tolerance 1 day); 23:30
    the day after the as-of day is within the tolerance and used like any reading."""
    monkeypatch.delenv(FUTURE_TOLERANCE_ENV, raising=False)
    tables = device_run(tmp_path, path, enrolment=ENROLMENT)
    kept, rejected = outcome(tables)
    assert {where for where, codes in rejected.items() if "future_date" in codes} == set(beyond)
    assert within in kept and not set(beyond) & set(kept)
    reasons = tables[DEVICE_READING_REJECTS].filter(pl.col("reason_code") == "future_date")["reason"]
    assert (reasons == "the reading is dated more than 1 day after the as-of day 2026-01-02").all()
    days = set(tables[DEVICE_DAILY].filter(pl.col("metric") == "systolic_blood_pressure")["day"].to_list())
    assert days == {date(2026, 1, 1), date(2026, 1, 3)}
    fired = set(tables[DEVICE_ALERTS]["day"].to_list())
    assert date(3000, 1, 1) not in fired and date(2026, 1, 4) not in fired and date(2026, 1, 3) in fired
