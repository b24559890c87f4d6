"""The dashboard's plain functions: search rules and the analyst's masking, without Streamlit."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from dashboards.access import ANALYST, CARE_MANAGER, Viewer, local_role, mask, pseudonym_of, role_for
from dashboards.data import search

INDEX = pl.DataFrame(
    {
        "person_id": ["psn-1", "psn-2", "psn-3"],
        "given": ["María José", "Mario", "Ann"],
        "family": ["García López", "Garcia", "Lee"],
        "birth_date": ["1956-03-14", "1970-01-02", "1956-03-14"],
        "identifiers": ["00012345 CB000000042", "00099999", None],
    }
).with_columns(
    pl.concat_str(["given", "family"], separator=" ", ignore_nulls=True).str.to_lowercase().alias("_name")
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("garc", ["psn-1", "psn-2"]),  # a prefix of any name part
        ("garcía maría", ["psn-1"]),  # every word must match, in any order
        ("mar garcia", ["psn-2"]),  # accents are not folded: García ≠ Garcia
        ("1956-03-14", ["psn-1", "psn-3"]),
        ("3/14/1956", ["psn-1", "psn-3"]),
        ("1956-02-30", []),  # not a date: nobody, no error
        ("00012345", ["psn-1"]),  # a whole identifier
        ("CB0000", ["psn-1"]),  # an identifier prefix of 4+ characters
        ("000", []),  # too short for a prefix, and no name starts with it
        ("psn-3", ["psn-3"]),
        ("   ", []),
    ],
)
def test_search(query: str, expected: list[str]) -> None:
    assert search(INDEX, query)["person_id"].to_list() == expected


def test_search_limits_the_matches() -> None:
    many = pl.concat([INDEX] * 40)
    assert search(many, "lee", limit=5).height == 5


CARE = Viewer(CARE_MANAGER, None, True)
ANALYST_VIEWER = Viewer(ANALYST, None, True)
FRAME = pl.DataFrame(
    {
        "person_id": ["psn-1"],
        "given": ["Ann"],
        "recipient_name": ["Gail Parent"],
        "guardian_phone": ["555-0100"],
        "contact": ["555-0101"],
        "birth_date": ["1956-03-14"],
        "due_date": [date(2026, 3, 1)],
        "time": [datetime(2026, 6, 1, 8, 30, tzinfo=UTC)],
        "due_dates": [[date(2026, 3, 1)]],
        "week": [date(2026, 6, 1)],
        "score": [0.4],
        "text": ["my name is Ann"],
    }
)


def test_the_care_manager_sees_everything_and_the_analyst_a_de_identified_frame() -> None:
    assert mask(FRAME, CARE).equals(FRAME)
    masked = mask(FRAME, ANALYST_VIEWER)
    assert set(masked.columns) == {
        "person_id",
        "birth_date",
        "due_date",
        "time",
        "due_dates",
        "week",
        "score",
    }
    row = masked.row(0, named=True)
    assert row["person_id"] == pseudonym_of("psn-1") != "psn-1" and row["person_id"].startswith("anon-")
    assert row["birth_date"] == "1956" and row["due_date"] == "2026-03" and row["time"] == "2026-06"
    assert row["due_dates"] == ["2026-03"]
    assert row["week"] == date(2026, 6, 1)  # a reporting week is not a person's date


def test_roles_from_configuration_and_from_the_identity_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", raising=False)
    assert local_role() == ANALYST  # least privilege by default
    monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", "care_manager")
    assert local_role() == CARE_MANAGER
    monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", "admin")
    with pytest.raises(ValueError, match="must be one of"):
        local_role()
    roles = {"lead@example.org": CARE_MANAGER, "*@analytics.example.org": ANALYST, "x@example.org": "root"}
    assert role_for("Lead@Example.org", roles) == CARE_MANAGER
    assert role_for("someone@analytics.example.org", roles) == ANALYST
    assert role_for("stranger@elsewhere.org", roles) == ANALYST
    assert role_for("x@example.org", roles) == ANALYST  # an unknown role is no role
    assert role_for(None, roles) == ANALYST


def test_the_outreach_index_lists_every_run_outcome_per_person(tmp_path) -> None:
    from upath import UPath

    from dashboards.data import outreach_index
    from tests.test_outreach_exports import PEOPLE, export

    export(tmp_path)
    index = outreach_index(UPath(tmp_path)).sort("person_id")
    assert index.select("person_id", "outcome", "channel_or_reason").rows() == [
        ("a", "listed", "sms"),
        ("b", "listed", "sms"),
        ("c", "suppressed", "deceased"),
        ("d", "suppressed", "minor_without_guardian_contact"),
    ]
    assert set(index["run_id"]) == {"2026-06-30"} and index.height == len(PEOPLE)
    assert outreach_index(UPath(tmp_path / "none")).is_empty()
