"""Device CSV rows → source readings, read with the column mapping the source named.

Bronze keeps each row as a JSON object of strings (`raw`) with `record_type` = the mapping's name
(data_contracts/devices/csv_mappings/<name>.yaml). In a long file a row is one measured value: the mapping
says which column holds the metric, value, unit, timestamp and its time zone; the metric name is translated
by the mapping (or must already be a platform metric), the unit spelling too (or passes as written). In a
wide file a row holds one value per metric column (`value_columns`, each with its unit): every non-empty
cell is a reading, and the readings of one row share a group id (taken together, like a cuff's systolic and
diastolic). Values are never converted here. Everything is built with expressions over the whole batch.

Timestamps are tried against the mapping's formats in order. A date-only format (`4/12/2016`) gives a
day-level reading: it covers the calendar day in the row's zone, from local midnight to the next (as a
vendor's daily step total does), so the day it counts for is the day written.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from pipelines.bronze.device_reader import CsvMapping, date_only, load_csv_mapping
from pipelines.devices.contract import METRICS, REJECT_SCHEMA, ROW, ReaderOutput, conform, empty_readings
from pipelines.devices.vendors import (
    END,
    GROUP,
    START,
    ZONE,
    Check,
    Emit,
    decode_records,
    evaluate,
    item,
    zones,
)

_ZONE_SUFFIX = r"(Z|[+-]\d{2}:?\d{2})$"
NO_TIMESTAMP = "the timestamp is missing, matches none of the mapping's formats, or has no time zone"


def read_device_csv(records: pl.DataFrame, mapping: CsvMapping) -> ReaderOutput:
    """Readings of device CSV rows that follow `mapping`.

    A row is rejected with `missing_value` (no value), `invalid_value` (a value that is not a number),
    `no_supported_metric` (a metric the platform does not keep) or `invalid_time_frame` (a timestamp
    that matches none of the mapping's formats, or a missing or unknown time zone).
    """
    unknown = sorted(set(mapping.metrics.values()) - set(METRICS))
    if unknown:
        raise ValueError(f"CSV mapping {mapping.name}: {unknown} are not platform metrics")
    columns = mapping.columns
    decoded, rejects = decode_records(records, pl.Struct(dict.fromkeys(mapping.required_columns, pl.String)))

    def text(column: str | None) -> pl.Expr:
        if column is None:
            return pl.lit(None, pl.String)
        return item(column).str.strip_chars().replace("", None)

    def role(name: str) -> pl.Expr:
        return text(columns.get(name))

    prepared = _timed(decoded, mapping, role)
    group = role("group_id")
    if mapping.wide:  # the values of one row were taken together
        group = pl.coalesce(group, pl.col("record_id"))
    # a group id means something only within one user's file, so it is qualified by mapping and user
    prepared = prepared.with_columns(
        pl.when(group.is_not_null())
        .then(pl.format("{}:{}:{}", pl.lit(mapping.name), role("user_id"), group))
        .alias(GROUP),
    )
    time_checks: list[Check] = [
        (
            pl.col("_bad_zone"),
            "invalid_time_frame",
            "the time zone is neither a UTC offset nor a known IANA name",
        ),
        (pl.col(START).is_null(), "invalid_time_frame", NO_TIMESTAMP),
    ]
    if mapping.wide:
        checks, emits = _wide(mapping, text)
    else:
        named = role("metric")
        metric = pl.coalesce(
            named.replace_strict(mapping.metrics, default=None, return_dtype=pl.String),
            pl.when(named.is_in(list(METRICS))).then(named),
        )
        value = role("value").cast(pl.Float64, strict=False)
        checks = [
            (metric.is_null(), "no_supported_metric", "the row's metric is not one the platform keeps"),
            (role("value").is_null(), "missing_value", "the row has no value"),
            (value.is_null(), "invalid_value", "the row's value is not a number"),
        ]
        emits = [Emit(metric, value, role("unit").replace(mapping.units))]
    readings, refused = evaluate(prepared, [*checks, *time_checks], emits)
    return conform(readings, pl.concat([rejects, refused]).sort(ROW, maintain_order=True))


def _timed(decoded: pl.DataFrame, mapping: CsvMapping, role: Callable[[str], pl.Expr]) -> pl.DataFrame:
    """`decoded` with the reading's start (UTC), end (the next local midnight for a date-only timestamp,
    else null), zone label and whether a stated zone is unusable (`_bad_zone`)."""
    stamp = role("timestamp")
    formats = mapping.timestamp_formats
    if mapping.offset_in_timestamp:
        # the timestamp carries its own offset: the instant is exact, the offset text is the zone
        instant = pl.coalesce(
            [stamp.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False) for f in formats]
        )
        z = zones(decoded, stamp.str.extract(_ZONE_SUFFIX, 1))
        return decoded.with_columns(
            instant.alias(START),
            pl.lit(None, pl.Datetime("us", "UTC")).alias(END),
            z.label().alias(ZONE),
            z.unusable().alias("_bad_zone"),
        )
    zone = role("time_zone") if "time_zone" in mapping.columns else pl.lit(mapping.fixed_time_zone, pl.String)
    z = zones(decoded, zone)
    parsed = [stamp.str.to_datetime(f, time_unit="us", strict=False) for f in formats]
    wall = pl.coalesce(parsed)
    day_level = [i for i, f in enumerate(formats) if date_only(f)]
    matched = pl.coalesce([pl.when(p.is_not_null()).then(pl.lit(i)) for i, p in enumerate(parsed)])
    whole_day = matched.is_in(day_level) if day_level else pl.lit(False)
    return decoded.with_columns(
        z.utc(wall).alias(START),
        pl.when(whole_day).then(z.utc(wall.dt.offset_by("1d"))).alias(END),
        z.label().alias(ZONE),
        z.unusable().alias("_bad_zone"),
    )


def _wide(mapping: CsvMapping, text: Callable[[str | None], pl.Expr]) -> tuple[list[Check], list[Emit]]:
    """Checks and one emit per metric of a wide mapping. A metric's columns are alternatives (`WeightKg`,
    then `WeightPounds`): the first non-empty cell on a row is read, in its column's unit."""
    cells = [(v, text(v.column)) for v in mapping.value_columns]
    numbers = {v.column: cell.cast(pl.Float64, strict=False) for v, cell in cells}
    checks: list[Check] = [
        (
            pl.all_horizontal([cell.is_null() for _, cell in cells]),
            "missing_value",
            "the row has no value in any of the mapping's value columns",
        ),
        (
            pl.any_horizontal([cell.is_not_null() & numbers[v.column].is_null() for v, cell in cells]),
            "invalid_value",
            "a value column of the row holds something that is not a number",
        ),
    ]
    emits = []
    for metric in dict.fromkeys(v.metric for v in mapping.value_columns):
        # a cell that is present but not a number rejects its row (above), so the first present cell
        # gives both the value and its unit
        own = [(v, cell) for v, cell in cells if v.metric == metric]
        value = pl.coalesce([pl.when(cell.is_not_null()).then(numbers[v.column]) for v, cell in own])
        unit = pl.coalesce([pl.when(cell.is_not_null()).then(pl.lit(v.unit)) for v, cell in own])
        emits.append(Emit(metric, value, unit))
    return checks, emits


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
