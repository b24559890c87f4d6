"""Vendor API payload readers: iHealth, Withings and Fitbit list items → source readings.

Bronze keeps one record per list item (`record_type` = the list name) with the payload-level fields the
item needs in `payload_context`. Each reader decodes `raw` and `payload_context` with an explicit Polars
dtype per record type and builds every reading with expressions; the only Python loops run over record
types, metrics and distinct time zones, never over the records. Units are passed on as the vendor
states them (unit codes translated to the spellings data_contracts/devices/metrics.yaml accepts, values
untouched); conversion, plausibility and patient links are decided centrally afterwards.

Vendor conventions this module relies on:

* iHealth: `MDate`, `StartTime` and `EndTime` are the *local* wall-clock time written as epoch seconds,
  and `TimeZone` is the offset ("-0800"; whole hours when it is a number), so the instant is the epoch
  minus the offset (in the sample payloads `LastChangeTime`, a true UTC epoch, is a few seconds after
  `MDate - offset`). Value fields use 0 for "not measured" (the partial samples send `HR: 0`, `BO: 0`,
  `WeightValue: 0`). Units are payload-level codes: `BPUnit` 0 mmHg, 1 kPa; `WeightUnit` 0 kg, 1 lb,
  2 stone; `BGUnit` 0 mg/dL, 1 mmol/L. An activity report (`ARDataList`) is a day's step total;
  `SRDataList` sleep's `HoursSlept` is in minutes despite its name (StartTime to EndTime minus the
  awake time matches it in the samples).
* Withings: `date`, `startdate`, `enddate` and intraday series keys are true epoch seconds; the zone
  (`timezone`, an IANA name) is only the label, except for activity days (`date` "YYYY-MM-DD"), which
  are days in that zone. A measure's value is `value * 10^unit`. Measure group category 2 is a goal,
  attrib 1 a measure Withings could not attribute to the user: neither is the patient's reading.
* Fitbit: times are wall-clock times of the user's profile time zone, which the API does not repeat in
  data payloads. A payload-level `timezone` (IANA) or `offsetFromUTCMillis` (profile fields a sync job
  may store beside the data) wins; else the `time_zone` argument of `read_fitbit`; else the times are
  read as UTC and `time_zone` stays null so consumers can tell. Weight is in the unit system the request
  asked for: kilograms unless the payload-level `weightUnit` says en_US (pounds) or en_GB (stone).

Reject codes: `missing_value` (an item of a measurement kind without its value), `no_supported_metric`
(an item that yields no metric the platform keeps: sport sessions, sleep stages, heart-rate zones,
unknown lists), `unknown_unit` (a unit code the vendor does not document), `invalid_time_frame` (no
usable time), `not_a_measurement`, `ambiguous_attribution`, `invalid_json` / `invalid_field_type` /
`not_an_object` (an item or its context that does not decode). Reason texts never carry values.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial

import orjson
import polars as pl

from pipelines.bronze.json_records import NO_PROBLEM, problem
from pipelines.devices.contract import (
    REJECT_SCHEMA,
    ROW,
    SOURCE_READING_SCHEMA,
    ReaderOutput,
    conform,
    empty_readings,
    empty_rejects,
)

ITEM = "_item"
CONTEXT = "_ctx"
START, END, ZONE, GROUP = "_start", "_end", "_tz", "_group"
HEART_RATE_UNIT = "/min"
EARLIEST_YEAR, LATEST_YEAR = 1900, 9999
"""Times outside these years are unit or encoding errors (milliseconds read as seconds land past 50,000).
A time in range but past the as-of day is left to the one rule for dates from the future (`future_date`,
in `devices.build`), so that a device clock set to the year 3000 is counted as what it is."""
STEPS_UNIT = "{steps}"


# --- decoding ------------------------------------------------------------------------------------------
def item(name: str) -> pl.Expr:
    """A member of the decoded item."""
    return pl.col(ITEM).struct.field(name)


def context(name: str) -> pl.Expr:
    """A member of the decoded payload context."""
    return pl.col(CONTEXT).struct.field(name)


DECODE_ROWS = 16_384
"""Records decoded per vectorized call. Polars holds every parsed record of a call at once, several times
the JSON's size (a person's whole Apple Health export, 700,000 records, took 2 GB more than its text), so a
large frame is decoded a slice at a time, which is no slower."""


def decode_column(
    frame: pl.DataFrame, column: str, dtype: pl.DataType, alias: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`frame` with JSON text `column` decoded to `dtype` as `alias`, and the rows that do not decode.

    Decoding is one vectorized call per `DECODE_ROWS` records. Polars fails the whole call when one record
    has a value of another JSON type than `dtype` says (or is not JSON), so a failing slice is halved until
    each failing record stands alone: k bad records cost O(k log n) calls and the good ones are still
    decoded in bulk.
    """
    if frame.height <= DECODE_ROWS:
        return _decode(frame, column, dtype, alias)
    parts = [
        _decode(frame.slice(start, DECODE_ROWS), column, dtype, alias)
        for start in range(0, frame.height, DECODE_ROWS)
    ]
    return pl.concat([good for good, _ in parts]), pl.concat([bad for _, bad in parts])


