"""The dashboard's Identity review page (issue 26): a care manager sees each clerical-review pair's two
records side by side with how every field compares, and records a decision that leaves the queue at once and
is kept for the identity build; an analyst sees the review in numbers only. The words for the model's
comparison levels, the side-by-side evidence and the masking of pair columns are tested without Streamlit."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from upath import UPath

from dashboards.access import ANALYST, CARE_MANAGER, Viewer, mask, pseudonym_of
from dashboards.data import (
    MISSING_IN_BOTH,
    MISSING_IN_ONE,
    comparison_levels,
    comparison_words,
    lake_version,
    pair_evidence,
    review_counts,
    review_queue,
)
from dashboards.testing import identifying_values, page_output, shown_values
from pipelines.identity.decisions import (
    LINK,
    NEVER_LINK,
    current_decisions,
    decision_history,
    record_decision,
)
from pipelines.identity.matching import EVIDENCE_FIELDS
from pipelines.identity.records import identity_records
from pipelines.lake import table_path, write_parquet_atomic
from tests.test_dashboard import open_page

PAGE = "views/identity_review.py"
REASONS = (
    "same birth date and address but different given names: possibly twins",
    "same name and address, birth dates 25 years apart: possibly parent and child",
    "close names and birth date, no identifier in common",
)
PROBABILITIES = (0.93, 0.81, 0.62)
NICKNAME = "close: a nickname or another form of the same name"
SEEDED_LEVELS = {
    "given": NICKNAME,
    "family": "same",
    "birth_date": "close: day and month swapped",
    "gender": "same",
    "postal_code": "different",
    "address_line": "close: a typo or small spelling difference",
    "phones": "same: a phone number in common",
    "email": "different",
    "ssn": "close: one character off (a typo)",
}
"""The comparison level of every field of the seeded pairs, by its words: its position (`gamma_<field>`) is
looked up in the model's levels, so a level added to the model does not shift what the test means."""
ANALYST_VIEWER = Viewer(ANALYST, None, True)


def _gamma(field: str, words: str) -> int:
    """The model's comparison level of `field` named `words`."""
    return next(gamma for gamma, text in comparison_levels()[field].items() if text == words)


def seed_review(lake: Path) -> pl.DataFrame:
    """Write identity/clerical_review with three pairs of the lake's own records (two persons each, the
    most probable first) in the build's columns plus review_reason, suffix and multiple_birth; return it."""
    records = identity_records(UPath(lake)).sort("unique_id")
    links = pl.read_parquet(lake / "identity" / "person_link" / "**" / "*.parquet").select(
        pl.format("{}|{}", "source", "source_patient_id").alias("unique_id"), "person_id"
    )
    records = records.join(links, on="unique_id").unique("person_id", keep="first").sort("unique_id")
    records = records.filter(pl.col("given").is_not_null() & pl.col("family").is_not_null()).head(6)
    values = records.select("unique_id", "person_id", *EVIDENCE_FIELDS)
    left = values[0::2].rename({c: f"{c}_l" for c in values.columns})
    right = values[1::2].rename({c: f"{c}_r" for c in values.columns})
    pairs = pl.concat([left, right], how="horizontal").with_columns(
        pl.lit("probabilistic").alias("match_rule"),
        pl.Series("match_probability", PROBABILITIES),
        *[pl.lit(_gamma(f, words), pl.Int64).alias(f"gamma_{f}") for f, words in SEEDED_LEVELS.items()],
        pl.Series("review_reason", REASONS),
        pl.Series("suffix_l", ["jr", None, None]),
        pl.Series("suffix_r", ["sr", None, None]),
        pl.Series("multiple_birth_l", [2, None, None], pl.Int64),
        pl.Series("multiple_birth_r", [1, None, None], pl.Int64),
    )
    path = table_path(UPath(lake), "identity", "clerical_review") / "data.parquet"
    write_parquet_atomic(pairs, path)
    return pairs


