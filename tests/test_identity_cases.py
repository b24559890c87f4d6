"""The hard identity set: its case kinds agree with the Patient resources it writes, it is deterministic, the
ingest reads it whole, and the per-kind scoring of identity against it counts what it should."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner
from upath import UPath

from bench.identity_score import score_identity_cases
from pipelines.bronze.ingest import ingest_landing
from pipelines.cli import app
from pipelines.generate import generate_landing
from pipelines.generate.identity_cases import CASE_KINDS, CaseMix, generate_identity_set
from pipelines.lake import read_table
from pipelines.silver.build import build_partition, partition_keys

BOOSTED = CaseMix(
    twin=0.1, namesake=0.15, stranger_same_name=0.05, married_move=0.3, birth_day_off=0.15, initial=0.15
)
"""Every case common enough to be present many times in a few hundred people."""
SUFFIXES = {"jr", "sr", "ii", "iii"}


def _fold(text: str) -> str:
    """Lower-case ASCII: EHR B stores names without accents."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().strip()


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class IdentitySet:
    """A generated set read back: each person's resources per source and their case."""

    def __init__(self, root: Path) -> None:
        resources = {}
        for source in ("ehr_a", "ehr_b"):
            for line in (root / "landing" / source / "Patient.000.ndjson").read_bytes().splitlines():
                resource = orjson.loads(line)
                resources[(source, resource["id"])] = resource
        self.identity = pl.read_csv(root / "ground_truth" / "identity.csv", infer_schema_length=0)
        self.cases = pl.read_csv(root / "ground_truth" / "identity_cases.csv")
        self.records: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for source, pid, index in self.identity.iter_rows():
            self.records[int(index)][source] = resources.pop((source, pid))
        assert not resources  # every resource belongs to a person of the truth
        self.kind = dict(zip(self.cases["person_index"], self.cases["case_kind"], strict=True))

    def canonical(self, index: int) -> dict[str, Any]:
        """The record without matching noise: EHR A's, else EHR B's (B adds noise only to people A has)."""
        records = self.records[index]
        return records.get("ehr_a") or records["ehr_b"]

    def related(self, kind: str) -> list[tuple[int, int]]:
        rows = self.cases.filter(
            pl.col("case_kind") == kind, pl.col("person_index") < pl.col("related_person_index")
        )
        return list(rows.select("person_index", "related_person_index").iter_rows())

    def of_kind(self, kind: str) -> list[int]:
        return self.cases.filter(pl.col("case_kind") == kind)["person_index"].to_list()


def _given(resource: dict[str, Any]) -> str:
    return _fold(resource["name"][0]["given"][0]).split()[0]


def _family(resource: dict[str, Any]) -> str:
    words = _fold(resource["name"][0]["family"]).replace(".", "").split()
    return " ".join(w for w in words if w not in SUFFIXES)


def _home(resource: dict[str, Any]) -> tuple[str, ...]:
    address = next(a for a in resource["address"] if a.get("use") == "home")
    return (*address["line"], address["postalCode"])


def _home_phone(resource: dict[str, Any]) -> str | None:
    phones = (t for t in resource.get("telecom", []) if t["system"] == "phone" and t.get("use") == "home")
    return next((t["value"] for t in phones), None)


def _ssn(resource: dict[str, Any]) -> str | None:
    return next((i["value"] for i in resource["identifier"] if i["system"].endswith("us-ssn")), None)


@pytest.fixture(scope="module")
def boosted(tmp_path_factory: pytest.TempPathFactory) -> IdentitySet:
    root = tmp_path_factory.mktemp("identity_set")
    generate_identity_set(root / "landing", 400, seed=5, mix=BOOSTED)
    return IdentitySet(root)


