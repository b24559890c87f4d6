"""Segments: declarative rules over the 360 view, care-gap statuses and trigger events, and their
membership history (`gold/segment_membership`: person, segment, entered, exited, reason).

Rules combine conditions with `all`, `any` and `not`:
- `{column: <patient_360 column>, op: eq|ne|gt|ge|lt|le|in|between|is_null|not_null, value: ...}`
- `{care_gap: <measure id>, status: [open-gap, ...]}`
- `{trigger: <kind>, within_days: N, detail: <optional>}`: a trigger event in the N days up to the as-of day

Dynamic segments are re-evaluated every run; static segments are evaluated once and then frozen (their
snapshot date is the day members entered); trigger segments are dynamic segments driven by events. A file
that does not parse or names an unknown column, operator or key fails with its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from pipelines.measures.definitions import DefinitionError
from pipelines.yaml_lines import child, line, load_with_lines

SEGMENTS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "segments"
SEGMENT_TYPES = {"static", "dynamic", "trigger"}
MAX_WITHIN_DAYS = 36_500
OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le", "in", "between", "is_null", "not_null"}
MEMBERSHIP_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "segment_id": pl.String(),
    "segment_type": pl.String(),
    "entered": pl.Date(),
    "exited": pl.Date(),  # null while the person is a member
    "reason": pl.String(),  # matched | snapshot | no longer matches
}
SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "segment_id": pl.String(),  # a static segment
    "snapshot_on": pl.Date(),  # the as-of day its membership was frozen
    "members": pl.Int64(),  # members at that day (in this partition)
}


@dataclass(frozen=True)
class Segment:
    """One segment file: its rule compiled to a Polars expression over the person frame."""

    id: str
    title: str
    type: str
    rule: pl.Expr
    source: str


def segment_titles(folder: Path = SEGMENTS_DIR) -> dict[str, str]:
    """Every segment id with its title, without compiling rules (campaign checks, export reasons)."""
    titles = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            titles[str(data.get("id") or path.stem)] = str(data.get("title") or data.get("id") or path.stem)
    return titles


def load_segments(columns: set[str], folder: Path = SEGMENTS_DIR) -> list[Segment]:
    """Every segment file, its rule checked against the person frame's `columns`."""
    segments = []
    for path in sorted(folder.glob("*.yaml")):
        node, data = load_with_lines(path)
        if not isinstance(data, dict):
            raise DefinitionError(f"{path.name}:1: a segment must be a mapping")
        kind = data.get("type")
        if kind not in SEGMENT_TYPES:
            raise DefinitionError(
                f"{path.name}:{line(node, 'type')}: type must be one of {sorted(SEGMENT_TYPES)}"
            )
        try:
            rule = _compile(data.get("rule"), child(node, "rule"), path, columns)
        except RecursionError:
            where = f"{path.name}:{line(node, 'rule')}"
            raise DefinitionError(f"{where}: the rule is nested too deeply") from None
        segments.append(
            Segment(str(data.get("id") or path.stem), str(data.get("title", "")), kind, rule, path.name)
        )
    return segments


def _compile(rule: Any, node: yaml.Node | None, path: Path, columns: set[str]) -> pl.Expr:
    def fail(message: str) -> DefinitionError:
        return DefinitionError(f"{path.name}:{line(node)}: {message}")

    if not isinstance(rule, dict) or not rule:
        raise fail("a rule must be a mapping")
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        if not isinstance(rule[key], list) or not rule[key]:
            raise fail(f"`{key}` needs a list of at least one rule")
        parts = [_compile(r, child(child(node, key), i), path, columns) for i, r in enumerate(rule[key])]
        return pl.all_horizontal(parts) if key == "all" else pl.any_horizontal(parts)
    if "not" in rule:
        return ~_compile(rule["not"], child(node, "not"), path, columns)
    if "care_gap" in rule:
        if not isinstance(rule.get("status") or [], list):
            raise fail("status must be a list of care-gap statuses")
        column = f"gap_{rule['care_gap']}"
        if column not in columns:
            raise fail(f"unknown measure {rule['care_gap']!r}")
        return pl.col(column).is_in(list(rule.get("status") or ["open-gap"])).fill_null(False)
    if "trigger" in rule:
        column = f"trigger_{rule['trigger']}" + (f"_{rule['detail']}" if rule.get("detail") else "")
        if column not in columns:
            raise fail(f"unknown trigger {rule['trigger']!r} (or detail {rule.get('detail')!r})")
        days = rule.get("within_days", 1)
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_WITHIN_DAYS:
            raise fail(f"within_days must be a whole number from 0 to {MAX_WITHIN_DAYS}")
        return (pl.col("_as_of_end") - pl.col(column) <= timedelta(days=days)).fill_null(False)
    if "column" in rule:
        column, op, value = rule["column"], rule.get("op", "eq"), rule.get("value")
        if not isinstance(column, str) or column not in columns:
            raise fail(f"unknown column {column!r}")
        if not isinstance(op, str) or op not in OPERATORS:
            raise fail(f"unknown operator {op!r}")
        if op == "in" and not isinstance(value, list):
            raise fail("op `in` needs a list value")
        if op == "between" and not (isinstance(value, list) and len(value) == 2):
            raise fail("op `between` needs a list of two values")
        c = pl.col(column)
        expression = {
            "eq": lambda: c == value,
            "ne": lambda: c != value,
            "gt": lambda: c > value,
            "ge": lambda: c >= value,
            "lt": lambda: c < value,
            "le": lambda: c <= value,
            "in": lambda: c.is_in(list(value)),
            "between": lambda: c.is_between(value[0], value[1]),
            "is_null": lambda: c.is_null(),
            "not_null": lambda: c.is_not_null(),
        }[op]()
        return expression.fill_null(False)
    raise fail(f"unknown rule keys {sorted(rule)}")


