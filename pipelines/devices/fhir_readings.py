"""FHIR Observations made by a device (`Observation.device`) as device readings, from silver.

The metric comes from the observation's (or component's) LOINC code (`fhir_codes` in metrics.yaml);
the unit from the Quantity's UCUM `code`, else its `unit` text. The patient is the observation's
subject, so these readings are linked as `fhir_subject`.
"""

from __future__ import annotations

import polars as pl

from pipelines.devices.units import metric_catalogue
from pipelines.fhir.times import fhir_offset, fhir_timestamp

_COMPONENT_COLUMNS = (
    "source",
    "observation_id",
    "patient_id",
    "code",
    "code_system",
    "effective_date_time",
    "value_quantity_value",
    "value_quantity_unit",
    "value_quantity_code",
    "component_index",
)


def fhir_device_readings(observations: pl.DataFrame, components: pl.DataFrame) -> pl.DataFrame:
    """Device readings (before unit normalization) from silver `observation` and `observation_component`
    rows of one partition. Observations without a device, or whose code is no device metric, are not
    device readings and are left out (they remain in silver `observation`)."""
    codes = pl.DataFrame(
        [(code, m.name) for m in metric_catalogue().values() for code in m.fhir_codes],
        schema={"code": pl.String, "metric": pl.String},
        orient="row",
    )
    if "device_id" not in observations.columns:  # no silver observation partition (yet)
        return pl.DataFrame()
    from_device = observations.filter(pl.col("device_id").is_not_null())
    if components.is_empty():
        components = pl.DataFrame(schema={c: pl.String for c in _COMPONENT_COLUMNS})
    whole = from_device.select(
        "source",
        pl.col("id").alias("observation_id"),
        "patient_id",
        "device_id",
        "code",
        "code_system",
        "effective_date_time",
        "effective_period_end",
        "value_quantity_value",
        "value_quantity_unit",
        "value_quantity_code",
        pl.lit(None, pl.Int64).alias("component_index"),
    )
    parts = components.join(
        from_device.select(
            "source", pl.col("id").alias("observation_id"), "device_id", "effective_period_end"
        ),
        on=["source", "observation_id"],
    ).select(whole.columns)
    rows = pl.concat([whole, parts], how="vertical_relaxed").filter(
        pl.col("code_system").is_null() | (pl.col("code_system") == "http://loinc.org")
    )
    readings = rows.join(codes, on="code")
    start = fhir_timestamp(pl.col("effective_date_time"))
    return readings.select(
        "source",
        pl.format(
            "Observation/{}{}",
            "observation_id",
            pl.when(pl.col("component_index").is_not_null())
            .then(pl.format("#component{}", pl.col("component_index")))
            .otherwise(pl.lit("")),
        ).alias("raw_ref"),
        pl.lit("fhir").alias("record_format"),
        pl.lit(None, pl.String).alias("vendor_user_id"),
        "device_id",
        pl.col("source").alias("patient_source"),
        "patient_id",
        pl.when(pl.col("patient_id").is_not_null()).then(pl.lit("fhir_subject")).alias("link_method"),
        "metric",
        pl.col("value_quantity_value").cast(pl.Float64).alias("original_value"),
        pl.coalesce("value_quantity_code", "value_quantity_unit").alias("original_unit"),
        start.alias("effective_start"),
        fhir_timestamp(pl.col("effective_period_end")).alias("effective_end"),
        fhir_offset(pl.col("effective_date_time")).alias("time_zone"),
        pl.lit(None, pl.String).alias("statistic"),
        pl.format("Observation/{}", "observation_id").alias("group_id"),
        pl.format("fhir|{}|{}", "source", "observation_id").alias("received_order"),
    )
