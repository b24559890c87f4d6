"""Build silver `device_reading` for one partition: bronze device records of the bucket, and FHIR
Observations made by a device in the same silver bucket, read by their reader, normalized to one unit
per metric, flagged for plausibility, de-duplicated and linked to patients.

Readings that cannot be normalized go to `device_reading_rejects` with the bronze record they came from
and a reason, so every reading a source sent is either a row or a counted, explained reject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, DEVICE_RECORDS
from pipelines.buckets import assign_buckets
from pipelines.devices.apple_health import read_apple_health
from pipelines.devices.contract import (
    ROW,
    SOURCE_READING_SCHEMA,
    ReaderOutput,
    conform,
    empty_readings,
    empty_rejects,
)
from pipelines.devices.csv_readings import read_device_csv_records
from pipelines.devices.fhir_readings import fhir_device_readings
from pipelines.devices.linking import fhir_device_links, link_readings, read_enrolment
from pipelines.devices.openmhealth import read_openmhealth
from pipelines.devices.quality import deduplicate, flag_plausibility
from pipelines.devices.units import normalize_units
from pipelines.devices.vendors import read_fitbit, read_ihealth, read_withings
from pipelines.future_dates import FUTURE_DATE, future_reason, is_future
from pipelines.lake import parquet_files, scan_table, table_path, write_parquet_atomic
from pipelines.silver.build import SILVER, read_partition

DEVICE_READING = "device_reading"
DEVICE_READING_REJECTS = "device_reading_rejects"
PARTITION_FILE = "data.parquet"

READERS: dict[str, Callable[[pl.DataFrame], ReaderOutput]] = {
    "openmhealth": read_openmhealth,
    "ihealth": read_ihealth,
    "withings": read_withings,
    "fitbit": read_fitbit,
    "device_csv": read_device_csv_records,
    "apple_health": read_apple_health,
}
"""Reader per bronze `record_format` (enrolment rows are links, not readings)."""
NOT_READINGS = ("device_enrolment",)

DEVICE_READING_SCHEMA: dict[str, pl.DataType] = {
    "reading_id": pl.String(),  # '<source>|<raw_ref>|<metric>|<statistic>': stable across re-runs
    "source": pl.String(),
    "record_format": pl.String(),  # openmhealth|ihealth|withings|fitbit|device_csv|apple_health|fhir
    "raw_ref": pl.String(),  # its record: '<file>:<line>', '<file>#<entry>' or 'Observation/<id>'
    "vendor_user_id": pl.String(),
    "device_id": pl.String(),
    "patient_source": pl.String(),
    "patient_id": pl.String(),
    "link_method": pl.String(),  # fhir_subject | enrolment_device | enrolment_user | fhir_device | unlinked
    "patient_bucket": pl.String(),  # bucket of the linked patient (of the vendor account when unlinked)
    "metric": pl.String(),
    "loinc": pl.String(),
    "value": pl.Float64(),  # in `unit`
    "unit": pl.String(),  # the metric's UCUM unit
    "original_value": pl.Float64(),
    "original_unit": pl.String(),
    "effective_start": pl.Datetime("us", "UTC"),
    "effective_end": pl.Datetime("us", "UTC"),
    "time_zone": pl.String(),
    "statistic": pl.String(),
    "group_id": pl.String(),
    "plausible": pl.Boolean(),
    "implausible_reason": pl.String(),
    "uploads": pl.Int64(),  # how many times this reading was received (duplicates removed)
}
PRE_LINK_SCHEMA: dict[str, pl.DataType] = {
    **{n: t for n, t in SOURCE_READING_SCHEMA.items() if n != ROW},
    "source": pl.String(),
    "record_format": pl.String(),
    "raw_ref": pl.String(),
    "vendor_user_id": pl.String(),
    "device_id": pl.String(),
    "patient_source": pl.String(),
    "patient_id": pl.String(),
    "link_method": pl.String(),
    "received_order": pl.String(),  # delivery order: the first copy of a duplicate is kept
}
REJECT_COLUMNS: dict[str, pl.DataType] = {
    "source": pl.String(),
    "record_format": pl.String(),
    "raw_ref": pl.String(),
    "reason_code": pl.String(),
    "reason": pl.String(),
}


@dataclass
class DeviceReport:
    """Counts of one partition's build (no values)."""

    partition: str
    records: int = 0
    readings: int = 0
    rejects: Counter[str] = field(default_factory=Counter)  # reason_code -> readings/records rejected
    implausible: int = 0
    duplicates_removed: int = 0
    links: Counter[str] = field(default_factory=Counter)  # link_method -> readings


