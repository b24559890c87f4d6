"""Device CSV rows → source readings, read with the column mapping the source named.

Bronze keeps each row as a JSON object of strings (`raw`) with `record_type` = the mapping's name
(data_contracts/devices/csv_mappings/<name>.yaml). A row is one measured value: the mapping says which
column holds the metric, value, unit, timestamp and its time zone. The metric name is translated by
the mapping (or must already be a platform metric), the unit spelling too (or passes as written); the
value is never converted here. Everything is built with expressions over the whole batch.
"""

from __future__ import annotations

import polars as pl

from pipelines.bronze.device_reader import CsvMapping, load_csv_mapping
from pipelines.devices.contract import METRICS, REJECT_SCHEMA, ROW, ReaderOutput, conform, empty_readings
from pipelines.devices.vendors import (
    END,
    GROUP,
    START,
    ZONE,
    Emit,
    decode_records,
    evaluate,
    item,
    zones,
)

_ZONE_SUFFIX = r"(Z|[+-]\d{2}:?\d{2})$"


def read_device_csv(records: pl.DataFrame, mapping: CsvMapping) -> ReaderOutput:
    """Readings of device CSV rows that follow `mapping`.

    A row is rejected with `missing_value` (empty value), `invalid_value` (not a number),
    `no_supported_metric` (a metric the platform does not keep) or `invalid_time_frame` (a timestamp
    that does not match the mapping's format, or a missing or unknown time zone).
    """
    unknown = sorted(set(mapping.metrics.values()) - set(METRICS))
    if unknown:
        raise ValueError(f"CSV mapping {mapping.name}: {unknown} are not platform metrics")
    columns = mapping.columns
    decoded, rejects = decode_records(records, pl.Struct(dict.fromkeys(columns.values(), pl.String)))

    def text(role: str) -> pl.Expr:
        if role not in columns:
            return pl.lit(None, pl.String)
        return item(columns[role]).str.strip_chars().replace("", None)

    named = text("metric")
    metric = pl.coalesce(
        named.replace_strict(mapping.metrics, default=None, return_dtype=pl.String),
        pl.when(named.is_in(list(METRICS))).then(named),
    )
    value = text("value").cast(pl.Float64, strict=False)
    unit = text("unit").replace(mapping.units)
    stamp = text("timestamp")
    if "%z" in mapping.timestamp_format:
        # the timestamp carries its own offset: the instant is exact, the offset text is the zone
        zone = stamp.str.extract(_ZONE_SUFFIX, 1)
        instant = stamp.str.to_datetime(
            mapping.timestamp_format, time_unit="us", time_zone="UTC", strict=False
        )
        z = zones(decoded, zone)
        prepared = decoded.with_columns(instant.alias(START), z.label().alias(ZONE))
    else:
        zone = text("time_zone") if "time_zone" in columns else pl.lit(mapping.fixed_time_zone, pl.String)
        z = zones(decoded, zone)
        wall = stamp.str.to_datetime(mapping.timestamp_format, time_unit="us", strict=False)
        prepared = decoded.with_columns(z.utc(wall).alias(START), z.label().alias(ZONE))
    group = text("group_id")
    # a group id means something only within one user's file, so it is qualified by mapping and user
    prepared = prepared.with_columns(
        pl.lit(None, pl.Datetime("us", "UTC")).alias(END),
        pl.when(group.is_not_null())
        .then(pl.format("{}:{}:{}", pl.lit(mapping.name), text("user_id"), group))
        .alias(GROUP),
    )
    readings, refused = evaluate(
        prepared,
        [
            (metric.is_null(), "no_supported_metric", "the row's metric is not one the platform keeps"),
            (text("value").is_null(), "missing_value", "the row has no value"),
            (value.is_null(), "invalid_value", "the row's value is not a number"),
            (
                z.unusable(),
                "invalid_time_frame",
                "the time zone is neither a UTC offset nor a known IANA name",
            ),
            (
                pl.col(START).is_null(),
                "invalid_time_frame",
                "the timestamp is missing, does not match the mapping's format, or has no time zone",
            ),
        ],
        [Emit(metric, value, unit)],
    )
    return conform(readings, pl.concat([rejects, refused]).sort(ROW, maintain_order=True))


def read_device_csv_records(records: pl.DataFrame) -> ReaderOutput:
    """Readings of device CSV rows of any mapping: each row is read with the mapping its `record_type`
    names (a record naming no known mapping is rejected as `unknown_mapping`)."""
    outputs: list[ReaderOutput] = []
    rejects: list[pl.DataFrame] = []
    for name in sorted(records["record_type"].drop_nulls().unique().to_list()):
        of_mapping = records.filter(pl.col("record_type") == name)
        try:
            mapping = load_csv_mapping(name)
        except ValueError:
            rejects.append(_unknown_mapping(of_mapping))
            continue
        outputs.append(read_device_csv(of_mapping, mapping))
    rejects.append(_unknown_mapping(records.filter(pl.col("record_type").is_null())))
    readings = [o.readings for o in outputs]
    return conform(
        pl.concat(readings).sort(ROW, maintain_order=True) if readings else empty_readings(),
        pl.concat([*(o.rejects for o in outputs), *rejects]).sort(ROW, maintain_order=True),
    )


def _unknown_mapping(records: pl.DataFrame) -> pl.DataFrame:
    return records.select(
        pl.col(ROW).cast(pl.Int64),
        pl.lit("unknown_mapping").alias("reason_code"),
        pl.lit("the record names no CSV mapping in data_contracts/devices/csv_mappings").alias("reason"),
    ).select(list(REJECT_SCHEMA))
