"""`gold/patient_360`: one row per person, everything a care manager looks at first.

Every source record of the person contributes (through `identity/person_link`); windows are counted back
from the as-of date. Columns that later layers fill (open care gaps, risk, sentiment) are present as
nulls until then, so consumers can rely on the contract today.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import polars as pl
import yaml

from pipelines.devices.gold import DEVICE_ADHERENCE, DEVICE_ALERTS, GOLD
from pipelines.fhir.birth_dates import birth_date_problem, parsed_birth_date
from pipelines.fhir.times import fhir_timestamp
from pipelines.future_dates import FUTURE_DATE, is_future
from pipelines.gold.records import PersonRecords
from pipelines.gold.utilization import (
    WINDOW_DAYS,
    encounter_times,
    known_encounters,
    last_discharge,
    window_counts,
)

CODES_FILE = Path(__file__).resolve().parents[2] / "data_contracts" / "gold" / "clinical_codes.yaml"
PATIENT_360 = "patient_360"
CHANNELS = ("phone", "sms", "email", "mail")
GUARDIAN_RELATIONSHIPS = (
    # v3-RoleCode parents and legal guardians (natural, adoptive, foster, step)
    "MTH", "FTH", "PRN", "NMTH", "NFTH", "NPRN", "ADOPTMTH", "ADOPTFTH", "ADOPTP",
    "MTHFOST", "FTHFOST", "PRNFOST", "STPMTH", "STPFTH", "STPPRN", "GRD", "GUARD",
)  # fmt: skip
GUARDIAN_COLUMNS = (
    "relationship",
    "given",
    "family",
    "phone",
    "phone_use",
    "email",
    "address_line",
    "address_city",
    "address_state",
    "address_postal_code",
)
OPEN_ALERT_DAYS = 14
"""A device alert counts as open for this many days after it fired (until care-gap work closes it)."""


@cache
def clinical_codes() -> dict:
    """Chronic condition code lists and result LOINC codes (data_contracts/gold/clinical_codes.yaml)."""
    return yaml.safe_load(CODES_FILE.read_text(encoding="utf-8"))


def build_patient_360(records: PersonRecords, as_of: date) -> pl.DataFrame:
    """The 360 view of the persons of `records` as of the end of `as_of` (UTC)."""
    persons = records.persons
    end = datetime.combine(as_of, time(23, 59, 59, 999999)).replace(tzinfo=None)
    at = pl.lit(end).dt.replace_time_zone("UTC")
    base = persons.select(
        "person_id",
        "source_records",
        "given",
        "family",
        pl.col("birth_date"),
        pl.when(birth_date_problem(pl.col("birth_date"), as_of).is_null())
        .then(_age(pl.col("birth_date"), as_of))
        .alias("age"),
        birth_date_problem(pl.col("birth_date"), as_of).alias("age_flag"),
        pl.col("gender").alias("sex"),
        "language",
        _deceased(pl.col("deceased"), as_of).alias("deceased"),
        pl.when(is_future(_death_date(pl.col("deceased")), as_of))
        .then(pl.lit(FUTURE_DATE))
        .otherwise(pl.lit(None, pl.String))
        .alias("deceased_flag"),
        "address_line",
        "address_city",
        "address_state",
        "address_postal_code",
        "phone",
        "email",
    )
    parts = [
        _contact_and_consent(records),
        _guardian(records, as_of),
        _primary_care(records, at),
        _coverage(records, as_of),
        _conditions(records),
        _medications(records),
        _latest_results(records, at),
        _utilization(records, as_of),
        _appointments(records, at),
        _devices(records, as_of),
    ]
    view = base
    for part in parts:
        view = view.join(part, on="person_id", how="left")
    # a part with no source rows (no encounters, no devices yet) still yields its columns
    view = view.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in _optional_columns().items()
        if name not in view.columns
    )
    counts = [
        c
        for c in view.columns
        if c.endswith(("_6m", "_12m")) or c in ("upcoming_appointments", "open_device_alerts")
    ]
    return view.with_columns(
        *[pl.col(f"consent_{channel}").fill_null(True) for channel in CHANNELS],  # no deny recorded
        *[
            pl.col(c).fill_null(False)
            for c in view.columns
            if c.startswith("has_") or c.endswith("_confirmed")
        ],
        *[pl.col(c).fill_null(0) for c in counts],
        pl.col("coverage_active").fill_null(False),
        pl.lit(as_of).alias("as_of"),
        pl.lit(None, pl.Int64).alias("open_care_gaps"),
        pl.lit(None, pl.Float64).alias("risk_score"),
        pl.lit(None, pl.String).alias("risk_tier"),
        pl.lit(None, pl.Float64).alias("latest_sentiment"),
    ).sort("person_id")


def _optional_columns() -> dict[str, pl.DataType]:
    """Columns that come from optional sources, with their types."""
    columns: dict[str, pl.DataType] = {
        "preferred_phone": pl.String(),
        "preferred_phone_use": pl.String(),
        "phone_confirmed": pl.Boolean(),
        "email_confirmed": pl.Boolean(),
        **{f"consent_{c}": pl.Boolean() for c in CHANNELS},
        **{f"guardian_{c}": pl.String() for c in GUARDIAN_COLUMNS},
        "pcp_practitioner_id": pl.String(),
        "pcp_attribution": pl.String(),
        "coverage_payor_id": pl.String(),
        "coverage_type": pl.String(),
        "coverage_active": pl.Boolean(),
        "active_problems": pl.List(pl.String()),
        **{f"has_{g}": pl.Boolean() for g in clinical_codes()["chronic_conditions"]},
        "active_medications": pl.List(pl.String()),
    }
    for name in clinical_codes()["latest_results"]:
        columns[f"last_{name}"] = pl.Float64()
        columns[f"last_{name}_date"] = pl.Date()
    for months in (6, 12):
        for measure in ("ed_visits", "inpatient_admissions", "outpatient_visits", "bed_days"):
            columns[f"{measure}_{months}m"] = pl.Int64()
    columns |= {
        "last_discharge_date": pl.Date(),
        "upcoming_appointments": pl.Int64(),
        "next_appointment_at": pl.Datetime("us", "UTC"),
        "missed_appointments_12m": pl.Int64(),
        "device_metrics_enrolled": pl.List(pl.String()),
        "device_min_days_with_readings_30d": pl.Int64(),
        "device_adherent": pl.Boolean(),
        "open_device_alerts": pl.Int64(),
        "open_device_alert_types": pl.List(pl.String()),
    }
    return columns


def _death_date(deceased: pl.Expr) -> pl.Expr:
    """The day of a golden `deceased` value that is a FHIR date or dateTime (null for true/false)."""
    return deceased.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def _deceased(deceased: pl.Expr, as_of: date) -> pl.Expr:
    """Whether the person is deceased as of `as_of`, from the golden `deceased` (a deceasedDateTime or a
    deceasedBoolean as text). A death dated after the as-of day plus the tolerance is not trusted (the
    one rule, pipelines/future_dates.py): not deceased, flagged in `deceased_flag`. A death claim whose
    date cannot be read still counts (a wrong "deceased" only withholds outreach; the reverse harms)."""
    return (
        pl.when(deceased.is_null() | (deceased == "false"))
        .then(False)
        .when(is_future(_death_date(deceased), as_of))
        .then(False)
        .otherwise(True)
    )


def _age(birth: pl.Expr, as_of: date) -> pl.Expr:
    """Whole years at `as_of`; callers null it where `birth_date_problem` gives a reason."""
    born = parsed_birth_date(birth)
    years = as_of.year - born.dt.year()
    before_birthday = (born.dt.month() > as_of.month) | (
        (born.dt.month() == as_of.month) & (born.dt.day() > as_of.day)
    )
    age = (years - before_birthday.cast(pl.Int32)).cast(pl.Int32)
    # a replay of an earlier day over later data meets people not born yet: they have no age on that day
    return pl.when(born > as_of).then(pl.lit(None, pl.Int32)).otherwise(age)


def _contact_and_consent(records: PersonRecords) -> pl.DataFrame:
    """Preferred phone (rank, then mobile) and per-channel consent (a Consent deny for the channel or for
    all contact makes it false)."""
    telecom = records.table("patient_telecom")
    preferred = (
        telecom.filter(pl.col("system").is_in(["phone", "sms"]))
        .sort(["person_id", "rank", "use"], nulls_last=True)
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.col("value").first().alias("preferred_phone"),
            pl.col("use").first().alias("preferred_phone_use"),
        )
        if telecom.height and "system" in telecom.columns
        else pl.DataFrame(
            schema={"person_id": pl.String, "preferred_phone": pl.String, "preferred_phone_use": pl.String}
        )
    )
    consent = records.table("consent")
    if consent.height and "provision_type" in consent.columns:
        flags = channel_consent(consent)
    else:
        flags = pl.DataFrame(
            schema={"person_id": pl.String, **{f"consent_{c}": pl.Boolean for c in CHANNELS}}
        )
    confirmed = (
        contact_confirmation(telecom)
        if telecom.height and "system" in telecom.columns
        else pl.DataFrame(
            schema={"person_id": pl.String, "phone_confirmed": pl.Boolean, "email_confirmed": pl.Boolean}
        )
    )
    out = preferred.join(flags, on="person_id", how="full", coalesce=True).join(
        confirmed, on="person_id", how="full", coalesce=True
    )
    return out.with_columns(pl.col(f"consent_{c}").fill_null(True) for c in CHANNELS)


def _guardian(records: PersonRecords, as_of: date) -> pl.DataFrame:
    """The first current parent or guardian among the person's Patient.contact entries (lowest source,
    then position), with their name and contact points: outreach to a minor goes to them."""
    contacts = records.table("patient_contact")
    schema = {"person_id": pl.String, **{f"guardian_{c}": pl.String for c in GUARDIAN_COLUMNS}}
    if not contacts.height or "relationship_code" not in contacts.columns:
        return pl.DataFrame(schema=schema)
    ended = pl.col("period_end").str.slice(0, 10).str.to_date(strict=False) < as_of
    current = contacts.filter(
        pl.col("relationship_code").is_in(GUARDIAN_RELATIONSHIPS)
        & ~ended.fill_null(False)
        & (
            pl.col("phone").is_not_null()
            | pl.col("email").is_not_null()
            | pl.col("address_line").is_not_null()
        )
    )
    chosen = (
        current.sort(["person_id", "source", "patient_id", "contact_index"])
        .group_by("person_id", maintain_order=True)
        .first()
    )
    return chosen.select(
        "person_id",
        pl.col("relationship_code").alias("guardian_relationship"),
        *[pl.col(c).cast(pl.String).alias(f"guardian_{c}") for c in GUARDIAN_COLUMNS[1:]],
    )


def channel_consent(consent: pl.DataFrame) -> pl.DataFrame:
    """Per person and channel: false when an active Consent denies that channel or all contact."""
    denied = consent.filter((pl.col("status") == "active") & (pl.col("provision_type") == "deny"))
    return denied.group_by("person_id").agg(
        [
            ~pl.col("provision_code").is_in([channel, "all"]).any().alias(f"consent_{channel}")
            for channel in CHANNELS
        ]
    )


def contact_confirmation(telecom: pl.DataFrame) -> pl.DataFrame:
    """A phone or e-mail counts as confirmed when two independent sources of the person hold the same
    value (FHIR has no verification flag; agreement between systems is the evidence we have)."""
    normalized = telecom.with_columns(
        pl.when(pl.col("system").is_in(["phone", "sms"]))
        .then(pl.col("value").str.replace_all(r"[^0-9]", "").str.slice(-10))
        .otherwise(pl.col("value").str.strip_chars().str.to_lowercase())
        .alias("_value"),
        pl.when(pl.col("system").is_in(["phone", "sms"]))
        .then(pl.lit("phone"))
        .otherwise(pl.col("system"))
        .alias("_kind"),
    ).filter(pl.col("_kind").is_in(["phone", "email"]))
    shared = (
        normalized.group_by("person_id", "_kind", "_value")
        .agg(pl.col("source").n_unique().alias("_sources"))
        .group_by("person_id")
        .agg(
            ((pl.col("_kind") == "phone") & (pl.col("_sources") >= 2)).any().alias("phone_confirmed"),
            ((pl.col("_kind") == "email") & (pl.col("_sources") >= 2)).any().alias("email_confirmed"),
        )
    )
    return shared


def _primary_care(records: PersonRecords, at: pl.Expr) -> pl.DataFrame:
    """Patient.generalPractitioner, else the practitioner of most outpatient visits in 24 months."""
    patients = records.table("patient")
    named = (
        patients.drop_nulls("general_practitioner_id")
        .group_by("person_id")
        .agg(pl.col("general_practitioner_id").sort().first().alias("_named"))
        if "general_practitioner_id" in patients.columns
        else pl.DataFrame(schema={"person_id": pl.String, "_named": pl.String})
    )
    encounters = records.table("encounter")
    if encounters.height and "class_code" in encounters.columns:
        start = fhir_timestamp(pl.col("period_start"))
        visits = (
            encounters.filter(
                (pl.col("class_code") == "AMB")
                & pl.col("practitioner_id").is_not_null()
                & (start <= at)
                & (start > at - pl.duration(days=730))
            )
            .group_by("person_id", "practitioner_id")
            .agg(pl.len().alias("n"))
            .sort(["person_id", "n", "practitioner_id"], descending=[False, True, False])
            .group_by("person_id", maintain_order=True)
            .agg(pl.col("practitioner_id").first().alias("_visited"))
        )
    else:
        visits = pl.DataFrame(schema={"person_id": pl.String, "_visited": pl.String})
    both = named.join(visits, on="person_id", how="full", coalesce=True)
    return both.select(
        "person_id",
        pl.coalesce("_named", "_visited").alias("pcp_practitioner_id"),
        pl.when(pl.col("_named").is_not_null())
        .then(pl.lit("general_practitioner"))
        .when(pl.col("_visited").is_not_null())
        .then(pl.lit("most_visits_24_months"))
        .alias("pcp_attribution"),
    )


def _coverage(records: PersonRecords, as_of: date) -> pl.DataFrame:
    coverage = records.table("coverage")
    if not coverage.height or "status" not in coverage.columns:
        return pl.DataFrame(
            schema={
                "person_id": pl.String,
                "coverage_payor_id": pl.String,
                "coverage_type": pl.String,
                "coverage_active": pl.Boolean,
            }
        )
    end = pl.col("period_end").str.slice(0, 10).str.to_date(strict=False)
    start = pl.col("period_start").str.slice(0, 10).str.to_date(strict=False)
    active = coverage.filter(
        (pl.col("status") == "active")
        & (end.is_null() | (end >= as_of))
        & (start.is_null() | (start <= as_of))
    )
    chosen = (
        active.sort(["person_id", "period_start"], descending=[False, True], nulls_last=True)
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.col("payor_id").first().alias("coverage_payor_id"),
            pl.col("type_code").first().alias("coverage_type"),
        )
    )
    return chosen.with_columns(pl.lit(True).alias("coverage_active"))


def _conditions(records: PersonRecords) -> pl.DataFrame:
    """Active problem list (displays) and a flag per chronic condition."""
    conditions = records.table("condition")
    groups = clinical_codes()["chronic_conditions"]
    if not conditions.height or "clinical_status" not in conditions.columns:
        return pl.DataFrame(
            schema={
                "person_id": pl.String,
                "active_problems": pl.List(pl.String),
                **{f"has_{g}": pl.Boolean for g in groups},
            }
        )
    active = conditions.filter(pl.col("clinical_status").is_null() | (pl.col("clinical_status") == "active"))
    snomed = pl.col("code_system") == "http://snomed.info/sct"
    icd = pl.col("code_system") == "http://hl7.org/fhir/sid/icd-10-cm"
    flags = []
    for name, lists in groups.items():
        in_group = (snomed & pl.col("code").is_in(lists["snomed"])) | (
            icd & pl.any_horizontal([pl.col("code").str.starts_with(p) for p in lists["icd10cm"]])
        )
        flags.append(in_group.any().alias(f"has_{name}"))
    return active.group_by("person_id").agg(
        pl.col("code_display").drop_nulls().unique().sort().alias("active_problems"), *flags
    )


def _medications(records: PersonRecords) -> pl.DataFrame:
    meds = records.table("medication_request")
    if not meds.height or "status" not in meds.columns:
        return pl.DataFrame(schema={"person_id": pl.String, "active_medications": pl.List(pl.String)})
    return (
        meds.filter(pl.col("status") == "active")
        .group_by("person_id")
        .agg(pl.col("medication_display").drop_nulls().unique().sort().alias("active_medications"))
    )


def result_values(records: PersonRecords) -> pl.DataFrame:
    """Every numeric result of clinical_codes.yaml `latest_results` (observations and components):
    `person_id`, `result`, `value`, `at` (UTC)."""
    results = clinical_codes()["latest_results"]
    codes = pl.DataFrame(
        [(code, name) for name, codes_ in results.items() for code in codes_],
        schema={"code": pl.String, "result": pl.String},
        orient="row",
    )
    frames = []
    for table in ("observation", "observation_component"):
        rows = records.table(table)
        if rows.height and "code" in rows.columns:
            frames.append(
                rows.select(
                    "person_id",
                    "code",
                    pl.col("value_quantity_value").cast(pl.Float64).alias("value"),
                    fhir_timestamp(pl.col("effective_date_time")).alias("at"),
                )
            )
    if not frames:
        return pl.DataFrame(
            schema={
                "person_id": pl.String,
                "result": pl.String,
                "value": pl.Float64,
                "at": pl.Datetime("us", "UTC"),
            }
        )
    return (
        pl.concat(frames)
        .join(codes, on="code")
        .filter(pl.col("value").is_not_null() & pl.col("at").is_not_null())
        .select("person_id", "result", "value", "at")
    )


def _latest_results(records: PersonRecords, at: pl.Expr) -> pl.DataFrame:
    """The latest value and date of each result up to the as-of date (observations and components)."""
    results = clinical_codes()["latest_results"]
    empty = pl.DataFrame(schema={"person_id": pl.String})
    values = (
        result_values(records)
        .filter(pl.col("at") <= at)
        .sort(["person_id", "result", "at"], descending=[False, False, True])
        .group_by("person_id", "result", maintain_order=True)
        .agg(pl.col("value").first(), pl.col("at").first().dt.date().alias("date"))
    )
    wide = empty.join(values.select("person_id").unique(), on="person_id", how="full", coalesce=True)
    for name in results:
        part = values.filter(pl.col("result") == name).select(
            "person_id", pl.col("value").alias(f"last_{name}"), pl.col("date").alias(f"last_{name}_date")
        )
        wide = wide.join(part, on="person_id", how="left")
    return wide


def _utilization(records: PersonRecords, as_of: date) -> pl.DataFrame:
    """ED visits, inpatient admissions and bed days, outpatient visits in 6 and 12 months; last discharge
    (the shared definition of `pipelines/gold/utilization.py`, which the risk features also use)."""
    cutoff = datetime.combine(as_of + timedelta(days=1), time())
    points = records.persons.select("person_id", pl.lit(cutoff).dt.replace_time_zone("UTC").alias("cutoff"))
    known = known_encounters(encounter_times(records), points)
    if not known.height:
        return pl.DataFrame(schema={"person_id": pl.String})
    windows = {name: WINDOW_DAYS[name] for name in ("6m", "12m")}
    return known.group_by("person_id").agg(
        *[count.cast(pl.Int64) for count in window_counts(windows)],
        last_discharge().dt.date().alias("last_discharge_date"),
    )


def _appointments(records: PersonRecords, at: pl.Expr) -> pl.DataFrame:
    appointments = records.table("appointment")
    if not appointments.height or "status" not in appointments.columns:
        return pl.DataFrame(schema={"person_id": pl.String})
    start = fhir_timestamp(pl.col("start_time"))
    upcoming = pl.col("status").is_in(["booked", "pending", "proposed", "arrived", "checked-in"]) & (
        start > at
    )
    missed = (pl.col("status") == "noshow") & (start <= at) & (start > at - pl.duration(days=365))
    return appointments.group_by("person_id").agg(
        upcoming.sum().cast(pl.Int64).alias("upcoming_appointments"),
        start.filter(upcoming).min().alias("next_appointment_at"),
        missed.sum().cast(pl.Int64).alias("missed_appointments_12m"),
    )


def _devices(records: PersonRecords, as_of: date) -> pl.DataFrame:
    adherence = records.table(DEVICE_ADHERENCE, layer=GOLD)
    alerts = records.table(DEVICE_ALERTS, layer=GOLD)
    out = pl.DataFrame(schema={"person_id": pl.String})
    if adherence.height and "adherent" in adherence.columns:
        out = out.join(
            adherence.group_by("person_id").agg(
                pl.col("metric").sort().alias("device_metrics_enrolled"),
                pl.col("days_with_readings").min().alias("device_min_days_with_readings_30d"),
                pl.col("adherent").all().alias("device_adherent"),
            ),
            on="person_id",
            how="full",
            coalesce=True,
        )
    if alerts.height and "alert" in alerts.columns:
        since = as_of - timedelta(days=OPEN_ALERT_DAYS - 1)
        recent = alerts.filter(pl.col("day").is_between(since, as_of))
        out = out.join(
            recent.group_by("person_id").agg(
                pl.len().cast(pl.Int64).alias("open_device_alerts"),
                pl.col("alert").unique().sort().alias("open_device_alert_types"),
            ),
            on="person_id",
            how="full",
            coalesce=True,
        )
    return out
