"""Point-in-time risk features: what was known about a person at a moment, and nothing after it.

A *point* is a person and a cutoff (`person_id`, `as_of` day, `cutoff` instant, UTC; the cutoff is the end
of the as-of day for person scores, the discharge instant for discharge scores). Every record is joined
to the points of its person and kept only when it happened before the cutoff; conditions count as active
unless they abated before the cutoff; an inpatient stay still running at the cutoff counts only its days
so far. Nothing reads a record's current status where its history matters, so the same features come
out whatever is added, changed or deleted after the cutoff (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from models.risk.baselines import charlson_category_flags, charlson_index
from pipelines.devices.build import DEVICE_READING
from pipelines.fhir.birth_dates import MAX_AGE_YEARS, unusable_birth_date
from pipelines.fhir.times import fhir_timestamp
from pipelines.future_dates import is_future
from pipelines.gold.patient_360 import clinical_codes, result_values
from pipelines.gold.records import PersonRecords
from pipelines.gold.utilization import (
    INPATIENT,
    discharged,
    encounter_times,
    known_encounters,
    last_discharge,
    window_counts,
    within,
)
from pipelines.measures.definitions import load_measures, value_sets
from pipelines.measures.engine import PERSON_SCHEMA, evaluate_measure, events_of
from pipelines.measures.events import _SOURCES as _EVENT_SOURCES  # what person_events reads
from pipelines.measures.events import person_events
from pipelines.segments.triggers import NEGATIVE_RATING

POINT = ["person_id", "as_of"]
POINT_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "as_of": pl.Date(),
    "cutoff": pl.Datetime("us", "UTC"),  # records strictly before this instant are known
}
_UTILIZATION_FEATURES = (
    "ed_visits_6m",
    "ed_visits_12m",
    "ed_visits_36m",
    "inpatient_admissions_12m",
    "inpatient_admissions_36m",
    "bed_days_12m",
    "outpatient_visits_12m",
)
"""The features counted by the shared utilization definition (`pipelines/gold/utilization.py`)."""


@dataclass(frozen=True)
class Feature:
    """A model input and how to say it to a care manager (`says` is formatted with the value `v`, and `s`:
    the plural ending, empty for a value of 1)."""

    name: str
    says: str
    missing: str = ""  # what a null value means, in words
    group: str = ""  # correlated features explained together (default: the feature alone)
    # clinical knowledge the models are held to (monotone constraints): 1, more of it never lowers the risk
    # (an admission, a diagnosis, an alert); -1, more of it never raises it; 0, learnt from the data alone
    direction: int = 0

    @property
    def explained_as(self) -> str:
        """The explanation group of the feature."""
        return self.group or self.name


_CONDITION_WORDS = {
    "diabetes": "diabetes",
    "hypertension": "high blood pressure",
    "heart_failure": "heart failure",
    "copd": "COPD",
    "chronic_kidney_disease": "chronic kidney disease",
    "cancer": "cancer",
    "depression": "depression",
    "asthma": "asthma",
    "atrial_fibrillation": "atrial fibrillation",
    "obesity": "obesity",
}
_ED, _HOSPITAL, _BP = "ed_use", "hospital_use", "blood_pressure"
PERSON_FEATURES: tuple[Feature, ...] = (
    Feature("age", "age {v:.0f}", "age not known"),
    Feature("female", "{sex}"),
    Feature("ed_visits_6m", "{v:.0f} ED visit{s} in the last 6 months", group=_ED, direction=1),
    Feature("ed_visits_12m", "{v:.0f} ED visit{s} in the last 12 months", group=_ED, direction=1),
    Feature("ed_visits_36m", "{v:.0f} ED visit{s} in the last 3 years", group=_ED, direction=1),
    Feature(
        "inpatient_admissions_12m",
        "{v:.0f} hospital admission{s} in the last 12 months",
        group=_HOSPITAL,
        direction=1,
    ),
    Feature(
        "inpatient_admissions_36m",
        "{v:.0f} hospital admission{s} in the last 3 years",
        group=_HOSPITAL,
        direction=1,
    ),
    Feature(
        "readmissions_36m",
        "{v:.0f} readmission{s} within 30 days of a discharge in 3 years",
        group=_HOSPITAL,
        direction=1,
    ),
    Feature("bed_days_12m", "{v:.0f} day{s} in hospital in the last 12 months", group=_HOSPITAL, direction=1),
    Feature(
        "mean_stay_days_36m",
        "hospital stays of {v:.1f} days on average in the last 3 years",
        "no hospital stay in the last 3 years",
        group=_HOSPITAL,
        direction=1,
    ),
    Feature("outpatient_visits_12m", "{v:.0f} outpatient visit{s} in the last 12 months"),
    Feature(
        "days_since_discharge",
        "discharged from hospital {v:.0f} day{s} ago",
        "no hospital stay on record",
        group=_HOSPITAL,
        direction=-1,
    ),
    *[Feature(f"has_{k}", "{has} " + words, direction=1) for k, words in _CONDITION_WORDS.items()],
    Feature("charlson_index", "Charlson comorbidity index {v:.0f}", direction=1),
    Feature("medications_12m", "{v:.0f} different medication{s} prescribed in 12 months", direction=1),
    Feature("last_hba1c", "last HbA1c {v:.1f}%", "no HbA1c result", group="hba1c", direction=1),
    Feature("hba1c_change", "HbA1c {v:+.1f} since the result before", "no HbA1c trend", group="hba1c"),
    Feature("last_systolic_bp", "last systolic blood pressure {v:.0f} mmHg", "no blood pressure", group=_BP),
    Feature(
        "systolic_bp_change",
        "systolic pressure {v:+.0f} mmHg since the reading before",
        "no BP trend",
        group=_BP,
    ),
    Feature("last_bmi", "last BMI {v:.1f}", "no BMI result", group="weight"),
    Feature(
        "weight_change", "weight {v:+.1f} kg since the measurement before", "no weight trend", group="weight"
    ),
    Feature("last_ldl", "last LDL cholesterol {v:.0f} mg/dL", "no LDL result"),
    Feature("missed_appointments_12m", "{v:.0f} missed appointment{s} in 12 months", direction=1),
    Feature("poor_survey_ratings_12m", "{v:.0f} poor survey rating{s} in 12 months", direction=1),
    Feature("device_days_30d", "home-device readings on {v:.0f} of the last 30 days"),
    Feature("device_alerts_30d", "{v:.0f} home-device alert{s} in the last 30 days", direction=1),
    Feature("open_care_gaps", "{v:.0f} open care gap{s}", direction=1),
)
DISCHARGE_FEATURES: tuple[Feature, ...] = (
    *[f for f in PERSON_FEATURES if f.name != "open_care_gaps"],
    Feature("length_of_stay_days", "a {v:.0f}-day hospital stay", direction=1),
    Feature("emergent_admission", "{emergent}", direction=1),
)
_RESULTS = {"hba1c": "hba1c", "systolic_bp": "systolic_bp", "bmi": "bmi", "weight": "weight", "ldl": "ldl"}


def person_points(persons: pl.DataFrame, days: list[date], clock: datetime | None = None) -> pl.DataFrame:
    """A point for every person on every day of `days` on which they were born and not known dead
    (a death recorded without a date removes the person: when it happened is unknown). A person whose
    birth date gives no age - missing, not a full date, or after `clock` (the run's clock, default now)
    plus the tolerance, a typo - has a point every day: the person exists, the age is unknown (the models
    impute it), and dropping them would leave a living person without a score."""
    born = pl.col("birth_date").str.to_date("%Y-%m-%d", strict=False)
    died = fhir_timestamp(pl.col("deceased"))
    # deceasedBoolean false (golden text "false") is alive, not a death without a date
    known_dead_undated = pl.col("deceased").is_not_null() & (pl.col("deceased") != "false") & died.is_null()
    unknown_birth = born.is_null() | is_future(born, clock or datetime.now(UTC))
    base = persons.filter(~known_dead_undated).select(
        "person_id", born.alias("_born"), unknown_birth.alias("_unknown_birth"), died.alias("_died")
    )
    cutoff = (pl.col("as_of").cast(pl.Datetime("us")) + pl.duration(days=1)).dt.replace_time_zone("UTC")
    points = base.join(pl.DataFrame({"as_of": days}, schema={"as_of": pl.Date}), how="cross").with_columns(
        cutoff.alias("cutoff")
    )
    return (
        points.filter(
            (pl.col("_unknown_birth") | (pl.col("_born") <= pl.col("as_of")))
            & (pl.col("_died").is_null() | (pl.col("_died") >= pl.col("cutoff")))
        )
        .select(list(POINT_SCHEMA))
        .sort(POINT)
    )


def discharge_day_points(stays: pl.DataFrame) -> pl.DataFrame:
    """The points of discharges (`person_id`, `as_of` the discharge day, `cutoff` the discharge instant), one
    per person and day at the day's first discharge: a second discharge on the same day is described by what
    was known at the first."""
    return stays.select(list(POINT_SCHEMA)).sort("cutoff").unique(POINT, keep="first", maintain_order=True)


def discharge_features(records: PersonRecords, stays: pl.DataFrame) -> pl.DataFrame:
    """`stays` (discharges with their LACE inputs, `models/risk/outcomes.py`: `person_id`, `as_of`, `cutoff`,
    `length_of_stay_days`, `emergent_admission` and `charlson_index` at least) with every other feature of
    DISCHARGE_FEATURES as known at the discharge instant, `emergent_admission` as 0/1: the one definition
    the discharge model is trained on (`models/risk/dataset.py`) and scores with (`models/risk/score.py`)."""
    points = discharge_day_points(stays)
    features = point_in_time_features(records, points, with_care_gaps=False).drop("cutoff", "charlson_index")
    return stays.with_columns(pl.col("emergent_admission").cast(pl.Float64)).join(
        features, on=POINT, how="left"
    )


def end_of_day(day: date) -> datetime:
    """The first instant after `day` (UTC), the cutoff of a person point."""
    return datetime.combine(day + timedelta(days=1), time())


def point_in_time_features(
    records: PersonRecords, points: pl.DataFrame, with_care_gaps: bool = True
) -> pl.DataFrame:
    """One row per point with every feature of PERSON_FEATURES (without `open_care_gaps` when
    `with_care_gaps` is false: evaluating the measures needs a whole day's events per distinct as-of day)."""
    frame = points.select(list(POINT_SCHEMA)).join(_demographics(records.persons), on="person_id", how="left")
    age = _age_at(pl.col("_born"), pl.col("as_of"))
    frame = frame.with_columns(
        # an implausible birth date gives no age (pipelines/fhir/birth_dates.py); the models impute it
        pl.when(~pl.col("_implausible") & age.is_between(0, MAX_AGE_YEARS)).then(age).alias("age"),
        (pl.col("_sex") == "female").alias("female"),
    ).drop("_born", "_sex", "_implausible")
    parts = [
        _utilization(records, points),
        _conditions(records, points),
        _medications(records, points),
        _results(records, points),
        _appointments_and_surveys(records, points),
        _devices(records, points),
    ]
    if with_care_gaps:
        parts.append(_open_care_gaps(records, points))
    for part in parts:
        frame = frame.join(part, on=POINT, how="left")
    # a part with no records at all (a bucket without encounters, say) still gives its features' columns
    absent = [f.name for f in PERSON_FEATURES if f.name not in frame.columns]
    absent = [name for name in absent if with_care_gaps or name != "open_care_gaps"]
    frame = frame.with_columns(pl.lit(None, pl.Float64).alias(name) for name in absent)
    return _filled(frame).sort(POINT)


def with_open_care_gaps(features: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """Features built without care gaps (`with_care_gaps=False`) with `open_care_gaps` (of `open_care_gaps`)
    added, as `point_in_time_features` adds them."""
    return _filled(features.join(gaps, on=POINT, how="left")).sort(POINT)


def _filled(frame: pl.DataFrame) -> pl.DataFrame:
    """Counts without a record are 0 (as floats), flags without a record false."""
    counts = [
        f.name
        for f in PERSON_FEATURES
        if f.name.endswith(("_6m", "_12m", "_36m", "_30d")) or f.name in ("charlson_index", "open_care_gaps")
    ]
    flags = [f.name for f in PERSON_FEATURES if f.name.startswith("has_")]
    return frame.with_columns(
        *[pl.col(c).fill_null(0).cast(pl.Float64) for c in counts if c in frame.columns],
        *[pl.col(c).fill_null(False) for c in flags],
    )


def _demographics(persons: pl.DataFrame) -> pl.DataFrame:
    return persons.select(
        "person_id",
        pl.col("birth_date").str.to_date("%Y-%m-%d", strict=False).alias("_born"),
        pl.col("gender").alias("_sex"),
        # the rules that need no reference day; a future birth date has no point, an age over
        # MAX_AGE_YEARS is caught where the point's day is known
        unusable_birth_date(pl.col("birth_date")).alias("_implausible"),
    )


def _age_at(born: pl.Expr, day: pl.Expr) -> pl.Expr:
    before_birthday = (born.dt.month() > day.dt.month()) | (
        (born.dt.month() == day.dt.month()) & (born.dt.day() > day.dt.day())
    )
    return (day.dt.year() - born.dt.year() - before_birthday.cast(pl.Int32)).cast(pl.Float64)


def _known(rows: pl.DataFrame, points: pl.DataFrame, at: str) -> pl.DataFrame:
    """Rows joined to their person's points, kept when `at` is before the point's cutoff."""
    return rows.join(points.select(list(POINT_SCHEMA)), on="person_id").filter(
        pl.col(at).is_not_null() & (pl.col(at) < pl.col("cutoff"))
    )


def _within(at: str, days: int) -> pl.Expr:
    return within(days, at)


def _empty(**columns: pl.DataType) -> pl.DataFrame:
    return pl.DataFrame(schema={"person_id": pl.String, "as_of": pl.Date, **columns})


def _utilization(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    """Utilization at each point (the shared definition of `pipelines/gold/utilization.py`, which the 360
    view also uses), readmissions, mean stay and days since the last discharge."""
    known = known_encounters(encounter_times(records), points.select(list(POINT_SCHEMA)))
    if not known.height:
        return _empty()
    # a stay that began within 30 days of the person's previous discharge (both known at the cutoff)
    stays = known.filter(pl.col("class_code") == INPATIENT).sort([*POINT, "_start"])
    previous_end = pl.col("_end").shift(1).over(POINT)
    readmissions = (
        stays.filter(
            within(1096)
            & (previous_end < pl.col("cutoff"))
            & (pl.col("_start") - previous_end <= pl.duration(days=30))
        )
        .group_by(POINT)
        .agg(pl.len().alias("readmissions_36m"))
    )
    return (
        known.group_by(POINT)
        .agg(
            *window_counts(),
            (pl.col("_end") - pl.col("_start"))
            .filter(discharged() & within(1096))
            .mean()
            .dt.total_hours()
            .truediv(24)
            .alias("mean_stay_days_36m"),
            (pl.col("cutoff").first() - last_discharge())
            .dt.total_days()
            .cast(pl.Float64)
            .alias("days_since_discharge"),
        )
        .select(*POINT, *_UTILIZATION_FEATURES, "mean_stay_days_36m", "days_since_discharge")
        .join(readmissions, on=POINT, how="left")
    )


def active_conditions(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    """Conditions known at each point and not abated before its cutoff (current clinical status is not
    used: it may have changed after the cutoff)."""
    conditions = records.table("condition")
    if not conditions.height or "code" not in conditions.columns:
        return pl.DataFrame(schema={**POINT_SCHEMA, "code": pl.String(), "code_system": pl.String()})
    dated = conditions.select(
        "person_id",
        "code",
        "code_system",
        pl.coalesce(fhir_timestamp(pl.col("onset_date_time")), fhir_timestamp(pl.col("recorded_date"))).alias(
            "_at"
        ),
        fhir_timestamp(pl.col("abatement_date_time")).alias("_abated"),
    )
    return _known(dated, points, "_at").filter(
        pl.col("_abated").is_null() | (pl.col("_abated") >= pl.col("cutoff"))
    )


def _conditions(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    active = active_conditions(records, points)
    groups = clinical_codes()["chronic_conditions"]
    snomed = pl.col("code_system") == "http://snomed.info/sct"
    icd = pl.col("code_system") == "http://hl7.org/fhir/sid/icd-10-cm"
    flags = active.group_by(POINT).agg(
        [
            (
                (snomed & pl.col("code").is_in(groups[name]["snomed"]))
                | (
                    icd
                    & pl.any_horizontal([pl.col("code").str.starts_with(p) for p in groups[name]["icd10cm"]])
                )
            )
            .any()
            .alias(f"has_{name}")
            for name in _CONDITION_WORDS
        ]
    )
    charlson = charlson_category_flags(active, POINT)
    return flags.join(charlson.select(*POINT, charlson_index(charlson)), on=POINT, how="full", coalesce=True)


def _medications(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    meds = records.table("medication_request")
    if not meds.height or "authored_on" not in meds.columns:
        return _empty()
    dated = meds.select("person_id", "medication_code", fhir_timestamp(pl.col("authored_on")).alias("_at"))
    return (
        _known(dated, points, "_at")
        .filter(_within("_at", 365))
        .group_by(POINT)
        .agg(pl.col("medication_code").n_unique().alias("medications_12m"))
    )


def _results(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    """Last value of each result and its change since the value before."""
    names = {"hba1c": "last_hba1c", "systolic_bp": "last_systolic_bp", "bmi": "last_bmi", "ldl": "last_ldl"}
    changes = {"hba1c": "hba1c_change", "systolic_bp": "systolic_bp_change", "weight": "weight_change"}
    out = _empty(**{c: pl.Float64 for c in [*names.values(), *changes.values()]})
    # each value with the one before it (same person and result); values at the same instant are ordered
    # by value, so which is "last" never depends on the order the records were read in (a value recorded
    # twice, by two sources, is last once and the one before it once)
    values = (
        result_values(_with_result_codes_only(records))
        .filter(pl.col("result").is_in(list(_RESULTS)))
        .sort("person_id", "result", "at", "value")
        .with_columns(
            pl.col("value").shift(1).over("person_id", "result").alias("_before"),
            pl.int_range(pl.len()).alias("_order"),
        )
        .sort("at", "_order")
    )
    # per point and result, the last value strictly before the cutoff: an as-of join, rather than every
    # value joined to every point of its person and sorted
    wanted = (
        points.select(*POINT, "cutoff")
        .join(pl.DataFrame({"result": list(_RESULTS)}), how="cross")
        .sort("cutoff")
    )
    latest = (
        wanted.join_asof(
            values,
            left_on="cutoff",
            right_on="at",
            by=["person_id", "result"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,  # both sides are sorted on their key above (unverifiable per group)
        )
        .filter(pl.col("value").is_not_null())
        .select(*POINT, "result", pl.col("value").alias("_last"), "_before")
    )
    wide = out.select(POINT).join(latest.select(POINT).unique(), on=POINT, how="full", coalesce=True)
    for result, column in names.items():
        part = latest.filter(pl.col("result") == result).select(*POINT, pl.col("_last").alias(column))
        wide = wide.join(part, on=POINT, how="left")
    for result, column in changes.items():
        part = latest.filter(pl.col("result") == result).select(
            *POINT, (pl.col("_last") - pl.col("_before")).alias(column)
        )
        wide = wide.join(part, on=POINT, how="left")
    return wide


def _with_result_codes_only(records: PersonRecords) -> PersonRecords:
    """`records` with only the observations (and components) of the results the features use:
    `result_values` parses every row's time before it keeps the rows of its codes, and most observations
    are of other codes."""
    codes = clinical_codes()["latest_results"]
    wanted = sorted({code for result in _RESULTS for code in codes[result]})
    results = PersonRecords(records.lake, records.persons, records.links, records.bucket, records.buckets)
    for table in ("observation", "observation_component"):
        rows = records.table(table)
        kept = rows.filter(pl.col("code").is_in(wanted)) if "code" in rows.columns else rows
        results._tables[("silver", table)] = kept
    return results


def _appointments_and_surveys(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    out = _empty(missed_appointments_12m=pl.UInt32, poor_survey_ratings_12m=pl.UInt32)
    appointments = records.table("appointment")
    if appointments.height and "start_time" in appointments.columns:
        # a no-show is recorded once its time has passed, so a past appointment's status is known
        dated = appointments.select("person_id", "status", fhir_timestamp(pl.col("start_time")).alias("_at"))
        missed = (
            _known(dated, points, "_at")
            .filter(_within("_at", 365))
            .group_by(POINT)
            .agg((pl.col("status") == "noshow").sum().alias("missed_appointments_12m"))
        )
        out = out.drop("missed_appointments_12m").join(missed, on=POINT, how="full", coalesce=True)
    answers = records.table("questionnaire_response_item")
    if answers.height and "item_link_id" in answers.columns:
        ratings = answers.filter(pl.col("item_link_id") == "rating").select(
            "person_id", "answer_value_integer", fhir_timestamp(pl.col("authored")).alias("_at")
        )
        poor = (
            _known(ratings, points, "_at")
            .filter(_within("_at", 365))
            .group_by(POINT)
            .agg((pl.col("answer_value_integer") <= NEGATIVE_RATING).sum().alias("poor_survey_ratings_12m"))
        )
        out = out.drop("poor_survey_ratings_12m").join(poor, on=POINT, how="full", coalesce=True)
    return out


def _devices(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    out = _empty(device_days_30d=pl.UInt32, device_alerts_30d=pl.UInt32)
    readings = records.table("device_reading")
    if readings.height and "effective_start" in readings.columns:
        days = (
            _known(
                readings.filter(pl.col("plausible")).select("person_id", "effective_start"),
                points,
                "effective_start",
            )
            .filter(_within("effective_start", 30))
            .group_by(POINT)
            .agg(pl.col("effective_start").dt.date().n_unique().alias("device_days_30d"))
        )
        out = out.drop("device_days_30d").join(days, on=POINT, how="full", coalesce=True)
    alerts = records.table("device_alerts", layer="gold")
    if alerts.height and "triggered_at" in alerts.columns:
        counts = (
            _known(alerts.select("person_id", "triggered_at"), points, "triggered_at")
            .filter(_within("triggered_at", 30))
            .group_by(POINT)
            .agg(pl.len().alias("device_alerts_30d"))
        )
        out = out.drop("device_alerts_30d").join(counts, on=POINT, how="full", coalesce=True)
    return out


@dataclass(frozen=True)
class CareGapInputs:
    """What `open_care_gaps` needs of some persons: their measure-engine person rows (PERSON_SCHEMA) and,
    per measure, the events its value sets match whatever their date, with `_abated` (the abatement
    instant of a condition event). Small next to the records: the inputs of several chunks of persons can
    be put together and evaluated at once, paying the engine's fixed cost per day once."""

    persons: pl.DataFrame
    events: dict[str, pl.DataFrame]  # measure id -> events

    @classmethod
    def of(cls, records: PersonRecords) -> CareGapInputs:
        """The inputs of every person of `records`."""
        persons = records.persons.select(
            "person_id",
            pl.col("gender").alias("sex"),
            "birth_date",
            pl.lit(False).alias("deceased"),  # points only hold persons alive at their cutoff
            pl.lit(None, pl.String).alias("pcp_practitioner_id"),
        ).select([pl.col(n).cast(t) for n, t in PERSON_SCHEMA.items()])
        events = _measure_events(records)
        codes = events.select("system", "code").unique()
        return cls(persons, {m.id: events_of(m, events, codes) for m in load_measures()})

    @classmethod
    def concat(cls, parts: list[CareGapInputs]) -> CareGapInputs:
        """The inputs of disjoint sets of persons, together."""
        return cls(
            pl.concat([p.persons for p in parts]),
            {m.id: pl.concat([p.events[m.id] for p in parts]) for m in load_measures()},
        )


def open_care_gaps(inputs: CareGapInputs, points: pl.DataFrame) -> pl.DataFrame:
    """Open gaps of every measure at each point (`person_id`, `as_of`, `open_care_gaps`), from the records
    as they stood at the end of its as-of day.

    "As they stood": events dated after the end of the day left out, conditions that abated after it still
    active. This equals `evaluate_care_gaps` on the records cut at each day (tested against that
    definition in tests/test_risk_training_speed.py), at a fraction of the cost: the events are built once
    rather than once per day, and each measure sees only the events its own value sets can match. The
    engine ignores events dated after its as-of day, and an event's date is the UTC day of the instant the
    cut compares with the end of the day, so all a day changes is whether a condition that abated later
    still counts as active; and the engine reads events only through value sets, so the events of other
    value sets change none of a measure's statuses."""
    days = points["as_of"].unique().sort().to_list()
    if not days:
        return _empty(open_care_gaps=pl.UInt32)
    frames = []
    for day in days:
        cutoff = pl.lit(end_of_day(day)).dt.replace_time_zone("UTC")
        active = pl.when(pl.col("_abated") >= cutoff).then(True).otherwise(pl.col("active")).alias("active")
        mine = inputs.persons.join(
            points.filter(pl.col("as_of") == day).select("person_id"), on="person_id", how="semi"
        )
        gaps = pl.concat(
            [
                evaluate_measure(
                    measure,
                    mine,
                    inputs.events[measure.id]
                    .filter(pl.col("date") <= day)
                    .with_columns(active)
                    .drop("_abated"),
                    day,
                ).select("person_id", "status")
                for measure in load_measures()
            ]
        )
        frames.append(
            gaps.group_by("person_id")
            .agg((pl.col("status") == "open-gap").sum().alias("open_care_gaps"))
            .with_columns(pl.lit(day).alias("as_of"))
        )
    return pl.concat(frames).select(*POINT, "open_care_gaps")


def _open_care_gaps(records: PersonRecords, points: pl.DataFrame) -> pl.DataFrame:
    """Open gaps of every measure on each distinct as-of day, from the records as they stood then."""
    if not points.height:
        return _empty(open_care_gaps=pl.UInt32)
    return open_care_gaps(CareGapInputs.of(records), points)


def _measure_events(records: PersonRecords) -> pl.DataFrame:
    """The measure engine's events of `records`, whatever their date, with `_abated`: the abatement
    instant of a condition event (null for other events)."""
    tagged = PersonRecords(records.lake, records.persons, records.links, records.bucket, records.buckets)
    tagged._tables = {key: rows for key, rows in records._tables.items() if key[0] != "silver"}
    # rows whose code no value set holds make no event a measure reads: dropped before their times are
    # parsed (an ICD-10-CM code may match by prefix, so rows of that system stay)
    codes = value_sets()
    exact = codes.filter(~pl.col("prefix"))["code"].unique().implode()
    by_prefix = codes.filter(pl.col("prefix"))["system"].unique().implode()
    for table, code, system, *_ in _EVENT_SOURCES:
        rows = records.table(table)
        if rows.height and code in rows.columns and system in rows.columns:
            rows = rows.filter(pl.col(code).is_in(exact) | pl.col(system).is_in(by_prefix))
        tagged._tables[("silver", table)] = rows
    tagged._tables[("silver", DEVICE_READING)] = records.table(DEVICE_READING)
    conditions = tagged.table("condition")
    abatement = pl.DataFrame(
        schema={"_row": pl.String, "_record": pl.String, "_abated": POINT_SCHEMA["cutoff"]}
    )
    if conditions.height and "id" in conditions.columns and "abatement_date_time" in conditions.columns:
        # a condition id may repeat (one resource sent by two sources): the row number tells them apart
        # while the events are built, then the real record id comes back
        indexed = conditions.with_row_index("_row").with_columns(pl.col("_row").cast(pl.String))
        tagged._tables[("silver", "condition")] = indexed.with_columns(pl.col("_row").alias("id"))
        abatement = indexed.select(
            pl.format("Condition/{}", "_row").alias("_row"),
            pl.format("Condition/{}", "id").alias("_record"),
            fhir_timestamp(pl.col("abatement_date_time")).alias("_abated"),
        )
    return (
        person_events(tagged)
        .join(abatement, left_on="record", right_on="_row", how="left", maintain_order="left")
        .with_columns(pl.coalesce("_record", "record").alias("record"))
        .drop("_record")
    )