@pytest.fixture
def review_lake(dashboard_lake: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, pl.DataFrame]:
    """A copy of the demo lake (its own decisions) with three pairs waiting for review."""
    lake = tmp_path / "lake"
    shutil.copytree(dashboard_lake[0], lake)
    return lake, dashboard_lake[1], seed_review(lake)


@pytest.fixture
def as_role(
    review_lake: tuple[Path, Path, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable]:
    """Point the app at the review lake with a role; the cache is cleared before and after."""

    def use(role: str, user: str | None = None) -> None:
        lake, exports, _ = review_lake
        monkeypatch.setenv("PATIENT_INSIGHTS_LAKE", str(lake))
        monkeypatch.setenv("PATIENT_INSIGHTS_EXPORTS", str(exports))
        monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", role)
        monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_PSEUDONYM_KEY", "test-key")
        if user is None:
            monkeypatch.delenv("PATIENT_INSIGHTS_DASHBOARD_USER", raising=False)
        else:
            monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_USER", user)

    st.cache_data.clear()
    yield use
    st.cache_data.clear()


def _names(pair: dict, side: str) -> str:
    return f"{pair[f'given_{side}'].title()} {pair[f'family_{side}'].title()}"


# Without Streamlit: the words, the evidence, the masking, the cache key.


def test_every_comparison_level_of_the_model_has_plain_words() -> None:
    levels = comparison_levels()
    assert set(EVIDENCE_FIELDS) <= set(levels)
    for field, words in levels.items():
        assert words[-1] == MISSING_IN_ONE and words[0] == "different", field
        assert words[max(words)] in ("same", "same: a phone number in common"), field  # the top level
        for gamma, text in words.items():  # no SQL, no library jargon on a care manager's screen
            assert not any(sign in text for sign in ('"', "=", "Jaro", "Levenshtein", "NULL")), (field, text)
            assert comparison_words(gamma, words) == text
    for field, words in SEEDED_LEVELS.items():  # the words the page tests below rely on
        assert words in levels[field].values(), (field, words)


def test_a_level_the_words_do_not_know_still_reads() -> None:
    assert comparison_words(7, {0: "different", 1: "same"}) == "similar"
    assert comparison_words(0, None) == "different"
    assert comparison_words(-1, None) == MISSING_IN_ONE
    assert comparison_words(None, None) == "not compared"


def test_the_evidence_is_side_by_side_in_plain_words_with_the_ssn_cut_to_four_digits() -> None:
    pair = {
        "given_l": "jon", "given_r": "john", "gamma_given": _gamma("given", NICKNAME),
        "family_l": "smith", "family_r": "smith", "gamma_family": _gamma("family", "same"),
        "birth_date_l": "1970-03-04", "birth_date_r": "1970-04-03",
        "gamma_birth_date": _gamma("birth_date", SEEDED_LEVELS["birth_date"]),
        "phones_l": ["2015550100", "2015550101"], "phones_r": [], "gamma_phones": -1,
        "email_l": None, "email_r": None, "gamma_email": -1,
        "ssn_l": "123456789", "ssn_r": "123456798", "gamma_ssn": _gamma("ssn", SEEDED_LEVELS["ssn"]),
        "suffix_l": "jr", "suffix_r": None,
        "multiple_birth_l": 2, "multiple_birth_r": 1,
        "unique_id_l": "ehr_a|p1", "unique_id_r": "ehr_b|p2", "person_id_l": "psn-1", "person_id_r": "psn-2",
    }  # fmt: skip
    evidence = pair_evidence(pair, comparison_levels())
    rows = {r["field"]: (r["record_l"], r["record_r"], r["comparison"]) for r in evidence.to_dicts()}
    assert list(rows) == [
        "Given name", "Family name", "Name suffix", "Birth date", "Multiple birth", "Phones", "E-mail", "SSN"
    ]  # fmt: skip
    assert rows["Given name"] == ("Jon", "John", NICKNAME)
    assert rows["Family name"] == ("Smith", "Smith", "same")
    assert rows["Birth date"][2] == "close: day and month swapped"
    assert rows["Name suffix"] == ("Jr", "—", MISSING_IN_ONE)
    assert rows["Multiple birth"] == ("yes, birth order 2", "yes", "different")
    assert rows["Phones"] == ("2015550100, 2015550101", "—", MISSING_IN_ONE)
    assert rows["E-mail"] == ("—", "—", MISSING_IN_BOTH)
    assert rows["SSN"] == ("ending 6789", "ending 6798", "close: one character off (a typo)")
    shown = evidence.write_csv()
    assert not any(secret in shown for secret in ("123456789", "12345", "ehr_a|p1", "psn-1", "p2"))


def test_the_masking_drops_every_identifying_column_of_a_pair() -> None:
    review = seed_review_frame()
    masked = mask(review, ANALYST_VIEWER)
    kept = set(masked.columns)
    for field in ("unique_id", "given", "family", "address_line", "postal_code", "phones", "email", "ssn",
                  "suffix", "name", "record"):  # fmt: skip
        assert not {f"{field}_l", f"{field}_r"} & kept, field
    assert {"match_probability", "review_reason", "gamma_given", "gender_l"} <= kept
    assert masked["birth_date_l"].to_list() == ["1970"]
    assert masked["person_id_l"].to_list() == [pseudonym_of("psn-1")]
    decisions = pl.DataFrame({"decision": [LINK], "decided_by": ["Nurse Lee"], "review_note": ["his sister"]})
    assert mask(decisions, ANALYST_VIEWER).columns == ["decision"]
    assert mask(review, Viewer(CARE_MANAGER, None, True)).equals(review)


def seed_review_frame() -> pl.DataFrame:
    """One clerical-review row in the build's columns (and the page's own name and record columns)."""
    return pl.DataFrame(
        {
            "unique_id_l": ["ehr_a|p1"], "unique_id_r": ["ehr_b|p2"], "match_rule": ["probabilistic"],
            "match_probability": [0.8], "person_id_l": ["psn-1"], "person_id_r": ["psn-2"],
            "given_l": ["ann"], "given_r": ["anne"], "family_l": ["lee"], "family_r": ["lee"],
            "birth_date_l": ["1970-03-04"], "birth_date_r": ["1970-03-04"], "gender_l": ["female"],
            "gender_r": ["female"], "postal_code_l": ["10540"], "postal_code_r": ["10540"],
            "address_line_l": ["1 elm st"], "address_line_r": ["1 elm street"], "phones_l": [["2015550100"]],
            "phones_r": [["2015550100"]], "email_l": ["ann@example.org"], "email_r": [None],
            "ssn_l": ["123456789"], "ssn_r": [None], "suffix_l": ["jr"], "suffix_r": [None],
            "gamma_given": [3], "review_reason": ["possibly twins"], "name_l": ["Ann Lee"],
            "name_r": ["Anne Lee"], "record_l": ["Ann"], "record_r": ["Anne"],
        }
    )  # fmt: skip


def test_a_decision_changes_the_lake_version(tmp_path: Path) -> None:
    lake, exports = UPath(tmp_path / "lake"), UPath(tmp_path / "exports")
    before = lake_version(lake, exports)
    when = datetime(2026, 7, 1, tzinfo=UTC)
    record_decision(lake, "ehr_a|p1", "ehr_b|p2", NEVER_LINK, "Nurse Lee", now=when)
    assert lake_version(lake, exports) != before


def test_the_queue_and_the_counts_leave_decided_pairs_out(review_lake: tuple) -> None:
    lake, _, pairs = review_lake
    queue = review_queue(UPath(lake))
    assert queue["match_probability"].to_list() == list(PROBABILITIES)
    first = pairs.row(0, named=True)
    record_decision(UPath(lake), first["unique_id_r"], first["unique_id_l"], NEVER_LINK, "Nurse Lee")
    counts = review_counts(UPath(lake))
    assert (counts.pending, counts.persons, counts.decided) == (2, 4, 1)
    assert counts.by_decision.to_dicts() == [{"decision": NEVER_LINK, "pairs": 1}]
    assert set(counts.by_reason["review_reason"]) == set(REASONS[1:])


# The page, with Streamlit's AppTest.


def _output(app: AppTest) -> str:
    assert not app.exception, [e.value for e in app.exception]
    return page_output(app)


def _ids(pairs: pl.DataFrame) -> set[str]:
    """Every internal id of the seeded pairs: unique ids, their patient ids and the person ids."""
    ids = set()
    for side in ("l", "r"):
        ids |= set(pairs[f"unique_id_{side}"]) | set(pairs[f"person_id_{side}"])
        ids |= {u.split("|", 1)[1] for u in pairs[f"unique_id_{side}"]}
    return ids


def test_the_care_manager_sees_both_records_side_by_side_and_no_internal_id(
    review_lake: tuple, as_role: Callable
) -> None:
    _, _, pairs = review_lake
    as_role("care_manager")
    app = open_page(PAGE)
    output = _output(app)
    first = pairs.row(0, named=True)
    assert _names(first, "l") in output and _names(first, "r") in output
    assert REASONS[0] in output and "93.0%" in output
    evidence = app.dataframe[0].value
    assert list(evidence.columns) == ["field", "record_l", "record_r", "comparison"]
    rows = {r["field"]: r for r in evidence.to_dict("records")}
    assert rows["Given name"]["record_l"] == first["given_l"].title()
    assert rows["Given name"]["comparison"] == NICKNAME
    assert rows["Birth date"]["record_r"] == first["birth_date_r"]
    assert rows["Name suffix"]["record_l"] == "Jr"
    if first["ssn_l"]:
        assert rows["SSN"]["record_l"] == f"ending {first['ssn_l'][-4:]}" and first["ssn_l"] not in output
    assert [b.label for b in app.button] == [
        "Same person — link them", "Different people — never link", "Skip for now"
    ]  # fmt: skip
    for id_ in _ids(pairs):
        assert id_ not in output, id_
    # the pair list: by position and names, most probable first
    options = list(app.selectbox(key="review_pair").options)
    assert options[0].startswith(f"1. {_names(first, 'l')}") and len(options) == 3


def test_never_link_records_the_decision_and_the_pair_leaves_the_queue(
    review_lake: tuple, as_role: Callable
) -> None:
    lake, _, pairs = review_lake
    first = pairs.row(0, named=True)
    as_role("care_manager", user="Nurse Lee")
    app = open_page(PAGE)
    assert app.text_input(key="decided_by").value == "Nurse Lee"  # prefilled from the environment
    app.text_input(key="review_note").input("different mothers' names on file").run()
    app.button(key=f"decide_{NEVER_LINK}").click().run()
    output = _output(app)
    decided = current_decisions(UPath(lake)).to_dicts()
    assert len(decided) == 1
    assert decided[0] | {"decided_at": None} == {
        "unique_id_l": first["unique_id_l"],
        "unique_id_r": first["unique_id_r"],
        "decision": NEVER_LINK,
        "decided_by": "Nurse Lee",
        "decided_at": None,
        "note": "different mothers' names on file",
    }
    assert any("next pipeline run" in s.value for s in app.success), output
    options = list(app.selectbox(key="review_pair").options)
    assert len(options) == 2 and not any(_names(first, "l") in o for o in options)
    assert app.text_input(key="review_note").value == ""  # the note went with its decision
    recent = app.dataframe[1].value.to_dict("records")
    assert recent[0]["decision"] == "different people: never linked"
    assert recent[0]["decided_by"] == "Nurse Lee" and _names(first, "l").split()[0] in recent[0]["name_l"]
    for id_ in _ids(pairs):
        assert id_ not in output, id_


def test_a_decision_without_a_decider_is_refused(review_lake: tuple, as_role: Callable) -> None:
    lake, _, _ = review_lake
    as_role("care_manager")
    app = open_page(PAGE)
    assert app.text_input(key="decided_by").value == ""
    app.text_input(key="decided_by").input("   ").run()
    app.button(key=f"decide_{LINK}").click().run()
    _output(app)
    assert any("Decided by" in e.value for e in app.error)
    assert decision_history(UPath(lake)).is_empty()
    assert len(app.selectbox(key="review_pair").options) == 3


def test_changing_a_decision_records_the_opposite_one_in_force(review_lake: tuple, as_role: Callable) -> None:
    lake, _, pairs = review_lake
    first = pairs.row(0, named=True)
    as_role("care_manager", user="Nurse Lee")
    app = open_page(PAGE)
    app.button(key=f"decide_{NEVER_LINK}").click().run()
    assert app.button(key="change_decision").label == "Change to: Same person — link them"
    app.text_input(key="change_note").input("same person: the twin was a data-entry error").run()
    app.button(key="change_decision").click().run()
    _output(app)
    current = current_decisions(UPath(lake))
    assert current.select("unique_id_l", "decision", "note").to_dicts() == [
        {
            "unique_id_l": first["unique_id_l"],
            "decision": LINK,
            "note": "same person: the twin was a data-entry error",
        }
    ]
    assert decision_history(UPath(lake))["decision"].to_list() == [NEVER_LINK, LINK]
    assert app.dataframe[1].value["decision"].to_list() == ["same person: linked"]
    assert app.button(key="change_decision").label == "Change to: Different people — never link"
    assert len(app.selectbox(key="review_pair").options) == 2  # decided either way: out of the queue


def test_skip_and_the_reason_filter_choose_the_pair(review_lake: tuple, as_role: Callable) -> None:
    lake, _, pairs = review_lake
    as_role("care_manager", user="Nurse Lee")
    app = open_page(PAGE)
    app.button(key="skip").click().run()
    assert app.selectbox(key="review_pair").value == 1
    assert any(_names(pairs.row(1, named=True), "l") in m.value for m in app.markdown)
    app.selectbox(key="reason_filter").select(REASONS[2]).run()
    _output(app)
    options = list(app.selectbox(key="review_pair").options)
    assert len(options) == 1 and _names(pairs.row(2, named=True), "l") in options[0]
    assert decision_history(UPath(lake)).is_empty()  # skipping decides nothing


def test_an_empty_queue_says_so(review_lake: tuple, as_role: Callable) -> None:
    lake, _, pairs = review_lake
    for row in pairs.iter_rows(named=True):
        record_decision(UPath(lake), row["unique_id_l"], row["unique_id_r"], LINK, "Nurse Lee")
    as_role("care_manager")
    app = open_page(PAGE)
    _output(app)
    assert any("No pairs are waiting" in s.value for s in app.success)
    assert len(app.dataframe[0].value) == 3  # the recent decisions


def test_the_analyst_sees_counts_only(
    review_lake: tuple, dashboard_lake: tuple[Path, Path], as_role: Callable
) -> None:
    lake, _, pairs = review_lake
    first = pairs.row(0, named=True)
    record_decision(UPath(lake), first["unique_id_l"], first["unique_id_r"], LINK, "Nurse Lee", "a note")
    as_role("analyst")
    app = open_page(PAGE)
    output = _output(app)
    assert {m.label: m.value for m in app.metric} == {
        "Pairs waiting for review": "2",
        "Persons involved": "4",
        "Pairs decided": "1",
    }
    assert not app.button and not app.text_input and not app.selectbox
    assert REASONS[1] in output  # the reasons are plain words about kinds of pairs, not about anyone
    names = {name for f in ("given", "family") for s in "lr" for name in pairs[f"{f}_{s}"].to_list()}
    assert not shown_values(output, {"name": names})
    for id_ in _ids(pairs):
        assert id_ not in output and pseudonym_of(id_) not in output
    assert "Nurse Lee" not in output and "a note" not in output
    needles = identifying_values(lake, dashboard_lake[0].parent / "landing")
    assert not shown_values(output, needles)
