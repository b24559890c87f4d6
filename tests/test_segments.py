"""Segments: rules, static vs dynamic membership across runs, trigger segments, trigger dedup, and
definition errors that name the file and the line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from pipelines.gold.records import PersonRecords
from pipelines.measures.definitions import DefinitionError
from pipelines.segments.engine import (
    MEMBERSHIP_SCHEMA,
    SNAPSHOT_SCHEMA,
    load_segments,
    person_frame,
    update_membership,
    update_snapshots,
)
from pipelines.segments.triggers import TRIGGER_SCHEMA, build_trigger_events
from tests.test_identity import identity  # noqa: F401  (800 generated people through identity)

VIEW = pl.DataFrame(
    {
        "person_id": ["a", "b", "c"],
        "has_diabetes": [True, True, False],
        "last_hba1c": [10.1, 6.5, None],
        "age": [70, 55, 40],
    }
)
GAPS = pl.DataFrame(
    {
        "person_id": ["a", "b", "c"],
        "measure_id": ["EED"] * 3,
        "status": ["open-gap", "closed-gap", "not-applicable"],
    }
)
NO_TRIGGERS = pl.DataFrame(schema=TRIGGER_SCHEMA)


def write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text)


@pytest.fixture
def segments_dir(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "uncontrolled",
        "id: uncontrolled\ntype: dynamic\nrule:\n  all:\n    - {column: has_diabetes, op: eq, value: true}\n"
        "    - any:\n        - {column: last_hba1c, op: gt, value: 9}\n"
        "        - {column: last_hba1c, op: is_null}\n",
    )
    write(tmp_path, "eye_cohort", "id: eye_cohort\ntype: static\nrule: {care_gap: EED, status: [open-gap]}\n")
    write(
        tmp_path,
        "discharged",
        "id: discharged\ntype: trigger\nrule: {trigger: inpatient_discharge, within_days: 2}\n",
    )
    return tmp_path


def people(view: pl.DataFrame, gaps: pl.DataFrame, triggers: pl.DataFrame, as_of: date) -> pl.DataFrame:
    frame = person_frame(view, gaps, triggers, as_of)
    if "trigger_inpatient_discharge" not in frame.columns:
        frame = frame.with_columns(
            pl.lit(None, pl.Datetime("us", "UTC")).alias("trigger_inpatient_discharge")
        )
    return frame


def members(history: pl.DataFrame, segment: str) -> list[str]:
    current = history.filter((pl.col("segment_id") == segment) & pl.col("exited").is_null())
    return sorted(current["person_id"])


def test_dynamic_segments_follow_the_data_and_static_ones_keep_their_snapshot(segments_dir: Path) -> None:
    first_day, second_day = date(2026, 6, 1), date(2026, 6, 2)
    frame = people(VIEW, GAPS, NO_TRIGGERS, first_day)
    segments = load_segments(set(frame.columns), segments_dir)
    empty = pl.DataFrame(schema=MEMBERSHIP_SCHEMA)
    history = update_membership(segments, frame, empty, first_day)
    assert members(history, "uncontrolled") == ["a"] and members(history, "eye_cohort") == ["a"]
    assert update_membership(segments, frame, history, first_day).equals(history)  # same day: no change
    # new data: a's HbA1c is controlled, b's EED gap opens, c is now a diabetic without a result
    changed = VIEW.with_columns(
        pl.Series("last_hba1c", [7.0, 6.5, None]), pl.Series("has_diabetes", [True, True, True])
    )
    gaps = GAPS.with_columns(pl.Series("status", ["closed-gap", "open-gap", "open-gap"]))
    later = update_membership(segments, people(changed, gaps, NO_TRIGGERS, second_day), history, second_day)
    assert members(later, "uncontrolled") == ["c"]
    exit_row = later.filter((pl.col("segment_id") == "uncontrolled") & (pl.col("person_id") == "a")).row(
        0, named=True
    )
    assert (exit_row["entered"], exit_row["exited"], exit_row["reason"]) == (
        first_day,
        second_day,
        "no longer matches",
    )
    assert members(later, "eye_cohort") == ["a"]  # static: frozen at its first run


def test_a_static_segment_frozen_empty_stays_empty(segments_dir: Path) -> None:
    first_day, second_day = date(2026, 6, 1), date(2026, 6, 2)
    no_gaps = GAPS.with_columns(pl.lit("closed-gap").alias("status"))
    frame = people(VIEW, no_gaps, NO_TRIGGERS, first_day)
    segments = load_segments(set(frame.columns), segments_dir)
    history = update_membership(segments, frame, pl.DataFrame(schema=MEMBERSHIP_SCHEMA), first_day)
    snapshots = update_snapshots(segments, history, pl.DataFrame(schema=SNAPSHOT_SCHEMA), first_day)
    assert members(history, "eye_cohort") == []
    assert snapshots.filter(pl.col("segment_id") == "eye_cohort").row(0, named=True)["members"] == 0
    later = update_membership(
        segments, people(VIEW, GAPS, NO_TRIGGERS, second_day), history, second_day, snapshots
    )
    assert members(later, "eye_cohort") == [] and members(later, "uncontrolled") == ["a"]
    assert update_snapshots(segments, later, snapshots, second_day).equals(snapshots)  # taken once


def test_trigger_segments_select_recent_events(segments_dir: Path) -> None:
    as_of = date(2026, 6, 30)
    triggers = pl.DataFrame(
        {
            "event_id": ["inpatient_discharge|Encounter/1", "inpatient_discharge|Encounter/2"],
            "person_id": ["a", "b"],
            "kind": ["inpatient_discharge"] * 2,
            "time": [datetime(2026, 6, 29, 10, tzinfo=UTC), datetime(2026, 6, 20, 10, tzinfo=UTC)],
            "detail": [None, None],
            "record": ["Encounter/1", "Encounter/2"],
            "fired_on": [as_of, as_of],
        },
        schema=TRIGGER_SCHEMA,
    )
    frame = people(VIEW, GAPS, triggers, as_of)
    history = update_membership(
        load_segments(set(frame.columns), segments_dir), frame, pl.DataFrame(schema=MEMBERSHIP_SCHEMA), as_of
    )
    assert members(history, "discharged") == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "id: x\ntype: dynamic\nrule:\n  all:\n    - {column: no_such_column, op: eq, value: 1}\n",
            r"x.yaml:5: unknown column",
        ),
        ("id: x\ntype: dynamic\nrule: {column: age, op: roughly, value: 1}\n", r"x.yaml:3: unknown operator"),
        ("id: x\ntype: sometimes\nrule: {column: age, op: eq, value: 1}\n", r"x.yaml:2: type must be"),
        ("id: x\ntype: dynamic\nrule: {care_gap: XYZ}\n", r"x.yaml:3: unknown measure"),
        ("id: x\n  type: [\n", r"x.yaml:\d+: not valid YAML"),
    ],
)
def test_broken_segment_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "x", text)
    with pytest.raises(DefinitionError, match=message):
        load_segments(set(people(VIEW, GAPS, NO_TRIGGERS, date(2026, 6, 1)).columns), tmp_path)


def test_triggers_fire_once_across_daily_runs(identity) -> None:  # noqa: F811
    _, lake = identity
    records = PersonRecords.load(lake)
    first = build_trigger_events(records, date(2026, 6, 15), pl.DataFrame(schema=TRIGGER_SCHEMA))
    assert first.height > 0 and first["event_id"].is_unique().all()
    again = build_trigger_events(records, date(2026, 6, 15), first)
    assert again.equals(first)
    later = build_trigger_events(records, date(2026, 6, 30), first)
    assert later["event_id"].is_unique().all()
    kept = later.join(first.select("event_id", pl.col("fired_on").alias("before")), on="event_id")
    assert kept.height == first.height and (kept["fired_on"] == kept["before"]).all()
    fresh = later.filter(pl.col("fired_on") == date(2026, 6, 30))
    assert fresh.height > 0 and (fresh["time"] > datetime(2026, 5, 31, tzinfo=UTC)).all()


def test_the_shipped_segments_load_and_the_asset_materializes(identity) -> None:  # noqa: F811
    import dagster as dg

    from assets.gold.assets import person_tables
    from assets.resources import LakeResource
    from pipelines.lake import read_table

    root, lake = identity
    resource = LakeResource(landing=str(root / "landing"), lake=str(lake), buckets=4, as_of="2026-06-30")
    result = dg.materialize(
        [person_tables], resources={"lake": resource}, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    membership = read_table(lake, "gold", "segment_membership")
    gaps = read_table(lake, "gold", "care_gaps")
    open_bcs = set(
        gaps.filter((pl.col("measure_id") == "BCS") & (pl.col("status") == "open-gap"))["person_id"]
    )
    assert set(members(membership, "open_gap_bcs")) == open_bcs
