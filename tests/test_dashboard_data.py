"""The dashboard's plain functions: search rules and the analyst's masking, without Streamlit."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import polars as pl
import pytest

from dashboards.access import (
    ANALYST,
    CARE_MANAGER,
    Viewer,
    local_role,
    mask,
    mask_path,
    pseudonym_of,
    role_for,
    shareable_terms,
)
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


# issue 25: every value an analyst sees goes through the masking rules - file paths, text-derived terms, ids


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("ehr_a/Patient.000.ndjson", "ehr_a/Patient.000.ndjson"),  # FHIR Bulk names are the platform's
        ("ehr_a/deleted/Bundle.000.ndjson", "ehr_a/deleted/Bundle.000.ndjson"),
        ("ehr_a/manifest.json", "ehr_a/manifest.json"),
        ("devices_ihealth/u-8812/bp.json", "devices_ihealth/<u-8812>/bp.json"),  # a user
        ("devices_x/8812.json", "devices_x/<8812.json>.json"),  # a user id as a file name
        ("synthea/Abe604_Kulas532_0a1b.json", "synthea/<Abe604_Kulas532_0a1b.json>.json"),
        ("ehr_b/0000/5e43198c.json", "ehr_b/<0000>/<5e43198c.json>.json"),
        ("ehr_a/Patient.12345678.ndjson", "ehr_a/<Patient.12345678.ndjson>.ndjson"),
        ("ehr_a/Smith.json", "ehr_a/<Smith.json>.json"),  # a word, but not the platform's
    ],
)
def test_a_path_shows_its_source_and_the_platforms_own_names_only(path: str, shown: str) -> None:
    # `<name>` stands for the pseudonym of name: pseudonyms are keyed per process, so the test's parameters
    # (which pytest-xdist workers must collect alike) hold the names, not the pseudonyms
    assert mask_path(path) == re.sub(r"<([^>]*)>", lambda m: pseudonym_of(m.group(1)), shown)


def test_the_analyst_sees_paths_masked_ids_dropped_and_text_dates_cut() -> None:
    frame = pl.DataFrame(
        {
            "file": ["devices_ihealth/u-8812/bp.json", None],
            "manifest_file": ["ehr_a/manifest.json", None],
            "encounter_id": ["enc-1", "enc-2"],  # an id column nobody declared: dropped
            "measure_id": ["CBP", "BCS"],
            "run_id": ["2026-06-30", "2026-06-30"],  # a run named by its day: not a person's date
            "due": ["2026-03-14", None],  # a date held as text (a CSV read as strings)
            "note": ["2026-03-14 is a date", "x"],  # text that merely starts with one is left alone
        }
    )
    masked = mask(frame, ANALYST_VIEWER)
    assert masked.columns == ["file", "manifest_file", "measure_id", "run_id", "due", "note"]
    assert masked["file"].to_list() == [f"devices_ihealth/{pseudonym_of('u-8812')}/bp.json", None]
    assert masked["manifest_file"][0] == "ehr_a/manifest.json"
    assert masked["run_id"][0] == "2026-06-30" and masked["due"].to_list() == ["2026-03", None]
    assert masked["note"][0] == "2026-03-14 is a date"
    assert mask(frame, CARE).equals(frame)


def test_text_derived_terms_are_shown_only_when_shareable() -> None:
    persons = {"wait": 9, "long wait": 5, "rare": 4, "150": 20, "150 95": 20, "maria": 30, "dr maria": 8}
    allowed = shareable_terms(persons, {"maria", "garcia"})
    assert allowed == {"wait", "long wait"}  # >= 5 persons, no digit, no name word
    themes = pl.DataFrame({"theme": [1], "terms": [["wait", "rare", "150"]], "snippets": [["I waited"]]})
    masked = mask(themes, ANALYST_VIEWER, allowed)
    assert masked.columns == ["theme", "terms"] and masked["terms"].to_list() == [["wait"]]
    assert mask(themes, ANALYST_VIEWER)["terms"].to_list() == [[]]  # nothing vetted: nothing shown
    assert mask(themes, CARE)["terms"].to_list() == [["wait", "rare", "150"]]


def test_term_persons_counts_distinct_writers_of_negative_patient_texts(tmp_path) -> None:
    from upath import UPath

    from dashboards.data import term_persons

    folder = tmp_path / "gold" / "sentiment_message" / "bucket=0"
    folder.mkdir(parents=True)
    pl.DataFrame(
        {
            "person_id": ["a", "a", "b", "c", "d"],
            "speaker": ["patient", "patient", "patient", "agent", "patient"],
            "label": ["negative", "negative", "negative", None, "positive"],
            "text": ["The long wait.", "Long wait again", "A long, long wait", "long wait", "long wait"],
        }
    ).write_parquet(folder / "data.parquet")
    counts = term_persons(UPath(tmp_path), ["long", "long wait", "wait long", "again", "absent"])
    # agent turns and positive texts are not what themes are made of; stop words fall out before pairing
    assert counts == {"long": 2, "long wait": 2, "wait long": 0, "again": 0, "absent": 0}


def _registered(lake, version: str, auroc: float, baseline: str, baseline_auroc: float) -> None:
    """The metadata of a registered risk model version, with its test AUROC and its baseline's."""
    import json

    folder = lake / "models" / version.rsplit("-", 1)[0] / version
    folder.mkdir(parents=True)
    metadata = {
        "metrics": {"model": {"auroc": auroc}, baseline: {"auroc": baseline_auroc}},
        "baseline": baseline,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))


