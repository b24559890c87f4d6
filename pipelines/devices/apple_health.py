"""Apple Health export records → source readings.

Bronze keeps each record of a carried type, and each blood-pressure correlation, as JSON
(`{"element", "attributes", "children"}`, see `pipelines.bronze.apple_health`). Apple writes times as
`2016-05-02 08:00:00 -0700`: the instant is exact and the offset is the reading's zone. A record whose start
and end differ (a step count over an interval) keeps its end. Units are passed on as Apple writes them,
translated where Apple's spelling is not the table's: `count/min` is `/min`; oxygen saturation is written
as a fraction with `%` (0.97), which is UCUM's unity `1`; glucose in `mmol<180.15588…>/L` (Apple names
glucose's molar mass) is `mmol/L`. Conversion, plausibility and patient links are decided centrally.

A correlation's systolic and diastolic members become two readings sharing a group id, so the pair is
checked together (systolic above diastolic) like a cuff's. Reject codes: `missing_value`, `invalid_value`,
`invalid_time_frame`, `no_supported_metric`, and the decoding ones of every reader.
"""

from __future__ import annotations

import polars as pl

from pipelines.bronze.apple_health import BLOOD_PRESSURE, DIASTOLIC, RECORD_METRICS, SYSTOLIC
from pipelines.devices.contract import REJECT_SCHEMA, ROW, ReaderOutput, conform, empty_readings
from pipelines.devices.vendors import END, GROUP, START, ZONE, Emit, decode_records, evaluate, item

APPLE_TIME = "%Y-%m-%d %H:%M:%S %z"
_ATTRIBUTES = pl.Struct(
    {name: pl.String for name in ("type", "unit", "value", "startDate", "endDate", "sourceName")}
)
_NODE = pl.Struct(
    {
        "element": pl.String,
        "attributes": _ATTRIBUTES,
        "children": pl.List(pl.Struct({"element": pl.String, "attributes": _ATTRIBUTES})),
    }
)
_OFFSET = r"([+-]\d{2}:?\d{2})$"
_GLUCOSE_MOLAR = r"^mmol<180\.1\d*>/L$"
NO_TIME = "the start or end date is missing or not a time with its UTC offset"


def attribute(node: pl.Expr, name: str) -> pl.Expr:
    """An attribute of a decoded element, stripped; null when absent or blank."""
    return node.struct.field("attributes").struct.field(name).str.strip_chars().replace("", None)


def apple_unit(unit: pl.Expr, metric: pl.Expr) -> pl.Expr:
    """A unit as Apple writes it → the spelling data_contracts/devices/metrics.yaml accepts."""
    return (
        pl.when(unit == "count/min")
        .then(pl.lit("/min"))
        .when((unit == "%") & (metric == "oxygen_saturation"))
        .then(pl.lit("1"))  # Apple writes oxygen saturation as a fraction of one with a % sign
        .when(unit.str.contains(_GLUCOSE_MOLAR))
        .then(pl.lit("mmol/L"))
        .otherwise(unit)
    )


def _timed(frame: pl.DataFrame) -> pl.DataFrame:
    start_text, end_text = attribute(pl.col("_item"), "startDate"), attribute(pl.col("_item"), "endDate")
    start = start_text.str.to_datetime(APPLE_TIME, time_unit="us", time_zone="UTC", strict=False)
    end = end_text.str.to_datetime(APPLE_TIME, time_unit="us", time_zone="UTC", strict=False)
    # the zone label '+HH:MM' straight from the offset that parsed (`vendors.Zones` reads any spelling of a
    # zone, at several regular expressions per row: too slow for the millions of records of an export)
    offset = start_text.str.extract(_OFFSET, 1).str.replace(":", "", literal=True)
    label = pl.when(start.is_not_null()).then(
        pl.format("{}:{}", offset.str.slice(0, 3), offset.str.slice(3, 2))
    )
    return frame.with_columns(
        start.alias(START),
        pl.when(end != start).then(end).alias(END),  # a point in time has no end
        label.alias(ZONE),
        (end_text.is_not_null() & end.is_null()).alias("_bad_end"),
        (end < start).alias("_end_before_start"),
    )


