"""Tables derived from device readings: daily aggregates, adherence, and device alerts.

All three use plausible, dated readings of linked patients only (implausible readings are kept in
`device_reading` with a flag but never move an average or fire an alert). Days are the patient's local
days: the reading's recorded UTC offset is applied before taking the date.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from pipelines.devices.vendors import zones

PATIENT = ["patient_source", "patient_id"]
ADHERENCE_WINDOW_DAYS = 30
ADHERENT_DAYS = 16
"""Days with readings in 30 that count as adherent (the common remote-monitoring billing threshold)."""

DAILY_TOTAL_HOURS = 20
"""A step count covering at least this long is a day's total (vendors write 23:59:59 or 24 h intervals)."""

DEVICE_TYPE_METRICS = {
    "blood_pressure_monitor": "systolic_blood_pressure",
    "glucometer": "blood_glucose",
    "weight_scale": "body_weight",
    "activity_tracker": "step_count",
    "pulse_oximeter": "oxygen_saturation",
    "thermometer": "body_temperature",
}
"""The metric an enrolled device type is expected to send (adherence is measured on it)."""

HEART_FAILURE_CODES = {
    "http://snomed.info/sct": ["84114007", "42343007", "88805009", "85232009", "703272007", "5148006"],
    "http://hl7.org/fhir/sid/icd-10-cm": ["I50"],  # prefix: every I50.x code
}


def usable(readings: pl.DataFrame) -> pl.DataFrame:
    """Plausible, dated, single-value readings of linked patients, with their local `day` (step counts:
    daily totals only). The day is taken in the reading's zone, an offset (`-07:00`) or an IANA name (a
    day-level reading from midnight to midnight in Europe/Berlin counts for that Berlin day); a reading
    without a usable zone counts for its UTC day."""
    # step counts come as daily totals and as intraday slots covering the same walking: keep the totals
    partial_steps = (pl.col("metric") == "step_count") & (
        pl.col("effective_end").is_null()
        | (pl.col("effective_end") - pl.col("effective_start") < timedelta(hours=DAILY_TOTAL_HOURS))
    )
    kept = readings.filter(
        pl.col("plausible") & pl.col("effective_start").is_not_null() & pl.col("patient_id").is_not_null()
    ).filter(pl.col("statistic").is_null() & ~partial_steps)
    start = pl.col("effective_start")
    local = zones(kept, pl.col("time_zone")).local(start)
    return kept.with_columns(pl.coalesce(local, start.dt.replace_time_zone(None)).dt.date().alias("day"))


def daily_aggregates(readings: pl.DataFrame) -> pl.DataFrame:
    """Per patient, metric and local day: count, mean, min, max and the first and last value."""
    return (
        usable(readings)
        .sort("effective_start")
        .group_by(*PATIENT, "metric", "unit", "day")
        .agg(
            pl.len().cast(pl.Int64).alias("readings"),
            pl.col("value").mean().alias("mean"),
            pl.col("value").min().alias("min"),
            pl.col("value").max().alias("max"),
            pl.col("value").first().alias("first"),
            pl.col("value").last().alias("last"),
        )
        .sort(*PATIENT, "metric", "day")
    )


