"""Open mHealth data points (bronze `device_records`, `record_format` openmhealth) → source readings.

Bronze keeps one record per data point: `raw` is the whole data point (`header` + `body`) and
`record_type` its `header.schema_id.name`. This reader validates each body against the rules of its
schema *version* (units, value sets, time frame shapes mirror the Open mHealth / IEEE 1752.1 schemas)
and turns every measured value into one reading; a blood pressure gives two readings that share a
`group_id`. Units are passed through as the data point states them (`units.py` normalizes them).

Every record ends up as readings or as exactly one reject (the first rule it breaks, in a fixed
order). Reasons name the member and the rule, never a value of the record.

Decoding is vectorized: the data points of one schema are decoded by one `str.json_decode` with an
explicit dtype (the header plus the union of the members its versions define; step-count, whose
versions disagree on a member's JSON type, is decoded per version), then checked with expressions
keyed by (schema, major version). The decode fails for a whole batch when one record holds a member
of the wrong JSON type (a string where a number belongs, a list where an object belongs); only then
is the batch decoded in parts, and a small part that still fails has its records' JSON types checked
with JSON path expressions (vectorized, a few passes per member), so each bad record gets a precise
reason while the others are decoded as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from pipelines.devices.contract import ROW, ReaderOutput, conform, empty_readings

PROBLEM = pl.Struct({"code": pl.String, "reason": pl.String})
NAMESPACE = "omh"

# ---------------------------------------------------------------------------------------------------
# Value sets of the Open mHealth schemas (omh namespace) and of IEEE 1752.1, which newer omh versions
# reference. Where minor versions of one major version differ, the major version accepts their union.

OMH_STATISTICS = frozenset(
    {
        "average",
        "maximum",
        "minimum",
        "standard deviation",
        "variance",
        "sum",
        "median",
        "count",
        "quartile deviation",
        "80th percentile",
        "lower quartile",
        "upper quartile",
        "1st quintile",
        "2nd quintile",
        "3rd quintile",
        "4th quintile",
    }
)
IEEE_STATISTICS = OMH_STATISTICS | {"20th percentile"}
PARTS_OF_DAY = frozenset({"morning", "afternoon", "evening", "night"})
DURATION_MICROSECONDS: dict[str, float] = {
    "ps": 1e-6,
    "ns": 1e-3,
    "us": 1.0,
    "ms": 1e3,
    "sec": 1e6,
    "min": 6e7,
    "h": 3.6e9,
    "d": 8.64e10,
    "wk": 6.048e11,
    # months and years as UCUM defines them (mean Julian month and year): a duration is not anchored
    # to a calendar, and a fixed length keeps the interval arithmetic vectorized
    "Mo": 30.4375 * 8.64e10,
    "yr": 365.25 * 8.64e10,
}
MAX_DURATION_MICROSECONDS = 1e17  # ~3,000 years: anything longer would overflow the timestamps

POSITIONS_DURING_MEASUREMENT = frozenset({"sitting", "lying down", "standing"})
BODY_POSTURES = POSITIONS_DURING_MEASUREMENT | {"semi-recumbent"}
BODY_LOCATIONS = frozenset(
    {
        "left ankle",
        "right ankle",
        "left hip",
        "right hip",
        "left thigh",
        "right thigh",
        "left thorax",
        "middle left thorax",
        "left upper arm",
        "right upper arm",
        "left wrist",
        "right wrist",
    }
)
TO_PHYSICAL_ACTIVITY = frozenset(
    {"at rest", "active", "before exercise", "after exercise", "during exercise"}
)
TO_SLEEP = frozenset({"before sleeping", "during sleep", "on waking"})
TO_MEAL = frozenset(
    {
        "fasting",
        "not fasting",
        "before meal",
        "after meal",
        "before breakfast",
        "after breakfast",
        "before lunch",
        "after lunch",
        "before dinner",
        "after dinner",
        "2 hours postprandial",
    }
)
BLOOD_SPECIMEN_TYPES = frozenset({"whole blood", "plasma", "serum"})
SPECIMEN_SOURCES_1 = frozenset({"interstitial fluid", "capillary blood", "plasma", "serum", "whole blood"})
SPECIMEN_SOURCES_2 = frozenset(
    {"breath", "capillary blood", "interstitial fluid", "lacrimal fluid", "saliva", "sweat", "tears", "urine"}
)
TEMPERATURE_LOCATIONS_1 = frozenset({"oral", "rectal", "vaginal", "axillary", "otic", "wrist", "chest"})
TEMPERATURE_LOCATIONS_2 = frozenset(
    {
        "axillary",
        "finger",
        "forehead",
        "oral",
        "rectal",
        "temporal artery",
        "toe",
        "tympanic",
        "wrist",
        "vagina",
    }
)
OXYGEN_SYSTEMS_1 = frozenset(
    {
        "arterial",
        "capillary",
        "intracardiac",
        "jugular bulb",
        "peripheral",
        "conjunctival",
        "venous",
        "mixed venous",
        "superior vena cava",
        "peripheral capillary",
    }
)
OXYGEN_MODES_1 = frozenset({"face mask", "nasal cannula", "Venturi mask"})
OXYGEN_METHODS_1 = frozenset(
    {"pulse oximetry", "arterial blood gas analyzer", "near-infrared spectroscopy (NIRS)"}
)

MASS_UNITS = frozenset({"fg", "pg", "ng", "ug", "mg", "g", "kg", "Metric Ton", "gr", "oz", "lb", "Ton"})
TEMPERATURE_UNITS = frozenset({"K", "F", "C"})


# ---------------------------------------------------------------------------------------------------
# Rules per (schema name, major version)


@dataclass(frozen=True)
class Measure:
    """A measured body member and the metric it is read as."""

    member: str
    metric: str
    units: frozenset[str] | None
    """Units the schema allows; None when the member is a bare number (no unit object)."""
    implicit_unit: str | None = None
    """The unit reported for a bare number."""
    signed_units: frozenset[str] = frozenset()
    """Units in which a negative value is meaningful (temperatures); elsewhere a negative is rejected."""


@dataclass(frozen=True)
class SchemaRules:
    """What one major version of one Open mHealth schema requires of a data point body."""

    schema: str
    major: int
    measures: tuple[Measure, ...]
    time_frame_required: bool = False
    interval_only: bool = False
    """The time frame must be a time interval (durations such as step counts)."""
    part_of_day: bool = True
    """omh time-interval 1.x allows date + part_of_day; the IEEE 1752.1 time interval does not."""
    statistics: frozenset[str] = OMH_STATISTICS
    value_sets: tuple[tuple[str, frozenset[str]], ...] = ()
    """Other body members restricted to a value set."""
    unit_values: tuple[tuple[str, frozenset[str]], ...] = ()
    """Unit-value members that are not measurements (read for validity only), with their units."""

    @property
    def label(self) -> str:
        """e.g. 'blood-pressure 4.x' (for reasons)."""
        return f"{self.schema} {self.major}.x"


def _bp(major: int, **options: Any) -> SchemaRules:
    mmhg = frozenset({"mmHg"})
    measures = (
        Measure("systolic_blood_pressure", "systolic_blood_pressure", mmhg),
        Measure("diastolic_blood_pressure", "diastolic_blood_pressure", mmhg),
    )
    return SchemaRules("blood-pressure", major, measures, **options)


def _single(schema: str, major: int, measure: Measure, **options: Any) -> SchemaRules:
    return SchemaRules(schema, major, (measure,), **options)


_BP_3 = (
    ("body_posture", BODY_POSTURES),
    ("measurement_location", BODY_LOCATIONS),
    ("temporal_relationship_to_physical_activity", TO_PHYSICAL_ACTIVITY),
)
_WEIGHT = Measure("body_weight", "body_weight", MASS_UNITS)
_GLUCOSE = Measure("blood_glucose", "blood_glucose", frozenset({"mg/dL", "mmol/L"}))
_GLUCOSE_CONTEXT = (("temporal_relationship_to_meal", TO_MEAL), ("temporal_relationship_to_sleep", TO_SLEEP))
_HEART = Measure("heart_rate", "heart_rate", frozenset({"beats/min"}))
_HEART_CONTEXT = (
    ("temporal_relationship_to_physical_activity", TO_PHYSICAL_ACTIVITY),
    ("temporal_relationship_to_sleep", TO_SLEEP),
)
_STEPS_BARE = Measure("step_count", "step_count", None, implicit_unit="{steps}")
_STEPS = Measure("step_count", "step_count", frozenset({"steps"}))
_OXYGEN = Measure("oxygen_saturation", "oxygen_saturation", frozenset({"%"}))
_TEMPERATURE = Measure(
    "body_temperature", "body_temperature", TEMPERATURE_UNITS, signed_units=frozenset({"C", "F"})
)
_TEMPERATURE_CONTEXT = (
    ("measurement_location", TEMPERATURE_LOCATIONS_2),
    ("temporal_relationship_to_sleep", TO_SLEEP),
)
_SLEEP = Measure("sleep_duration", "sleep_duration", frozenset({"sec", "min", "h"}))

RULES: dict[tuple[str, int], SchemaRules] = {
    (r.schema, r.major): r
    for r in (
        _bp(1, value_sets=(("position_during_measurement", POSITIONS_DURING_MEASUREMENT),)),
        _bp(2, value_sets=(("body_posture", BODY_POSTURES),)),
        _bp(3, time_frame_required=True, value_sets=_BP_3),
        _bp(4, time_frame_required=True, part_of_day=False, statistics=IEEE_STATISTICS, value_sets=_BP_3),
        _single("body-weight", 1, _WEIGHT),
        _single("body-weight", 2, _WEIGHT, time_frame_required=True),
        _single(
            "body-weight", 3, _WEIGHT, time_frame_required=True, part_of_day=False, statistics=IEEE_STATISTICS
        ),
        _single(
            "blood-glucose",
            1,
            _GLUCOSE,
            value_sets=(("blood_specimen_type", BLOOD_SPECIMEN_TYPES), *_GLUCOSE_CONTEXT),
        ),
        _single(
            "blood-glucose",
            2,
            _GLUCOSE,
            value_sets=(("specimen_source", SPECIMEN_SOURCES_1), *_GLUCOSE_CONTEXT),
        ),
        _single(
            "blood-glucose",
            3,
            _GLUCOSE,
            time_frame_required=True,
            value_sets=(("specimen_source", SPECIMEN_SOURCES_2), *_GLUCOSE_CONTEXT),
        ),
        _single(
            "blood-glucose",
            4,
            _GLUCOSE,
            time_frame_required=True,
            part_of_day=False,
            statistics=IEEE_STATISTICS,
            value_sets=(("specimen_source", SPECIMEN_SOURCES_2), *_GLUCOSE_CONTEXT),
        ),
        _single("heart-rate", 1, _HEART, value_sets=_HEART_CONTEXT),
        _single("heart-rate", 2, _HEART, time_frame_required=True, value_sets=_HEART_CONTEXT),
        _single("step-count", 1, _STEPS_BARE),
        _single("step-count", 2, _STEPS_BARE, time_frame_required=True, interval_only=True),
        _single("step-count", 3, _STEPS, time_frame_required=True, interval_only=True),
        _single(
            "oxygen-saturation",
            1,
            _OXYGEN,
            value_sets=(
                ("system", OXYGEN_SYSTEMS_1),
                ("oxygen_therapy_mode_of_administration", OXYGEN_MODES_1),
                ("measurement_method", OXYGEN_METHODS_1),
            ),
            unit_values=(("supplemental_oxygen_flow_rate", frozenset({"LPM", "L/min"})),),
        ),
        _single(
            "oxygen-saturation",
            2,
            _OXYGEN,
            time_frame_required=True,
            value_sets=(
                ("system", frozenset({"peripheral capillary"})),
                ("oxygen_therapy_mode_of_administration", frozenset({"nasal cannula"})),
                ("measurement_method", frozenset({"pulse oximetry"})),
            ),
            unit_values=(("supplemental_oxygen_flow_rate", frozenset({"L/min"})),),
        ),
        _single(
            "body-temperature",
            1,
            _TEMPERATURE,
            value_sets=(("measurement_location", TEMPERATURE_LOCATIONS_1),),
        ),
        _single(
            "body-temperature", 2, _TEMPERATURE, time_frame_required=True, value_sets=_TEMPERATURE_CONTEXT
        ),
        _single(
            "body-temperature", 3, _TEMPERATURE, time_frame_required=True, value_sets=_TEMPERATURE_CONTEXT
        ),
        _single(
            "body-temperature",
            4,
            _TEMPERATURE,
            time_frame_required=True,
            part_of_day=False,
            statistics=IEEE_STATISTICS,
            value_sets=_TEMPERATURE_CONTEXT,
        ),
        _single("sleep-duration", 1, _SLEEP),
        # sleep-duration 2.0 as published lists only sleep_duration as required, but its test data (the
        # reference for validators) rejects a body without a time interval: we follow the test data
        _single("sleep-duration", 2, _SLEEP, time_frame_required=True, interval_only=True),
    )
}
SUPPORTED_SCHEMAS = tuple(dict.fromkeys(schema for schema, _ in RULES))
"""Schema names (omh namespace) the reader turns into readings."""


# ---------------------------------------------------------------------------------------------------
# JSON layout: the members decoded, their expected JSON type, and the reject when the type is wrong

OBJECT, NUMBER, SCALAR = "object", "number", "scalar"
"""SCALAR: string, number or boolean (decoded as text; value sets and patterns judge it afterwards)."""


@dataclass(frozen=True)
class Member:
    """One member of the decoded layout (parents are listed before their children)."""

    path: tuple[str, ...]
    kind: str
    code: str
    """Reason code when the member holds a JSON type its decoding cannot take."""

    @property
    def dotted(self) -> str:
        """The member as 'body.heart_rate.value' (for reasons)."""
        return ".".join(self.path)

    @property
    def reason(self) -> str:
        """Why the record is rejected when this member has the wrong JSON type."""
        expected = {OBJECT: "a JSON object", NUMBER: "a JSON number", SCALAR: "a string"}[self.kind]
        return f"{self.dotted} must be {expected}"


_ENVELOPE = (
    Member(("header",), OBJECT, "not_a_data_point"),
    Member(("header", "id"), SCALAR, "invalid_header"),
    Member(("header", "schema_id"), OBJECT, "invalid_header"),
    Member(("header", "schema_id", "namespace"), SCALAR, "invalid_header"),
    Member(("header", "schema_id", "name"), SCALAR, "invalid_header"),
    Member(("header", "schema_id", "version"), SCALAR, "invalid_header"),
)
_TIME_FRAME = tuple(
    Member(("body", "effective_time_frame", *path), kind, "invalid_time_frame")
    for path, kind in (
        ((), OBJECT),
        (("date_time",), SCALAR),
        (("time_interval",), OBJECT),
        (("time_interval", "start_date_time"), SCALAR),
        (("time_interval", "end_date_time"), SCALAR),
        (("time_interval", "duration"), OBJECT),
        (("time_interval", "duration", "value"), NUMBER),
        (("time_interval", "duration", "unit"), SCALAR),
        (("time_interval", "date"), SCALAR),
        (("time_interval", "part_of_day"), SCALAR),
    )
)


def _unit_value(member: str, code: str) -> tuple[Member, ...]:
    return (
        Member(("body", member), OBJECT, code),
        Member(("body", member, "value"), NUMBER, "non_numeric_value"),
        Member(("body", member, "unit"), SCALAR, "invalid_unit"),
    )


def body_layout(rules: SchemaRules) -> tuple[Member, ...]:
    """The members of a data point of this schema version that the reader decodes."""
    members = [Member(("body",), OBJECT, "invalid_body")]
    for m in rules.measures:
        if m.units is None:
            members.append(Member(("body", m.member), NUMBER, "non_numeric_value"))
        else:
            members.extend(_unit_value(m.member, "invalid_measurement"))
    for name, _ in rules.unit_values:
        members.extend(_unit_value(name, "invalid_field_type"))
    members.extend(_TIME_FRAME)
    members.append(Member(("body", "descriptive_statistic"), SCALAR, "invalid_descriptive_statistic"))
    members.extend(Member(("body", name), SCALAR, "invalid_enum_value") for name, _ in rules.value_sets)
    return tuple(members)


def layout_dtype(layout: tuple[Member, ...], parent: tuple[str, ...] = ()) -> pl.Struct:
    """The struct dtype that decodes the members of `layout` under `parent` (other members of the JSON
    are skipped by the decoder)."""
    fields: dict[str, pl.DataType] = {}
    for member in layout:
        if member.path[:-1] != parent:
            continue
        if member.kind == OBJECT:
            fields[member.path[-1]] = layout_dtype(layout, member.path)
        else:
            fields[member.path[-1]] = pl.Float64() if member.kind == NUMBER else pl.String()
    return pl.Struct(fields)


def merge_layouts(*layouts: tuple[Member, ...]) -> tuple[Member, ...] | None:
    """The union of layouts (first occurrence of a member kept), or None when a member has different
    JSON types in two of them (step-count: a bare number in 1.x/2.x, a unit-value object in 3.x)."""
    merged: dict[tuple[str, ...], Member] = {}
    for layout in layouts:
        for member in layout:
            known = merged.setdefault(member.path, member)
            if known.kind != member.kind:
                return None
    return tuple(merged.values())


def _problem(code: str, reason: str) -> pl.Expr:
    return pl.struct(pl.lit(code, pl.String).alias("code"), pl.lit(reason, pl.String).alias("reason"))


def _first_problem(checks: list[tuple[pl.Expr, str, str]]) -> pl.Expr:
    """The first (condition, code, reason) whose condition holds, as a problem struct; null if none."""
    if not checks:
        return pl.lit(None, PROBLEM)
    return pl.coalesce([pl.when(cond).then(_problem(code, reason)) for cond, code, reason in checks]).cast(
        PROBLEM
    )


# ---------------------------------------------------------------------------------------------------
# Decoding: one `json_decode` per batch; chunked and type-checked only when a record breaks the layout

DECODE_CHUNK = 1024
"""Texts per chunk that gets the JSON type checks once decoding it failed."""
DECODE_SPLIT = 8
"""Parts a failing batch is split into before each retry."""
_BOOLEAN_TOKEN = r":\s*(?:true|false)\b"
_MAX_NUMBER = "1.7976931348623157e308"


def json_type_problems(texts: pl.Series, layout: tuple[Member, ...]) -> pl.Series:
    """Per JSON text: the first member of `layout` holding a JSON type its decoding cannot take (as a
    problem struct), or null. Vectorized with JSON path expressions, each one pass over the texts.

    A JSON path filter tells the JSON types apart where the matched text cannot: `[?(@.k >= -MAX)]`
    matches only when `k` is a number, `[?(@.k >= '')]` only when `k` is a string.
    """
    t = pl.col("t")
    checks: list[tuple[pl.Expr, str, str]] = [
        (t.is_null(), "not_a_data_point", "the record holds no JSON text"),
        (
            t.str.json_path_match("$").is_null() & (t.str.strip_chars() != "null"),
            "invalid_json",
            "the record is not valid JSON",
        ),
        (
            ~t.str.strip_chars_start().str.starts_with("{"),
            "not_a_data_point",
            "the record is not a JSON object",
        ),
    ]
    for member in layout:
        parent = "".join(f".{p}" for p in member.path[:-1])
        key = member.path[-1]
        text = t.str.json_path_match(f"${parent}.{key}")
        is_string = t.str.json_path_match(f"${parent}[?(@.{key} >= '')]").is_not_null()
        if member.kind == NUMBER:
            is_number = t.str.json_path_match(f"${parent}[?(@.{key} >= -{_MAX_NUMBER})]").is_not_null()
            bad = text.is_not_null() & ~is_number
        elif member.kind == OBJECT:
            bad = text.is_not_null() & (is_string | ~text.str.starts_with("{"))
        else:
            bad = text.is_not_null() & ~is_string & text.str.contains(r"^[\[{]")
        checks.append((bad, member.code, member.reason))
    return texts.to_frame("t").select(_first_problem(checks).alias("problem")).to_series()


def json_decode(texts: pl.Series, dtype: pl.Struct) -> pl.Series:
    """`str.json_decode` run by the streaming engine, which decodes morsels of the texts in parallel
    (order kept); raises ComputeError like the eager decode when a text does not fit `dtype`."""
    decoded = (
        texts.to_frame("t").lazy().select(pl.col("t").str.json_decode(dtype)).collect(engine="streaming")
    )
    return decoded.to_series()


def decode(texts: pl.Series, layout: tuple[Member, ...]) -> pl.DataFrame:
    """Decode JSON texts with the layout's dtype: columns `doc` (the struct, null for a rejected text)
    and `problem` (why a text was rejected, null otherwise)."""
    texts = texts.rename("t")
    return _reject_booleans(_decode_parts(texts, layout, layout_dtype(layout)), texts, layout)


def _decode_parts(texts: pl.Series, layout: tuple[Member, ...], dtype: pl.Struct) -> pl.DataFrame:
    """Decode; when that fails, decode parts (recursively) so that only the small chunks holding a bad
    text get the JSON type checks, while the rest still decodes in large, parallel passes."""
    try:
        return _decoded(json_decode(texts, dtype))
    except pl.exceptions.ComputeError:
        pass
    if texts.len() <= DECODE_CHUNK:
        return _decode_checked(texts, layout, dtype)
    size = max(DECODE_CHUNK, -(-texts.len() // DECODE_SPLIT))
    return pl.concat(
        [_decode_parts(texts.slice(start, size), layout, dtype) for start in range(0, texts.len(), size)]
    )


def _decoded(doc: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({"doc": doc}).with_columns(pl.lit(None, PROBLEM).alias("problem"))


def _decode_checked(texts: pl.Series, layout: tuple[Member, ...], dtype: pl.Struct) -> pl.DataFrame:
    problems = json_type_problems(texts, layout)
    kept = texts.to_frame().select(pl.when(problems.is_null()).then(pl.col("t"))).to_series()
    doc, undecodable = _decode_isolating(kept, dtype)
    # the JSON path checks and the decoder disagree only on oddities such as a repeated key
    residual = _problem("invalid_field_type", "a member does not have the JSON type its schema requires")
    return pl.DataFrame({"doc": doc, "problem": problems, "_undecodable": undecodable}).select(
        pl.when(pl.col("_undecodable")).then(None).otherwise(pl.col("doc")).alias("doc"),
        pl.coalesce(pl.col("problem"), pl.when(pl.col("_undecodable")).then(residual)).alias("problem"),
    )


def _decode_isolating(texts: pl.Series, dtype: pl.Struct) -> tuple[pl.Series, pl.Series]:
    """Decode, halving the texts until the ones the decoder still refuses are isolated (a safety net:
    texts reaching this passed the JSON type checks)."""
    try:
        return json_decode(texts, dtype), pl.Series([False] * texts.len(), dtype=pl.Boolean)
    except pl.exceptions.ComputeError:
        if texts.len() == 1:
            return pl.Series([None], dtype=dtype), pl.Series([True])
    half = texts.len() // 2
    left, left_bad = _decode_isolating(texts.slice(0, half), dtype)
    right, right_bad = _decode_isolating(texts.slice(half), dtype)
    return left.append(right), left_bad.append(right_bad)


def _reject_booleans(frame: pl.DataFrame, texts: pl.Series, layout: tuple[Member, ...]) -> pl.DataFrame:
    """The decoder reads `true`/`false` as 1.0/0.0 where a number belongs: texts holding a boolean and a
    0 or 1 in a numeric member get the JSON type checks (rare, so the checks run on those texts only)."""
    numbers = [m for m in layout if m.kind == NUMBER]
    if not numbers:
        return frame
    has_boolean = texts.str.contains(_BOOLEAN_TOKEN).fill_null(False)
    zero_or_one = pl.any_horizontal([_field(pl.col("doc"), m.path).is_in([0.0, 1.0]) for m in numbers])
    suspect = frame.select(zero_or_one.fill_null(False)).to_series() & has_boolean
    if not suspect.any():
        return frame
    positions = suspect.arg_true()
    found = json_type_problems(texts.gather(positions), layout)
    checked = pl.DataFrame({"_position": positions, "_found": found})
    return (
        frame.with_row_index("_position")
        .join(checked, on="_position", how="left", maintain_order="left")
        .select(
            pl.when(pl.col("_found").is_null()).then(pl.col("doc")).alias("doc"),
            pl.coalesce("problem", "_found").alias("problem"),
        )
    )


def _field(expr: pl.Expr, path: tuple[str, ...]) -> pl.Expr:
    for part in path:
        expr = expr.struct.field(part)
    return expr


# ---------------------------------------------------------------------------------------------------
# Time frames

_DATE_TIME = r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2}(?:\.\d+)?)([Zz]|[+-]\d{2}:\d{2})$"
_FULL_DATE = r"^\d{4}-\d{2}-\d{2}$"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"
_UTC = pl.Datetime("us", "UTC")
_ETF = "body.effective_time_frame"
_INTERVAL = f"{_ETF}.time_interval"


def _instant(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """An RFC 3339 date-time (a UTC offset is required, as in the schemas' test data) → (UTC timestamp,
    the offset as recorded with Z written +00:00); null timestamp when the text is no such date-time."""
    offset = text.str.extract(_DATE_TIME, 3)
    offset = pl.when(offset.str.to_uppercase() == "Z").then(pl.lit("+00:00")).otherwise(offset)
    stamp = pl.concat_str(
        text.str.extract(_DATE_TIME, 1), pl.lit("T"), text.str.extract(_DATE_TIME, 2), offset
    ).str.to_datetime(_TIMESTAMP_FORMAT, time_unit="us", strict=False)
    return stamp.dt.convert_time_zone("UTC"), offset


@dataclass(frozen=True)
class _TimeFrame:
    start: pl.Expr
    end: pl.Expr
    time_zone: pl.Expr
    checks: list[tuple[pl.Expr, str, str]]


def _time_frame(body: pl.Expr, rules: SchemaRules) -> _TimeFrame:
    """Effective start/end (UTC), the recorded offset, and the time frame rules of `rules`, in order."""
    frame = body.struct.field("effective_time_frame")
    date_time = frame.struct.field("date_time")
    interval = frame.struct.field("time_interval")
    start_text = interval.struct.field("start_date_time")
    end_text = interval.struct.field("end_date_time")
    duration = interval.struct.field("duration")
    duration_value = duration.struct.field("value")
    duration_unit = duration.struct.field("unit")
    date_text = interval.struct.field("date")
    part_of_day = interval.struct.field("part_of_day")

    point, point_offset = _instant(date_time)
    start, start_offset = _instant(start_text)
    end, end_offset = _instant(end_text)
    micros = duration_value * duration_unit.replace_strict(
        DURATION_MICROSECONDS, default=None, return_dtype=pl.Float64
    )
    span = pl.duration(
        microseconds=pl.when(micros.abs() < MAX_DURATION_MICROSECONDS).then(
            micros.round().cast(pl.Int64, strict=False)
        )
    )
    day = (
        pl.when(date_text.str.contains(_FULL_DATE))
        .then(date_text)
        .str.to_date("%Y-%m-%d", strict=False)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )

    has_start, has_end = start_text.is_not_null(), end_text.is_not_null()
    has_duration = duration.is_not_null()
    # the time interval shapes (exactly one must be complete, as the schema's oneOf demands)
    start_end = has_start & has_end
    start_duration = has_start & has_duration
    end_duration = has_end & has_duration
    by_day = date_text.is_not_null() & part_of_day.is_not_null()
    if not rules.part_of_day:
        by_day = pl.lit(False)
    shapes = pl.sum_horizontal(start_end, start_duration, end_duration, by_day)
    uses_start = start_end | start_duration
    uses_end = start_end | end_duration
    uses_duration = start_duration | end_duration
    in_interval = interval.is_not_null() & (shapes == 1)

    shape_names = "start_date_time + end_date_time, start_date_time + duration, end_date_time + duration"
    if rules.part_of_day:
        shape_names += ", date + part_of_day"
    not_instant = "is not an RFC 3339 date-time with a UTC offset"
    checks: list[tuple[pl.Expr, str, str]] = []
    if rules.time_frame_required:
        checks.append(
            (frame.is_null(), "missing_time_frame", f"body.effective_time_frame is required by {rules.label}")
        )
    checks += [
        (
            frame.is_not_null() & (date_time.is_null() == interval.is_null()),
            "invalid_time_frame",
            "body.effective_time_frame must hold exactly one of date_time and time_interval",
        ),
    ]
    if rules.interval_only:
        checks.append(
            (
                date_time.is_not_null(),
                "invalid_time_frame",
                f"body.effective_time_frame must be a time_interval in {rules.label}",
            )
        )
    checks += [
        (date_time.is_not_null() & point.is_null(), "invalid_time_frame", f"{_ETF}.date_time {not_instant}"),
        (
            interval.is_not_null() & (shapes != 1),
            "invalid_time_frame",
            f"{_INTERVAL} must hold exactly one of: {shape_names}",
        ),
        (
            in_interval & uses_start & start.is_null(),
            "invalid_time_frame",
            f"{_INTERVAL}.start_date_time {not_instant}",
        ),
        (
            in_interval & uses_end & end.is_null(),
            "invalid_time_frame",
            f"{_INTERVAL}.end_date_time {not_instant}",
        ),
        (
            in_interval & uses_duration & (duration_value.is_null() | micros.is_null()),
            "invalid_time_frame",
            f"{_INTERVAL}.duration needs a numeric value and a unit of " + ", ".join(DURATION_MICROSECONDS),
        ),
        (
            in_interval & uses_duration & (duration_value < 0),
            "invalid_time_frame",
            f"{_INTERVAL}.duration must not be negative",
        ),
        (
            in_interval & uses_duration & (micros.abs() >= MAX_DURATION_MICROSECONDS),
            "invalid_time_frame",
            f"{_INTERVAL}.duration is too long for a time frame",
        ),
        (
            in_interval & by_day & day.is_null(),
            "invalid_time_frame",
            f"{_INTERVAL}.date is not a full date (YYYY-MM-DD)",
        ),
        (
            in_interval & by_day & ~part_of_day.is_in(list(PARTS_OF_DAY)),
            "invalid_time_frame",
            f"{_INTERVAL}.part_of_day is not one of " + ", ".join(sorted(PARTS_OF_DAY)),
        ),
    ]

    effective_start = (
        pl.when(date_time.is_not_null())
        .then(point)
        .when(uses_start)
        .then(start)
        .when(end_duration)
        .then(end - span)
        .when(by_day)
        # a date + part of day has no clock time nor offset: the reading spans that (whole) calendar day,
        # taken in UTC; its offset stays unknown (null time_zone)
        .then(day)
    )
    effective_end = (
        pl.when(date_time.is_not_null())
        .then(pl.lit(None, _UTC))
        .when(uses_end)
        .then(end)
        .when(start_duration)
        .then(start + span)
        .when(by_day)
        .then(day + pl.duration(days=1))
    )
    time_zone = (
        pl.when(date_time.is_not_null())
        .then(point_offset)
        .when(uses_start)
        .then(start_offset)
        .when(end_duration)
        .then(end_offset)
    )
    return _TimeFrame(effective_start, effective_end, time_zone, checks)


# ---------------------------------------------------------------------------------------------------
# Reading one schema version


def _measure_value(body: pl.Expr, m: Measure) -> tuple[pl.Expr, pl.Expr]:
    member = body.struct.field(m.member)
    if m.units is None:
        return member, pl.lit(m.implicit_unit, pl.String)
    return member.struct.field("value"), member.struct.field("unit")


def _body_checks(body: pl.Expr, rules: SchemaRules, time_frame: _TimeFrame) -> list[tuple[pl.Expr, str, str]]:
    label = rules.label
    top = list(dict.fromkeys(m.path[1] for m in body_layout(rules) if len(m.path) == 2))
    checks: list[tuple[pl.Expr, str, str]] = [
        (body.is_null(), "missing_body", "the data point has no body"),
        (
            pl.all_horizontal([body.struct.field(name).is_null() for name in top]),
            "empty_data_point",
            f"the body holds none of the members of {label}",
        ),
    ]
    for m in rules.measures:
        checks.append(
            (
                body.struct.field(m.member).is_null(),
                "missing_measurement",
                f"body.{m.member} is required by {label}",
            )
        )
    for m in rules.measures:
        value, unit = _measure_value(body, m)
        if m.units is not None:
            checks += [
                (value.is_null(), "missing_value", f"body.{m.member}.value is missing"),
                (unit.is_null(), "missing_unit", f"body.{m.member}.unit is missing"),
                (
                    ~unit.is_in(sorted(m.units)),
                    "invalid_unit",
                    f"body.{m.member}.unit is not one of the units {label} allows",
                ),
            ]
        negative = value < 0
        if m.signed_units:
            negative = negative & ~unit.is_in(sorted(m.signed_units))
        checks.append((negative, "negative_value", f"body.{m.member}.value is negative, which it cannot be"))
    for name, units in rules.unit_values:
        member = body.struct.field(name)
        checks += [
            (
                member.is_not_null() & member.struct.field("value").is_null(),
                "missing_value",
                f"body.{name}.value is missing",
            ),
            (
                member.is_not_null() & member.struct.field("unit").is_null(),
                "missing_unit",
                f"body.{name}.unit is missing",
            ),
            (
                member.is_not_null() & ~member.struct.field("unit").is_in(sorted(units)),
                "invalid_unit",
                f"body.{name}.unit is not one of the units {label} allows",
            ),
        ]
    statistic = body.struct.field("descriptive_statistic")
    checks.append(
        (
            statistic.is_not_null() & ~statistic.is_in(sorted(rules.statistics)),
            "invalid_descriptive_statistic",
            f"body.descriptive_statistic is not one of the statistics {label} allows",
        )
    )
    for name, allowed in rules.value_sets:
        member = body.struct.field(name)
        checks.append(
            (
                member.is_not_null() & ~member.is_in(sorted(allowed)),
                "invalid_enum_value",
                f"body.{name} is not one of the values {label} allows",
            )
        )
    # the time frame comes last: when a body both misses its time frame and holds a wrong statistic or
    # value-set member, the named member is the more specific reason
    checks += time_frame.checks
    return checks


def _read_version(rows: pl.DataFrame, rules: SchemaRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings and rejects of decoded data points (_row, group_id, doc) of one schema version."""
    body = pl.col("doc").struct.field("body")
    time_frame = _time_frame(body, rules)
    checked = rows.with_columns(_first_problem(_body_checks(body, rules, time_frame)).alias("problem"))
    valid = checked.filter(pl.col("problem").is_null()).with_columns(
        time_frame.start.alias("effective_start"),
        time_frame.end.alias("effective_end"),
        time_frame.time_zone.alias("time_zone"),
        body.struct.field("descriptive_statistic").alias("statistic"),
    )
    readings = []
    for m in rules.measures:
        value, unit = _measure_value(body, m)
        readings.append(
            valid.select(
                ROW,
                pl.lit(m.metric).alias("metric"),
                value.cast(pl.Float64).alias("original_value"),
                unit.alias("original_unit"),
                "effective_start",
                "effective_end",
                "time_zone",
                "statistic",
                "group_id",
            )
        )
    return pl.concat(readings, how="vertical_relaxed"), _rejects(checked)