def test_every_kind_is_present_and_relations_are_mutual(boosted: IdentitySet) -> None:
    counts = boosted.cases["case_kind"].value_counts()
    assert set(counts["case_kind"]) == set(CASE_KINDS)
    assert counts["count"].min() >= 4
    assert boosted.cases["person_index"].to_list() == sorted(boosted.records)  # one case row per person
    related = boosted.cases.drop_nulls("related_person_index")
    assert set(related["case_kind"]) == {"twin", "namesake", "stranger_same_name"}
    back = related.join(
        related, left_on="related_person_index", right_on="person_index", suffix="_back", how="left"
    )
    assert (back["related_person_index_back"] == back["person_index"]).all()
    assert (back["case_kind_back"] == back["case_kind"]).all()


def test_twins_share_family_birth_date_and_home_but_not_the_given_name(boosted: IdentitySet) -> None:
    twins = boosted.related("twin")
    assert twins
    sexes_differ = 0
    for a, b in twins:
        ra, rb = boosted.canonical(a), boosted.canonical(b)
        assert _family(ra) == _family(rb)
        assert ra["birthDate"] == rb["birthDate"]
        assert _home(ra) == _home(rb)
        assert _home_phone(ra) == _home_phone(rb)
        assert _given(ra) != _given(rb)
        assert _ssn(ra) is None or _ssn(ra) != _ssn(rb)
        sexes_differ += ra["gender"] != rb["gender"]
    assert 0 < sexes_differ < len(twins)
    flagged = [
        r
        for index in boosted.of_kind("twin")
        for r in boosted.records[index].values()
        if "multipleBirthBoolean" in r or "multipleBirthInteger" in r
    ]
    assert flagged
    assert all(r.get("multipleBirthInteger") in (None, 1, 2) for r in flagged)
    others = [r for i, rs in boosted.records.items() if boosted.kind[i] != "twin" for r in rs.values()]
    assert not any("multipleBirthBoolean" in r or "multipleBirthInteger" in r for r in others)


def test_namesakes_share_the_name_and_home_and_are_a_generation_apart(boosted: IdentitySet) -> None:
    pairs = boosted.related("namesake")
    assert pairs
    for parent, child in pairs:
        rp, rc = boosted.canonical(parent), boosted.canonical(child)
        assert (_given(rp), _family(rp)) == (_given(rc), _family(rc))
        assert rp["gender"] == rc["gender"]
        assert _home(rp) == _home(rc)
        gap = date.fromisoformat(rc["birthDate"]).year - date.fromisoformat(rp["birthDate"]).year
        assert 25 <= gap <= 35
        assert _ssn(rp) is None or _ssn(rp) != _ssn(rc)
        assert _email(rp) is None or _email(rp) != _email(rc)
    records = [r for i in boosted.of_kind("namesake") for r in boosted.records[i].values()]
    marked = [r for r in records if "suffix" in r["name"][0]]
    assert marked
    assert {s for r in marked for s in r["name"][0]["suffix"]} <= {"Jr.", "Sr.", "II", "III"}
    others = [r for i, rs in boosted.records.items() if boosted.kind[i] != "namesake" for r in rs.values()]
    assert not any("suffix" in r["name"][0] for r in others)


def test_strangers_share_name_and_birth_year_only(boosted: IdentitySet) -> None:
    pairs = boosted.related("stranger_same_name")
    assert pairs
    for a, b in pairs:
        ra, rb = boosted.canonical(a), boosted.canonical(b)
        assert (_given(ra), _family(ra)) == (_given(rb), _family(rb))
        assert ra["birthDate"][:4] == rb["birthDate"][:4]
        assert ra["birthDate"] != rb["birthDate"]
        assert _home(ra) != _home(rb)
        assert _email(ra) is None or _email(ra) != _email(rb)