def _time_checks() -> list[tuple[pl.Expr, str, str]]:
    return [
        (pl.col(START).is_null() | pl.col("_bad_end"), "invalid_time_frame", NO_TIME),
        (pl.col("_end_before_start"), "invalid_time_frame", "the record ends before it starts"),
    ]


def _records(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    node = pl.col("_item")
    metric = attribute(node, "type").replace_strict(RECORD_METRICS, default=None, return_dtype=pl.String)
    text = attribute(node, "value")
    value = text.cast(pl.Float64, strict=False)
    prepared = _timed(frame)
    return evaluate(
        prepared,
        [
            (metric.is_null(), "no_supported_metric", "the record's type is not one the platform keeps"),
            (text.is_null(), "missing_value", "the record has no value"),
            (value.is_null(), "invalid_value", "the record's value is not a number"),
            *_time_checks(),
        ],
        [Emit(metric, value, apple_unit(attribute(node, "unit"), metric))],
    )


def _member(kind: str) -> pl.Expr:
    """The first member record of a correlation of type `kind` (null when it has none)."""
    return (
        item("children")
        .list.eval(
            pl.element().filter(
                (pl.element().struct.field("element") == "Record")
                & (pl.element().struct.field("attributes").struct.field("type") == kind)
            )
        )
        .list.first()
    )


def _correlations(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    prepared = _timed(frame).with_columns(
        _member(SYSTOLIC).alias("_systolic"),
        _member(DIASTOLIC).alias("_diastolic"),
        pl.format("apple_health:{}", "record_id").alias(GROUP),
    )
    members = [
        ("systolic_blood_pressure", pl.col("_systolic")),
        ("diastolic_blood_pressure", pl.col("_diastolic")),
    ]
    texts = [attribute(m, "value") for _, m in members]
    numbers = [t.cast(pl.Float64, strict=False) for t in texts]
    present = [m.is_not_null() for _, m in members]
    return evaluate(
        prepared,
        [
            (
                ~pl.any_horizontal(present),
                "missing_value",
                "the blood-pressure correlation holds neither a systolic nor a diastolic record",
            ),
            (
                pl.any_horizontal([p & t.is_null() for p, t in zip(present, texts, strict=True)]),
                "missing_value",
                "a member of the blood-pressure correlation has no value",
            ),
            (
                pl.any_horizontal(
                    [t.is_not_null() & n.is_null() for t, n in zip(texts, numbers, strict=True)]
                ),
                "invalid_value",
                "a member of the blood-pressure correlation has a value that is not a number",
            ),
            *_time_checks(),
        ],
        [
            Emit(metric, number, apple_unit(attribute(m, "unit"), pl.lit(metric)))
            for (metric, m), number in zip(members, numbers, strict=True)
        ],
    )


def read_apple_health(records: pl.DataFrame) -> ReaderOutput:
    """Readings of Apple Health export records: quantity records one reading each, blood-pressure
    correlations a systolic and a diastolic reading taken together."""
    decoded, rejects = decode_records(records, _NODE)
    correlation = (pl.col("_item").struct.field("element") == "Correlation") & (
        attribute(pl.col("_item"), "type") == BLOOD_PRESSURE
    )
    outputs = [rejects]
    readings = [empty_readings()]
    for builder, rows in (
        (_correlations, decoded.filter(correlation)),
        (_records, decoded.filter(~correlation)),
    ):
        if rows.height:
            built, refused = builder(rows)
            readings.append(conform(built, refused).readings)
            outputs.append(refused)
    all_rejects = pl.concat([conform(empty_readings(), r).rejects for r in outputs])
    return conform(
        pl.concat(readings).sort(ROW, maintain_order=True),
        all_rejects.sort(ROW, maintain_order=True).select(list(REJECT_SCHEMA)),
    )