def _rejects(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("problem").is_not_null()).select(
        ROW,
        pl.col("problem").struct.field("code").alias("reason_code"),
        pl.col("problem").struct.field("reason"),
    )


def _route(rows: pl.DataFrame, decoded: pl.DataFrame, majors: list[int]) -> pl.DataFrame:
    """Data points of one schema with their decoded `doc`, `major` version, `group_id` and the envelope
    `problem` (JSON layout, header, version), null when the body can be read."""
    header = pl.col("doc").struct.field("header")
    schema_id = header.struct.field("schema_id")
    namespace = schema_id.struct.field("namespace")
    version = schema_id.struct.field("version")
    major = version.str.extract(r"^(\d+)\.\d+(?:\.\d+)?$", 1).cast(pl.Int64, strict=False)
    point_id = header.struct.field("id")
    envelope = _first_problem(
        [
            (pl.col("doc").is_null(), "not_a_data_point", "the record is not a JSON object"),
            (header.is_null(), "not_a_data_point", "the data point has no header"),
            (
                namespace.is_not_null() & (namespace != NAMESPACE),
                "unsupported_schema",
                f"header.schema_id.namespace is not {NAMESPACE}",
            ),
            (
                version.is_null() | (version == ""),
                "missing_schema_version",
                "the data point has no header.schema_id.version",
            ),
            (major.is_null(), "invalid_schema_version", "header.schema_id.version is not <major>.<minor>"),
            (
                ~major.is_in(majors),
                "unsupported_schema_version",
                "the Open mHealth reader does not read this major version of the schema",
            ),
        ]
    )
    return pl.concat([rows.select(ROW, "raw"), decoded], how="horizontal").with_columns(
        major.alias("major"),
        pl.when(point_id.str.len_chars() > 0)
        .then(point_id)
        .otherwise(pl.format("omh-row-{}", pl.col(ROW)))
        .alias("group_id"),
        pl.coalesce(pl.col("problem"), envelope).alias("problem"),
    )