def adherence(readings: pl.DataFrame, enrolment: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per enrolment active on `as_of` and its metric: days with readings in the 30 days ending `as_of`."""
    start = as_of - timedelta(days=ADHERENCE_WINDOW_DAYS - 1)
    active = (
        enrolment.filter(
            (pl.col("enrolled_on").is_null() | (pl.col("enrolled_on") <= as_of))
            & (pl.col("unenrolled_on").is_null() | (pl.col("unenrolled_on") >= as_of))
        )
        .with_columns(pl.col("device_type").replace_strict(DEVICE_TYPE_METRICS, default=None).alias("metric"))
        .filter(pl.col("metric").is_not_null())
        .select(*PATIENT, "metric")
        .unique()
    )
    days = (
        usable(readings)
        .filter(pl.col("day").is_between(start, as_of))
        .group_by(*PATIENT, "metric")
        .agg(pl.col("day").n_unique().cast(pl.Int64).alias("days_with_readings"))
    )
    return (
        active.join(days, on=[*PATIENT, "metric"], how="left")
        .with_columns(
            pl.col("days_with_readings").fill_null(0),
            pl.lit(as_of).alias("as_of"),
            pl.lit(ADHERENCE_WINDOW_DAYS, pl.Int64).alias("window_days"),
        )
        .with_columns((pl.col("days_with_readings") >= ADHERENT_DAYS).alias("adherent"))
        .sort(*PATIENT, "metric")
    )


ALERT_SCHEMA: dict[str, pl.DataType] = {
    "patient_source": pl.String(),
    "patient_id": pl.String(),
    "alert": pl.String(),  # hypertensive_urgency | sustained_hypertension | hypoglycemia | ...
    "triggered_at": pl.Datetime("us", "UTC"),
    "day": pl.Date(),
    "value": pl.Float64(),  # the value that crossed the threshold (mean / gain for window rules)
    "threshold": pl.String(),
    "reading_ids": pl.List(pl.String()),  # the readings that fired it
}


def device_alerts(readings: pl.DataFrame, heart_failure_patients: pl.DataFrame) -> pl.DataFrame:
    """Trigger events from device readings (ALERT_SCHEMA); `heart_failure_patients` has PATIENT columns."""
    ok = usable(readings)
    alerts = [
        _hypertensive_urgency(ok),
        _sustained_hypertension(ok),
        _single(ok, "blood_glucose", pl.col("value") < 54, "hypoglycemia", "glucose < 54 mg/dL"),
        _single(ok, "blood_glucose", pl.col("value") > 300, "hyperglycemia", "glucose > 300 mg/dL"),
        _single(ok, "oxygen_saturation", pl.col("value") < 90, "low_oxygen_saturation", "SpO2 < 90 %"),
        _weight_gain(ok.join(heart_failure_patients.select(PATIENT).unique(), on=PATIENT, how="semi")),
    ]
    return pl.concat([a.select([pl.col(n).cast(t) for n, t in ALERT_SCHEMA.items()]) for a in alerts]).sort(
        *PATIENT, "triggered_at", "alert"
    )


def _single(ok: pl.DataFrame, metric: str, fires: pl.Expr, alert: str, threshold: str) -> pl.DataFrame:
    return ok.filter((pl.col("metric") == metric) & fires).select(
        *PATIENT,
        pl.lit(alert).alias("alert"),
        pl.col("effective_start").alias("triggered_at"),
        "day",
        "value",
        pl.lit(threshold).alias("threshold"),
        pl.concat_list(pl.col("reading_id")).alias("reading_ids"),
    )


def _hypertensive_urgency(ok: pl.DataFrame) -> pl.DataFrame:
    """One cuff reading (systolic and diastolic of one group) at or above 180/120."""
    bp = ok.filter(pl.col("metric").is_in(["systolic_blood_pressure", "diastolic_blood_pressure"]))
    groups = bp.group_by(*PATIENT, "group_id").agg(
        pl.col("value").filter(pl.col("metric") == "systolic_blood_pressure").first().alias("systolic"),
        pl.col("value").filter(pl.col("metric") == "diastolic_blood_pressure").first().alias("diastolic"),
        pl.col("effective_start").min().alias("triggered_at"),
        pl.col("day").min().alias("day"),
        pl.col("reading_id").sort().alias("reading_ids"),
    )
    return groups.filter((pl.col("systolic") >= 180) | (pl.col("diastolic") >= 120)).select(
        *PATIENT,
        pl.lit("hypertensive_urgency").alias("alert"),
        "triggered_at",
        "day",
        pl.col("systolic").alias("value"),
        pl.lit("systolic >= 180 or diastolic >= 120 mm[Hg]").alias("threshold"),
        "reading_ids",
    )


SUSTAINED_MIN_DAYS = 3
"""Days with readings a 7-day window needs before its average can raise a sustained-hypertension alert."""


def _sustained_hypertension(ok: pl.DataFrame) -> pl.DataFrame:
    """The 7-day average (of daily means) at or above 140 systolic or 90 diastolic, with readings on at
    least 3 of those days; raised on the first day of each run of such days (not again every day)."""
    bp = ok.filter(pl.col("metric").is_in(["systolic_blood_pressure", "diastolic_blood_pressure"]))
    daily = (
        bp.group_by(*PATIENT, "day")
        .agg(
            pl.col("value").filter(pl.col("metric") == "systolic_blood_pressure").mean().alias("sys"),
            pl.col("value").filter(pl.col("metric") == "diastolic_blood_pressure").mean().alias("dia"),
            pl.col("effective_start").max().alias("last_at"),
        )
        .sort(*PATIENT, "day")
    )
    windows = (
        daily.rolling("day", period="7d", group_by=PATIENT)
        .agg(
            pl.col("sys").mean().alias("sys7"),
            pl.col("dia").mean().alias("dia7"),
            pl.len().alias("days"),
            pl.col("last_at").max().alias("triggered_at"),
        )
        .with_columns(
            (
                ((pl.col("sys7") >= 140) | (pl.col("dia7") >= 90)) & (pl.col("days") >= SUSTAINED_MIN_DAYS)
            ).alias("high")
        )
        .sort(*PATIENT, "day")
    )
    starts = windows.filter(pl.col("high") & ~pl.col("high").shift(1).over(PATIENT).fill_null(False))
    ids = (
        starts.select(*PATIENT, "day")
        .join(bp.select(*PATIENT, pl.col("day").alias("reading_day"), "reading_id"), on=PATIENT)
        .filter(pl.col("reading_day").is_between(pl.col("day") - timedelta(days=6), pl.col("day")))
        .group_by(*PATIENT, "day")
        .agg(pl.col("reading_id").sort().alias("reading_ids"))
    )
    return starts.join(ids, on=[*PATIENT, "day"], how="left").select(
        *PATIENT,
        pl.lit("sustained_hypertension").alias("alert"),
        "triggered_at",
        "day",
        pl.col("sys7").alias("value"),
        pl.lit("7-day mean >= 140/90 mm[Hg] on >= 3 days").alias("threshold"),
        "reading_ids",
    )


def _weight_gain(ok: pl.DataFrame) -> pl.DataFrame:
    """More than 2 kg above the lowest weight of the previous 3 days (heart-failure patients)."""
    weights = ok.filter(pl.col("metric") == "body_weight").select(
        *PATIENT, "day", "effective_start", "value", "reading_id"
    )
    earlier = weights.select(
        *PATIENT,
        pl.col("day").alias("earlier_day"),
        pl.col("value").alias("earlier_value"),
        pl.col("reading_id").alias("earlier_id"),
    )
    pairs = weights.join(earlier, on=PATIENT).filter(
        (pl.col("earlier_day") < pl.col("day")) & (pl.col("earlier_day") >= pl.col("day") - timedelta(days=3))
    )
    lowest = (
        pairs.sort("earlier_value", "earlier_id")
        .group_by(*PATIENT, "reading_id")
        .agg(
            pl.col("earlier_value").first().alias("baseline"),
            pl.col("earlier_id").first().alias("baseline_id"),
            pl.col("day").first(),
            pl.col("effective_start").first(),
            pl.col("value").first(),
        )
        .with_columns((pl.col("value") - pl.col("baseline")).alias("gain"))
        .filter(pl.col("gain") > 2.0)
    )
    first_per_day = lowest.sort("effective_start", "reading_id").unique(
        subset=[*PATIENT, "day"], keep="first"
    )
    return first_per_day.select(
        *PATIENT,
        pl.lit("weight_gain_heart_failure").alias("alert"),
        pl.col("effective_start").alias("triggered_at"),
        "day",
        pl.col("gain").alias("value"),
        pl.lit("gain > 2 kg within 3 days").alias("threshold"),
        pl.concat_list("baseline_id", "reading_id").alias("reading_ids"),
    )


def heart_failure_patients(conditions: pl.LazyFrame) -> pl.DataFrame:
    """Patients (source, patient_id) with a heart-failure diagnosis in silver `condition`."""
    snomed = pl.col("code_system") == "http://snomed.info/sct"
    icd = pl.col("code_system") == "http://hl7.org/fhir/sid/icd-10-cm"
    is_hf = (snomed & pl.col("code").is_in(HEART_FAILURE_CODES["http://snomed.info/sct"])) | (
        icd & pl.col("code").str.starts_with("I50")
    )
    return (
        conditions.filter(is_hf & pl.col("patient_id").is_not_null())
        .select(pl.col("source").alias("patient_source"), "patient_id")
        .unique()
        .collect()
    )