def build_device_partition(
    lake: UPath, partition: str, buckets: int, as_of: date | datetime | None = None
) -> DeviceReport:
    """Rebuild `device_reading` and `device_reading_rejects` of one partition from bronze and silver.

    `as_of` is the day the readings are used as of (alerts, daily figures, adherence): a reading dated
    past it (`pipelines.future_dates`) is rejected as `future_date`. Without it, the run's clock.
    """
    report = DeviceReport(partition)
    records = _bronze_records(lake, partition)
    report.records = records.height
    readings, rejects = read_records(records)
    fhir = fhir_device_readings(
        read_partition(lake, "observation", partition),
        read_partition(lake, "observation_component", partition),
    )
    combined = pl.concat([readings, fhir], how="diagonal_relaxed")
    combined = combined.select(
        [
            pl.col(name) if name in combined.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in PRE_LINK_SCHEMA.items()
        ]
    ).with_row_index(ROW)
    normalized, unit_rejects = normalize_units(combined.with_columns(pl.col(ROW).cast(pl.Int64)))
    unit_rejects = unit_rejects.join(
        combined.select(pl.col(ROW).cast(pl.Int64), "source", "record_format", "raw_ref"), on=ROW
    ).select(list(REJECT_COLUMNS))
    normalized, future_rejects = reject_future(normalized, datetime.now(UTC) if as_of is None else as_of)
    future_rejects = future_rejects.join(
        combined.select(pl.col(ROW).cast(pl.Int64), "source", "record_format", "raw_ref"), on=ROW
    ).select(list(REJECT_COLUMNS))
    rejects = pl.concat([rejects, unit_rejects, future_rejects], how="vertical_relaxed")
    devices = fhir_device_links(_all_silver(lake, "device"))
    linked = link_readings(flag_plausibility(normalized.drop(ROW)), read_enrolment(lake), devices)
    deduped = deduplicate(linked)
    final = _finish(deduped, buckets)
    report.readings = final.height
    report.duplicates_removed = linked.height - deduped.height
    report.implausible = int((~final["plausible"]).sum())
    report.rejects.update(dict(rejects.group_by("reason_code").len().iter_rows()))
    report.links.update(dict(final.group_by("link_method").len().iter_rows()))
    write_parquet_atomic(final, _file(lake, DEVICE_READING, partition))
    write_parquet_atomic(
        rejects.sort("source", "raw_ref", "reason_code", nulls_last=True),
        _file(lake, DEVICE_READING_REJECTS, partition),
    )
    return report