def _read_schema(rows: pl.DataFrame, schema: str) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    """Readings and rejects of the data points (_row, raw) of one schema, all versions.

    The texts are decoded once with the header and the union of the versions' body layouts (so a member
    one version defines must have its JSON type in all versions: a list where a string belongs is
    rejected even by a version that ignores the member); a schema whose versions disagree on a member's
    JSON type (step-count) is decoded per version after routing."""
    versions = [rules for (name, _), rules in RULES.items() if name == schema]
    layouts = {rules.major: (*_ENVELOPE, *body_layout(rules)) for rules in versions}
    merged = merge_layouts(*layouts.values())
    routed = _route(rows, decode(rows["raw"], merged or _ENVELOPE), list(layouts))
    readings, rejects = [], [_rejects(routed)]
    for rules in versions:
        of_version = routed.filter(pl.col("problem").is_null() & (pl.col("major") == rules.major))
        if of_version.is_empty():
            continue
        if merged is None:
            of_version = pl.concat(
                [of_version.drop("doc", "problem"), decode(of_version["raw"], layouts[rules.major])],
                how="horizontal",
            )
            rejects.append(_rejects(of_version))
            of_version = of_version.filter(pl.col("problem").is_null())
        version_readings, version_rejects = _read_version(of_version.select(ROW, "group_id", "doc"), rules)
        readings.append(version_readings)
        rejects.append(version_rejects)
    return readings, rejects


