"""Evaluate a measure for every person: eligibility, exclusions, numerator, gap status and evidence.

Statuses follow the Da Vinci DEQM gaps-in-care codes: `open-gap`, `closed-gap`, `prospective-gap` (closed
today, but the evidence stops counting within the measure's horizon) and `not-applicable` (not in the
eligible population), plus `excluded` with the reason. The measurement period is the calendar year of the
as-of date; evidence after the as-of date does not exist yet and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from pipelines.fhir.birth_dates import birth_date_problem
from pipelines.measures.definitions import LABEL, Measure, value_sets

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "system": pl.String(),
    "code": pl.String(),
    "date": pl.Date(),
    "value": pl.Float64(),
    "record": pl.String(),  # '<ResourceType>/<id>' or the device reading id
    "active": pl.Boolean(),  # conditions: still active (clinical status active, no abatement)
}
PERSON_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "sex": pl.String(),
    "birth_date": pl.String(),
    "deceased": pl.Boolean(),
    "pcp_practitioner_id": pl.String(),
}
CARE_GAP_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "measure_id": pl.String(),
    "measure_version": pl.String(),
    "label": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "status": pl.String(),
    "exclusion_reason": pl.String(),
    "evidence_modality": pl.String(),
    "evidence_record": pl.String(),
    "evidence_date": pl.Date(),
    "evidence_code": pl.String(),
    "evidence_value": pl.Float64(),
    "due_date": pl.Date(),
    "days_overdue": pl.Int64(),
    "pcp_practitioner_id": pl.String(),
    "as_of": pl.Date(),
}


@dataclass(frozen=True)
class Period:
    """The measurement period: the calendar year of the as-of date."""

    start: date
    end: date

    @classmethod
    def of(cls, as_of: date) -> Period:
        return cls(date(as_of.year, 1, 1), date(as_of.year, 12, 31))


def months_before(day: date, months: int) -> date:
    """The same day `months` earlier (clamped to the month's last day)."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    for candidate in range(day.day, 27, -1):
        try:
            return date(year, month + 1, candidate)
        except ValueError:
            continue
    return date(year, month + 1, min(day.day, 28))


def matching(events: pl.DataFrame, value_set: str) -> pl.DataFrame:
    """Events whose code is in the value set (ICD-10-CM codes match by prefix)."""
    codes = value_sets().filter(pl.col("value_set") == value_set)
    exact = events.join(
        codes.filter(~pl.col("prefix")).select("system", "code"), on=["system", "code"], how="semi"
    )
    prefixes = codes.filter(pl.col("prefix"))
    if prefixes.is_empty():
        return exact
    by_prefix = [
        (pl.col("system") == system) & pl.col("code").str.starts_with(code)
        for system, code in prefixes.select("system", "code").iter_rows()
    ]
    return pl.concat([exact, events.filter(pl.any_horizontal(by_prefix))]).unique(maintain_order=True)


def measure_codes(codes: pl.DataFrame, measure: Measure) -> pl.DataFrame:
    """The `system`, `code` pairs of `codes` that a value set of `measure` matches, as `matching` does
    (ICD-10-CM codes by prefix): every value set the measure reads events through, for eligibility,
    exclusions and the numerator. `evaluate_measure` reads events only through those value sets, so the
    events of other codes change none of its rows: a caller evaluating many measures over the same
    events gives each only its own (`events_of`)."""
    names = {value_set for value_set, _ in measure.diagnoses} | {m.value_set for m in measure.modalities}
    for exclusion in measure.exclusions:
        names |= {exclusion.value_set, exclusion.also_value_set} - {None}
    own = value_sets().filter(pl.col("value_set").is_in(sorted(names)))
    by_prefix = pl.lit(False)
    for system, code in own.filter(pl.col("prefix")).select("system", "code").unique().sort("*").iter_rows():
        by_prefix = by_prefix | ((pl.col("system") == system) & pl.col("code").str.starts_with(code))
    exact = codes.join(own.filter(~pl.col("prefix")).select("system", "code"), on=["system", "code"])
    return pl.concat([exact, codes.filter(by_prefix)]).unique()


def events_of(measure: Measure, events: pl.DataFrame, codes: pl.DataFrame | None = None) -> pl.DataFrame:
    """The events `measure` can read (`measure_codes`), in their order. `codes`: the distinct `system`,
    `code` pairs of `events`, when the caller has them already."""
    if codes is None:
        codes = events.select("system", "code").unique()
    wanted = measure_codes(codes, measure)
    return events.join(wanted, on=["system", "code"], how="semi", maintain_order="left")


def evaluate_measure(
    measure: Measure, persons: pl.DataFrame, events: pl.DataFrame, as_of: date
) -> pl.DataFrame:
    """One care-gap row per person for `measure` (CARE_GAP_SCHEMA)."""
    period = Period.of(as_of)
    known = events.filter(pl.col("date") <= as_of)
    born = pl.col("birth_date").str.slice(0, 10).str.to_date(strict=False)
    end = period.end
    age = pl.when(birth_date_problem(pl.col("birth_date").str.slice(0, 10), as_of).is_null()).then(
        end.year
        - born.dt.year()
        - ((born.dt.month() > end.month) | ((born.dt.month() == end.month) & (born.dt.day() > end.day))).cast(
            pl.Int32
        )
    )  # an implausible birth date gives no age: the person is in no age-bound denominator
    eligible = pl.col("_age").is_between(measure.age_min, measure.age_max)
    for sex, low, high in measure.age_by_sex:
        eligible = (
            pl.when(pl.col("sex") == sex).then(pl.col("_age").is_between(low, high)).otherwise(eligible)
        )
    if measure.sexes:
        eligible &= pl.col("sex").is_in(list(measure.sexes))
    rows = persons.with_columns(age.alias("_age")).with_columns(eligible.fill_null(False).alias("_eligible"))
    for value_set, lookback in measure.diagnoses:
        since = months_before(period.end, lookback)
        # a diagnosis recorded in the look-back, or an earlier one that is still active
        recent_or_active = (pl.col("date") > since) | pl.col("active").fill_null(False)
        diagnosed = matching(known, value_set).filter(recent_or_active).select("person_id").unique()
        rows = rows.with_columns(
            pl.col("_eligible") & pl.col("person_id").is_in(diagnosed["person_id"].implode())
        )
    rows = rows.with_columns(pl.lit(None, pl.String).alias("exclusion_reason"))
    for exclusion in measure.exclusions:
        if exclusion.value_set is None:
            hit = pl.col("deceased").fill_null(False)
        else:
            found = matching(known, exclusion.value_set)
            if exclusion.window == "period":
                found = found.filter(pl.col("date") >= period.start)
            hit = pl.col("person_id").is_in(found["person_id"].unique().implode())
            if exclusion.min_age is not None:
                hit &= pl.col("_age") >= exclusion.min_age
            if exclusion.also_value_set is not None:
                since = months_before(period.end, exclusion.also_lookback_months)
                also = matching(known, exclusion.also_value_set).filter(
                    (pl.col("date") > since) | pl.col("active").fill_null(False)
                )
                hit &= pl.col("person_id").is_in(also["person_id"].unique().implode())
        rows = rows.with_columns(
            pl.when(pl.col("_eligible") & pl.col("exclusion_reason").is_null() & hit)
            .then(pl.lit(exclusion.reason))
            .otherwise(pl.col("exclusion_reason"))
            .alias("exclusion_reason")
        )
    births = persons.select("person_id", born.alias("_born"))
    evidence = _numerator(measure, known.join(births, on="person_id", how="left"), period, as_of, births)
    scored = rows.join(evidence, on="person_id", how="left")
    status = (
        pl.when(~pl.col("_eligible"))
        .then(pl.lit("not-applicable"))
        .when(pl.col("exclusion_reason").is_not_null())
        .then(pl.lit("excluded"))
        .when(~pl.col("_closed").fill_null(False))
        .then(pl.lit("open-gap"))
        .when(
            pl.col("_expires").is_not_null()
            & (pl.col("_expires") <= as_of + timedelta(days=measure.prospective_days))
        )
        .then(pl.lit("prospective-gap"))
        .otherwise(pl.lit("closed-gap"))
    )
    default_due = {
        "any_event": pl.lit(period.start),
        "vaccine_doses": born.dt.offset_by("2y"),  # every dose by the second birthday
    }.get(measure.numerator_type, pl.lit(period.end))
    due = pl.coalesce(pl.col("_due"), default_due)
    result = (
        scored.with_columns(
            status.alias("status"),
            pl.lit(measure.id).alias("measure_id"),
            pl.lit(measure.version).alias("measure_version"),
            pl.lit(LABEL).alias("label"),
            pl.lit(period.start).alias("period_start"),
            pl.lit(period.end).alias("period_end"),
            pl.lit(as_of).alias("as_of"),
        )
        .with_columns(
            pl.when(pl.col("status").is_in(["open-gap"]))
            .then(due)
            .otherwise(pl.col("_expires"))
            .alias("due_date"),
        )
        .with_columns(
            pl.when(pl.col("status") == "open-gap")
            .then((pl.lit(as_of) - pl.col("due_date")).dt.total_days().clip(lower_bound=0))
            .otherwise(0)
            .cast(pl.Int64)
            .alias("days_overdue"),
            pl.when(pl.col("status").is_in(["excluded", "not-applicable"]))
            .then(None)
            .otherwise(pl.col("evidence_record"))
            .alias("evidence_record"),
        )
    )
    return result.select(
        [
            pl.col(n).cast(t) if n in result.columns else pl.lit(None, t).alias(n)
            for n, t in CARE_GAP_SCHEMA.items()
        ]
    ).sort("person_id")


def _numerator(
    measure: Measure, events: pl.DataFrame, period: Period, as_of: date, births: pl.DataFrame
) -> pl.DataFrame:
    """Per person: `_closed`, `_expires` (when the evidence stops counting), `_due` and the evidence.
    `births`: every person evaluated (`person_id`, `_born`)."""
    empty = pl.DataFrame(
        schema={"person_id": pl.String, "_closed": pl.Boolean, "_expires": pl.Date, "_due": pl.Date}
    )
    if measure.numerator_type == "any_event":
        found = []
        for modality in measure.modalities:
            until = months_before(period.end, modality.window.end_offset_months)
            hits = matching(events, modality.value_set).filter(pl.col("date") <= until)
            if modality.min_age is not None:
                old_enough = pl.col("_born").dt.offset_by(f"{modality.min_age}y") <= pl.col("date")
                hits = hits.filter(old_enough.fill_null(False))
            hits = hits.with_columns(
                pl.lit(modality.name).alias("evidence_modality"),
                pl.col("date")
                .dt.offset_by(f"{modality.window.months - modality.window.end_offset_months}mo")
                .alias("_expires"),
                pl.lit(months_before(period.end, modality.window.months)).alias("_since"),
            )
            found.append(hits)
        if not found:
            return empty
        every = pl.concat(found)
        qualifying = every.filter(pl.col("date") > pl.col("_since"))
        # the evidence that keeps the gap closed longest; for an open gap, the last evidence ever and
        # the day it stopped counting (the due date)
        best = qualifying.sort(["person_id", "_expires", "record"], descending=[False, True, False]).unique(
            subset="person_id", keep="first"
        )
        closed = best.select(
            "person_id",
            pl.lit(True).alias("_closed"),
            "_expires",
            pl.lit(None, pl.Date).alias("_due"),
            "evidence_modality",
            pl.col("record").alias("evidence_record"),
            pl.col("date").alias("evidence_date"),
            pl.col("code").alias("evidence_code"),
            pl.col("value").alias("evidence_value"),
        )
        lapsed = (
            every.join(closed.select("person_id"), on="person_id", how="anti")
            .sort(["person_id", "_expires", "record"], descending=[False, True, False])
            .unique(subset="person_id", keep="first")
            .select(
                "person_id",
                pl.lit(False).alias("_closed"),
                pl.lit(None, pl.Date).alias("_expires"),
                pl.col("_expires").alias("_due"),
                "evidence_modality",
                pl.col("record").alias("evidence_record"),
                pl.col("date").alias("evidence_date"),
                pl.col("code").alias("evidence_code"),
                pl.col("value").alias("evidence_value"),
            )
        )
        return pl.concat([closed, lapsed], how="vertical_relaxed")
    if measure.numerator_type == "vaccine_doses":
        return _vaccine_doses(measure, events, births)
    since = months_before(period.end, measure.modalities[0].window.months)
    if measure.numerator_type == "last_value_at_most":
        modality = measure.modalities[0]
        last = (
            matching(events, modality.value_set)
            .filter((pl.col("date") > since) & pl.col("value").is_not_null())
            .sort(["person_id", "date", "record"], descending=[False, True, False])
            .unique(subset="person_id", keep="first")
        )
        return last.select(
            "person_id",
            (pl.col("value") <= measure.threshold).alias("_closed"),
            pl.lit(None, pl.Date).alias("_expires"),
            pl.lit(None, pl.Date).alias("_due"),
            pl.lit(modality.name).alias("evidence_modality"),
            pl.col("record").alias("evidence_record"),
            pl.col("date").alias("evidence_date"),
            pl.col("code").alias("evidence_code"),
            pl.col("value").alias("evidence_value"),
        )
    # last_blood_pressure_below: the most recent day with both values; the lowest of each that day
    systolic = matching(events, measure.modalities[0].value_set).filter(pl.col("date") > since)
    diastolic = matching(events, measure.modalities[1].value_set).filter(pl.col("date") > since)
    per_day = (
        systolic.group_by("person_id", "date")
        .agg(pl.col("value").min().alias("_sys"), pl.col("record").min().alias("record"))
        .join(
            diastolic.group_by("person_id", "date").agg(pl.col("value").min().alias("_dia")),
            on=["person_id", "date"],
        )
        .sort(["person_id", "date"], descending=[False, True])
        .unique(subset="person_id", keep="first")
    )
    return per_day.select(
        "person_id",
        ((pl.col("_sys") < 140) & (pl.col("_dia") < 90)).alias("_closed"),
        pl.lit(None, pl.Date).alias("_expires"),
        pl.lit(None, pl.Date).alias("_due"),
        pl.lit("blood_pressure").alias("evidence_modality"),
        pl.col("record").alias("evidence_record"),
        pl.col("date").alias("evidence_date"),
        pl.format(
            "{}/{}", pl.col("_sys").round(0).cast(pl.Int64), pl.col("_dia").round(0).cast(pl.Int64)
        ).alias("evidence_code"),
        pl.col("_sys").alias("evidence_value"),
    )


def _vaccine_doses(measure: Measure, events: pl.DataFrame, births: pl.DataFrame) -> pl.DataFrame:
    """Every series complete by the second birthday: distinct dose days, each on or after the series'
    minimum age. A series with alternatives (rotavirus 2- or 3-dose) is complete when one of them is."""
    second_birthday = pl.col("_born").dt.offset_by("2y")
    counts = []
    for modality in measure.modalities:
        if modality.min_age_months is not None:
            earliest = pl.col("_born").dt.offset_by(f"{modality.min_age_months}mo")
        else:
            earliest = pl.col("_born") + pl.duration(days=modality.min_age_days)
        counts.append(
            matching(events, modality.value_set)
            .filter((pl.col("date") >= earliest) & (pl.col("date") <= second_birthday))
            .group_by("person_id")
            .agg(pl.col("date").n_unique().alias("_doses"), pl.col("date").max().alias("_last"))
            .with_columns(
                pl.lit(modality.group or modality.name).alias("_series"),
                (pl.col("_doses") >= modality.doses).alias("_done"),
            )
        )
    series = {m.group or m.name: m for m in measure.modalities}
    done = (
        pl.concat(counts)
        .filter(pl.col("_done"))
        .group_by("person_id")
        .agg(pl.col("_series").unique().alias("_complete"), pl.col("_last").max())
    )
    missing = pl.concat_str(
        [
            pl.when(~pl.lit(key).is_in(pl.col("_complete").fill_null([]))).then(
                pl.lit(f"{modality.name} ({modality.doses})")
            )
            for key, modality in sorted(series.items())
        ],
        separator=", ",
        ignore_nulls=True,
    )
    # every person, not only those with some event: what is missing must not depend on unrelated records
    persons = births.select("person_id").join(done, on="person_id", how="left")
    return persons.select(
        "person_id",
        (pl.col("_complete").list.len().fill_null(0) == len(series)).alias("_closed"),
        pl.lit(None, pl.Date).alias("_expires"),
        pl.lit(None, pl.Date).alias("_due"),
        pl.lit("combination").alias("evidence_modality"),
        pl.lit(None, pl.String).alias("evidence_record"),
        pl.col("_last").alias("evidence_date"),
        pl.when(missing == "")
        .then(pl.lit("complete"))
        .otherwise(pl.format("missing: {}", missing))
        .alias("evidence_code"),
        pl.lit(None, pl.Float64).alias("evidence_value"),
    )