def test_the_risk_source_says_in_words_whether_a_model_or_the_clinical_baseline_scored(tmp_path) -> None:
    """Which score a tier comes from: the Charlson baseline (with why no model scores yet) or a model trained
    on the lake's data (with how it compares with the baseline)."""

    from upath import UPath

    from dashboards.data import risk_source, risk_versions

    lake = UPath(tmp_path / "lake")
    assert risk_versions(lake) == []
    baseline = risk_source(lake, "baseline:charlson")
    assert baseline.baseline
    assert (
        baseline.words == "Clinical baseline (Charlson comorbidity index): no model trained on this data yet"
    )
    assert "3 Charlson points or more" in baseline.tiers
    version = "person_180d-0123456789ab"
    _registered(tmp_path / "lake", version, 0.681, "charlson_index", 0.593)
    assert (
        "no model trained on this data has ranked people better yet"
        in risk_source(lake, "baseline:charlson").why
    )
    model = risk_source(lake, version)
    assert not model.baseline and model.title == f"Risk model trained on this data (version {version})"
    assert "AUROC 0.68 against 0.59" in model.why and "highest 5%" in model.tiers
    scores = tmp_path / "lake" / "gold" / "risk_scores" / "bucket=00"
    scores.mkdir(parents=True)
    pl.DataFrame(
        {"person_id": ["a", "b", "c"], "model_version": [version, version, "baseline:charlson"]}
    ).write_parquet(scores / "data.parquet")
    assert risk_versions(lake) == [version, "baseline:charlson"]


def test_the_readmission_risk_of_a_discharge_says_what_scored_it_and_when_the_patient_came_back(
    tmp_path,
) -> None:
    """A recent discharge in words: the day the stay ended (its month for an analyst, whose masking cut
    it), the tier with LACE points or the model's chance, what scored it (the LACE index while no
    readmission model is deployed), the return and the reasons; never the stay's id."""

    from upath import UPath

    from dashboards.data import discharge_words, risk_source, risk_versions
    from models.risk.score import DISCHARGE_RISK_SCHEMA

    lake = UPath(tmp_path / "lake")
    lace = risk_source(lake, "baseline:lace")
    assert lace.baseline and lace.scorer == "the LACE index"
    assert lace.words == "Clinical baseline (LACE index): no readmission model trained on this data yet"
    assert "high: 10 LACE points or more, medium: 5 to 9, low: 4 or fewer" in lace.tiers
    row = {
        "person_id": "psn-1",
        "encounter_id": "enc-7f3a",
        "as_of": date(2026, 12, 7),
        "discharged_on": date(2026, 12, 3),
        "days_since_discharge": 4,
        "score": None,
        "points": 11,
        "tier": "high",
        "reasons": ["raises risk: a 9-day hospital stay (LACE 5 points)"],
        "model_version": "baseline:lace",
        "returned_on": date(2026, 12, 5),
    }
    assert list(row) == list(DISCHARGE_RISK_SCHEMA)
    said = discharge_words(row, lace)
    assert said == [
        "Readmission risk after the hospital stay that ended 3 Dec 2026: **high** (11 LACE points) — "
        "scored by the LACE index (no readmission model trained on this data yet).",
        "Came back to hospital on 5 Dec 2026.",
        "Why, as known when the stay ended: raises risk: a 9-day hospital stay (LACE 5 points)",
    ]
    masked = mask(pl.DataFrame([row], schema=DISCHARGE_RISK_SCHEMA), Viewer(ANALYST, None, True))
    analyst = discharge_words(masked.row(0, named=True), lace)
    assert "encounter_id" not in masked.columns and not any("enc-7f3a" in line for line in analyst)
    assert analyst[0].startswith("Readmission risk after the hospital stay that ended in Dec 2026: **high**")
    assert analyst[1] == "Came back to hospital in Dec 2026." and "3 Dec" not in " ".join(analyst)

    version = "discharge_30d-0123456789ab"
    _registered(tmp_path / "lake", version, 0.70, "lace_index", 0.64)
    assert "has ranked discharges better yet" in risk_source(lake, "baseline:lace").why
    model = risk_source(lake, version)
    assert not model.baseline and model.title == f"Readmission model trained on this data (version {version})"
    assert "better than the LACE index (AUROC 0.70 against 0.64)" in model.why
    scored = {**row, "score": 0.234, "points": None, "model_version": version, "returned_on": None}
    said = discharge_words(scored, model)
    assert said[0] == (
        "Readmission risk after the hospital stay that ended 3 Dec 2026: **high** (23% chance of a "
        "readmission or ED visit within 30 days) — scored by the readmission model trained on this data."
    )
    assert len(said) == 2 and not any("came back" in line.lower() for line in said)
    table = tmp_path / "lake" / "gold" / "discharge_risk" / "bucket=00"
    table.mkdir(parents=True)
    pl.DataFrame([row, scored], schema=DISCHARGE_RISK_SCHEMA).write_parquet(table / "data.parquet")
    assert risk_versions(lake, "discharge_risk") == ["baseline:lace", version]
