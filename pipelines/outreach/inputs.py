"""What campaign selection reads from the lake: the current members of a campaign's segments and, for
those persons only, their patient_360 row with the campaign's open gaps, hospice status, recent triggers,
source MRNs, the opt-outs received from outreach systems (applied to the `consent_<channel>` columns) and
the contact points that bounced. Every read is a lazy scan over all person buckets with the member ids
pushed down."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from upath import UPath

from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.patient_360 import PATIENT_360
from pipelines.identity.build import IDENTITY, PERSON_LINK
from pipelines.lake import parquet_files, scan_table, table_path
from pipelines.measures.build import CARE_GAPS
from pipelines.outreach.campaigns import CHANNELS, Campaign
from pipelines.outreach.responses import COMMUNICATION_OPT_OUT, INVALID_CONTACT_POINT
from pipelines.segments.build import SEGMENT_MEMBERSHIP
from pipelines.segments.engine import segment_titles
from pipelines.segments.triggers import TRIGGER_EVENTS
from pipelines.silver.build import SILVER

GOLD = "gold"
RECENT_TRIGGER_DAYS = 7
MRN_TYPE = "MR"
UPCOMING_STATUSES = ["booked", "pending", "proposed", "arrived", "checked-in"]


def _scan(lake: UPath, layer: str, table: str) -> pl.LazyFrame | None:
    return scan_table(lake, layer, table) if parquet_files(table_path(lake, layer, table)) else None


def campaign_members(lake: UPath, campaign: Campaign) -> pl.DataFrame:
    """person_id, segment_id, reason (the segment's title) of every current member of the campaign's
    segments."""
    schema = {"person_id": pl.String, "segment_id": pl.String, "reason": pl.String}
    membership = _scan(lake, GOLD, SEGMENT_MEMBERSHIP)
    if membership is None:
        return pl.DataFrame(schema=schema)
    titles = segment_titles()
    return (
        membership.filter(pl.col("segment_id").is_in(list(campaign.segments)) & pl.col("exited").is_null())
        .select("person_id", "segment_id")
        .unique()
        .collect()
        .with_columns(pl.col("segment_id").replace_strict(titles, default=None).alias("reason"))
        .sort("person_id", "segment_id")
    )


def campaign_people(lake: UPath, campaign: Campaign, person_ids: pl.Series, as_of: date) -> pl.DataFrame:
    """patient_360 rows of `person_ids` with days_overdue, gap_ids and due_dates of the campaign's open
    gaps (all open gaps when the campaign names no measure), in_hospice, recent_trigger,
    appointment_booked (a visit of the campaign's closing types booked soon) and source_identifiers (MRNs
    as `system|value`)."""
    ids = person_ids.unique().implode()
    view = _scan(lake, GOLD, PATIENT_360)
    if view is None or person_ids.is_empty():
        return pl.DataFrame(schema={"person_id": pl.String})
    people = apply_opt_outs(view.filter(pl.col("person_id").is_in(ids)).collect(), opt_outs(lake, ids))
    return (
        people.join(_gaps(lake, campaign, ids), on="person_id", how="left")
        .join(_invalid_contacts(lake, ids), on="person_id", how="left")
        .join(_recent_triggers(lake, ids, as_of), on="person_id", how="left")
        .join(_mrns(lake, ids), on="person_id", how="left")
        .join(_closing_appointments(lake, campaign, ids, as_of), on="person_id", how="left")
        .with_columns(
            pl.col("appointment_booked").fill_null(False),
            pl.col("in_hospice").fill_null(False),
            pl.col("recent_trigger").fill_null(False),
            pl.col("days_overdue").fill_null(0),
        )
    )


def opt_outs(lake: UPath, ids: pl.Series) -> pl.DataFrame:
    """person_id, channel of the opt-outs received from outreach systems for the persons `ids` (imploded:
    one list of person ids)."""
    table = _scan(lake, GOLD, COMMUNICATION_OPT_OUT)
    if table is None:
        return pl.DataFrame(schema={"person_id": pl.String, "channel": pl.String})
    return table.filter(pl.col("person_id").is_in(ids)).select("person_id", "channel").collect()


def apply_opt_outs(people: pl.DataFrame, opted_out: pl.DataFrame) -> pl.DataFrame:
    """`consent_<channel>` set to False where the person opted out of the channel through an outreach
    system (a Consent resource's deny stays as it is)."""
    if opted_out.is_empty():
        return people
    flags = opted_out.with_columns(pl.lit(True).alias("_out")).pivot(
        "channel", index="person_id", values="_out", aggregate_function="max"
    )
    flags = flags.rename({c: f"_out_{c}" for c in flags.columns if c != "person_id"})
    joined = people.join(flags, on="person_id", how="left")
    return joined.with_columns(
        (pl.col(f"consent_{c}").fill_null(True) & ~pl.col(f"_out_{c}").fill_null(False)).alias(f"consent_{c}")
        for c in CHANNELS
        if f"_out_{c}" in joined.columns and f"consent_{c}" in joined.columns
    ).drop([c for c in joined.columns if c.startswith("_out_")])


def _invalid_contacts(lake: UPath, ids: pl.Series) -> pl.DataFrame:
    """person_id, invalid_contacts (`<channel>|<contact point>` that bounced)."""
    schema = {"person_id": pl.String, "invalid_contacts": pl.List(pl.String)}
    table = _scan(lake, GOLD, INVALID_CONTACT_POINT)
    if table is None:
        return pl.DataFrame(schema=schema)
    return (
        table.filter(pl.col("person_id").is_in(ids))
        .group_by("person_id")
        .agg(pl.format("{}|{}", "channel", "contact").sort().alias("invalid_contacts"))
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def _gaps(lake: UPath, campaign: Campaign, ids: pl.Series) -> pl.DataFrame:
    schema = {
        "person_id": pl.String,
        "gap_ids": pl.List(pl.String),
        "due_dates": pl.List(pl.Date),
        "days_overdue": pl.Int64,
        "in_hospice": pl.Boolean,
    }
    gaps = _scan(lake, GOLD, CARE_GAPS)
    if gaps is None:
        return pl.DataFrame(schema=schema)
    mine = pl.col("measure_id").is_in(list(campaign.measures)) if campaign.measures else pl.lit(True)
    is_open = (pl.col("status") == "open-gap") & mine
    return (
        gaps.filter(pl.col("person_id").is_in(ids))
        .sort("person_id", "measure_id")
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.format("{}-{}", "measure_id", pl.col("period_end").dt.year()).filter(is_open).alias("gap_ids"),
            pl.col("due_date").filter(is_open).alias("due_dates"),
            pl.col("days_overdue").filter(is_open).max().cast(pl.Int64).alias("days_overdue"),
            (pl.col("exclusion_reason") == "hospice").any().alias("in_hospice"),
        )
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def _recent_triggers(lake: UPath, ids: pl.Series, as_of: date) -> pl.DataFrame:
    events = _scan(lake, GOLD, TRIGGER_EVENTS)
    if events is None:
        return pl.DataFrame(schema={"person_id": pl.String, "recent_trigger": pl.Boolean})
    since = as_of - timedelta(days=RECENT_TRIGGER_DAYS - 1)
    return (
        events.filter(pl.col("person_id").is_in(ids) & pl.col("time").dt.date().is_between(since, as_of))
        .select("person_id", pl.lit(True).alias("recent_trigger"))
        .unique()
        .collect()
    )


def _linked(lake: UPath, ids: pl.Series) -> pl.LazyFrame | None:
    """(source, source_patient_id, person_id) of the persons `ids`."""
    links = _scan(lake, IDENTITY, PERSON_LINK)
    if links is None:
        return None
    return links.filter(pl.col("person_id").is_in(ids)).select("source", "source_patient_id", "person_id")


def _closing_appointments(lake: UPath, campaign: Campaign, ids: pl.Series, as_of: date) -> pl.DataFrame:
    """Persons with a booked appointment of a closing type (appointment or service type code) starting
    after the as-of day and within the campaign's `closing_appointments.within_days`."""
    schema = {"person_id": pl.String, "appointment_booked": pl.Boolean}
    mine, appointments = _linked(lake, ids), _scan(lake, SILVER, "appointment")
    if mine is None or appointments is None:
        return pl.DataFrame(schema=schema)
    start = fhir_timestamp(pl.col("start_time")).dt.date()
    closing = list(campaign.closing_types)
    return (
        appointments.filter(
            pl.col("status").is_in(UPCOMING_STATUSES)
            & start.is_between(
                as_of + timedelta(days=1), as_of + timedelta(days=campaign.closing_within_days)
            )
            & (pl.col("appointment_type_code").is_in(closing) | pl.col("service_type_code").is_in(closing))
        )
        .join(mine, left_on=["source", "patient_id"], right_on=["source", "source_patient_id"])
        .select("person_id", pl.lit(True).alias("appointment_booked"))
        .unique()
        .collect()
    )


def _mrns(lake: UPath, ids: pl.Series) -> pl.DataFrame:
    schema = {"person_id": pl.String, "source_identifiers": pl.List(pl.String)}
    mine, identifiers = _linked(lake, ids), _scan(lake, SILVER, "patient_identifier")
    if mine is None or identifiers is None:
        return pl.DataFrame(schema=schema)
    return (
        identifiers.filter(pl.col("type_code") == MRN_TYPE)
        .join(mine, left_on=["source", "patient_id"], right_on=["source", "source_patient_id"])
        .select("person_id", pl.format("{}|{}", "system", "value").alias("identifier"))
        .unique()
        .sort("person_id", "identifier")
        .group_by("person_id", maintain_order=True)
        .agg(pl.col("identifier").alias("source_identifiers"))
        .collect()
    )
