"""Outreach selection: every suppression reason, channel choice, minors, languages, ties in priority,
and campaign files that fail with their file and line."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.measures.definitions import DefinitionError
from pipelines.outreach.campaigns import Campaign, load_campaigns
from pipelines.outreach.run import shipped_campaigns
from pipelines.outreach.selection import HISTORY_SCHEMA, SUPPRESSION_REASONS, select_campaign

AS_OF = date(2026, 6, 30)
CAMPAIGN = Campaign(
    id="bcs",
    title="Breast screening",
    segments=("open_gap_bcs",),
    channels=("sms", "email", "mail"),
    template="t1",
    languages=("en", "es"),
    default_language="en",
    campaign_days=30,
    weekly_contacts=2,
    start=date(2026, 1, 1),
    end=date(2026, 12, 31),
    max_list_size=100,
    priority=1,
    source="bcs.yaml",
)
BASE = {
    "deceased": False,
    "age": 60,
    "language": "en",
    "given": "Ann",
    "family": "Lee",
    "phone": "555-0100",
    "preferred_phone": "555-0100",
    "preferred_phone_use": "mobile",
    "phone_confirmed": True,
    "email": "a@example.org",
    "email_confirmed": False,
    "address_line": "1 Main St",
    "address_city": "Springfield",
    "address_state": "MA",
    "address_postal_code": "01101",
    "consent_phone": True,
    "consent_sms": True,
    "consent_email": True,
    "consent_mail": True,
    "coverage_active": True,
    "open_care_gaps": 1,
    "risk_tier": "low",
    "appointment_booked": False,
    "in_hospice": False,
    "days_overdue": 0,
    "recent_trigger": False,
}


def person(person_id: str, **changes: object) -> dict:
    """A person who would be listed by SMS, with `changes`; each gets a contact point of their own."""
    row = {**BASE, "person_id": person_id, "preferred_phone": f"555-{person_id}", "phone": f"555-{person_id}"}
    row["email"] = f"{person_id}@example.org"
    row["address_line"] = f"{person_id} Main St"
    return {**row, **changes}


def run(*people: dict, history: pl.DataFrame | None = None, campaign: Campaign = CAMPAIGN):
    frame = pl.DataFrame(list(people))
    members = frame.select("person_id", pl.lit("open_gap_bcs").alias("segment_id"))
    return select_campaign(
        campaign,
        members,
        frame,
        history if history is not None else pl.DataFrame(schema=HISTORY_SCHEMA),
        AS_OF,
    )


def test_every_suppression_reason_and_nobody_lost() -> None:
    denied = {f"consent_{c}": False for c in ("phone", "sms", "email", "mail")}
    people = [
        person("ok"),
        person("dead", deceased=True),
        person("hospice", in_hospice=True),
        person("uninsured", coverage_active=False),
        person("child", age=9),
        person("optout", **denied),
        person("stopped", consent_sms=False, consent_email=False, consent_mail=False),  # the campaign's three
        person("recent"),
        person("busy"),
        person("booked", appointment_booked=True),
        person("nocontact", preferred_phone_use="home", email=None, address_line=None),
        person("twin", preferred_phone="555-ok", given="ANN"),  # `ok` again: same name, same phone
        person("spouse", preferred_phone="555-ok", given="Bob"),  # shares the phone: listed
    ]
    history = pl.DataFrame(
        [
            ("bcs", "recent", date(2026, 6, 10)),
            ("flu", "busy", date(2026, 6, 26)),
            ("col", "busy", date(2026, 6, 29)),
        ],
        schema=HISTORY_SCHEMA,
        orient="row",
    )
    listed, suppressed = run(*people, history=history)
    reasons = dict(zip(suppressed["person_id"], suppressed["reason"], strict=True))
    assert reasons == {
        "dead": "deceased",
        "hospice": "in_hospice",
        "uninsured": "coverage_ended",
        "child": "minor_without_guardian_contact",
        "optout": "opted_out_all_channels",
        "stopped": "opted_out_campaign_channels",
        "recent": "contacted_by_campaign_recently",
        "busy": "weekly_contact_cap",
        "booked": "appointment_booked",
        "nocontact": "no_usable_contact_point",
        "twin": "duplicate_person",
    }
    assert set(reasons.values()) <= set(SUPPRESSION_REASONS)
    assert sorted(listed["person_id"]) == ["ok", "spouse"]
    assert listed.height + suppressed.height == len(people)  # nothing silently dropped
    assert suppressed.filter(pl.col("person_id") == "booked")["detail"].to_list() == [
        "pending: a visit that can close the gap is booked"
    ]


@pytest.mark.parametrize(
    ("changes", "channel", "contact"),
    [
        ({}, "sms", "555-p"),
        ({"preferred_phone_use": "home"}, "email", "p@example.org"),  # no mobile: next channel
        ({"consent_sms": False}, "email", "p@example.org"),  # opted out of SMS only
        ({"consent_sms": False, "email": None}, "mail", "p Main St, Springfield, MA, 01101"),
        ({"consent_sms": False, "consent_email": False, "address_postal_code": None}, None, None),
        # a contact point that bounced is skipped; another one of the same channel is fine
        ({"invalid_contacts": ["sms|555-p"]}, "email", "p@example.org"),
        ({"invalid_contacts": ["sms|555-old", "email|p@example.org"]}, "sms", "555-p"),
        (
            {"invalid_contacts": ["sms|555-p", "email|p@example.org"]},
            "mail",
            "p Main St, Springfield, MA, 01101",
        ),
    ],
)
def test_channel_choice_follows_preference_consent_and_usable_contact(
    changes: dict, channel: str | None, contact: str | None
) -> None:
    listed, suppressed = run(person("p", **changes))
    if channel is None:
        assert suppressed["reason"].to_list() == ["no_usable_contact_point"]
        return
    row = listed.row(0, named=True)
    assert (row["channel"], row["contact"]) == (channel, contact)
    assert row["contact_verified"] is (
        channel == "sms"
    )  # the phone was confirmed by two sources, not the e-mail


def test_language_falls_back_to_the_default_when_the_template_lacks_it() -> None:
    listed, _ = run(person("es", language="es"), person("fr", language="fr"), person("none", language=None))
    assert dict(zip(listed["person_id"], listed["language"], strict=True)) == {
        "es": "es",
        "fr": "en",
        "none": "en",
    }


def test_priority_ranks_and_breaks_ties_by_person_id() -> None:
    listed, suppressed = run(
        person("b"),
        person("a"),
        person("high", risk_tier="high"),
        person("gaps", open_care_gaps=3),
        person("late", days_overdue=300, recent_trigger=True),
        campaign=replace(CAMPAIGN, max_list_size=4),
    )
    # late: 10 + 300/30 + 15 = 35; gaps and high tie at 30 (person id decides); a and b tie at 10
    assert listed.select("rank", "person_id").rows() == [(1, "late"), (2, "gaps"), (3, "high"), (4, "a")]
    assert suppressed.select("person_id", "reason").rows() == [("b", "list_full")]
    again, _ = run(
        person("a"),
        person("b"),
        person("high", risk_tier="high"),
        person("gaps", open_care_gaps=3),
        person("late", days_overdue=300, recent_trigger=True),
        campaign=replace(CAMPAIGN, max_list_size=4),
    )
    assert again.equals(listed)  # the input order does not matter


def test_the_shipped_campaigns_load() -> None:
    campaigns = shipped_campaigns()  # checked against the shipped segments and measures
    assert [c.id for c in campaigns] == [
        "post_discharge_follow_up",
        "breast_screening_reminder",
        "flu_vaccine_reminder",
        "colorectal_screening_outreach",
    ]
    assert {c.id: c.measures for c in campaigns}["flu_vaccine_reminder"] == ("FLU",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "id: x\nsegments: [nope]\nchannels: [sms]\ntemplate: t\nstart: 2026-01-01\nend: 2026-02-01\n",
            r"x.yaml:2: unknown segment",
        ),
        (
            "id: x\nsegments: [s]\nchannels: [pigeon]\ntemplate: t\nstart: 2026-01-01\nend: 2026-02-01\n",
            r"x.yaml:3: unknown channel",
        ),
        (
            "id: x\nsegments: [s]\nchannels: [sms]\ntemplate: t\nstart: 2026-03-01\nend: 2026-02-01\n",
            r"x.yaml:6: end is before start",
        ),
        (
            "id: x\nsegments: [s]\nchannels: [sms]\ntemplate: t\nstart: 2026-01-01\nend: 2026-02-01\n"
            "colour: red\n",
            r"x.yaml:7: unknown key",
        ),
        ("id: x\n  segments: [\n", r"x.yaml:\d+: not valid YAML"),
        (
            "id: x\nsegments: [s]\nclosing_appointments: {kinds: [X]}\nchannels: [sms]\ntemplate: t\n"
            "start: 2026-01-01\nend: 2026-02-01\n",
            r"x.yaml:3: closing_appointments takes `types` and `within_days`",
        ),
        (
            "id: x\nsegments: [s]\nmeasures: [NOPE]\nchannels: [sms]\ntemplate: t\nstart: 2026-01-01\n"
            "end: 2026-02-01\n",
            r"x.yaml:3: unknown measure 'NOPE'",
        ),
    ],
)
def test_broken_campaign_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(DefinitionError, match=message):
        load_campaigns({"s"}, tmp_path, measure_ids={"BCS"})


GUARDIAN = {
    "guardian_given": "Gail",
    "guardian_family": "Parent",
    "guardian_phone": "555-0199",
    "guardian_phone_use": "mobile",
    "guardian_email": "gail@example.org",
    "guardian_address_line": "9 Elm St",
    "guardian_address_city": "Springfield",
    "guardian_address_state": "MA",
    "guardian_address_postal_code": "01101",
}


@pytest.mark.parametrize(
    ("changes", "channel", "contact"),
    [
        ({}, "sms", "555-0199"),
        ({"guardian_phone_use": "home"}, "email", "gail@example.org"),
        ({"guardian_phone": None, "guardian_email": None}, "mail", "9 Elm St, Springfield, MA, 01101"),
        ({"consent_sms": False}, "email", "gail@example.org"),  # the minor's own consent applies
    ],
)
def test_minors_are_reached_through_their_guardian(changes: dict, channel: str, contact: str) -> None:
    child = person("kid", age=15, given="Kim", family="Parent", **{**GUARDIAN, **changes})
    listed, suppressed = run(child)
    assert suppressed.is_empty()
    row = listed.row(0, named=True)
    assert (row["channel"], row["contact"], row["recipient"]) == (channel, contact, "guardian")
    assert row["recipient_name"] == "Gail Parent"
    assert row["contact_verified"] is False  # one source records a guardian's contact
    assert (row["given"], row["family"]) == ("Kim", "Parent")


def test_siblings_sharing_a_guardian_are_both_listed_and_adults_are_their_own_recipient() -> None:
    listed, suppressed = run(
        person("kid1", age=8, given="Kim", **GUARDIAN),
        person("kid2", age=11, given="Kai", **GUARDIAN),
        person("adult", age=18, **GUARDIAN),  # 18 on the as-of day: an adult
    )
    assert suppressed.is_empty()
    recipients = dict(zip(listed["person_id"], listed["recipient"], strict=True))
    assert recipients == {"kid1": "guardian", "kid2": "guardian", "adult": "patient"}
    assert listed.filter(pl.col("person_id") == "adult")["recipient_name"].item() == "Ann Lee"


def test_a_minor_without_any_guardian_contact_point_is_suppressed() -> None:
    child = person("kid", age=4, **{**GUARDIAN, "guardian_phone": None, "guardian_email": None})
    child["guardian_address_postal_code"] = None
    _, suppressed = run(child)
    assert suppressed.select("person_id", "reason").rows() == [("kid", "minor_without_guardian_contact")]


def test_inclusion_reasons_gap_ids_and_template_are_carried() -> None:
    frame = pl.DataFrame(
        [person("p", gap_ids=["BCS-2026"], due_dates=[date(2026, 3, 1)], source_identifiers=["mrn|1"])]
    )
    members = pl.DataFrame(
        {"person_id": ["p", "p"], "segment_id": ["open_gap_bcs", "other"], "reason": ["BCS open-gap", "x"]}
    )
    listed, _ = select_campaign(CAMPAIGN, members, frame, pl.DataFrame(schema=HISTORY_SCHEMA), AS_OF)
    row = listed.row(0, named=True)
    assert row["segments"] == ["open_gap_bcs"] and row["reasons"] == ["BCS open-gap"]
    assert row["gap_ids"] == ["BCS-2026"] and row["due_dates"] == [date(2026, 3, 1)]
    assert row["source_identifiers"] == ["mrn|1"] and row["template"] == "t1"
