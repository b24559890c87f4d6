"""Spreadsheet formula injection: every CSV export neutralizes text cells that a spreadsheet would run
(OWASP: a leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'`), numbers stay numbers, and the
Parquet list and the FHIR Group keep the original text."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.csv_cells import FORMULA_TRIGGERS, csv_bytes, neutralize_formulas, restore_formula_text
from pipelines.outreach.exports import campaign_runs, export_run
from pipelines.outreach.verify import verify_export
from tests.test_outreach_exports import AT, DEFINITIONS, select
from tests.test_outreach_selection import CAMPAIGN, person

HOSTILE = ('=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1")
"""One text per trigger character, as a patient or a source system could send it."""
PLAIN_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^-inf$")


def unsafe_cells(data: bytes) -> list[tuple[int, int]]:
    """(row, column) of every cell of a CSV file that a spreadsheet would run as a formula: it starts with
    a trigger and is not a plain number (a number such as `-0.4` is read as a number, never run)."""
    rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    return [
        (r, c)
        for r, row in enumerate(rows)
        for c, cell in enumerate(row)
        if cell[:1] in FORMULA_TRIGGERS and cell[:1] and not PLAIN_NUMBER.match(cell)
    ]


def test_every_trigger_gets_a_quote_and_nothing_else_changes() -> None:
    texts = [*HOSTILE, "'=already quoted", "'plain quote", "Ann", "a-b", "x@example.org", "", None]
    frame = pl.DataFrame({"text": texts, "score": [-0.5] * len(texts), "n": [-3] * len(texts)})
    out = neutralize_formulas(frame)
    expected = [*("'" + t for t in HOSTILE), "''=already quoted", "'plain quote", "Ann", "a-b"]
    assert out["text"].to_list() == [*expected, "x@example.org", "", None]
    assert out["score"].to_list() == frame["score"].to_list() and out.schema == frame.schema  # numbers stay
    # a program gets the exact text back by removing one quote, whatever the text started with
    assert out.select(restore_formula_text(pl.col("text")))["text"].to_list() == texts
    data = csv_bytes(frame)
    assert unsafe_cells(data) == [] and b"-0.5" in data and b",-3\n" in data
    assert unsafe_cells(frame.write_csv().encode()) != []  # the check finds them when written plainly


def test_list_columns_are_joined_before_they_are_judged() -> None:
    frame = pl.DataFrame({"ids": [["=cmd|x", "b"], ["a", "=c"]], "days": [[date(2026, 1, 2)], []]})
    assert csv_bytes(frame).decode().splitlines() == [
        "ids,days",
        "'=cmd|x;b,2026-01-02",
        'a;=c,""',
    ]  # an empty list is an empty text, quoted


def hostile_people() -> list[dict]:
    """Listed persons whose names, e-mail addresses and address lines start with every trigger; one of
    each reached by SMS, e-mail and mail, so that each text lands in the `contact` column once."""
    people = []
    for index, text in enumerate(HOSTILE):
        people.append(person(f"s{index}", given=text, family=text))
        people.append(person(f"e{index}", family=text, preferred_phone_use="home", email=text))
        people.append(
            person(f"m{index}", given=text, preferred_phone_use="home", email=None, address_line=text)
        )
    return people


def test_every_csv_of_a_campaign_run_is_neutralized_and_parquet_and_group_keep_the_text(
    tmp_path: Path,
) -> None:
    people = hostile_people()
    listed, suppressed = select(people)
    first = export_run(UPath(tmp_path), CAMPAIGN, listed, suppressed, date(2026, 6, 30), DEFINITIONS, AT)
    # the next day e-mail persons have an address only: their rows are in changed.csv
    moved = [
        {**p, "email": None, "address_line": p["family"]} if p["person_id"].startswith("e") else p
        for p in people
    ]
    listed, suppressed = select(moved, day=date(2026, 7, 1))
    second = export_run(UPath(tmp_path), CAMPAIGN, listed, suppressed, date(2026, 7, 1), DEFINITIONS, AT)
    assert second.counts["changed.csv"] == len(HOSTILE) and first.counts["list.csv"] == 3 * len(HOSTILE)
    csvs = sorted(tmp_path.rglob("*.csv"))
    assert {p.name for p in csvs} >= {"list.csv", "added.csv", "changed.csv", "suppressed.csv"}
    for path in csvs:
        assert unsafe_cells(path.read_bytes()) == [], path.relative_to(tmp_path)
    run = campaign_runs(UPath(tmp_path), CAMPAIGN.id)[0]
    stored = run.read_list()  # list.parquet: the original text
    assert set(HOSTILE) <= set(stored["family"]) and set(HOSTILE) <= set(stored["contact"])
    written = pl.read_csv(Path(str(run.folder)) / "list.csv", infer_schema=False)
    assert {"'" + t for t in HOSTILE} <= set(written["family"]) and not set(HOSTILE) & set(written["family"])
    assert set(written.select(restore_formula_text(pl.col("contact")))["contact"]) == set(stored["contact"])
    assert written["person_id"].to_list() == stored["person_id"].to_list()  # ids and codes never change
    group = orjson.loads((Path(str(run.folder)) / "group.json").read_bytes())
    assert [m["entity"]["reference"] for m in group["member"]] == [
        f"Patient/{p}" for p in stored["person_id"]
    ]
    assert verify_export(run) == [] and verify_export(campaign_runs(UPath(tmp_path), CAMPAIGN.id)[1]) == []


# --- acceptance: a whole pipeline run on a landing with hostile patients ------------------------------------
ACCEPTANCE_PEOPLE = 60


def _hostile_patient(resource: dict) -> None:
    """Puts a formula in front of the patient's family and given names, e-mail addresses and address lines;
    the choice follows the family name, so that one person gets the same texts in every source."""
    names = resource.get("name") or [{}]
    index = sum(map(ord, str(names[0].get("family", "")))) % len(HOSTILE)
    text, trigger = HOSTILE[index], FORMULA_TRIGGERS[index]
    for name in names:
        if name.get("family"):
            name["family"] = text + name["family"]
        name["given"] = [text + given for given in name.get("given") or []]
    for telecom in resource.get("telecom") or []:
        if telecom.get("system") == "email" and telecom.get("value"):
            telecom["value"] = trigger + telecom["value"]  # a single trigger keeps it a valid address
    for address in resource.get("address") or []:
        address["line"] = [text + line for line in address.get("line") or []]


def hostile_landing(landing: Path) -> None:
    """Every Patient resource of the generated FHIR sources (NDJSON lines and Bundle entries) made hostile."""
    for path in sorted(landing.rglob("*")):
        if path.suffix == ".ndjson":
            lines = path.read_bytes().splitlines()
            out = []
            for line in lines:
                resource = orjson.loads(line) if line.strip() else None
                if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
                    _hostile_patient(resource)
                    line = orjson.dumps(resource)
                out.append(line)
            path.write_bytes(b"\n".join(out) + b"\n")
        elif path.suffix == ".json":
            bundle = orjson.loads(path.read_bytes())
            if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
                for entry in bundle.get("entry") or []:
                    if (entry.get("resource") or {}).get("resourceType") == "Patient":
                        _hostile_patient(entry["resource"])
                path.write_bytes(orjson.dumps(bundle))


@pytest.mark.slow
def test_no_csv_of_a_pipeline_run_on_hostile_patients_holds_a_formula(tmp_path: Path) -> None:
    """The issue's acceptance: every CSV under the exports folder (found by walking it) is parsed, and no
    cell starts with `=`, `+`, `-`, `@`, tab or CR unless neutralized; the Parquet lists hold the text."""
    from pipelines.config import Settings
    from pipelines.generate import generate_landing
    from pipelines.run import run_pipeline

    landing, lake, exports = (tmp_path / n for n in ("landing", "lake", "exports"))
    generate_landing(landing, ACCEPTANCE_PEOPLE, seed=7, as_of=date(2026, 6, 30))
    hostile_landing(landing)
    run = run_pipeline(Settings(UPath(landing), UPath(lake), UPath(exports), 2, date(2026, 6, 30)), workers=1)
    assert run.success, (run.failed_checks, run.warnings)
    csvs = sorted(p for p in exports.rglob("*") if p.is_file() and p.suffix == ".csv")
    assert csvs and any(p.name == "list.csv" for p in csvs)
    for path in csvs:
        assert unsafe_cells(path.read_bytes()) == [], path.relative_to(exports)
    lists = [pl.read_parquet(p) for p in exports.rglob("list.parquet")]
    stored = pl.concat(lists)
    written = pl.concat(
        [pl.read_csv(p, infer_schema=False) for p in exports.rglob("list.csv") if p.stat().st_size > 0],
        how="diagonal",
    )
    # the hostile text really reached the lists: as it is in Parquet, neutralized in CSV
    starts = tuple(FORMULA_TRIGGERS)
    assert stored.height and stored["family"].str.starts_with(starts[0]).any()
    assert all(stored["family"].str.slice(0, 1).is_in(list(starts)))
    assert all(written["family"].str.starts_with("'"))
    restored = written.select(restore_formula_text(pl.col("family")))["family"]
    assert sorted(restored) == sorted(stored["family"])
    # our own readers of our CSV files read them as before: hold-outs (the closed loop), suppressions (the
    # dashboard) hold ids, codes and numbers only, which are never quoted
    held_out = 0
    for campaign in (p.name for p in exports.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for run_folder in campaign_runs(UPath(exports), campaign):
            held = run_folder.read_holdout()
            held_out += held.height
            assert held["person_id"].str.starts_with("psn-").all() and held["draw"].is_between(0, 1).all()
            suppressed = pl.read_csv(Path(str(run_folder.folder)) / "suppressed.csv", infer_schema=False)
            assert suppressed.is_empty() or suppressed["person_id"].str.starts_with("psn-").all()
            assert verify_export(run_folder) == []
    assert held_out > 0