def _decode(
    frame: pl.DataFrame, column: str, dtype: pl.DataType, alias: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        return frame.with_columns(pl.col(column).str.json_decode(dtype).alias(alias)), frame.clear()
    except pl.exceptions.PolarsError:
        if frame.height <= 1:
            return frame.clear().with_columns(pl.lit(None, dtype).alias(alias)), frame
        half = frame.height // 2
        good_a, bad_a = _decode(frame.slice(0, half), column, dtype, alias)
        good_b, bad_b = _decode(frame.slice(half), column, dtype, alias)
        return pl.concat([good_a, good_b]), pl.concat([bad_a, bad_b])


_NO_CONTEXT = pl.Struct({"_": pl.String})


def decode_records(
    records: pl.DataFrame, item_dtype: pl.Struct, context_dtype: pl.Struct | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Records with `raw` decoded as `_item` and `payload_context` as `_ctx`, and rejects for the
    records whose item or context does not decode or whose item is not a JSON object."""
    if "payload_context" not in records.columns:
        records = records.with_columns(pl.lit(None, pl.String).alias("payload_context"))
    decoded, bad_items = decode_column(records, "raw", item_dtype, ITEM)
    if context_dtype is None:  # the kind needs nothing from the payload: do not parse it
        decoded, bad_contexts = (
            decoded.with_columns(pl.lit(None, _NO_CONTEXT).alias(CONTEXT)),
            decoded.clear(),
        )
    else:
        decoded, bad_contexts = decode_column(decoded, "payload_context", context_dtype, CONTEXT)
    not_objects = decoded.filter(pl.col(ITEM).is_null())
    rejects = pl.concat(
        [
            _item_decode_rejects(bad_items),
            _rejects(bad_contexts, "invalid_field_type", "a payload-level field has an unexpected JSON type"),
            _rejects(not_objects, "not_an_object", "the item is not a JSON object"),
        ]
    )
    return decoded.filter(pl.col(ITEM).is_not_null()), rejects


def _item_decode_rejects(bad: pl.DataFrame) -> pl.DataFrame:
    # only records that failed to decode get here, so telling broken JSON, a non-object and a wrong
    # member type apart one record at a time costs nothing on the bulk path
    def kind(raw: str | None) -> str:
        try:
            value = orjson.loads(raw or "")
        except orjson.JSONDecodeError:
            return "invalid_json"
        return "invalid_field_type" if isinstance(value, dict) else "not_an_object"

    reasons = {
        "invalid_json": "the item is not valid JSON",
        "not_an_object": "the item is not a JSON object",
        "invalid_field_type": "a field of the item has an unexpected JSON type",
    }
    codes = pl.Series("reason_code", [kind(raw) for raw in bad["raw"].to_list()], dtype=pl.String)
    return bad.select(pl.col(ROW).cast(pl.Int64)).with_columns(
        codes, codes.replace_strict(reasons, return_dtype=pl.String).alias("reason")
    )


def _rejects(frame: pl.DataFrame, code: str, reason: str) -> pl.DataFrame:
    return frame.select(
        pl.col(ROW).cast(pl.Int64), pl.lit(code).alias("reason_code"), pl.lit(reason).alias("reason")
    )


# --- time ----------------------------------------------------------------------------------------------
_OFFSET = r"^(?P<sign>[+-]?)(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?$"


_IANA_NAMES = cache(zoneinfo.available_timezones)  # a directory scan: once per process


@cache
def _polars_zone(name: str) -> bool:
    """Whether `name` is an IANA zone both Python and Polars know (their tz databases may differ)."""
    if name not in _IANA_NAMES():
        return False
    try:
        pl.Series([datetime(2020, 1, 1)]).dt.replace_time_zone(name)
    except pl.exceptions.PolarsError:
        return False
    return True


def offset_label(seconds: pl.Expr) -> pl.Expr:
    """'+HH:MM' for a UTC offset in seconds."""
    minutes = seconds.abs() // 60
    return pl.format(
        "{}{}:{}",
        pl.when(seconds < 0).then(pl.lit("-")).otherwise(pl.lit("+")),
        (minutes // 60).cast(pl.String).str.zfill(2),
        (minutes % 60).cast(pl.String).str.zfill(2),
    )


@dataclass(frozen=True)
class Zones:
    """A column of time zones as sources write them: UTC offsets ('-0800', '+05:30', '-8', 'Z') or IANA
    names. Built by `zones` from the frame, because Polars takes an IANA name only as a constant."""

    zone: pl.Expr
    names: tuple[str, ...]

    def _offset_seconds(self) -> pl.Expr:
        parts = self.zone.str.extract_groups(_OFFSET)
        hours = parts.struct.field("hours").cast(pl.Int64)
        minutes = parts.struct.field("minutes").cast(pl.Int64).fill_null(0)
        sign = pl.when(parts.struct.field("sign") == "-").then(-1).otherwise(1)
        valid = hours.is_not_null() & (hours <= 14) & (minutes < 60)
        return pl.when(valid).then(sign * (hours * 3600 + minutes * 60))

    def utc(self, wall: pl.Expr, *, unknown_as_utc: bool = False) -> pl.Expr:
        """The UTC instant of a naive wall-clock time in this zone; null when the zone is unusable (or
        absent, unless `unknown_as_utc`) or the time does not exist there (a DST gap)."""
        seconds = self._offset_seconds()
        candidates = [(wall - pl.duration(seconds=seconds)).dt.replace_time_zone("UTC")]
        candidates += [
            pl.when(self.zone == name).then(
                wall.dt.replace_time_zone(
                    name, ambiguous="earliest", non_existent="null"
                ).dt.convert_time_zone("UTC")
            )
            for name in self.names
        ]
        if unknown_as_utc:
            candidates.append(pl.when(self.zone.is_null()).then(wall.dt.replace_time_zone("UTC")))
        return pl.coalesce(candidates)

    def label(self) -> pl.Expr:
        """The zone for `time_zone`: '+HH:MM' for an offset, the IANA name, or null."""
        seconds = self._offset_seconds()
        return (
            pl.when(seconds.is_not_null())
            .then(offset_label(seconds))
            .when(self.zone.is_in(list(self.names)))
            .then(self.zone)
        )

    def unusable(self) -> pl.Expr:
        """The zone is stated but is neither an offset nor a known IANA name."""
        return self.zone.is_not_null() & self.label().is_null()

    def local(self, instant: pl.Expr) -> pl.Expr:
        """The naive wall-clock time of a UTC `instant` in this zone; null when the zone is unusable or
        absent."""
        seconds = self._offset_seconds()
        return pl.coalesce(
            [
                (instant + pl.duration(seconds=seconds)).dt.replace_time_zone(None),
                *(
                    pl.when(self.zone == name).then(
                        instant.dt.convert_time_zone(name).dt.replace_time_zone(None)
                    )
                    for name in self.names
                ),
            ]
        )


def zones(frame: pl.DataFrame, zone: pl.Expr) -> Zones:
    """The `Zones` of an expression over `frame` ('Z' and 'UTC' read as offset zero)."""
    normalized = zone.cast(pl.String).str.strip_chars()
    normalized = (
        pl.when(normalized.is_in(["Z", "z", "UTC", "GMT"])).then(pl.lit("+00:00")).otherwise(normalized)
    )
    found = frame.select(normalized.alias("zone"))["zone"].drop_nulls().unique().to_list()
    return Zones(normalized, tuple(sorted(name for name in found if _polars_zone(name))))


def epoch(seconds: pl.Expr) -> pl.Expr:
    """A naive datetime from epoch seconds (a UTC instant, or iHealth's local wall clock)."""
    return pl.from_epoch(seconds, "s")


MAX_EPOCH_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z: the latest epoch second a timestamp may carry. Beyond roughly ±9.2e12 s the
conversion to microseconds overflows a 64-bit integer and wraps silently to a wrong date (year -61760)."""
MAX_DURATION_SECONDS = 100_000_000_000
"""~3,170 years: a longer duration overflows the timestamps it is added to (as in `openmhealth`)."""


def within(value: pl.Expr, limit: float) -> pl.Expr:
    """`value` where its magnitude is at most `limit`, else null: numbers a vendor sends are bounded before
    an integer conversion can overflow (the reading is then rejected for its missing time, not wrapped)."""
    return pl.when(value.abs() <= limit).then(value)


def epoch_utc(seconds: pl.Expr) -> pl.Expr:
    """A UTC instant from true epoch seconds; null for seconds outside years 1-9999 and non-finite ones."""
    return pl.from_epoch(within(seconds, MAX_EPOCH_SECONDS), "s").dt.replace_time_zone("UTC")


def local_day(day: pl.Expr) -> pl.Expr:
    """The naive midnight of a 'YYYY-MM-DD' date."""
    return day.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))


# --- building readings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Emit:
    """One metric an item can yield: null `value` means this item has none (no reading, no reject)."""

    metric: str | pl.Expr  # an expression when the item names its own metric (device CSV rows)
    value: pl.Expr
    unit: pl.Expr
    end: pl.Expr | None = None  # overrides the item's `_end` (a point reading inside an interval item)


_OUT = {START: "effective_start", END: "effective_end", ZONE: "time_zone", GROUP: "group_id"}

Check = tuple[pl.Expr, str, str]
"""(condition, reason_code, reason): the first true condition rejects the item."""


def evaluate(
    frame: pl.DataFrame, checks: list[Check], emits: list[Emit]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings and rejects of prepared items: `frame` has `_row`, the decoded columns, and `_start`
    (UTC), optionally `_end`, `_tz` and `_group`; `checks` say why an item yields nothing."""
    # epoch values in the wrong unit overflow silently into absurd years: no item's time is kept then
    sane_time = (
        (pl.col(START).dt.year() < EARLIEST_YEAR) | (pl.col(START).dt.year() > LATEST_YEAR),
        "invalid_time_frame",
        f"the time is outside the years {EARLIEST_YEAR}-{LATEST_YEAR} (a unit or encoding error)",
    )
    verdict = NO_PROBLEM
    for condition, code, reason in reversed([*checks, sane_time]):
        verdict = pl.when(condition.fill_null(False)).then(problem(code, reason)).otherwise(verdict)
    for name in (END, ZONE, GROUP):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, SOURCE_READING_SCHEMA[_OUT[name]]).alias(name))
    marked = frame.with_columns(verdict.alias("_problem"))
    bad = marked.filter(pl.col("_problem").is_not_null()).select(
        ROW,
        pl.col("_problem").struct.field("code").alias("reason_code"),
        pl.col("_problem").struct.field("reason").alias("reason"),
    )
    good = marked.filter(pl.col("_problem").is_null())
    readings = [
        good.select(
            ROW,
            (pl.lit(emit.metric) if isinstance(emit.metric, str) else emit.metric).alias("metric"),
            emit.value.cast(pl.Float64).alias("original_value"),
            emit.unit.cast(pl.String).alias("original_unit"),
            pl.col(START).alias("effective_start"),
            (pl.col(END) if emit.end is None else emit.end).alias("effective_end"),
            pl.col(ZONE).alias("time_zone"),
            pl.lit(None, pl.String).alias("statistic"),
            pl.col(GROUP).alias("group_id"),
        ).filter(pl.col("original_value").is_not_null())
        for emit in emits
    ]
    return _conformed_readings(readings), bad


def _conformed_readings(parts: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [conform(part, empty_rejects()).readings for part in parts]
    return pl.concat(frames) if frames else empty_readings()


def absent(value: pl.Expr) -> pl.Expr:
    """Null or zero: how iHealth (and Fitbit weight) say a value was not measured."""
    return value.is_null() | (value == 0)


def group_id(vendor: str, vendor_id: pl.Expr) -> pl.Expr:
    """A group id for readings taken together, from the vendor's item id (the bronze row if none)."""
    return pl.format(
        f"{vendor}:{{}}", pl.coalesce(vendor_id.cast(pl.String), pl.format("row-{}", pl.col(ROW)))
    )


Builder = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]


@dataclass(frozen=True)
class Kind:
    """How to read one record type: the item's and context's dtypes and the reading builder."""

    item: pl.Struct
    context: pl.Struct | None
    build: Builder


def read_kinds(records: pl.DataFrame, kinds: dict[str, Kind]) -> ReaderOutput:
    """Dispatch records by `record_type` to their kind; other record types yield no supported metric."""
    readings: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = [
        _rejects(
            records.filter(~pl.col("record_type").is_in(list(kinds)) | pl.col("record_type").is_null()),
            "no_supported_metric",
            "records of this list carry no metric the platform keeps",
        )
    ]
    for record_type, kind in kinds.items():
        of_type = records.filter(pl.col("record_type") == record_type)
        if of_type.is_empty():
            continue
        decoded, undecodable = decode_records(of_type, kind.item, kind.context)
        rejects.append(undecodable)
        if decoded.height:
            built, refused = kind.build(decoded)
            readings.append(built)
            rejects.append(refused)
    all_readings = pl.concat(readings) if readings else empty_readings()
    all_rejects = pl.concat([conform(empty_readings(), r).rejects for r in rejects])
    return conform(
        all_readings.sort(ROW, maintain_order=True),
        all_rejects.sort(ROW, maintain_order=True).select(list(REJECT_SCHEMA)),
    )


# --- iHealth -------------------------------------------------------------------------------------------
_IHEALTH_TIMED = {"DataID": pl.String, "MDate": pl.Int64, "TimeZone": pl.String}
IHEALTH_CONTEXT = pl.Struct({"BPUnit": pl.String, "WeightUnit": pl.String, "BGUnit": pl.String})
IHEALTH_UNIT_CODES: dict[str, dict[str, str]] = {
    "BPUnit": {"0": "mmHg", "1": "kPa"},
    "WeightUnit": {"0": "kg", "1": "lb", "2": "st"},
    "BGUnit": {"0": "mg/dL", "1": "mmol/L"},
}
_NO_TIME = "MDate is missing or TimeZone is not a UTC offset (iHealth times are local wall-clock times)"


def _ihealth_unit(code: str) -> pl.Expr:
    # codes arrive as JSON numbers (decoded as text) or strings; 0.0 and "0" mean the same code
    return (
        context(code)
        .str.strip_chars()
        .str.replace(r"\.0+$", "")
        .replace_strict(IHEALTH_UNIT_CODES[code], default=None, return_dtype=pl.String)
    )


def _ihealth_point(frame: pl.DataFrame) -> pl.DataFrame:
    z = zones(frame, item("TimeZone"))
    return frame.with_columns(
        z.utc(epoch(item("MDate"))).alias(START),
        z.label().alias(ZONE),
        group_id("ihealth", item("DataID")).alias(GROUP),
    )


def _ihealth_bp(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    unit = _ihealth_unit("BPUnit")
    return evaluate(
        _ihealth_point(frame),
        [
            (
                absent(item("HP")) | absent(item("LP")),
                "missing_value",
                "the blood pressure item has no systolic (HP) or diastolic (LP) value",
            ),
            (unit.is_null(), "unknown_unit", "the payload's BPUnit is missing or not an iHealth unit code"),
            (pl.col(START).is_null(), "invalid_time_frame", _NO_TIME),
        ],
        [
            Emit("systolic_blood_pressure", item("HP"), unit),
            Emit("diastolic_blood_pressure", item("LP"), unit),
            # HR 0: the cuff did not record a pulse; the pressure reading stands on its own
            Emit("heart_rate", pl.when(item("HR") > 0).then(item("HR")), pl.lit(HEART_RATE_UNIT)),
        ],
    )


def _ihealth_single(
    value: str, unit: pl.Expr, metric: str, what: str
) -> Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]:
    def build(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        return evaluate(
            _ihealth_point(frame).with_columns(pl.lit(None, pl.String).alias(GROUP)),
            [
                (absent(item(value)), "missing_value", f"the {what} item has no {value} value"),
                (
                    unit.is_null(),
                    "unknown_unit",
                    f"the payload's {what} unit is missing or not an iHealth code",
                ),
                (pl.col(START).is_null(), "invalid_time_frame", _NO_TIME),
            ],
            [Emit(metric, item(value), unit)],
        )

    return build


def _ihealth_spo2(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # the samples name the saturation BO; iHealth's documentation also shows Result
    saturation = pl.coalesce(pl.when(item("BO") > 0).then(item("BO")), item("Result"))
    return evaluate(
        _ihealth_point(frame),
        [
            (absent(saturation), "missing_value", "the SpO2 item has no oxygen saturation (BO) value"),
            (pl.col(START).is_null(), "invalid_time_frame", _NO_TIME),
        ],
        [
            Emit("oxygen_saturation", saturation, pl.lit("%")),
            Emit("heart_rate", pl.when(item("HR") > 0).then(item("HR")), pl.lit(HEART_RATE_UNIT)),
        ],
    )


def _ihealth_activity(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # an activity report is the day's running step total: its time frame is the local day of MDate
    z = zones(frame, item("TimeZone"))
    midnight = epoch(item("MDate")).dt.truncate("1d")
    prepared = frame.with_columns(
        z.utc(midnight).alias(START), z.utc(midnight.dt.offset_by("1d")).alias(END), z.label().alias(ZONE)
    )
    return evaluate(
        prepared,
        [
            (absent(item("Steps")), "missing_value", "the activity report has no Steps value"),
            (pl.col(START).is_null(), "invalid_time_frame", _NO_TIME),
        ],
        [Emit("step_count", item("Steps"), pl.lit(STEPS_UNIT))],
    )


def _ihealth_sleep(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    z = zones(frame, item("TimeZone"))
    prepared = frame.with_columns(
        z.utc(epoch(item("StartTime"))).alias(START),
        z.utc(epoch(item("EndTime"))).alias(END),
        z.label().alias(ZONE),
    )
    return evaluate(
        prepared,
        [
            (absent(item("HoursSlept")), "missing_value", "the sleep item has no HoursSlept value"),
            (
                pl.col(START).is_null() | pl.col(END).is_null() | (pl.col(END) < pl.col(START)),
                "invalid_time_frame",
                "StartTime/EndTime are missing, reversed, or TimeZone is not a UTC offset",
            ),
        ],
        [Emit("sleep_duration", item("HoursSlept"), pl.lit("min"))],
    )


IHEALTH_KINDS: dict[str, Kind] = {
    "BPDataList": Kind(
        pl.Struct({**_IHEALTH_TIMED, "HP": pl.Float64, "LP": pl.Float64, "HR": pl.Float64}),
        IHEALTH_CONTEXT,
        _ihealth_bp,
    ),
    "WeightDataList": Kind(
        pl.Struct({**_IHEALTH_TIMED, "WeightValue": pl.Float64}),
        IHEALTH_CONTEXT,
        _ihealth_single("WeightValue", _ihealth_unit("WeightUnit"), "body_weight", "weight"),
    ),
    "BGDataList": Kind(
        pl.Struct({**_IHEALTH_TIMED, "BG": pl.Float64}),
        IHEALTH_CONTEXT,
        _ihealth_single("BG", _ihealth_unit("BGUnit"), "blood_glucose", "glucose"),
    ),
    "BODataList": Kind(
        pl.Struct({**_IHEALTH_TIMED, "BO": pl.Float64, "Result": pl.Float64, "HR": pl.Float64}),
        None,
        _ihealth_spo2,
    ),
    "ARDataList": Kind(pl.Struct({**_IHEALTH_TIMED, "Steps": pl.Float64}), None, _ihealth_activity),
    "SRDataList": Kind(
        pl.Struct(
            {
                "DataID": pl.String,
                "StartTime": pl.Int64,
                "EndTime": pl.Int64,
                "TimeZone": pl.String,
                "HoursSlept": pl.Float64,
            }
        ),
        None,
        _ihealth_sleep,
    ),
}
"""iHealth lists read; others (SPORTDataList: sessions with calories only, ...) carry no kept metric."""


def read_ihealth(records: pl.DataFrame) -> ReaderOutput:
    """Readings of iHealth `*DataList` items: blood pressure (+ pulse), weight, glucose, SpO2 (+ pulse),
    daily steps and sleep duration, in the unit the payload's unit code names."""
    return read_kinds(records, IHEALTH_KINDS)


# --- Withings ------------------------------------------------------------------------------------------
WITHINGS_MEASURE_TYPES: dict[int, tuple[str, str]] = {
    1: ("body_weight", "kg"),
    9: ("diastolic_blood_pressure", "mmHg"),
    10: ("systolic_blood_pressure", "mmHg"),
    11: ("heart_rate", HEART_RATE_UNIT),
    54: ("oxygen_saturation", "%"),
    71: ("body_temperature", "Cel"),
}
"""Withings measure types kept (height, fat mass, pulse wave velocity, ... are not platform metrics)."""
WITHINGS_GOAL_CATEGORY = 2
WITHINGS_AMBIGUOUS_ATTRIB = 1
WITHINGS_CONTEXT = pl.Struct({"timezone": pl.String, "item_key": pl.String})
# the exponent is read as a float: a 64-bit integer decodes an exponent it cannot hold (2^64 - 1) as
# null, which the default exponent 0 would then turn into a plausible but wrong value
_MEASURE = pl.Struct({"type": pl.Int64, "unit": pl.Float64, "value": pl.Float64})


def _withings_groups(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    groups = frame.with_columns(
        epoch_utc(item("date")).alias(START),
        zones(frame, context("timezone")).label().alias(ZONE),
        group_id("withings", item("grpid")).alias(GROUP),
    )
    types = pl.DataFrame(
        [(t, metric, unit) for t, (metric, unit) in WITHINGS_MEASURE_TYPES.items()],
        schema={"type": pl.Int64, "metric": pl.String, "original_unit": pl.String},
        orient="row",
    )
    measures = (
        groups.select(ROW, item("measures").alias("m"))
        .explode("m")
        .filter(pl.col("m").is_not_null())
        .select(ROW, pl.col("m").struct.unnest())
        .join(types, on="type", how="inner")
    )
    counts = measures.group_by(ROW).agg(
        pl.len().alias("_kept"), pl.col("value").is_not_null().sum().alias("_valued")
    )
    checked = groups.join(counts, on=ROW, how="left", maintain_order="left")
    _, rejects = evaluate(
        checked,
        [
            (
                item("category") == WITHINGS_GOAL_CATEGORY,
                "not_a_measurement",
                "the group is a user objective (category 2), not a measurement",
            ),
            (
                item("attrib") == WITHINGS_AMBIGUOUS_ATTRIB,
                "ambiguous_attribution",
                "Withings could not attribute the group to this user (attrib 1)",
            ),
            (
                item("measures").list.len().fill_null(0) == 0,
                "missing_value",
                "the measure group has no measures",
            ),
            (
                pl.col("_kept").is_null(),
                "no_supported_metric",
                "the group has no measure type the platform keeps",
            ),
            (pl.col("_valued") == 0, "missing_value", "the group's measures have no value"),
            (pl.col(START).is_null(), "invalid_time_frame", "the measure group has no date"),
        ],
        [],
    )
    scale = pl.col("unit").fill_null(0)
    # value * 10^unit, dividing for negative exponents so 74126 with unit -3 is exactly 74.126
    value = (
        pl.when(scale < 0)
        .then(pl.col("value") / pl.lit(10.0).pow(-scale))
        .otherwise(pl.col("value") * pl.lit(10.0).pow(scale))
    )
    kept = measures.join(rejects.select(ROW), on=ROW, how="anti").join(
        groups.select(ROW, START, ZONE, GROUP), on=ROW, maintain_order="left"
    )
    readings = kept.filter(pl.col("value").is_not_null()).select(
        ROW,
        "metric",
        value.alias("original_value"),
        "original_unit",
        pl.col(START).alias("effective_start"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("effective_end"),
        pl.col(ZONE).alias("time_zone"),
        pl.lit(None, pl.String).alias("statistic"),
        pl.col(GROUP).alias("group_id"),
    )
    return conform(readings, empty_rejects()).readings, rejects


def _withings_activities(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # an activity day is a calendar day in the user's zone: midnight to midnight there
    z = zones(frame, pl.coalesce(item("timezone"), context("timezone")))
    day = local_day(item("date"))
    prepared = frame.with_columns(
        z.utc(day, unknown_as_utc=True).alias(START),
        z.utc(day.dt.offset_by("1d"), unknown_as_utc=True).alias(END),
        z.label().alias(ZONE),
    )
    return evaluate(
        prepared,
        [
            (item("steps").is_null(), "missing_value", "the activity day has no steps"),
            (
                z.unusable(),
                "invalid_time_frame",
                "the time zone is neither a UTC offset nor a known IANA name",
            ),
            (pl.col(START).is_null(), "invalid_time_frame", "the activity has no valid date"),
        ],
        [Emit("step_count", item("steps"), pl.lit(STEPS_UNIT))],
    )


def _withings_series(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # `series` holds three shapes: sleep summaries (with `data`), intraday activity slots (an object keyed
    # by epoch second: the key is in the context), and sleep-stage segments (with `state`)
    sleep = item("data")
    slept = pl.coalesce(
        sleep.struct.field("total_sleep_time"),
        pl.when(
            pl.any_horizontal(
                [
                    sleep.struct.field(f).is_not_null()
                    for f in ("lightsleepduration", "deepsleepduration", "remsleepduration")
                ]
            )
        ).then(
            pl.sum_horizontal(
                [
                    sleep.struct.field(f)
                    for f in ("lightsleepduration", "deepsleepduration", "remsleepduration")
                ]
            )
        ),
    )
    shape = (
        pl.when(sleep.is_not_null())
        .then(pl.lit("summary"))
        .when(context("item_key").is_not_null())
        .then(pl.lit("intraday"))
        .when(item("state").is_not_null())
        .then(pl.lit("segment"))
        .otherwise(pl.lit("other"))
    )
    shaped = frame.with_columns(shape.alias("_shape"))
    slot_start = epoch_utc(context("item_key").cast(pl.Int64, strict=False))
    intraday = pl.col("_shape") == "intraday"
    summary = pl.col("_shape") == "summary"
    prepared = shaped.with_columns(
        pl.when(intraday).then(slot_start).otherwise(epoch_utc(item("startdate"))).alias(START),
        pl.when(intraday)
        .then(slot_start + pl.duration(seconds=within(item("duration"), MAX_DURATION_SECONDS)))
        .otherwise(epoch_utc(item("enddate")))
        .alias(END),
        zones(shaped, pl.coalesce(item("timezone"), context("timezone"))).label().alias(ZONE),
    )
    return evaluate(
        prepared,
        [
            (
                pl.col("_shape") == "segment",
                "no_supported_metric",
                "sleep-stage segments are not kept (the sleep summary carries total sleep)",
            ),
            (
                pl.col("_shape") == "other",
                "no_supported_metric",
                "the series entry has no metric the platform keeps",
            ),
            (summary & slept.is_null(), "missing_value", "the sleep summary has no sleep durations"),
            (
                intraday & item("steps").is_null() & item("heart_rate").is_null(),
                "no_supported_metric",
                "the intraday slot has no steps or heart rate",
            ),
            (pl.col(START).is_null(), "invalid_time_frame", "the entry has no valid start time"),
            (pl.col(END) < pl.col(START), "invalid_time_frame", "the entry ends before it starts"),
        ],
        [
            Emit("sleep_duration", pl.when(summary).then(slept), pl.lit("s")),
            Emit("step_count", pl.when(intraday).then(item("steps")), pl.lit(STEPS_UNIT)),
            Emit(
                "heart_rate",
                pl.when(intraday).then(item("heart_rate")),
                pl.lit(HEART_RATE_UNIT),
                end=pl.lit(None, pl.Datetime("us", "UTC")),
            ),
        ],
    )


_SLEEP_DATA = pl.Struct(
    {
        "total_sleep_time": pl.Float64,
        "lightsleepduration": pl.Float64,
        "deepsleepduration": pl.Float64,
        "remsleepduration": pl.Float64,
    }
)
WITHINGS_KINDS: dict[str, Kind] = {
    "measuregrps": Kind(
        pl.Struct(
            {
                "grpid": pl.Int64,
                "date": pl.Int64,
                "category": pl.Int64,
                "attrib": pl.Int64,
                "measures": pl.List(_MEASURE),
            }
        ),
        WITHINGS_CONTEXT,
        _withings_groups,
    ),
    "activities": Kind(
        pl.Struct({"date": pl.String, "timezone": pl.String, "steps": pl.Float64}),
        WITHINGS_CONTEXT,
        _withings_activities,
    ),
    "series": Kind(
        pl.Struct(
            {
                "id": pl.Int64,
                "startdate": pl.Int64,
                "enddate": pl.Int64,
                "state": pl.Int64,
                "timezone": pl.String,
                "data": _SLEEP_DATA,
                "steps": pl.Float64,
                "heart_rate": pl.Float64,
                "duration": pl.Int64,
            }
        ),
        WITHINGS_CONTEXT,
        _withings_series,
    ),
}


def read_withings(records: pl.DataFrame) -> ReaderOutput:
    """Readings of Withings items: measure groups (weight, blood pressure, heart rate, SpO2, body
    temperature; one group's readings share `group_id`), daily steps, intraday steps and heart rate, and
    total sleep of sleep summaries."""
    return read_kinds(records, WITHINGS_KINDS)


# --- Fitbit --------------------------------------------------------------------------------------------
FITBIT_WEIGHT_UNITS = {"METRIC": "kg", "en_US": "lb", "en_GB": "st"}
"""Fitbit unit systems (profile `weightUnit`, request Accept-Language) → weight unit spelling."""
FITBIT_DEFAULT_WEIGHT_UNIT = "kg"  # what the API returns when the request names no unit system
FITBIT_INTERVAL_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_FITBIT_CONTEXT = {"timezone": pl.String, "offsetFromUTCMillis": pl.Int64, "weightUnit": pl.String}
_FITBIT_INTRADAY_CONTEXT = pl.Struct(
    {**_FITBIT_CONTEXT, "dateTime": pl.String, "datasetInterval": pl.Int64, "datasetType": pl.String}
)
_FITBIT_TIME = "%Y-%m-%dT%H:%M:%S%.f"
_NO_ZONE = "the time zone is neither a UTC offset nor a known IANA name"


def _wall(text: pl.Expr, *formats: str) -> pl.Expr:
    return pl.coalesce([text.str.to_datetime(f, time_unit="us", strict=False) for f in formats])


def fitbit_zone(time_zone: str | None) -> pl.Expr:
    """The zone of a Fitbit item: the payload's `timezone`, else its `offsetFromUTCMillis`, else
    `time_zone`; null when none is known."""
    return pl.coalesce(
        context("timezone"),
        pl.when(context("offsetFromUTCMillis").is_not_null()).then(
            offset_label(context("offsetFromUTCMillis") // 1000)
        ),
        pl.lit(time_zone, pl.String),
    )


def _fitbit_day(zone: pl.Expr, frame: pl.DataFrame, date: pl.Expr) -> pl.DataFrame:
    # a daily value covers the calendar day in the user's zone
    z = zones(frame, zone)
    day = local_day(date)
    return frame.with_columns(
        z.utc(day, unknown_as_utc=True).alias(START),
        z.utc(day.dt.offset_by("1d"), unknown_as_utc=True).alias(END),
        z.label().alias(ZONE),
        z.unusable().alias("_bad_zone"),
    )


def _fitbit_weight(zone: pl.Expr, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    z = zones(frame, zone)
    wall = _wall(
        pl.format("{} {}", item("date"), pl.coalesce(item("time"), pl.lit("00:00:00"))), "%Y-%m-%d %H:%M:%S"
    )
    unit = (
        pl.when(context("weightUnit").is_null())
        .then(pl.lit(FITBIT_DEFAULT_WEIGHT_UNIT))
        .otherwise(
            context("weightUnit").replace_strict(FITBIT_WEIGHT_UNITS, default=None, return_dtype=pl.String)
        )
    )
    prepared = frame.with_columns(z.utc(wall, unknown_as_utc=True).alias(START), z.label().alias(ZONE))
    return evaluate(
        prepared,
        [
            (absent(item("weight")), "missing_value", "the weight log has no weight"),
            (unit.is_null(), "unknown_unit", "the payload's weightUnit is not a Fitbit unit system"),
            (z.unusable(), "invalid_time_frame", _NO_ZONE),
            (pl.col(START).is_null(), "invalid_time_frame", "the weight log has no valid date and time"),
        ],
        [Emit("body_weight", item("weight"), unit)],
    )


def _fitbit_sleep(zone: pl.Expr, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # minutesAsleep is the sleep itself; duration (ms) is the whole log, time awake included
    z = zones(frame, zone)
    start = z.utc(_wall(item("startTime"), _FITBIT_TIME), unknown_as_utc=True)
    prepared = frame.with_columns(
        start.alias(START),
        pl.coalesce(
            z.utc(_wall(item("endTime"), _FITBIT_TIME), unknown_as_utc=True),
            start + pl.duration(milliseconds=within(item("duration"), MAX_DURATION_SECONDS * 1000)),
        ).alias(END),
        z.label().alias(ZONE),
    )
    asleep = item("minutesAsleep").is_not_null()
    return evaluate(
        prepared,
        [
            (
                item("minutesAsleep").is_null() & item("duration").is_null(),
                "missing_value",
                "the sleep log has neither minutesAsleep nor duration",
            ),
            (z.unusable(), "invalid_time_frame", _NO_ZONE),
            (pl.col(START).is_null(), "invalid_time_frame", "the sleep log has no valid startTime"),
            (pl.col(END) < pl.col(START), "invalid_time_frame", "the sleep log ends before it starts"),
        ],
        [
            Emit(
                "sleep_duration",
                pl.when(asleep).then(item("minutesAsleep")).otherwise(item("duration")),
                pl.when(asleep).then(pl.lit("min")).otherwise(pl.lit("ms")),
            )
        ],
    )


def _fitbit_daily_steps(zone: pl.Expr, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # time-series values are JSON strings ("3212")
    steps = item("value").cast(pl.Float64, strict=False)
    return evaluate(
        _fitbit_day(zone, frame, item("dateTime")),
        [
            (steps.is_null(), "missing_value", "the day has no numeric step count"),
            (pl.col("_bad_zone"), "invalid_time_frame", _NO_ZONE),
            (pl.col(START).is_null(), "invalid_time_frame", "the day has no valid dateTime"),
        ],
        [Emit("step_count", steps, pl.lit(STEPS_UNIT))],
    )


def _fitbit_daily_heart(zone: pl.Expr, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # `value` is an object with restingHeartRate in the current API but a bare string in older responses
    # (its meaning undocumented), so it cannot have one dtype: only the documented member is read, by path
    resting = pl.col("raw").str.json_path_match("$.value.restingHeartRate").cast(pl.Float64, strict=False)
    return evaluate(
        _fitbit_day(zone, frame, item("dateTime")),
        [
            (
                resting.is_null(),
                "no_supported_metric",
                "the day summary has no restingHeartRate (heart-rate zones are not kept)",
            ),
            (pl.col("_bad_zone"), "invalid_time_frame", _NO_ZONE),
            (pl.col(START).is_null(), "invalid_time_frame", "the day has no valid dateTime"),
        ],
        [Emit("heart_rate", resting, pl.lit(HEART_RATE_UNIT))],
    )


def _fitbit_intraday(
    metric: str, unit: str, interval: bool, zone: pl.Expr, frame: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    # a point has only a time of day; its day comes from the payload's one-day summary (context)
    z = zones(frame, zone)
    wall = _wall(pl.format("{} {}", context("dateTime"), item("time")), "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
    step = within(context("datasetInterval").fill_null(1), MAX_DURATION_SECONDS) * context(
        "datasetType"
    ).replace_strict(FITBIT_INTERVAL_SECONDS, default=None, return_dtype=pl.Int64)
    end = (
        z.utc(wall + pl.duration(seconds=within(step, MAX_DURATION_SECONDS)), unknown_as_utc=True)
        if interval
        else pl.lit(None)
    )
    prepared = frame.with_columns(
        z.utc(wall, unknown_as_utc=True).alias(START),
        end.cast(pl.Datetime("us", "UTC")).alias(END),
        z.label().alias(ZONE),
    )
    return evaluate(
        prepared,
        [
            (item("value").is_null(), "missing_value", "the intraday point has no value"),
            (
                context("dateTime").is_null(),
                "invalid_time_frame",
                "the intraday point's day is not stated in its payload",
            ),
            (z.unusable(), "invalid_time_frame", _NO_ZONE),
            (pl.col(START).is_null(), "invalid_time_frame", "the intraday point has no valid time"),
        ],
        [Emit(metric, item("value"), pl.lit(unit))],
    )


def _fitbit_logged_activity(zone: pl.Expr, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # a logged activity without a start time (hasStartTime false) is known only by its day
    z = zones(frame, zone)
    day = local_day(item("startDate"))
    wall = _wall(
        pl.format("{} {}", item("startDate"), item("startTime")), "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"
    )
    timed = item("hasStartTime").fill_null(True) & wall.is_not_null()
    start = pl.when(timed).then(wall).otherwise(day)
    end = (
        pl.when(timed)
        .then(wall + pl.duration(milliseconds=within(item("duration"), MAX_DURATION_SECONDS * 1000)))
        .otherwise(day.dt.offset_by("1d"))
    )
    prepared = frame.with_columns(
        z.utc(start, unknown_as_utc=True).alias(START),
        z.utc(end, unknown_as_utc=True).alias(END),
        z.label().alias(ZONE),
    )
    return evaluate(
        prepared,
        [
            (item("steps").is_null(), "no_supported_metric", "the logged activity has no steps"),
            (z.unusable(), "invalid_time_frame", _NO_ZONE),
            (pl.col(START).is_null(), "invalid_time_frame", "the logged activity has no valid startDate"),
        ],
        [Emit("step_count", item("steps"), pl.lit(STEPS_UNIT))],
    )


_FITBIT_BASE = pl.Struct(_FITBIT_CONTEXT)
_FITBIT_POINT = pl.Struct({"time": pl.String, "value": pl.Float64})
FITBIT_KINDS: dict[str, tuple[pl.Struct, pl.Struct, Callable[..., tuple[pl.DataFrame, pl.DataFrame]]]] = {
    "weight": (
        pl.Struct({"logId": pl.Int64, "date": pl.String, "time": pl.String, "weight": pl.Float64}),
        _FITBIT_BASE,
        _fitbit_weight,
    ),
    "sleep": (
        pl.Struct(
            {
                "logId": pl.Int64,
                "startTime": pl.String,
                "endTime": pl.String,
                "duration": pl.Int64,
                "minutesAsleep": pl.Float64,
            }
        ),
        _FITBIT_BASE,
        _fitbit_sleep,
    ),
    "activities-steps": (
        pl.Struct({"dateTime": pl.String, "value": pl.String}),
        _FITBIT_BASE,
        _fitbit_daily_steps,
    ),
    "activities-heart": (pl.Struct({"dateTime": pl.String}), _FITBIT_BASE, _fitbit_daily_heart),
    "activities-steps-intraday": (
        _FITBIT_POINT,
        _FITBIT_INTRADAY_CONTEXT,
        partial(_fitbit_intraday, "step_count", STEPS_UNIT, True),
    ),
    "activities-heart-intraday": (
        _FITBIT_POINT,
        _FITBIT_INTRADAY_CONTEXT,
        partial(_fitbit_intraday, "heart_rate", HEART_RATE_UNIT, False),
    ),
    "activities": (
        pl.Struct(
            {
                "logId": pl.Int64,
                "startDate": pl.String,
                "startTime": pl.String,
                "hasStartTime": pl.Boolean,
                "duration": pl.Int64,
                "steps": pl.Float64,
            }
        ),
        _FITBIT_BASE,
        _fitbit_logged_activity,
    ),
}
"""Fitbit lists read: item dtype, context dtype, builder (called with the zone expression and the
items); others (activities-calories, activities-distance, ...) carry no kept metric."""


def read_fitbit(records: pl.DataFrame, time_zone: str | None = None) -> ReaderOutput:
    """Readings of Fitbit items: weight logs, sleep logs (minutes asleep), daily and intraday steps,
    steps of logged activities, intraday heart rate and daily resting heart rate.

    Fitbit times are wall-clock times of the user's profile zone: a payload-level `timezone` or
    `offsetFromUTCMillis` wins, else `time_zone` (the account's zone, when the caller knows it), else
    the times are read as UTC with `time_zone` null.
    """
    zone = fitbit_zone(time_zone)
    kinds = {
        name: Kind(item_dtype, context_dtype, partial(build, zone))
        for name, (item_dtype, context_dtype, build) in FITBIT_KINDS.items()
    }
    return read_kinds(records, kinds)
