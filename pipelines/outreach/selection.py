"""Who a campaign contacts, through which channel, in which order - and who it does not, and why.

Every segment member ends in exactly one of two frames: the list (with the chosen channel, its contact
point, the template language and a priority) or the suppressions (with one reason, the first that
applies in the order of `SUPPRESSION_REASONS`). Nothing is dropped silently.

Channel choice walks the campaign's channels in order and takes the first one the person has not opted
out of (a Consent deny for that channel or for all contact) and has a usable contact point for: SMS needs a
mobile number, a call any phone, e-mail an address, mail a postal address. Minors are contacted through a
guardian; patient_360 holds no guardian contact yet, so minors are suppressed with that reason.

Priority (higher first; ties broken by person id):
    10 × open care gaps + 20 if risk tier high (10 if medium) + days overdue / 30 (at most 12)
    + 15 if the person had a trigger event in the last 7 days.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from pipelines.outreach.campaigns import Campaign

ADULT_AGE = 18
SUPPRESSION_REASONS = (
    "deceased",
    "in_hospice",
    "coverage_ended",
    "minor_without_guardian_contact",
    "opted_out_all_channels",
    "contacted_by_campaign_recently",
    "weekly_contact_cap",
    "appointment_booked",
    "no_usable_contact_point",
    "duplicate_contact_point",
    "list_full",
)
"""In the order they are checked; `appointment_booked` means pending: the gap may close by itself."""
LIST_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "person_id": pl.String(),
    "rank": pl.Int64(),
    "priority": pl.Float64(),
    "channel": pl.String(),
    "contact": pl.String(),  # the chosen channel's contact point only (minimum necessary)
    "contact_verified": pl.Boolean(),  # the same contact point in two independent sources
    "language": pl.String(),
    "given": pl.String(),
    "family": pl.String(),
    "segments": pl.List(pl.String()),
}
SUPPRESSION_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "person_id": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
}
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "person_id": pl.String(),
    "contacted_on": pl.Date(),
}


def _channel_contact(channel: str) -> tuple[pl.Expr, pl.Expr]:
    """(contact point or null, verified) of one channel."""
    if channel == "sms":
        mobile = pl.when(pl.col("preferred_phone_use") == "mobile").then(pl.col("preferred_phone"))
        return mobile, pl.col("phone_confirmed").fill_null(False)
    if channel == "phone":
        return pl.coalesce(pl.col("preferred_phone"), pl.col("phone")), pl.col("phone_confirmed").fill_null(
            False
        )
    if channel == "email":
        return pl.col("email"), pl.col("email_confirmed").fill_null(False)
    address = pl.when(
        pl.col("address_line").is_not_null() & pl.col("address_postal_code").is_not_null()
    ).then(
        pl.concat_str(
            ["address_line", "address_city", "address_state", "address_postal_code"],
            separator=", ",
            ignore_nulls=True,
        )
    )
    return address, pl.lit(False)


def select_campaign(
    campaign: Campaign,
    members: pl.DataFrame,
    people: pl.DataFrame,
    history: pl.DataFrame,
    as_of: date,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ranked list and the suppressions of one campaign run on `as_of`.

    `members`: person_id, segment_id (current members of the campaign's segments); `people`: patient_360
    columns plus optional `days_overdue`, `in_hospice`, `recent_trigger`; `history`: earlier contacts
    (HISTORY_SCHEMA)."""
    persons = (
        members.filter(pl.col("segment_id").is_in(list(campaign.segments)))
        .group_by("person_id")
        .agg(pl.col("segment_id").unique().sort().alias("segments"))
        .join(people, on="person_id", how="left")
    )
    for optional, dtype in (
        ("days_overdue", pl.Int64),
        ("in_hospice", pl.Boolean),
        ("recent_trigger", pl.Boolean),
    ):
        if optional not in persons.columns:
            persons = persons.with_columns(pl.lit(None, dtype).alias(optional))
    since_campaign = as_of - timedelta(days=campaign.campaign_days)
    week_ago = as_of - timedelta(days=6)
    contacts = history.filter(pl.col("contacted_on") <= as_of)
    recently = (
        contacts.filter((pl.col("campaign_id") == campaign.id) & (pl.col("contacted_on") > since_campaign))
        .select("person_id")
        .unique()
    )
    weekly = (
        contacts.filter(pl.col("contacted_on") >= week_ago)
        .group_by("person_id")
        .agg(pl.len().alias("_weekly"))
    )
    persons = persons.join(
        recently.with_columns(pl.lit(True).alias("_recent")), on="person_id", how="left"
    ).join(weekly, on="person_id", how="left")
    choices = [_channel_contact(c) for c in campaign.channels]
    allowed = [pl.col(f"consent_{c}").fill_null(True) for c in campaign.channels]
    usable = [
        contact.is_not_null() & allowed_ for (contact, _), allowed_ in zip(choices, allowed, strict=True)
    ]
    channel = pl.coalesce(
        [pl.when(u).then(pl.lit(c)) for u, c in zip(usable, campaign.channels, strict=True)]
    )
    contact = pl.coalesce([pl.when(u).then(ct) for u, (ct, _) in zip(usable, choices, strict=True)])
    verified = pl.coalesce([pl.when(u).then(v) for u, (_, v) in zip(usable, choices, strict=True)])
    all_denied = ~pl.any_horizontal(
        [pl.col(f"consent_{c}").fill_null(True) for c in ("phone", "sms", "email", "mail")]
    )
    reason = (
        pl.when(pl.col("deceased").fill_null(False))
        .then(pl.lit("deceased"))
        .when(pl.col("in_hospice").fill_null(False))
        .then(pl.lit("in_hospice"))
        .when(~pl.col("coverage_active").fill_null(True))
        .then(pl.lit("coverage_ended"))
        .when(pl.col("age") < ADULT_AGE)
        .then(pl.lit("minor_without_guardian_contact"))
        .when(all_denied)
        .then(pl.lit("opted_out_all_channels"))
        .when(pl.col("_recent").fill_null(False))
        .then(pl.lit("contacted_by_campaign_recently"))
        .when(pl.col("_weekly").fill_null(0) >= campaign.weekly_contacts)
        .then(pl.lit("weekly_contact_cap"))
        .when(pl.col("upcoming_appointments").fill_null(0) > 0)
        .then(pl.lit("appointment_booked"))
        .when(channel.is_null())
        .then(pl.lit("no_usable_contact_point"))
    )
    priority = (
        10 * pl.col("open_care_gaps").fill_null(0)
        + pl.col("risk_tier").replace_strict({"high": 20, "medium": 10}, default=0, return_dtype=pl.Int64)
        + (pl.col("days_overdue").fill_null(0).clip(0, 360) / 30)
        + pl.when(pl.col("recent_trigger").fill_null(False)).then(15).otherwise(0)
    ).cast(pl.Float64)
    language = (
        pl.when(pl.col("language").is_in(list(campaign.languages)))
        .then(pl.col("language"))
        .otherwise(pl.lit(campaign.default_language))
    )
    judged = persons.with_columns(
        reason.alias("reason"),
        channel.alias("channel"),
        contact.alias("contact"),
        verified.alias("contact_verified"),
        priority.alias("priority"),
        language.alias("language"),
    ).sort(["priority", "person_id"], descending=[True, False])
    eligible = judged.filter(pl.col("reason").is_null())
    # two persons reaching the same phone or address: likely one person identity could not merge
    duplicate = pl.col("contact").is_duplicated() & (pl.int_range(pl.len()).over("channel", "contact") > 0)
    eligible = eligible.with_columns(
        pl.when(duplicate).then(pl.lit("duplicate_contact_point")).otherwise(pl.col("reason")).alias("reason")
    )
    listed = eligible.filter(pl.col("reason").is_null())
    full = listed.slice(campaign.max_list_size).with_columns(pl.lit("list_full").alias("reason"))
    listed = listed.head(campaign.max_list_size).with_row_index("rank", offset=1)
    suppressed = pl.concat(
        [
            judged.filter(pl.col("reason").is_not_null()),
            eligible.filter(pl.col("reason").is_not_null()),
            full,
        ],
        how="diagonal_relaxed",
    )
    result = listed.with_columns(
        pl.lit(campaign.id).alias("campaign_id"), pl.col("rank").cast(pl.Int64)
    ).select([pl.col(n).cast(t) for n, t in LIST_SCHEMA.items()])
    suppressions = (
        suppressed.with_columns(
            pl.lit(campaign.id).alias("campaign_id"),
            pl.when(pl.col("reason") == "appointment_booked")
            .then(pl.lit("pending: an appointment is booked"))
            .otherwise(pl.lit(None, pl.String))
            .alias("detail"),
        )
        .select([pl.col(n).cast(t) for n, t in SUPPRESSION_SCHEMA.items()])
        .sort("reason", "person_id")
    )
    return result, suppressions
