"""Care gaps on the 79 Synthea bundles, checked against expectations computed straight from the raw
Bundle JSON (an independent reading, not the pipeline's tables)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from pipelines.gold.build import build_person_tables, no_history
from pipelines.gold.records import PersonRecords
from pipelines.lake import read_table
from pipelines.measures.build import care_gap_rates

pytestmark = pytest.mark.external
AS_OF = date(2021, 9, 23)  # the bundles' last encounter; they carry no lastUpdated
FLU_CVX = {"88", "135", "140", "141", "150", "155", "158", "161", "171", "185", "186", "197", "205"}


def _raw_expectations(folder: Path) -> dict[str, dict[str, object]]:
    """Per Patient id: sex, birth date, and whether a flu dose falls in the 2020-07-01..2021-06-30 season."""
    people: dict[str, dict[str, object]] = {}
    for path in sorted(folder.rglob("*.json")):
        bundle = json.loads(path.read_text())
        resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
        patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
        if patient is None:
            continue
        flu_in_season = any(
            r.get("resourceType") == "Immunization"
            and any(c.get("code") in FLU_CVX for c in r.get("vaccineCode", {}).get("coding", []))
            and "2020-07-01" <= str(r.get("occurrenceDateTime", ""))[:10] <= "2021-06-30"
            for r in resources
        )
        people[patient["id"]] = {
            "sex": patient.get("gender"),
            "birth": patient.get("birthDate"),
            "flu": flu_in_season,
        }
    return people


def test_synthea_flu_and_breast_screening_statuses_match_the_raw_bundles(
    synthea_bundles: Path, synthea_lake: UPath
) -> None:
    lake = synthea_lake
    gaps = build_person_tables(PersonRecords.load(lake), AS_OF, no_history())["care_gaps"]
    rates = care_gap_rates(gaps)
    links = read_table(lake, "identity", "person_link").select("person_id", "source_patient_id")
    statuses = gaps.join(links, on="person_id")
    expected = _raw_expectations(synthea_bundles)
    assert set(statuses["source_patient_id"]) == set(expected)
    checked_flu = checked_bcs = 0
    for patient_id, truth in expected.items():
        mine = statuses.filter(pl.col("source_patient_id") == patient_id)
        born = date.fromisoformat(str(truth["birth"]))
        age = 2021 - born.year - ((born.month, born.day) > (12, 31))
        flu = mine.filter(pl.col("measure_id") == "FLU").row(0, named=True)
        if age >= 19 and flu["status"] != "excluded":
            # a dose near the season's start lapses soon after the as-of day: a prospective gap, still closed
            closed = {"closed-gap", "prospective-gap"}
            assert flu["status"] in (closed if truth["flu"] else {"open-gap"}), patient_id
            checked_flu += 1
        bcs = mine.filter(pl.col("measure_id") == "BCS").row(0, named=True)
        woman_in_range = truth["sex"] == "female" and 52 <= age <= 74
        assert (bcs["status"] != "not-applicable") is woman_in_range, patient_id
        checked_bcs += woman_in_range
    assert checked_flu >= 20 and checked_bcs >= 5
    flu_rate = rates.filter(pl.col("measure_id") == "FLU").row(0, named=True)
    assert flu_rate["denominator"] > 0 and 0 < flu_rate["rate"] < 1