def test_two_record_cases_change_what_they_say(boosted: IdentitySet) -> None:
    for kind in ("married_move", "no_ssn", "birth_day_off", "initial"):
        people = boosted.of_kind(kind)
        assert people, kind
        for index in people:
            records = boosted.records[index]
            assert set(records) == {"ehr_a", "ehr_b"}
            a, b = records["ehr_a"], records["ehr_b"]
            if kind == "married_move":
                assert _family(a) != _family(b)
                assert _home(a) != _home(b)
                assert _given(a) == _given(b) and a["birthDate"] == b["birthDate"]
                assert _ssn(a) is None or _ssn(b) is None
            elif kind == "no_ssn":
                assert _ssn(a) is None and _ssn(b) is None
            elif kind == "birth_day_off":
                da, db = date.fromisoformat(a["birthDate"]), date.fromisoformat(b["birthDate"])
                one_digit = sum(x != y for x, y in zip(a["birthDate"], b["birthDate"], strict=True)) == 1
                assert abs((da - db).days) == 1 or one_digit
            else:
                givens = sorted((a["name"][0]["given"][0], b["name"][0]["given"][0]), key=len)
                assert len(givens[0]) == 1 and givens[0].isalpha()
                assert _fold(givens[1]).startswith(_fold(givens[0]))
    moves = [boosted.records[i] for i in boosted.of_kind("married_move")]
    kept = [
        rs
        for rs in moves
        if any(n.get("use") == "maiden" for r in rs.values() for n in r["name"])
        or any(a.get("use") == "old" for r in rs.values() for a in r["address"])
        or _email(rs["ehr_a"]) == _email(rs["ehr_b"]) is not None
    ]
    assert 0 < len(kept) < len(moves)  # half keep a link to the earlier record, half keep none


def _email(resource: dict[str, Any]) -> str | None:
    return next((t["value"] for t in resource.get("telecom", []) if t["system"] == "email"), None)


def test_deterministic_for_a_seed_and_base_people_are_the_populations(tmp_path: Path) -> None:
    for name in ("one", "two"):
        generate_identity_set(tmp_path / name / "landing", 150, seed=8)
    generate_identity_set(tmp_path / "other" / "landing", 150, seed=9)
    digests = {name: _tree_digest(tmp_path / name) for name in ("one", "two", "other")}
    assert digests["one"] == digests["two"] != digests["other"]
    generate_landing(tmp_path / "full" / "landing", 150, seed=8)
    full = pl.read_csv(tmp_path / "full" / "ground_truth" / "identity.csv")
    hard = pl.read_csv(tmp_path / "one" / "ground_truth" / "identity.csv").filter(
        pl.col("person_index") < 150
    )
    assert hard.sort(pl.all()).equals(full.sort(pl.all()))  # the same people, in the same sources, same ids


def test_ingest_and_silver_read_the_set_whole(tmp_path: Path) -> None:
    summary = generate_identity_set(tmp_path / "landing", 200, seed=13)
    lake = UPath(tmp_path / "lake")
    report = ingest_landing(UPath(tmp_path / "landing"), lake, 2)
    assert report.rows["quarantine"] == 0
    assert report.rows["fhir_resources"] == summary.records
    for key in partition_keys(2):
        build_partition(lake, key)
    patients = read_table(lake, "silver", "patient")
    truth = pl.read_csv(tmp_path / "ground_truth" / "identity.csv", infer_schema_length=0)
    assert patients.height == truth.height
    assert set(zip(patients["source"], patients["id"], strict=True)) == set(
        zip(truth["source"], truth["source_patient_id"], strict=True)
    )


