"""Risk training cost follows a budget, not the population: the training sample (capped, drawn by a hash
of the person id, the same whatever the layout), and the care-gap feature computed once per chunk of
persons equals the per-day definition. No timing: these check what the speed rests on."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import polars as pl
import pytest

from models.risk.config import risk_config
from models.risk.dataset import DISCHARGE_MODEL, PERSON_MODEL, sample_order, training_sets
from models.risk.features import _open_care_gaps, end_of_day, person_points
from models.risk.registry import version_id
from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.records import PersonRecords
from pipelines.identity.build import IDENTITY, PERSON
from pipelines.lake import read_table
from pipelines.measures.build import evaluate_care_gaps
from pipelines.measures.engine import PERSON_SCHEMA
from pipelines.measures.events import person_events
from tests.test_identity import identity  # noqa: F401  (800 generated people through identity)

AS_OF = date(2026, 6, 30)
BUCKETS = 4


@pytest.fixture(scope="module")
def capped(identity):  # noqa: F811
    """Both training sets with budgets far below what the 800 people hold, and the sample order."""
    _, lake = identity
    config = replace(risk_config(), person_max_train_rows=300, discharge_max_train_rows=40)
    sets = training_sets(lake, BUCKETS, AS_OF, config)
    order = sample_order(read_table(lake, IDENTITY, PERSON)["person_id"])
    return lake, config, sets, order


def _rank_range(data_persons: pl.Series, order: pl.DataFrame) -> pl.Series:
    return order.join(data_persons.unique().to_frame(), on="person_id", how="semi")["rank"]


def test_train_rows_stay_within_the_budget_and_the_other_splits_come_from_the_same_persons(capped) -> None:
    _, config, sets, _ = capped
    person, discharge = sets[PERSON_MODEL], sets[DISCHARGE_MODEL]
    train = person.part("train").height
    # whole persons are taken (up to train_points rows each) while they fit in the budget
    assert config.person_max_train_rows - config.train_points < train <= config.person_max_train_rows
    assert person.sample["train_rows"] > 3 * train  # the lake holds many more: the budget bites
    assert person.sample["persons_sampled"] < person.sample["persons"]
    persons = {role: set(person.part(role)["person_id"]) for role in ("train", "validation", "test")}
    assert len(persons["test"] - persons["train"]) <= len(persons["test"]) * 0.1  # mostly the same people
    assert 0 < discharge.part("train").height <= config.discharge_max_train_rows
    assert discharge.sample["train_rows"] > discharge.part("train").height


def test_the_sample_is_the_first_persons_in_hash_order(capped) -> None:
    lake, _, sets, order = capped
    person = sets[PERSON_MODEL]
    sampled = _rank_range(person.frame["person_id"], order)
    # every person with a point and a lower rank than the last sampled one is in the sample
    persons = read_table(lake, IDENTITY, PERSON)
    days = [date.fromisoformat(d) for ds in person.as_of_days.values() for d in ds]
    eligible = person_points(persons, days)
    below = order.join(eligible.select("person_id").unique(), on="person_id", how="semi").filter(
        pl.col("rank") <= sampled.max()
    )
    assert below.height == sampled.len() == person.sample["persons_sampled"]


def test_the_hash_order_does_not_depend_on_row_order_or_the_bucket() -> None:
    ids = pl.Series("person_id", [f"person-{i:04d}" for i in range(500)])
    forward, shuffled = sample_order(ids), sample_order(ids.shuffle(seed=3))
    assert forward.equals(shuffled)
    assert not forward["person_id"].equals(ids)  # not the id order
    # not the bucket order either: the first fifty spread over the buckets
    from pipelines.gold.records import person_bucket_of

    assert len({person_bucket_of(p, 4) for p in forward["person_id"].head(50)}) == 4


def test_the_same_data_gives_the_same_sample_however_persons_are_chunked(capped) -> None:
    lake, config, sets, _ = capped
    again = training_sets(lake, BUCKETS, AS_OF, config, chunk_persons=37)
    for name, data in sets.items():
        assert again[name].frame.equals(data.frame), name
        assert version_id(again[name], config.seed) == version_id(data, config.seed)


def test_a_larger_budget_keeps_the_smaller_sample_and_changes_the_version(capped) -> None:
    lake, config, sets, _ = capped
    larger = training_sets(lake, BUCKETS, AS_OF, replace(config, person_max_train_rows=600), [PERSON_MODEL])
    small, large = sets[PERSON_MODEL], larger[PERSON_MODEL]
    assert set(small.frame["person_id"]) < set(large.frame["person_id"])
    assert version_id(small, config.seed) != version_id(large, config.seed)


def test_open_care_gaps_equal_the_measures_on_the_records_as_they_stood_each_day(identity) -> None:  # noqa: F811
    _, lake = identity
    records = PersonRecords.load(lake, "01", BUCKETS)
    abated = records.table("condition")["abatement_date_time"].drop_nulls()
    assert abated.len() > 0  # conditions that abate: their activity depends on the day
    days = [date(2023, 12, 31), date(2024, 7, 1), date(2025, 6, 30)]
    points = person_points(records.persons, days)
    fast = _open_care_gaps(records, points)
    persons = records.persons.select(
        "person_id",
        pl.col("gender").alias("sex"),
        "birth_date",
        pl.lit(False).alias("deceased"),
        pl.lit(None, pl.String).alias("pcp_practitioner_id"),
    ).select([pl.col(n).cast(t) for n, t in PERSON_SCHEMA.items()])
    for day in days:
        mine = persons.join(points.filter(pl.col("as_of") == day), on="person_id", how="semi")
        gaps = evaluate_care_gaps(mine, person_events(known_at(records, end_of_day(day))), day)
        expected = gaps.group_by("person_id").agg(
            (pl.col("status") == "open-gap").sum().alias("open_care_gaps")
        )
        got = fast.filter(pl.col("as_of") == day).select("person_id", "open_care_gaps")
        assert expected["open_care_gaps"].sum() > 0
        assert got.sort("person_id").equals(expected.sort("person_id")), day


def known_at(records: PersonRecords, cutoff: datetime) -> PersonRecords:
    """The reference definition of the care-gap feature's inputs: `records` as they stood at `cutoff`
    (naive UTC), events after it removed, conditions that abated after it still active."""
    at = pl.lit(cutoff).dt.replace_time_zone("UTC")
    known = PersonRecords(records.lake, records.persons, records.links, records.bucket, records.buckets)
    for table, columns in _MEASURE_EVENT_TIMES.items():
        rows = records.table(table)
        present = [c for c in columns if c in rows.columns]
        if not rows.height or not present:
            known._tables[("silver", table)] = rows
            continue
        when = pl.coalesce(
            [fhir_timestamp(pl.col(c)) if rows[c].dtype == pl.String else pl.col(c) for c in present]
        )
        rows = rows.filter(when < at)
        if table == "condition":
            abated_later = fhir_timestamp(pl.col("abatement_date_time")) >= at
            rows = rows.with_columns(
                pl.when(abated_later)
                .then(pl.lit("active"))
                .otherwise(pl.col("clinical_status"))
                .alias("clinical_status"),
                pl.when(abated_later)
                .then(None)
                .otherwise(pl.col("abatement_date_time"))
                .alias("abatement_date_time"),
            )
        known._tables[("silver", table)] = rows
    return known


_MEASURE_EVENT_TIMES = {
    "condition": ("onset_date_time", "recorded_date"),
    "procedure": ("performed_date_time", "performed_start"),
    "observation": ("effective_date_time",),
    "observation_component": ("effective_date_time",),
    "immunization": ("occurrence_date_time",),
    "medication_request": ("authored_on",),
    "encounter": ("period_start",),
    "device_reading": ("effective_start",),
}
