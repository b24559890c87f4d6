"""Outcome events from outreach systems, resolved against our campaigns, runs and persons
(`gold/outreach_events`), and what they teach the next selection: per-channel opt-outs
(`gold/communication_opt_out`) and contact points that bounced (`gold/invalid_contact_point`).

Bronze (`bronze/outreach_events`) holds every delivered event as received. Here each one either becomes a
resolved event or a row of `gold/outreach_events_quarantine` with a reason, in this order:

| reason | meaning |
| --- | --- |
| `duplicate_event` | the same event id was delivered before (the earliest delivery is kept) |
| `unknown_campaign` | no campaign of ours has this id |
| `unknown_run` | the campaign has no export run with this id |
| `person_mismatch` | the person id and the source identifier name different persons |
| `ambiguous_person` | the source identifier belongs to more than one person |
| `unknown_person` | neither the person id nor the source identifier is known |
| `holdout_person` | the person was held out of that run: they must not have been contacted |
| `not_in_run` | the person was not on that run's list |
| `future_date` | `occurred_at` lies more than the tolerance after the as-of day (`future_dates.py`) |

An event from the future (a vendor clock set wrong, a year typed 2030) is never trusted: a `START` dated
2030 would otherwise cancel a real, earlier `STOP` for ever, and a future `delivered` would clear a real
bounce. Such events are quarantined as `future_date` (last in the order: an event that cannot be about our
runs keeps that reason) and count in no opt-out, bounce or funnel figure; bronze keeps them as received.

Opt-outs: an `opted-out` event, or a reply whose keyword is STOP, opts the person out of that channel for
every campaign; a later reply START opts them in again. Each opt-out is kept with its source, file, line,
campaign, run and time. A `bounced` event marks the contact point the run used as invalid for that channel,
until a later event shows the same contact point working (delivered, opened, clicked, replied, booked).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.future_dates import FUTURE_DATE, future_reason, is_future

OUTREACH_EVENTS = "outreach_events"
OUTREACH_EVENTS_QUARANTINE = "outreach_events_quarantine"
COMMUNICATION_OPT_OUT = "communication_opt_out"
INVALID_CONTACT_POINT = "invalid_contact_point"
REJECT_REASONS = {
    "duplicate_event": "the same event id was delivered before",
    "unknown_campaign": "no campaign has this id",
    "unknown_run": "the campaign has no export run with this id",
    "person_mismatch": "the person id and the source identifier name different persons",
    "ambiguous_person": "the source identifier belongs to more than one person",
    "unknown_person": "neither the person id nor the source identifier is known",
    "holdout_person": "the person was held out of this run and must not have been contacted",
    "not_in_run": "the person was not on this run's list",
}
"""Reason codes and texts; `future_date`, whose text names the as-of day and the tolerance, is added by
`resolve_events` (`future_reason`)."""
WORKING = ("delivered", "opened", "clicked", "replied", "booked")
"""Events that show a contact point reached the person."""
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "person_id": pl.String(),
    "channel": pl.String(),
    "event": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),
    "reply_keyword": pl.String(),
    "contact": pl.String(),  # the contact point the run used for the person (null: another channel)
    "source": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
}
REJECT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "source": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
    "reason_code": pl.String(),
    "reason": pl.String(),
}
OPT_OUT_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "channel": pl.String(),
    "opted_out_at": pl.Datetime("us", "UTC"),
    "how": pl.String(),  # opted-out event | reply STOP
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "event_id": pl.String(),
    "source": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
}
INVALID_CONTACT_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "channel": pl.String(),
    "contact": pl.String(),
    "bounced_at": pl.Datetime("us", "UTC"),
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "event_id": pl.String(),
}
_BRONZE_COLUMNS = (
    "event_id",
    "campaign_id",
    "run_id",
    "person_id",
    "source_identifier",
    "channel",
    "event",
    "occurred_at",
    "reply_keyword",
    "source",
    "file",
    "line",
)


def resolve_events(
    bronze: pl.DataFrame,
    campaign_ids: list[str],
    assignments: pl.DataFrame,
    persons: pl.Series,
    identifiers: pl.DataFrame,
    *,
    as_of: date,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events, quarantine) from bronze outreach events: `assignments` is gold/campaign_assignment,
    `persons` every person_id, `identifiers` (`identifier` = `system|value`, `person_id`); events dated
    after `as_of` (beyond the tolerance) are quarantined as `future_date`."""
    frame = bronze.select(_BRONZE_COLUMNS).sort("occurred_at", "file", "line", nulls_last=True)
    frame = frame.with_columns(
        (pl.int_range(pl.len()).over("event_id") > 0).alias("_duplicate"),
    )
    owners = identifiers.group_by("identifier").agg(pl.col("person_id").unique().sort().alias("_owners"))
    runs = assignments.select("campaign_id", "run_id").unique().with_columns(pl.lit(True).alias("_run"))
    arms = assignments.select("campaign_id", "run_id", "person_id", "arm", "channel", "contact").rename(
        {"channel": "_listed_channel"}
    )
    known = persons.unique().implode()
    frame = (
        frame.join(owners, left_on="source_identifier", right_on="identifier", how="left")
        .join(runs, on=["campaign_id", "run_id"], how="left")
        .with_columns(
            pl.col("person_id").is_in(known).fill_null(False).alias("_known_id"),
            pl.col("_owners").list.len().fill_null(0).alias("_owner_count"),
        )
    )
    by_identifier = pl.when(pl.col("_owner_count") == 1).then(pl.col("_owners").list.first())
    resolved = pl.when(pl.col("_known_id")).then(pl.col("person_id")).otherwise(by_identifier)
    frame = frame.with_columns(resolved.alias("_person"))
    frame = frame.join(
        arms,
        left_on=["campaign_id", "run_id", "_person"],
        right_on=["campaign_id", "run_id", "person_id"],
        how="left",
    )
    reason = (
        pl.when(pl.col("_duplicate"))
        .then(pl.lit("duplicate_event"))
        .when(~pl.col("campaign_id").is_in(campaign_ids))
        .then(pl.lit("unknown_campaign"))
        .when(pl.col("_run").is_null())
        .then(pl.lit("unknown_run"))
        .when(
            pl.col("_known_id")
            & (pl.col("_owner_count") == 1)
            & (pl.col("_owners").list.first() != pl.col("person_id"))
        )
        .then(pl.lit("person_mismatch"))
        .when(~pl.col("_known_id") & (pl.col("_owner_count") > 1))
        .then(pl.lit("ambiguous_person"))
        .when(pl.col("_person").is_null())
        .then(pl.lit("unknown_person"))
        .when(pl.col("arm") == "holdout")
        .then(pl.lit("holdout_person"))
        .when(pl.col("arm").is_null())
        .then(pl.lit("not_in_run"))
        .when(is_future(pl.col("occurred_at"), as_of))
        .then(pl.lit(FUTURE_DATE))
    )
    frame = frame.with_columns(reason.alias("reason_code"))
    rejects = (
        frame.filter(pl.col("reason_code").is_not_null())
        .with_columns(
            pl.col("reason_code")
            .replace_strict({**REJECT_REASONS, FUTURE_DATE: future_reason(f"the as-of day {as_of}")})
            .cast(pl.String)
            .alias("reason")
        )
        .select([pl.col(n).cast(t) for n, t in REJECT_SCHEMA.items()])
        .sort("file", "line")
    )
    events = (
        frame.filter(pl.col("reason_code").is_null())
        .with_columns(
            pl.col("_person").alias("person_id"),
            pl.when(pl.col("channel") == pl.col("_listed_channel")).then(pl.col("contact")).alias("contact"),
        )
        .select([pl.col(n).cast(t) for n, t in EVENT_SCHEMA.items()])
        .sort("campaign_id", "run_id", "person_id", "occurred_at", "event_id")
    )
    return events, rejects