# ---------------------------------------------------------------------------------------------------
# Entry point


def read_openmhealth(records: pl.DataFrame) -> ReaderOutput:
    """Open mHealth data points → source readings (one per measured value) and rejects (one per invalid
    data point, with the first rule it breaks).

    `records` has `_row` (Int64), `record_type` (the schema name, `header.schema_id.name`) and `raw`
    (the data point's JSON text); other columns are ignored. The version in `header.schema_id` selects
    the rules; schemas other than `SUPPORTED_SCHEMAS` are rejected as `unsupported_schema`. A reading's
    `group_id` is the data point's `header.id` (or `omh-row-<_row>` without one), so the systolic and
    diastolic values of one blood pressure share it.
    """
    frame = records.select(
        pl.col(ROW).cast(pl.Int64), pl.col("record_type").cast(pl.String), pl.col("raw").cast(pl.String)
    )
    name = pl.col("record_type")
    readings: list[pl.DataFrame] = []
    rejects = [
        frame.filter(name.is_null() | ~name.is_in(list(SUPPORTED_SCHEMAS))).select(
            ROW,
            pl.when(name.is_null())
            .then(pl.lit("missing_schema_id"))
            .otherwise(pl.lit("unsupported_schema"))
            .alias("reason_code"),
            pl.when(name.is_null())
            .then(pl.lit("the data point has no schema name (header.schema_id.name)"))
            .otherwise(pl.lit("the Open mHealth reader does not read this schema (header.schema_id.name)"))
            .alias("reason"),
        )
    ]
    for schema in SUPPORTED_SCHEMAS:
        rows = frame.filter(name == schema)
        if rows.height:
            schema_readings, schema_rejects = _read_schema(rows, schema)
            readings += schema_readings
            rejects += schema_rejects
    return conform(
        pl.concat([empty_readings(), *readings], how="vertical_relaxed").sort(ROW, maintain_order=True),
        pl.concat(rejects, how="vertical_relaxed").sort(ROW),
    )
