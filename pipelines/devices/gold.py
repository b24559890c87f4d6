"""Build the derived device tables of one patient bucket: `gold/device_daily`, `gold/device_adherence`
and `gold/device_alerts`.

Silver `device_reading` is partitioned by the bucket its records arrived in (the vendor account);
these tables are partitioned by the linked patient's bucket (`patient_bucket`), so one patient's
readings from several accounts or sources meet here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
from upath import UPath

from pipelines.buckets import assign_buckets
from pipelines.devices.build import DEVICE_READING, DEVICE_READING_SCHEMA
from pipelines.devices.derived import adherence, daily_aggregates, device_alerts, heart_failure_patients
from pipelines.devices.linking import read_enrolment
from pipelines.lake import parquet_files, scan_table, table_path, write_parquet_atomic
from pipelines.silver.build import SILVER

GOLD = "gold"
DEVICE_DAILY = "device_daily"
DEVICE_ADHERENCE = "device_adherence"
DEVICE_ALERTS = "device_alerts"
PARTITION_FILE = "data.parquet"


@dataclass
class DeviceGoldReport:
    """Rows written per table and alerts per rule, for one bucket (counts only)."""

    partition: str
    rows: dict[str, int]
    alerts: dict[str, int]
    adherent: int
    enrolled_metrics: int


def build_device_gold(lake: UPath, partition: str, buckets: int, as_of: date) -> DeviceGoldReport:
    """Rebuild the three device tables of one patient bucket from silver."""
    readings = _readings_of_bucket(lake, partition)
    enrolment = _enrolment_of_bucket(lake, partition, buckets)
    conditions = (
        scan_table(lake, SILVER, "condition")
        if parquet_files(table_path(lake, SILVER, "condition"))
        else pl.LazyFrame(
            schema={"source": pl.String, "patient_id": pl.String, "code": pl.String, "code_system": pl.String}
        )
    )
    daily = daily_aggregates(readings)
    adherent = adherence(readings, enrolment, as_of)
    alerts = device_alerts(readings, heart_failure_patients(conditions))
    for table, frame in ((DEVICE_DAILY, daily), (DEVICE_ADHERENCE, adherent), (DEVICE_ALERTS, alerts)):
        write_parquet_atomic(frame, table_path(lake, GOLD, table) / f"bucket={partition}" / PARTITION_FILE)
    return DeviceGoldReport(
        partition,
        {DEVICE_DAILY: daily.height, DEVICE_ADHERENCE: adherent.height, DEVICE_ALERTS: alerts.height},
        dict(alerts.group_by("alert").len().sort("alert").iter_rows()),
        int(adherent["adherent"].sum()),
        adherent.height,
    )


DERIVED_READING_COLUMNS = (
    "reading_id",
    "patient_source",
    "patient_id",
    "metric",
    "unit",
    "value",
    "effective_start",
    "effective_end",
    "time_zone",
    "statistic",
    "group_id",
    "plausible",
)
"""The `device_reading` columns the derived tables read: a bucket holds only these (the provenance and
original values are more than half of a reading's bytes, and the sorts and filters carry every column)."""


def _readings_of_bucket(lake: UPath, partition: str) -> pl.DataFrame:
    if not parquet_files(table_path(lake, SILVER, DEVICE_READING)):
        return pl.DataFrame(schema=DEVICE_READING_SCHEMA).select(DERIVED_READING_COLUMNS)
    # every silver partition may hold readings of this patient bucket; files are sorted by it
    return (
        scan_table(lake, SILVER, DEVICE_READING)
        .filter(pl.col("patient_bucket") == partition)
        .select(DERIVED_READING_COLUMNS)
        .collect()
    )


def _enrolment_of_bucket(lake: UPath, partition: str, buckets: int) -> pl.DataFrame:
    """Enrolments of the patients of this bucket (adherence also counts enrolled patients who sent
    nothing, so their bucket comes from the enrolment, not from readings)."""
    enrolment = read_enrolment(lake)
    keyed = assign_buckets(
        enrolment.with_columns(pl.format("Patient/{}", "patient_id").alias("_key")),
        "patient_source",
        "_key",
        buckets,
    )
    return keyed.filter(pl.col("bucket") == partition).drop("_key", "bucket")