def current_opt_outs(events: pl.DataFrame) -> pl.DataFrame:
    """Per person and channel, the opt-out in force (OPT_OUT_SCHEMA): the latest STOP or opted-out event,
    unless a later reply START opted the person in again."""
    stop = (pl.col("event") == "opted-out") | (
        (pl.col("event") == "replied") & (pl.col("reply_keyword") == "STOP")
    )
    start = (pl.col("event") == "replied") & (pl.col("reply_keyword") == "START")
    decisive = events.filter(stop | start).with_columns(stop.alias("_out"))
    latest = decisive.sort("occurred_at", "event_id").group_by("person_id", "channel").last()
    return (
        latest.filter(pl.col("_out"))
        .with_columns(
            pl.col("occurred_at").alias("opted_out_at"),
            pl.when(pl.col("event") == "opted-out")
            .then(pl.lit("opted-out event"))
            .otherwise(pl.lit("reply STOP"))
            .alias("how"),
        )
        .select([pl.col(n).cast(t) for n, t in OPT_OUT_SCHEMA.items()])
        .sort("person_id", "channel")
    )


def invalid_contact_points(events: pl.DataFrame) -> pl.DataFrame:
    """Contact points whose latest news is a bounce (INVALID_CONTACT_SCHEMA)."""
    relevant = events.filter(pl.col("contact").is_not_null() & pl.col("event").is_in(["bounced", *WORKING]))
    latest = relevant.sort("occurred_at", "event_id").group_by("person_id", "channel", "contact").last()
    return (
        latest.filter(pl.col("event") == "bounced")
        .with_columns(pl.col("occurred_at").alias("bounced_at"))
        .select([pl.col(n).cast(t) for n, t in INVALID_CONTACT_SCHEMA.items()])
        .sort("person_id", "channel", "contact")
    )
