"""Who a campaign contacts, through which channel, in which order - and who it does not, and why.

Every segment member ends in exactly one of two frames: the list (with the chosen channel, its contact
point, the template language and a priority) or the suppressions (with one reason, the first that
applies in the order of `SUPPRESSION_REASONS`). Nothing is dropped silently.

Channel choice walks the campaign's channels in order and takes the first one the person has not opted
out of (a Consent deny for that channel or for all contact, or a STOP / opt-out received from an outreach
system: `gold/communication_opt_out`) and has a usable contact point for: SMS needs a mobile number, a call
any phone, e-mail an address, mail a postal address; a contact point that bounced
(`gold/invalid_contact_point`) is not usable until it changes or is seen working again.

Minors (under 18 on the as-of day) are contacted through their parent or guardian (patient_360
`guardian_*`): the list names the guardian as recipient and carries the guardian's contact point; the
minor's own Consent still applies.
A minor with no guardian contact point at all is suppressed with that reason.

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
    "opted_out_campaign_channels",
    "contacted_by_campaign_recently",
    "weekly_contact_cap",
    "appointment_booked",
    "no_usable_contact_point",
    "duplicate_person",
    "list_full",
)
"""In the order they are checked; `appointment_booked` means pending: the gap may close by itself."""
LIST_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "person_id": pl.String(),
    "rank": pl.Int64(),
    "priority": pl.Float64(),
    "channel": pl.String(),
    "recipient": pl.String(),  # patient | guardian
    "recipient_name": pl.String(),
    "contact": pl.String(),  # the chosen channel's contact point only (minimum necessary)
    "contact_verified": pl.Boolean(),  # the same contact point in two independent sources
    "language": pl.String(),
    "template": pl.String(),
    "given": pl.String(),
    "family": pl.String(),
    "source_identifiers": pl.List(pl.String()),  # MRNs as `system|value`
    "segments": pl.List(pl.String()),
    "reasons": pl.List(pl.String()),  # why the person is in those segments
    "gap_ids": pl.List(pl.String()),
    "due_dates": pl.List(pl.Date()),
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
PEOPLE_OPTIONAL: dict[str, pl.DataType] = {
    # patient_360 columns selection reads (null when the person has no patient_360 row)
    "deceased": pl.Boolean(),
    "age": pl.Int32(),
    "language": pl.String(),
    "given": pl.String(),
    "family": pl.String(),
    "phone": pl.String(),
    "preferred_phone": pl.String(),
    "preferred_phone_use": pl.String(),
    "phone_confirmed": pl.Boolean(),
    "email": pl.String(),
    "email_confirmed": pl.Boolean(),
    "address_line": pl.String(),
    "address_city": pl.String(),
    "address_state": pl.String(),
    "address_postal_code": pl.String(),
    **{f"consent_{c}": pl.Boolean() for c in ("phone", "sms", "email", "mail")},
    "coverage_active": pl.Boolean(),
    "open_care_gaps": pl.Int64(),
    "risk_tier": pl.String(),
    # derived by pipelines.outreach.inputs
    "appointment_booked": pl.Boolean(),  # a visit that can close the gap is booked soon
    "days_overdue": pl.Int64(),
    "in_hospice": pl.Boolean(),
    "recent_trigger": pl.Boolean(),
    "source_identifiers": pl.List(pl.String()),
    "gap_ids": pl.List(pl.String()),
    "due_dates": pl.List(pl.Date()),
    "guardian_given": pl.String(),
    "guardian_family": pl.String(),
    "guardian_phone": pl.String(),
    "guardian_phone_use": pl.String(),
    "guardian_email": pl.String(),
    "guardian_address_line": pl.String(),
    "guardian_address_city": pl.String(),
    "guardian_address_state": pl.String(),
    "guardian_address_postal_code": pl.String(),
    "invalid_contacts": pl.List(pl.String()),  # `<channel>|<contact point>` that bounced
}
"""`people` columns selection reads: null when absent (a crafted frame, a person without a 360 row)."""

_MINOR = pl.col("age") < ADULT_AGE


def _address(prefix: str) -> pl.Expr:
    line, postal = pl.col(f"{prefix}address_line"), pl.col(f"{prefix}address_postal_code")
    parts = [f"{prefix}address_{p}" for p in ("line", "city", "state", "postal_code")]
    return pl.when(line.is_not_null() & postal.is_not_null()).then(
        pl.concat_str(parts, separator=", ", ignore_nulls=True)
    )


def _channel_contact(channel: str) -> tuple[pl.Expr, pl.Expr]:
    """(contact point or null, verified) of one channel: the guardian's for a minor, else the patient's.
    A guardian's contact point is never counted as verified (one source records it)."""
    if channel == "sms":
        own = pl.when(pl.col("preferred_phone_use") == "mobile").then(pl.col("preferred_phone"))
        guardian = pl.when(pl.col("guardian_phone_use") == "mobile").then(pl.col("guardian_phone"))
        verified = pl.col("phone_confirmed")
    elif channel == "phone":
        own = pl.coalesce(pl.col("preferred_phone"), pl.col("phone"))
        guardian = pl.col("guardian_phone")
        verified = pl.col("phone_confirmed")
    elif channel == "email":
        own, guardian, verified = pl.col("email"), pl.col("guardian_email"), pl.col("email_confirmed")
    else:
        own, guardian, verified = _address(""), _address("guardian_"), pl.lit(False)
    contact = pl.when(_MINOR).then(guardian).otherwise(own)
    return contact, pl.when(_MINOR).then(pl.lit(False)).otherwise(verified.fill_null(False))


