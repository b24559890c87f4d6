"""The hard rules over the model's pairs (`pipelines/identity/rules.py`), keeping rule-separated records
apart through chains of links (`persons.keep_apart`), and clerical decisions honoured by every build."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.generate import generate_landing
from pipelines.identity import rules
from pipelines.identity.build import build_identity
from pipelines.identity.decisions import NEVER_LINK, current_decisions, pending_review, record_decision
from pipelines.identity.persons import connected_components, keep_apart
from pipelines.lake import read_table
from pipelines.silver.build import build_partition, partition_keys

AUTO, REVIEW = 0.99, 0.5
# comparison levels (`matching._comparisons`): given exact 5 .. else 0; birth exact 6 .. else 0
GIVEN = {"exact": 5, "nickname": 4, "initial": 3, "typo": 2, "similar": 1, "different": 0}
BIRTH = {"exact": 6, "swapped": 5, "one_off": 4, "year_off": 3, "month": 2, "years": 1, "different": 0}


def _pair(
    *,
    p: float = 0.9999,
    given: str = "exact",
    family: int = 6,
    birth: str = "exact",
    gender: int = 1,
    address: int = 2,
    phones: int = 1,
    ssn: int = -1,
    email: int = -1,
    left: dict | None = None,
    right: dict | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    pairs = pl.DataFrame(
        {
            "unique_id_l": ["a|1"],
            "unique_id_r": ["b|1"],
            "match_rule": ["probabilistic"],
            "match_probability": [p],
            "gamma_given": [GIVEN[given]],
            "gamma_family": [family],
            "gamma_birth_date": [BIRTH[birth]],
            "gamma_gender": [gender],
            "gamma_address_line": [address],
            "gamma_phones": [phones],
            "gamma_ssn": [ssn],
            "gamma_email": [email],
        }
    )
    base = {
        "given": "ann",
        "given_forms": ["ann"],
        "birth_date": "1980-05-04",
        "suffix": None,
        "multiple_birth": False,
        "birth_order": None,
    }
    records = pl.DataFrame(
        [{"unique_id": "a|1", **base, **(left or {})}, {"unique_id": "b|1", **base, **(right or {})}],
        schema={
            "unique_id": pl.String,
            "given": pl.String,
            "given_forms": pl.List(pl.String),
            "birth_date": pl.String,
            "suffix": pl.String,
            "multiple_birth": pl.Boolean,
            "birth_order": pl.Int64,
        },
    ).with_columns(  # as `records.build_records` derives it
        pl.col("birth_date").str.to_date(strict=False).cast(pl.Int32).alias("birth_days")
    )
    return pairs, records


def _verdict(**kwargs: object) -> tuple[str, str | None]:
    judged = rules.judge(*_pair(**kwargs), AUTO, REVIEW)  # type: ignore[arg-type]
    return judged["verdict"][0], judged["review_reason"][0]


def test_a_probable_pair_with_nothing_against_it_links() -> None:
    assert _verdict() == (rules.LINK, None)
    assert _verdict(given="nickname", birth="swapped") == (rules.LINK, None)
    assert _verdict(given="initial", birth="one_off") == (rules.LINK, None)


def test_twins_are_never_linked_automatically() -> None:
    # same family, birth date, address and phone; given names only alike: the model's 0.9999 is not enough
    assert _verdict(given="similar") == (rules.REVIEW, rules.TWINS)
    # wholly different given names on the same day in the same home: two people
    verdict, reason = _verdict(given="different")
    assert verdict == rules.REJECT and reason.endswith("twins")
    # unless a personal e-mail speaks for one person: then a person decides
    assert _verdict(given="different", email=1) == (rules.REVIEW, rules.TWINS)
    # a different sex, a multiple-birth marker or different SSNs settle it
    assert _verdict(given="similar", gender=0) == (rules.REVIEW, rules.TWINS)
    assert _verdict(given="different", gender=0, email=1) == (
        rules.REJECT,
        rules.TWINS_DIFFERENT.format(what="sex"),
    )
    verdict, reason = _verdict(given="different", email=1, right={"multiple_birth": True})
    assert verdict == rules.REJECT and "multiple birth" in reason
    verdict, reason = _verdict(given="similar", ssn=0)
    assert verdict == rules.REJECT and "social security" in reason
    assert _verdict(right={"birth_order": 1}, left={"birth_order": 2})[0] == rules.REJECT
    # the same SSN on both: one person whatever the names say
    assert _verdict(given="different", ssn=2) == (rules.LINK, None)


def test_names_one_letter_apart_are_a_typo_unless_twins_are_recorded() -> None:
    # "Qing" and "Ling" on the same day in the same home: a typo of one person's name ...
    assert _verdict(given="typo") == (rules.LINK, None)
    # ... unless a multiple birth is recorded, or their e-mails or SSNs differ: then a person decides
    assert _verdict(given="typo", right={"multiple_birth": True}) == (rules.REVIEW, rules.ALIKE)
    assert _verdict(given="typo", email=0) == (rules.REVIEW, rules.ALIKE)
    # a short form of the same name is the same name, whatever the marker says
    assert _verdict(given="nickname", right={"multiple_birth": True}) == (rules.LINK, None)


def test_a_typo_of_a_short_form_is_not_a_different_name() -> None:
    # "Biill" is Bill mistyped, and Bill is William: not a twin
    forms = {"given": "william", "given_forms": ["bill", "william", "will"]}
    assert _verdict(given="different", left={"given": "biill", "given_forms": ["biill"]}, right=forms) == (
        rules.LINK,
        None,
    )


def test_a_parent_and_a_namesake_child_are_two_people() -> None:
    # same full name, address and phone, birth years decades apart
    verdict, reason = _verdict(birth="years", right={"birth_date": "2010-05-04"})
    assert (verdict, reason) == (rules.REJECT, rules.YEARS_APART)
    # even without the birth dates: a Jr. and a Sr. are not linked automatically
    verdict, reason = _verdict(left={"suffix": "sr"}, right={"suffix": "jr"})
    assert (verdict, reason) == (rules.REVIEW, rules.GENERATIONS)
    # a suffix only one source writes is no evidence either way
    assert _verdict(right={"suffix": "jr"}) == (rules.LINK, None)


def test_a_birth_year_one_digit_off_is_reviewed_not_rejected() -> None:
    verdict, reason = _verdict(birth="years", right={"birth_date": "1986-05-04"})
    assert (verdict, reason) == (rules.REVIEW, rules.ONE_DIGIT)


def test_an_identifier_outweighs_the_birth_year_rule() -> None:
    verdict, _ = _verdict(birth="years", ssn=2, right={"birth_date": "1908-05-04"})
    assert verdict == rules.LINK


def test_strangers_whose_birth_dates_disagree_are_not_linked_automatically() -> None:
    assert _verdict(birth="month", address=0, phones=0) == (rules.REVIEW, rules.BIRTH_DISAGREES)
    assert _verdict(birth="month", ssn=2)[0] == rules.LINK


def test_a_name_change_is_reviewed_not_missed() -> None:
    # married: another family name, address and phone; same given name, birth date and sex; the model
    # finds it unlikely, the rule sends it to a person
    verdict, reason = _verdict(p=0.02, family=0, address=0, phones=0)
    assert (verdict, reason) == (rules.REVIEW, rules.NAME_CHANGE)
    # a stranger with another given name is not
    assert _verdict(p=0.02, family=0, address=0, phones=0, given="different")[0] == rules.REJECT
    assert _verdict(p=0.02, family=0, address=0, phones=0, gender=0)[0] == rules.REJECT


def test_records_kept_apart_are_not_joined_through_a_third_record() -> None:
    ids = pl.Series(["t1", "t2", "x", "y"])
    # strongest first: x-t1, then x-t2 (would put the twins t1, t2 in one person), then y-t2
    edges = pl.DataFrame({"unique_id_l": ["t1", "t2", "t2"], "unique_id_r": ["x", "x", "y"]})
    clusters = connected_components(ids, edges)
    assert clusters["cluster"].n_unique() == 1
    apart = pl.DataFrame({"unique_id_l": ["t1"], "unique_id_r": ["t2"]})
    kept = dict(keep_apart(clusters, edges, apart).iter_rows())
    assert kept["t1"] == kept["x"] and kept["t2"] == kept["y"] and kept["t1"] != kept["t2"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> UPath:
    root = tmp_path_factory.mktemp("decisions")
    generate_landing(root / "landing", 150, seed=5)
    lake = UPath(root / "lake")
    ingest_landing(UPath(root / "landing"), lake, 2)
    for key in partition_keys(2):
        build_partition(lake, key)
    build_identity(lake, now=datetime(2026, 6, 30, tzinfo=UTC))
    return lake


def _persons(lake: UPath) -> dict[str, str]:
    links = read_table(lake, "identity", "person_link")
    return dict(links.select(pl.format("{}|{}", "source", "source_patient_id"), "person_id").iter_rows())


def test_decisions_are_honoured_by_every_later_build(lake: UPath, tmp_path: Path) -> None:
    person = _persons(lake)
    by_person: dict[str, list[str]] = {}
    for record, pid in sorted(person.items()):
        by_person.setdefault(pid, []).append(record)
    linked = next(records for records in by_person.values() if len(records) == 2)
    single = [records[0] for records in by_person.values() if len(records) == 1][:2]
    record_decision(lake, *linked, NEVER_LINK, "reviewer one", note="two people")
    record_decision(lake, *single, "link", "reviewer one")
    for _ in range(2):  # and again: re-matching does not undo a decision
        report = build_identity(lake, now=datetime(2026, 7, 1, tzinfo=UTC))
        person = _persons(lake)
        assert person[linked[0]] != person[linked[1]]
        assert person[single[0]] == person[single[1]]
        assert report.decisions == {"link": 1, "reject": 1}
    links = read_table(lake, "identity", "person_link")
    assert "clerical" in links["match_rule"].to_list()
    # a decided pair never comes back to the queue
    decided = current_decisions(lake).select("unique_id_l", "unique_id_r")
    assert pending_review(lake).join(decided, on=["unique_id_l", "unique_id_r"]).is_empty()
    review = read_table(lake, "identity", "clerical_review")
    assert review.join(decided, on=["unique_id_l", "unique_id_r"]).is_empty()


def test_a_decision_needs_a_decider_and_two_records(tmp_path: Path) -> None:
    lake = UPath(tmp_path)
    with pytest.raises(ValueError, match="who made it"):
        record_decision(lake, "a|1", "b|1", NEVER_LINK, "  ")
    with pytest.raises(ValueError, match="two different"):
        record_decision(lake, "a|1", "a|1", NEVER_LINK, "me")
    with pytest.raises(ValueError, match="one of"):
        record_decision(lake, "a|1", "b|1", "maybe", "me")
    record_decision(lake, "b|1", "a|1", "link", "me", now=datetime(2026, 1, 1, tzinfo=UTC))
    record_decision(lake, "a|1", "b|1", NEVER_LINK, "you", now=datetime(2026, 1, 2, tzinfo=UTC))
    current = current_decisions(lake)
    assert current.select("unique_id_l", "unique_id_r", "decision", "decided_by").rows() == [
        ("a|1", "b|1", NEVER_LINK, "you")
    ]


def test_the_hard_identity_set_meets_the_targets(tmp_path: Path) -> None:
    """Issue 26's targets on a hard generated set (twins, namesakes, name changes, typos), end to end
    through bronze, silver and identity: no twin or namesake linked, precision >= 0.995, recall >= 0.95,
    at most 2 % of persons waiting for a person's decision. (`make bench` measures 5,000 people.)"""
    from bench.identity_score import score_identity_cases
    from pipelines.generate.identity_cases import generate_identity_set
    from pipelines.identity.decisions import pending_review

    generate_identity_set(tmp_path / "landing", 1500, seed=3)
    lake = UPath(tmp_path / "lake")
    ingest_landing(UPath(tmp_path / "landing"), lake, 2)
    for key in partition_keys(2):
        build_partition(lake, key)
    build_identity(lake)
    key = pl.format("{}|{}", "source", "source_patient_id").alias("unique_id")
    truth = pl.read_csv(tmp_path / "ground_truth" / "identity.csv", infer_schema_length=0).select(
        key, "person_index"
    )
    cases = pl.read_csv(tmp_path / "ground_truth" / "identity_cases.csv", infer_schema_length=0)
    links = read_table(lake, "identity", "person_link").select(key, "person_id")
    score = score_identity_cases(truth, cases, links, pending_review(lake))
    kinds = {kind["case_kind"]: kind for kind in score["kinds"]}
    assert kinds["twin"]["false_links_between_relatives"] == 0
    assert kinds["namesake"]["false_links_between_relatives"] == 0
    overall = score["overall"]
    assert overall["precision"] >= 0.995 and overall["recall"] >= 0.95, overall
    assert overall["review_load"] <= 0.02, overall


def test_a_placeholder_birth_date_is_no_evidence_of_identity() -> None:
    from pipelines.identity.records import build_records

    patients = pl.DataFrame(
        {
            "source": ["a", "a", "b"],
            "id": ["1", "2", "3"],
            "given": ["Ann", "Bo", "Cy"],
            "family": ["Lee", "Lee", "Lee"],
            "birth_date": ["1900-01-01", "1975", "1980-02-03"],
            "gender": ["female", "male", "male"],
            "address_postal_code": [None, None, None],
            "address_line": [None, None, None],
            "last_updated": [None, None, None],
        },
        schema_overrides={c: pl.String for c in ("address_postal_code", "address_line", "last_updated")},
    )
    empty = pl.DataFrame(
        schema={"source": pl.String, "patient_id": pl.String, "system": pl.String, "value": pl.String}
    )
    names = pl.DataFrame(schema={"source": pl.String, "patient_id": pl.String, "family": pl.String})
    records = build_records(patients, names, empty, empty)
    assert records.select("birth_date", "birth_days").rows() == [
        (None, None),
        (None, None),
        ("1980-02-03", 3685),
    ]