def reject_future(readings: pl.DataFrame, reference: date | datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings that start or end past `reference` (the one rule of `pipelines.future_dates`), split off
    as rejects (`_row`, `reason_code` = `future_date`, `reason`): a device clock set to the year 3000
    must never fire an alert or move a daily figure. Returns (kept readings, rejects)."""
    future = is_future(pl.col("effective_start"), reference) | is_future(pl.col("effective_end"), reference)
    name = (
        f"the as-of day {reference.isoformat()}" if not isinstance(reference, datetime) else "the run's clock"
    )
    flagged = readings.with_columns(future.alias("_future"))
    rejects = flagged.filter(pl.col("_future")).select(
        pl.col(ROW).cast(pl.Int64),
        pl.lit(FUTURE_DATE).alias("reason_code"),
        pl.lit(f"the reading is {future_reason(name)}").alias("reason"),
    )
    return flagged.filter(~pl.col("_future")).drop("_future"), rejects


def read_records(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bronze device records → source readings with their provenance, and rejects with a reason."""
    indexed = records.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    provenance = indexed.select(
        ROW,
        "source",
        "record_format",
        pl.when(pl.col("line").is_not_null())
        .then(pl.format("{}:{}", "file", "line"))
        .otherwise(pl.format("{}#{}", "file", pl.col("entry").fill_null(0)))
        .alias("raw_ref"),
        pl.col("patient_key").alias("vendor_user_id"),
        "device_id",
        pl.format(
            "{}|{}|{}|{}",
            "ingest_run_id",
            "file",
            pl.col("line").fill_null(0).cast(pl.String).str.zfill(12),
            pl.col("entry").fill_null(0).cast(pl.String).str.zfill(12),
        ).alias("received_order"),
    )
    outputs: list[ReaderOutput] = []
    unknown = indexed.filter(~pl.col("record_format").is_in([*READERS, *NOT_READINGS]))
    outputs.append(
        conform(
            empty_readings(),
            unknown.select(
                ROW,
                pl.lit("unsupported_format").alias("reason_code"),
                pl.lit("no reader for this record format").alias("reason"),
            ),
        )
    )
    for record_format, reader in READERS.items():
        of_format = indexed.filter(pl.col("record_format") == record_format)
        if of_format.height:
            outputs.append(reader(of_format))
    readings = (
        pl.concat([o.readings for o in outputs], how="vertical_relaxed") if outputs else empty_readings()
    )
    rejects = pl.concat([o.rejects for o in outputs], how="vertical_relaxed") if outputs else empty_rejects()
    readings = readings.join(provenance, on=ROW, how="left").drop(ROW)
    rejects = rejects.join(provenance, on=ROW, how="left").select(list(REJECT_COLUMNS))
    return readings, rejects


def _finish(readings: pl.DataFrame, buckets: int) -> pl.DataFrame:
    keyed = readings.with_columns(
        pl.format("{}|{}|{}|{}", "source", "raw_ref", "metric", pl.col("statistic").fill_null("")).alias(
            "reading_id"
        ),
        pl.when(pl.col("patient_id").is_not_null())
        .then(pl.col("patient_source"))
        .otherwise(pl.col("source"))
        .alias("_bucket_source"),
        pl.when(pl.col("patient_id").is_not_null())
        .then(pl.format("Patient/{}", "patient_id"))
        .otherwise(pl.col("vendor_user_id"))
        .alias("_bucket_key"),
    )
    bucketed = assign_buckets(keyed, "_bucket_source", "_bucket_key", buckets).rename(
        {"bucket": "patient_bucket"}
    )
    return bucketed.select([pl.col(n).cast(t) for n, t in DEVICE_READING_SCHEMA.items()]).sort(
        "patient_bucket",
        "patient_source",
        "patient_id",
        "metric",
        "effective_start",
        "reading_id",
        nulls_last=True,
    )


def _bronze_records(lake: UPath, partition: str) -> pl.DataFrame:
    folder = table_path(lake, BRONZE, DEVICE_RECORDS) / f"bucket={partition}"
    if not parquet_files(folder):
        return pl.DataFrame(
            schema={
                "source": pl.String,
                "file": pl.String,
                "ingest_run_id": pl.String,
                "line": pl.Int64,
                "entry": pl.Int64,
                "record_format": pl.String,
                "record_type": pl.String,
                "record_id": pl.String,
                "device_id": pl.String,
                "patient_key": pl.String,
                "payload_context": pl.String,
                "raw": pl.String,
            }
        )
    return (
        scan_table(lake, BRONZE, DEVICE_RECORDS)
        .filter((pl.col("bucket") == partition) & (pl.col("record_format") != "device_enrolment"))
        .drop("bucket")
        .collect()
        .sort("ingest_run_id", "file", "line", "entry", nulls_last=True)
    )


def _all_silver(lake: UPath, table: str) -> pl.DataFrame:
    if not parquet_files(table_path(lake, SILVER, table)):
        return pl.DataFrame()
    return scan_table(lake, SILVER, table).collect()


def _file(lake: UPath, table: str, partition: str) -> UPath:
    return table_path(lake, SILVER, table) / f"bucket={partition}" / PARTITION_FILE