def select_campaign(
    campaign: Campaign,
    members: pl.DataFrame,
    people: pl.DataFrame,
    history: pl.DataFrame,
    as_of: date,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ranked list and the suppressions of one campaign run on `as_of`.

    `members`: person_id, segment_id and optionally reason (current members of the campaign's segments);
    `people`: patient_360 columns plus those of `PEOPLE_OPTIONAL` (see `pipelines.outreach.inputs`);
    `history`: earlier contacts (HISTORY_SCHEMA)."""
    chosen = members.filter(pl.col("segment_id").is_in(list(campaign.segments)))
    if "reason" not in chosen.columns:
        chosen = chosen.with_columns(pl.lit(None, pl.String).alias("reason"))
    persons = (
        chosen.sort("person_id", "segment_id")
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.col("segment_id").alias("segments"),
            pl.col("reason").drop_nulls().unique(maintain_order=True).alias("reasons"),
        )
        .join(people, on="person_id", how="left")
    )
    persons = persons.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in PEOPLE_OPTIONAL.items()
        if name not in persons.columns
    )
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
    bounced = [
        pl.col("invalid_contacts").fill_null([]).list.contains(pl.concat_str([pl.lit(f"{c}|"), contact]))
        for c, (contact, _) in zip(campaign.channels, choices, strict=True)
    ]
    usable = [
        contact.is_not_null() & allowed_ & ~bounced_.fill_null(False)
        for (contact, _), allowed_, bounced_ in zip(choices, allowed, bounced, strict=True)
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
        .when(
            _MINOR
            & pl.col("guardian_phone").is_null()
            & pl.col("guardian_email").is_null()
            & _address("guardian_").is_null()
        )
        .then(pl.lit("minor_without_guardian_contact"))
        .when(all_denied)
        .then(pl.lit("opted_out_all_channels"))
        .when(~pl.any_horizontal(allowed))
        .then(pl.lit("opted_out_campaign_channels"))
        .when(pl.col("_recent").fill_null(False))
        .then(pl.lit("contacted_by_campaign_recently"))
        .when(pl.col("_weekly").fill_null(0) >= campaign.weekly_contacts)
        .then(pl.lit("weekly_contact_cap"))
        .when(pl.col("appointment_booked").fill_null(False))
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
        pl.lit(campaign.template).alias("template"),
        pl.when(_MINOR).then(pl.lit("guardian")).otherwise(pl.lit("patient")).alias("recipient"),
        pl.when(_MINOR)
        .then(pl.concat_str(["guardian_given", "guardian_family"], separator=" ", ignore_nulls=True))
        .otherwise(pl.concat_str(["given", "family"], separator=" ", ignore_nulls=True))
        .alias("recipient_name"),
    ).sort(["priority", "person_id"], descending=[True, False])
    eligible = judged.filter(pl.col("reason").is_null())
    # the same name at the same contact point: one person whose records identity could not merge (spouses
    # or siblings sharing a phone or a guardian are different people and stay on the list)
    same = [
        pl.col("channel"),
        pl.col("contact"),
        *(pl.col(c).str.to_lowercase() for c in ("given", "family")),
    ]
    duplicate = pl.int_range(pl.len()).over(same) > 0
    eligible = eligible.with_columns(
        pl.when(duplicate).then(pl.lit("duplicate_person")).otherwise(pl.col("reason")).alias("reason")
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
            .then(pl.lit("pending: a visit that can close the gap is booked"))
            .otherwise(pl.lit(None, pl.String))
            .alias("detail"),
        )
        .select([pl.col(n).cast(t) for n, t in SUPPRESSION_SCHEMA.items()])
        .sort("reason", "person_id")
    )
    return result, suppressions
