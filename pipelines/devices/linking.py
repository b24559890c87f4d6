"""Link device readings to EHR patients: FHIR subject, enrolment (by device, then by vendor account),
FHIR Device.patient. Unlinked readings are kept (link_method `unlinked`) and counted, never dropped.

A key that points at more than one patient (one device id enrolled for two people at the same time)
is not used: such readings stay unlinked rather than being given to the wrong person.
"""

from __future__ import annotations

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, DEVICE_RECORDS
from pipelines.lake import parquet_files, scan_table, table_path

LINK_METHODS = ("fhir_subject", "enrolment_device", "enrolment_user", "fhir_device", "unlinked")
"""In order of precedence."""

ENROLMENT_SCHEMA: dict[str, pl.DataType] = {
    "vendor": pl.String(),
    "vendor_user_id": pl.String(),
    "device_id": pl.String(),
    "device_type": pl.String(),  # blood_pressure_monitor | glucometer | weight_scale | ...
    "patient_source": pl.String(),
    "patient_id": pl.String(),
    "enrolled_on": pl.Date(),
    "unenrolled_on": pl.Date(),
}
FHIR_DEVICE_SCHEMA: dict[str, pl.DataType] = {
    "device_key": pl.String(),
    "patient_source": pl.String(),
    "patient_id": pl.String(),
}


def read_enrolment(lake: UPath) -> pl.DataFrame:
    """Every enrolment row delivered so far (all buckets; the table is small), one row per distinct
    enrolment."""
    if not parquet_files(table_path(lake, BRONZE, DEVICE_RECORDS)):
        return pl.DataFrame(schema=ENROLMENT_SCHEMA)
    raw = (
        scan_table(lake, BRONZE, DEVICE_RECORDS)
        .filter(pl.col("record_format") == "device_enrolment")
        .select("raw")
        .collect()
    )
    return enrolment_from_raw(raw["raw"])


def enrolment_from_raw(raw: pl.Series) -> pl.DataFrame:
    """Enrolment rows from their bronze JSON text (dates that do not parse become null)."""
    text_schema = pl.Struct({name: pl.String for name in ENROLMENT_SCHEMA})
    decoded = raw.str.json_decode(text_schema).struct.unnest()
    return (
        decoded.with_columns(
            pl.col(c).str.strip_chars().replace("", None).str.to_date("%Y-%m-%d", strict=False)
            for c in ("enrolled_on", "unenrolled_on")
        )
        .select(list(ENROLMENT_SCHEMA))
        .unique()
        .sort(list(ENROLMENT_SCHEMA), nulls_last=True)
    )


def fhir_device_links(devices: pl.DataFrame) -> pl.DataFrame:
    """Device keys (resource id, serial number, UDI device identifier) → patient, from silver `device`
    rows (`source`, `id`, `patient_id`, `serial_number`, `udi_device_identifier`)."""
    if devices.is_empty():
        return pl.DataFrame(schema=FHIR_DEVICE_SCHEMA)
    with_patient = devices.filter(pl.col("patient_id").is_not_null())
    keys = [
        with_patient.select(
            pl.col(column).alias("device_key"), pl.col("source").alias("patient_source"), "patient_id"
        )
        for column in ("id", "serial_number", "udi_device_identifier")
    ]
    return (
        pl.concat(keys).drop_nulls("device_key").unique().sort("device_key", "patient_source", "patient_id")
    )


def link_readings(readings: pl.DataFrame, enrolment: pl.DataFrame, devices: pl.DataFrame) -> pl.DataFrame:
    """Fill `patient_source`, `patient_id` and `link_method` of every reading.

    Readings already carrying a patient (FHIR Observations) keep it as `fhir_subject`. The others are
    linked by the device enrolled at the reading's date, else the enrolled vendor account, else a FHIR
    Device that names its patient.
    """
    indexed = readings.with_row_index("_rid")
    day = pl.col("effective_start").dt.date()
    by_device = _unique_patient(
        indexed.filter(pl.col("device_id").is_not_null())
        .select("_rid", "device_id", day.alias("_day"))
        .join(enrolment, on="device_id")
        .filter(
            (pl.col("enrolled_on").is_null() | (pl.col("_day") >= pl.col("enrolled_on")))
            & (pl.col("unenrolled_on").is_null() | (pl.col("_day") <= pl.col("unenrolled_on")))
        )
    )
    by_user = _unique_patient(
        indexed.filter(pl.col("vendor_user_id").is_not_null())
        .select("_rid", "vendor_user_id")
        .join(
            enrolment.select("vendor_user_id", "patient_source", "patient_id").unique(), on="vendor_user_id"
        )
    )
    by_fhir_device = _unique_patient(
        indexed.filter(pl.col("device_id").is_not_null())
        .select("_rid", pl.col("device_id").alias("device_key"))
        .join(devices, on="device_key")
    )
    linked = indexed
    for method, links in (
        ("enrolment_device", by_device),
        ("enrolment_user", by_user),
        ("fhir_device", by_fhir_device),
    ):
        linked = (
            linked.join(
                links.rename({"patient_source": "_ps", "patient_id": "_pid"}),
                on="_rid",
                how="left",
                maintain_order="left",
            )
            .with_columns(
                pl.when(pl.col("patient_id").is_null() & pl.col("_pid").is_not_null())
                .then(pl.lit(method))
                .otherwise(pl.col("link_method"))
                .alias("link_method"),
                pl.coalesce("patient_source", "_ps").alias("patient_source"),
                pl.coalesce("patient_id", "_pid").alias("patient_id"),
            )
            .drop("_ps", "_pid")
        )
    return linked.with_columns(pl.col("link_method").fill_null("unlinked")).drop("_rid")


def _unique_patient(candidates: pl.DataFrame) -> pl.DataFrame:
    """Per reading, the patient its key points to, when it points to exactly one."""
    return (
        candidates.select("_rid", "patient_source", "patient_id").unique().filter(pl.len().over("_rid") == 1)
    )