def test_the_command_line_writes_the_hard_set(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--identity-set", "hard", "--patients", "60", "--out", str(tmp_path / "landing")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ground_truth" / "identity_cases.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "landing" / "ehr_a").iterdir()) == [
        "Patient.000.ndjson",
        "manifest.json",
    ]
    bad = CliRunner().invoke(app, ["generate", "--identity-set", "easy", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0


# --- scoring -------------------------------------------------------------------------------------------
def _frame(rows: list[tuple[Any, ...]], columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=columns, orient="row")


def test_scoring_counts_pairs_per_kind_false_links_and_the_review_load() -> None:
    # persons: 0 ordinary (a1, b1), 1 and 2 twins (t1 in a; t2 in a and b), 3 married_move (m in a and b),
    # 4 ordinary alone (z)
    truth = _frame(
        [("a|1", 0), ("b|1", 0), ("a|t1", 1), ("a|t2", 2), ("b|t2", 2), ("a|m", 3), ("b|m", 3), ("a|z", 4)],
        ["unique_id", "person_index"],
    )
    cases = _frame(
        [
            (0, "ordinary", None),
            (1, "twin", 2),
            (2, "twin", 1),
            (3, "married_move", None),
            (4, "ordinary", None),
        ],
        ["person_index", "case_kind", "related_person_index"],
    )
    # identity: the ordinary pair right, both twins merged into one person, the married woman split
    links = _frame(
        [("a|1", "P1"), ("b|1", "P1"), ("a|t1", "P2"), ("a|t2", "P2"), ("b|t2", "P2"), ("a|m", "P3"),
         ("b|m", "P4"), ("a|z", "P5")],
        ["unique_id", "person_id"],
    )  # fmt: skip
    pending = _frame([("a|m", "b|m"), ("a|t1", "a|z")], ["unique_id_l", "unique_id_r"])
    scores = score_identity_cases(truth, cases, links, pending)
    kinds = {k["case_kind"]: k for k in scores["kinds"]}
    assert list(kinds) == ["ordinary", "twin", "married_move"]
    assert kinds["ordinary"] | {} == {
        "case_kind": "ordinary",
        "persons": 2,
        "true_pairs": 1,
        "predicted_pairs": 1,
        "correct_pairs": 1,
        "precision": 1.0,
        "recall": 1.0,
        "false_links_between_relatives": None,
        "relatives_merged": None,
        "persons_in_review": 1,
    }
    twin = kinds["twin"]
    # P2 holds 3 pairs: (a|t2, b|t2) right, (a|t1, a|t2) and (a|t1, b|t2) false links between the twins
    assert (twin["true_pairs"], twin["predicted_pairs"], twin["correct_pairs"]) == (1, 3, 1)
    assert twin["precision"] == pytest.approx(1 / 3) and twin["recall"] == 1.0
    assert (twin["false_links_between_relatives"], twin["relatives_merged"]) == (2, 1)
    assert twin["persons_in_review"] == 1
    move = kinds["married_move"]
    assert (move["true_pairs"], move["predicted_pairs"], move["recall"]) == (1, 0, 0.0)
    assert move["precision"] is None  # nothing predicted: no precision
    overall = scores["overall"]
    assert (overall["true_pairs"], overall["predicted_pairs"], overall["correct_pairs"]) == (3, 4, 2)
    assert overall["precision"] == 0.5 and overall["recall"] == pytest.approx(2 / 3)
    assert (overall["review_pairs"], overall["review_pairs_of_one_person"]) == (2, 1)
    assert overall["persons_in_review"] == 3 and overall["review_load"] == pytest.approx(3 / 5)


def test_a_false_pair_between_two_kinds_counts_under_both() -> None:
    truth = _frame([("a|x", 0), ("a|y", 1)], ["unique_id", "person_index"])
    cases = _frame(
        [(0, "no_ssn", None), (1, "initial", None)], ["person_index", "case_kind", "related_person_index"]
    )
    links = _frame([("a|x", "P"), ("a|y", "P")], ["unique_id", "person_id"])
    pending = _frame([], ["unique_id_l", "unique_id_r"]).cast(pl.String)
    scores = score_identity_cases(truth, cases, links, pending)
    kinds = {k["case_kind"]: k for k in scores["kinds"]}
    for kind in ("no_ssn", "initial"):
        assert (kinds[kind]["predicted_pairs"], kinds[kind]["correct_pairs"], kinds[kind]["precision"]) == (
            1,
            0,
            0.0,
        )
        assert kinds[kind]["recall"] is None  # no true pair: nothing to recall
    assert scores["overall"]["predicted_pairs"] == 1 and scores["overall"]["review_load"] == 0.0
