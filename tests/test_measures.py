"""HEDIS-aligned measures (not NCQA-certified) at their boundaries: ages on the exact day, evidence
window edges, each exclusion, each numerator modality, the inverse logic of GSD, the BP rule of CBP."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.measures.build import evaluate_care_gaps
from pipelines.measures.definitions import DefinitionError, load_measure, load_measures, value_sets
from pipelines.measures.engine import EVENT_SCHEMA, PERSON_SCHEMA, evaluate_measure, months_before

AS_OF = date(2026, 6, 30)
SNOMED, LOINC, ICD = "http://snomed.info/sct", "http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm"
MEASURES = {m.id: m for m in load_measures()}


def person(birth: str, sex: str = "female", deceased: bool = False) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "person_id": "p",
                "sex": sex,
                "birth_date": birth,
                "deceased": deceased,
                "pcp_practitioner_id": "dr",
            }
        ],
        schema=PERSON_SCHEMA,
    )


def events(*rows: tuple[str, str, date, float | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"person_id": "p", "system": s, "code": c, "date": d, "value": v, "record": f"R/{i}"}
            for i, (s, c, d, v) in enumerate(rows)
        ],
        schema=EVENT_SCHEMA,
    )


def status(measure: str, people: pl.DataFrame, found: pl.DataFrame, as_of: date = AS_OF) -> dict:
    return evaluate_measure(MEASURES[measure], people, found, as_of).row(0, named=True)


NO_EVENTS = events()
MAMMOGRAM = (SNOMED, "24623002")


@pytest.mark.parametrize(
    ("birth", "applies"),
    [("1952-12-31", True), ("1951-12-31", False), ("1974-12-31", True), ("1975-01-01", False)],
)
def test_bcs_age_is_taken_on_the_last_day_of_the_period(birth: str, applies: bool) -> None:
    row = status("BCS", person(birth), NO_EVENTS)
    assert (row["status"] != "not-applicable") is applies


def test_bcs_applies_to_women_only() -> None:
    assert status("BCS", person("1960-01-01", sex="male"), NO_EVENTS)["status"] == "not-applicable"


@pytest.mark.parametrize(
    ("day", "closed"),
    [
        (date(2024, 10, 1), True),
        (date(2024, 9, 30), False),
        (date(2026, 6, 30), True),
        (date(2026, 7, 1), False),
    ],
)
def test_bcs_mammogram_window_is_27_months_back_from_the_period_end(day: date, closed: bool) -> None:
    row = status("BCS", person("1960-01-01"), events((*MAMMOGRAM, day, None)))
    assert (row["status"] in {"closed-gap", "prospective-gap"}) is closed
    if closed:
        assert row["evidence_date"] == day and row["evidence_modality"] == "mammography"


def test_bcs_gap_becomes_prospective_when_the_mammogram_is_about_to_lapse() -> None:
    lapsing = events((*MAMMOGRAM, date(2024, 10, 15), None))  # counts for periods ending before 2027-01-15
    assert status("BCS", person("1960-01-01"), lapsing)["status"] == "closed-gap"
    row = status("BCS", person("1960-01-01"), lapsing, as_of=date(2026, 12, 1))
    assert (row["status"], row["due_date"]) == ("prospective-gap", date(2027, 1, 15))


def test_bcs_open_gap_is_due_when_the_last_mammogram_lapsed() -> None:
    row = status("BCS", person("1960-01-01"), events((*MAMMOGRAM, date(2023, 3, 1), None)))
    assert row["status"] == "open-gap"
    assert row["due_date"] == date(2025, 6, 1) and row["days_overdue"] == (AS_OF - date(2025, 6, 1)).days
    never = status("BCS", person("1960-01-01"), NO_EVENTS)
    assert never["due_date"] == date(2026, 1, 1)


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (events((SNOMED, "27865001", date(2001, 5, 5), None)), "bilateral_mastectomy"),
        (events((ICD, "Z90.13", date(2010, 1, 1), None)), "bilateral_mastectomy"),
        (events((SNOMED, "385763009", date(2026, 2, 1), None)), "hospice"),
        (events((SNOMED, "103735009", date(2026, 1, 1), None)), "palliative_care"),
    ],
)
def test_bcs_exclusions(found: pl.DataFrame, reason: str) -> None:
    row = status("BCS", person("1960-01-01"), found)
    assert (row["status"], row["exclusion_reason"]) == ("excluded", reason)


def test_hospice_before_the_period_does_not_exclude_and_death_does() -> None:
    assert (
        status("BCS", person("1960-01-01"), events((SNOMED, "385763009", date(2025, 12, 31), None)))["status"]
        == "open-gap"
    )
    assert status("BCS", person("1960-01-01", deceased=True), NO_EVENTS)["exclusion_reason"] == "deceased"


@pytest.mark.parametrize(
    ("code", "day", "closed"),
    [
        ((SNOMED, "104435004"), date(2026, 1, 1), True),  # FIT: this year
        ((SNOMED, "104435004"), date(2025, 12, 31), False),
        ((LOINC, "77353-1"), date(2024, 1, 1), True),  # FIT-DNA: 3 years
        ((LOINC, "77353-1"), date(2023, 12, 31), False),
        ((SNOMED, "418714002"), date(2022, 1, 1), True),  # CT colonography: 5 years
        ((SNOMED, "44441009"), date(2021, 12, 31), False),  # sigmoidoscopy: 5 years
        ((SNOMED, "73761001"), date(2017, 1, 1), True),  # colonoscopy: 10 years
        ((SNOMED, "73761001"), date(2016, 12, 31), False),
    ],
)
def test_col_each_modality_has_its_own_window(code: tuple[str, str], day: date, closed: bool) -> None:
    row = status("COL", person("1960-01-01", sex="male"), events((*code, day, None)))
    assert (row["status"] in {"closed-gap", "prospective-gap"}) is closed


DIABETES = (SNOMED, "44054006", date(2020, 1, 1), None)
DIABETES_ICD = (ICD, "E11.9", date(2026, 1, 10), None)


@pytest.mark.parametrize(
    ("hba1c", "expected"),
    [(None, "open-gap"), (9.0, "closed-gap"), (9.1, "open-gap"), (7.0, "closed-gap")],
)
def test_gsd_is_inverse_open_when_above_9_or_missing(hba1c: float | None, expected: str) -> None:
    found = [DIABETES_ICD]
    if hba1c is not None:
        found.append((LOINC, "4548-4", date(2026, 3, 1), hba1c))
    assert status("GSD", person("1970-01-01"), events(*found))["status"] == expected


def test_gsd_uses_the_last_value_and_needs_a_recent_diagnosis() -> None:
    found = events(
        DIABETES_ICD, (LOINC, "4548-4", date(2026, 1, 1), 7.0), (LOINC, "4548-4", date(2026, 5, 1), 10.2)
    )
    assert status("GSD", person("1970-01-01"), found)["status"] == "open-gap"
    old_diagnosis_only = events(DIABETES)  # diagnosed in 2020 and resolved since: nothing in the look-back
    assert status("GSD", person("1970-01-01"), old_diagnosis_only)["status"] == "not-applicable"
    still_active = old_diagnosis_only.with_columns(pl.lit(True).alias("active"))
    assert status("GSD", person("1970-01-01"), still_active)["status"] == "open-gap"


@pytest.mark.parametrize(
    ("systolic", "diastolic", "expected"),
    [(139, 89, "closed-gap"), (140, 80, "open-gap"), (130, 90, "open-gap")],
)
def test_cbp_last_reading_below_140_90(systolic: float, diastolic: float, expected: str) -> None:
    found = events(
        (ICD, "I10", date(2025, 3, 1), None),
        (LOINC, "8480-6", date(2026, 1, 5), 150.0),
        (LOINC, "8462-4", date(2026, 1, 5), 95.0),
        (LOINC, "8480-6", date(2026, 6, 1), systolic),
        (LOINC, "8462-4", date(2026, 6, 1), diastolic),
    )
    assert status("CBP", person("1960-01-01"), found)["status"] == expected


def test_cbp_takes_the_lowest_values_of_the_last_day_with_both() -> None:
    found = events(
        (ICD, "I10", date(2025, 3, 1), None),
        (LOINC, "8480-6", date(2026, 6, 1), 150.0),
        (LOINC, "8480-6", date(2026, 6, 1), 132.0),
        (LOINC, "8462-4", date(2026, 6, 1), 84.0),
        (LOINC, "8480-6", date(2026, 6, 20), 120.0),  # no diastolic that day
    )
    row = status("CBP", person("1960-01-01"), found)
    assert (row["status"], row["evidence_code"]) == ("closed-gap", "132/84")


def test_months_before_clamps_to_the_month_end() -> None:
    assert months_before(date(2026, 12, 31), 27) == date(2024, 9, 30)
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)


def test_broken_definitions_name_the_file_and_line(tmp_path: Path) -> None:
    known = set(value_sets()["value_set"])
    good = (Path(__file__).parents[1] / "data_contracts" / "measures" / "bcs.yaml").read_text()
    unknown = tmp_path / "bad_vs.yaml"
    unknown.write_text(good.replace("value_set: mammography", "value_set: mammogrphy"))
    with pytest.raises(DefinitionError, match=r"bad_vs.yaml:\d+: unknown value set 'mammogrphy'"):
        load_measure(unknown, known)
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: X\n  title: [unclosed\n")
    with pytest.raises(DefinitionError, match=r"broken.yaml:\d+: not valid YAML"):
        load_measure(broken, known)
    extra = tmp_path / "extra.yaml"
    extra.write_text(good + "denominator_fudge: 1\n")
    with pytest.raises(DefinitionError, match=r"extra.yaml:\d+: unknown key 'denominator_fudge'"):
        load_measure(extra, known)


def test_every_value_set_code_has_a_display_and_an_allowed_system() -> None:
    codes = value_sets()
    assert codes["display"].str.len_chars().min() > 0
    assert codes.filter(pl.col("system").str.contains("cpt|ama-assn", literal=False)).is_empty()


CVX, RXNORM = "http://hl7.org/fhir/sid/cvx", "http://www.nlm.nih.gov/research/umls/rxnorm"
CYTOLOGY, HPV = (SNOMED, "171149006"), (LOINC, "59420-0")


@pytest.mark.parametrize(
    ("test", "day", "birth", "closed"),
    [
        (CYTOLOGY, date(2024, 1, 1), "1980-01-01", True),  # cytology: 3 years
        (CYTOLOGY, date(2023, 12, 31), "1980-01-01", False),
        (HPV, date(2022, 1, 1), "1980-01-01", True),  # HPV: 5 years, done at 30 or older
        (HPV, date(2021, 12, 31), "1980-01-01", False),
        (HPV, date(2022, 5, 31), "1992-06-01", False),  # the day before her 30th birthday
        (HPV, date(2022, 6, 1), "1992-06-01", True),  # on her 30th birthday
    ],
)
def test_ccs_modalities_windows_and_minimum_ages(
    test: tuple[str, str], day: date, birth: str, closed: bool
) -> None:
    row = status("CCS", person(birth), events((*test, day, None)))
    assert (row["status"] in {"closed-gap", "prospective-gap"}) is closed


def test_ccs_hysterectomy_without_cervix_excludes() -> None:
    row = status("CCS", person("1980-01-01"), events((ICD, "Z90.710", date(2015, 1, 1), None)))
    assert (row["status"], row["exclusion_reason"]) == ("excluded", "hysterectomy_without_cervix")


@pytest.mark.parametrize(("day", "closed"), [(date(2026, 1, 1), True), (date(2025, 12, 31), False)])
def test_eed_needs_an_eye_exam_in_the_period(day: date, closed: bool) -> None:
    found = events(DIABETES_ICD, (SNOMED, "134395001", day, None))
    assert (status("EED", person("1970-01-01"), found)["status"] == "closed-gap") is closed


@pytest.mark.parametrize(
    ("day", "closed"),
    [(date(2025, 7, 1), True), (date(2025, 6, 30), False), (date(2026, 6, 30), True)],
)
def test_flu_season_runs_from_july_1_of_the_prior_year_to_june_30(day: date, closed: bool) -> None:
    row = status("FLU", person("1950-01-01", sex="male"), events((CVX, "150", day, None)))
    assert (row["status"] in {"closed-gap", "prospective-gap"}) is closed


def test_a_flu_shot_after_june_30_belongs_to_the_next_season() -> None:
    late = events((CVX, "197", date(2026, 9, 15), None))
    assert status("FLU", person("1950-01-01"), late, as_of=date(2026, 10, 1))["status"] == "open-gap"


@pytest.mark.parametrize(
    ("sex", "birth", "applies"),
    [
        ("male", "2005-12-31", True),
        ("male", "2006-01-01", False),
        ("female", "1986-12-31", True),
        ("female", "1987-01-01", False),
    ],
)
def test_spc_ages_differ_by_sex(sex: str, birth: str, applies: bool) -> None:
    found = events((SNOMED, "22298006", date(2025, 5, 1), None))
    row = status("SPC", person(birth, sex=sex), found)
    assert (row["status"] != "not-applicable") is applies


def test_spc_closes_with_a_moderate_or_high_intensity_statin_in_the_period() -> None:
    found = events((ICD, "I25.10", date(2025, 5, 1), None), (RXNORM, "617311", date(2026, 2, 1), None))
    row = status("SPC", person("1960-01-01", sex="male"), found)
    assert (row["status"], row["evidence_code"]) == ("closed-gap", "617311")


def test_rates_count_inverse_measures_by_their_poor_outcome_and_leave_empty_measures_without_a_rate() -> None:
    from pipelines.measures.build import care_gap_rates

    def rows(measure: str, statuses: list[str]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "measure_id": measure,
                "measure_version": "1",
                "period_start": date(2026, 1, 1),
                "period_end": date(2026, 12, 31),
                "as_of": AS_OF,
                "status": statuses,
            }
        )

    gaps = pl.concat(
        [
            rows("BCS", ["closed-gap", "prospective-gap", "open-gap", "excluded", "not-applicable"]),
            rows("GSD", ["open-gap", "closed-gap"]),
            rows("SPC", ["not-applicable"]),
        ]
    )
    rates = {r["measure_id"]: r for r in care_gap_rates(gaps).iter_rows(named=True)}
    assert (rates["BCS"]["denominator"], rates["BCS"]["numerator"], rates["BCS"]["exclusions"]) == (3, 2, 1)
    assert rates["GSD"]["numerator"] == 1 and rates["GSD"]["inverse"]
    assert rates["SPC"]["rate"] is None


def _child_doses(
    birth: date, extra: list[tuple[str, int]] | None = None, skip: str | None = None
) -> pl.DataFrame:
    """A complete Combo 10 schedule (CVX code, day after birth), optionally without one series."""
    schedule = {
        "DTaP": [("20", d) for d in (61, 122, 183, 456)],
        "IPV": [("10", d) for d in (61, 122, 183)],
        "MMR": [("03", 400)],
        "HiB": [("49", d) for d in (61, 122, 400)],
        "HepB": [("08", d) for d in (0, 61, 183)],
        "VZV": [("21", 400)],
        "PCV": [("133", d) for d in (61, 122, 183, 400)],
        "HepA": [("83", 400)],
        "RV": [("119", d) for d in (61, 122)],
        "Influenza": [("150", d) for d in (200, 240)],
    }
    doses = [dose for series, items in schedule.items() if series != skip for dose in items]
    rows = [(CVX, code, birth + timedelta(days=day), None) for code, day in [*doses, *(extra or [])]]
    return events(*rows)


CHILD_BIRTH = date(2024, 3, 15)  # turns 2 on 2026-03-15, inside the 2026 period


def test_cis_is_closed_when_every_series_is_complete_by_the_second_birthday() -> None:
    row = status("CIS", person(CHILD_BIRTH.isoformat(), sex="male"), _child_doses(CHILD_BIRTH))
    assert (row["status"], row["evidence_code"]) == ("closed-gap", "complete")


def test_cis_lists_the_missing_series_and_is_due_on_the_second_birthday() -> None:
    row = status("CIS", person(CHILD_BIRTH.isoformat()), _child_doses(CHILD_BIRTH, skip="PCV"))
    assert (row["status"], row["evidence_code"]) == ("open-gap", "missing: PCV (4)")
    assert row["due_date"] == date(2026, 3, 15)


@pytest.mark.parametrize(
    ("series", "code", "day", "counts"),
    [
        ("MMR", "03", 364, False),  # the day before the first birthday (day 365 is 2025-03-15)
        ("MMR", "03", 365, True),  # on the first birthday
        ("DTaP", "20", 41, False),  # minimum age 42 days
        ("Influenza", "150", 179, False),  # minimum age 180 days
    ],
)
def test_cis_minimum_ages(series: str, code: str, day: int, counts: bool) -> None:
    found = _child_doses(CHILD_BIRTH, extra=[(code, day)], skip=series)
    if series == "DTaP":  # three valid doses plus the early one
        found = pl.concat([found, _child_doses(CHILD_BIRTH).filter(pl.col("code") == "20").head(3)])
    if series == "Influenza":
        found = pl.concat([found, events((CVX, "150", CHILD_BIRTH + timedelta(days=250), None))])
    row = status("CIS", person(CHILD_BIRTH.isoformat()), found)
    assert (row["status"] == "closed-gap") is counts


def test_cis_doses_after_the_second_birthday_do_not_count() -> None:
    late = _child_doses(CHILD_BIRTH, extra=[("03", 731)], skip="MMR")  # the day after the second birthday
    assert status("CIS", person(CHILD_BIRTH.isoformat()), late)["status"] == "open-gap"


@pytest.mark.parametrize(
    ("doses", "closed"),
    [
        ([("119", 61), ("119", 122)], True),  # 2-dose vaccine, two doses
        ([("119", 61)], False),
        ([("116", 61), ("116", 122), ("116", 183)], True),  # 3-dose vaccine, three doses
        ([("116", 61), ("116", 122)], False),
        ([("119", 61), ("116", 122), ("116", 183)], True),  # mixed: three doses of either
        ([("119", 61), ("116", 122)], False),  # mixed with two doses is not enough
        ([("122", 61), ("122", 122), ("122", 183)], True),  # formulation unknown: three doses
        ([("119", 30), ("116", 122), ("116", 183)], False),  # the first dose before 42 days does not count
    ],
)
def test_cis_rotavirus_schedules(doses: list[tuple[str, int]], closed: bool) -> None:
    found = _child_doses(CHILD_BIRTH, extra=doses, skip="RV")
    row = status("CIS", person(CHILD_BIRTH.isoformat()), found)
    assert (row["status"] == "closed-gap") is closed, row["evidence_code"]


def test_cis_applies_to_children_who_turn_two_in_the_period() -> None:
    assert status("CIS", person("2023-12-31"), NO_EVENTS)["status"] == "not-applicable"  # turns 3
    assert status("CIS", person("2024-12-31"), NO_EVENTS)["status"] == "open-gap"


@pytest.mark.parametrize(
    ("birth", "found", "excluded"),
    [
        (
            "1960-12-31",
            [(SNOMED, "248279007", date(2026, 2, 1)), (SNOMED, "52448006", date(2025, 6, 1))],
            True,
        ),
        (
            "1961-01-01",
            [(SNOMED, "248279007", date(2026, 2, 1)), (SNOMED, "52448006", date(2025, 6, 1))],
            False,
        ),
        ("1955-01-01", [(SNOMED, "248279007", date(2026, 2, 1))], False),  # frailty alone
        ("1955-01-01", [(SNOMED, "52448006", date(2025, 6, 1))], False),  # advanced illness alone
        (
            "1955-01-01",
            [(SNOMED, "248279007", date(2025, 12, 31)), (SNOMED, "52448006", date(2025, 6, 1))],
            False,
        ),
    ],
)
def test_frailty_with_advanced_illness_excludes_from_66(
    birth: str, found: list[tuple[str, str, date]], excluded: bool
) -> None:
    row = status("BCS", person(birth), events(*[(s, c, d, None) for s, c, d in found]))
    assert (row["exclusion_reason"] == "frailty_and_advanced_illness") is excluded


def test_cis_lists_every_series_for_a_child_without_any_record() -> None:
    row = status("CIS", person(CHILD_BIRTH.isoformat()), NO_EVENTS)
    assert row["status"] == "open-gap"
    assert row["evidence_code"].startswith("missing: DTaP (4), HepA (1)")


def test_each_measure_reads_only_its_own_codes_and_unrelated_records_change_nothing() -> None:
    """`evaluate_care_gaps` hands each measure only the events of its value sets: the rows equal those of
    every measure evaluated over all events, and records no value set holds change none of them."""
    people = pl.concat(
        [
            person("1960-05-01").with_columns(pl.lit("adult").alias("person_id")),
            person(CHILD_BIRTH.isoformat(), sex="male").with_columns(pl.lit("child").alias("person_id")),
            person("1990-01-01", sex="male").with_columns(pl.lit("nobody").alias("person_id")),
        ]
    )
    relevant = pl.concat(
        [
            events(
                (SNOMED, "24623002", date(2025, 10, 1), None), (ICD, "E11.9", date(2025, 2, 1), None)
            ).with_columns(pl.lit("adult").alias("person_id")),
            _child_doses(CHILD_BIRTH, skip="MMR").with_columns(pl.lit("child").alias("person_id")),
        ]
    )
    unrelated = events(
        (LOINC, "8867-4", date(2026, 1, 5), 71.0), (SNOMED, "271737000", date(2026, 2, 1), None)
    ).with_columns(pl.lit("nobody").alias("person_id"), pl.format("U/{}", "record").alias("record"))
    assert unrelated.join(value_sets(), on=["system", "code"]).is_empty()  # heart rate, anaemia
    everything = pl.concat([relevant, unrelated])
    direct = pl.concat([evaluate_measure(m, people, everything, AS_OF) for m in load_measures()])
    assert evaluate_care_gaps(people, everything, AS_OF).equals(direct)
    assert evaluate_care_gaps(people, relevant, AS_OF).equals(direct)
    assert direct.filter(pl.col("status") == "open-gap").height > 0