def person_frame(view: pl.DataFrame, gaps: pl.DataFrame, triggers: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The 360 view with one `gap_<measure>` status column per measure and the latest time of each
    trigger kind (and kind + detail) as `trigger_<kind>[_<detail>]`."""
    frame = view
    if gaps.height:
        statuses = gaps.pivot(on="measure_id", index="person_id", values="status")
        frame = frame.join(
            statuses.rename({c: f"gap_{c}" for c in statuses.columns if c != "person_id"}),
            on="person_id",
            how="left",
        )
    end = pl.lit(datetime.combine(as_of, time(23, 59, 59, 999999))).dt.replace_time_zone("UTC")
    recent = triggers.filter(pl.col("time") <= end) if triggers.height else triggers
    if recent.height:
        by_kind = (
            recent.group_by("person_id", "kind")
            .agg(pl.col("time").max())
            .pivot(on="kind", index="person_id", values="time")
        )
        by_detail = (
            recent.drop_nulls("detail")
            .with_columns(pl.format("{}_{}", "kind", "detail").alias("_key"))
            .group_by("person_id", "_key")
            .agg(pl.col("time").max())
            .pivot(on="_key", index="person_id", values="time")
        )
        for table in (by_kind, by_detail):
            frame = frame.join(
                table.rename({c: f"trigger_{c}" for c in table.columns if c != "person_id"}),
                on="person_id",
                how="left",
            )
    return frame.with_columns(end.alias("_as_of_end"))


def update_membership(
    segments: list[Segment],
    people: pl.DataFrame,
    previous: pl.DataFrame,
    as_of: date,
    snapshots: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Membership history after this run: new members enter, dynamic members who no longer match exit,
    static segments keep the snapshot of their first run (listed in `snapshots`, so that a snapshot with
    no members stays frozen too). Re-running the same day changes nothing."""
    history = previous if previous.height else pl.DataFrame(schema=MEMBERSHIP_SCHEMA)
    frozen = set(snapshots["segment_id"].to_list()) if snapshots is not None else set()
    known = {s.id for s in segments}
    result = [history.filter(~pl.col("segment_id").is_in(list(known)))]  # segments no longer defined
    for segment in segments:
        mine = history.filter(pl.col("segment_id") == segment.id)
        if segment.type == "static" and (segment.id in frozen or mine.height):
            result.append(mine)  # frozen at its snapshot
            continue
        members = people.filter(segment.rule).select("person_id")
        current = mine.filter(pl.col("exited").is_null())
        entering = members.join(current.select("person_id"), on="person_id", how="anti").select(
            "person_id",
            pl.lit(segment.id).alias("segment_id"),
            pl.lit(segment.type).alias("segment_type"),
            pl.lit(as_of).alias("entered"),
            pl.lit(None, pl.Date).alias("exited"),
            pl.lit("snapshot" if segment.type == "static" else "matched").alias("reason"),
        )
        leaving = current.join(members, on="person_id", how="anti")
        result += [
            mine.join(leaving.select("person_id", "entered"), on=["person_id", "entered"], how="anti"),
            leaving.with_columns(pl.lit(as_of).alias("exited"), pl.lit("no longer matches").alias("reason")),
            entering,
        ]
    frames = [f.select([pl.col(n).cast(t) for n, t in MEMBERSHIP_SCHEMA.items()]) for f in result if f.height]
    if not frames:
        return pl.DataFrame(schema=MEMBERSHIP_SCHEMA)
    return pl.concat(frames).sort("segment_id", "person_id", "entered")


def update_snapshots(
    segments: list[Segment], membership: pl.DataFrame, previous: pl.DataFrame, as_of: date
) -> pl.DataFrame:
    """The static segments frozen so far: earlier snapshots are kept, a static segment seen for the first
    time is frozen today with the members `update_membership` gave it."""
    known = previous if previous.height else pl.DataFrame(schema=SNAPSHOT_SCHEMA)
    done = set(known["segment_id"].to_list())
    fresh = [
        {
            "segment_id": s.id,
            "snapshot_on": as_of,
            "members": membership.filter(pl.col("segment_id") == s.id).height,
        }
        for s in segments
        if s.type == "static" and s.id not in done
    ]
    return pl.concat([known, pl.DataFrame(fresh, schema=SNAPSHOT_SCHEMA)]).sort("segment_id")
