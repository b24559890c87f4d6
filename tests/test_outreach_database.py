"""The PostgreSQL outreach sink against a real server: runs, supersession, idempotent re-runs, rollback
on failure, empty lists, nulls, and errors that carry no row values.

The server is `PATIENT_INSIGHTS_TEST_POSTGRES_DSN` when set, else the one `scripts/postgres.sh` starts
(and leaves running for the next session; `scripts/postgres.sh stop` stops it). When neither works the
tests skip, or fail where `PATIENT_INSIGHTS_REQUIRE_POSTGRES=1` (CI). Each test gets its own schema."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from psycopg import sql

from pipelines.outreach.database import (
    FRAME_COLUMNS,
    OUTREACH_DSN_ENV,
    TABLE,
    OutreachSinkError,
    current_list,
    outreach_dsn,
    write_outreach_list,
)
from pipelines.outreach.selection import LIST_SCHEMA

ROW_SCHEMA: dict[str, pl.DataType] = {name: LIST_SCHEMA[name] for name in FRAME_COLUMNS}
"""The list columns the sink loads, typed as selection makes them."""
RUN_AT = datetime(2026, 6, 30, 8, 0, tzinfo=UTC)


def person(person_id: str, rank: int, **values: Any) -> dict[str, Any]:
    """One synthetic list row; `values` override the defaults."""
    return {
        "person_id": person_id,
        "rank": rank,
        "priority": 100.0 - rank,
        "channel": "sms",
        "recipient": "patient",
        "recipient_name": f"Test Person {person_id}",
        "contact": f"+1555000{rank:04d}",
        "language": "en",
        "template": "diabetes_a1c_sms_en",
        "given": "Test",
        "family": f"Person{person_id}",
        "source_identifiers": [f"ehr|{person_id}", f"claims|{person_id}"],
        "segments": ["diabetes_a1c_overdue"],
        "gap_ids": [f"gap-{person_id}-a1c"],
        "due_dates": [date(2026, 3, rank % 28 + 1)],
    } | values


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=ROW_SCHEMA)


def run_frame(prefix: str, n: int) -> pl.DataFrame:
    """n rows with person ids `{prefix}{i}`, in reverse rank order (the sink must not rely on order)."""
    return frame(*(person(f"{prefix}{i}", i) for i in range(n, 0, -1)))


def stored(dsn: str, where: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """(run_id, person_id, superseded, superseded_by) of the stored rows matching `where`."""
    query = sql.SQL(
        "SELECT run_id, person_id, superseded, superseded_by FROM {} WHERE "
        + where
        + " ORDER BY run_id, person_id"
    ).format(sql.Identifier(TABLE))
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchall()


def test_first_run_stored_in_rank_order_with_lists_and_dates(dsn: str) -> None:
    rows = run_frame("P", 3)
    assert write_outreach_list(dsn, "c1", "r1", RUN_AT, rows) == {"inserted": 3, "superseded": 0}
    got = current_list(dsn, "c1")
    assert got["person_id"].to_list() == ["P1", "P2", "P3"]
    assert_frame_equal(got.select(FRAME_COLUMNS), rows.sort("rank"))
    assert got["campaign_id"].unique().to_list() == ["c1"]
    assert got["run_id"].unique().to_list() == ["r1"]
    assert got["run_at"].unique().to_list() == [RUN_AT]
    assert got.row(0, named=True)["due_dates"] == [date(2026, 3, 2)]
    assert got.row(0, named=True)["source_identifiers"] == ["ehr|P1", "claims|P1"]


def test_second_run_supersedes_first_and_leaves_other_campaigns(dsn: str) -> None:
    write_outreach_list(dsn, "c1", "r1", RUN_AT, run_frame("A", 3))
    other = run_frame("B", 2)
    write_outreach_list(dsn, "c2", "r1", RUN_AT, other)
    second = frame(person("A2", 1), person("C9", 2))
    assert write_outreach_list(dsn, "c1", "r2", RUN_AT, second) == {"inserted": 2, "superseded": 3}

    assert_frame_equal(current_list(dsn, "c1").select(FRAME_COLUMNS), second)
    assert stored(dsn, "campaign_id = %s AND run_id = %s", ("c1", "r1")) == [
        ("r1", f"A{i}", True, "r2") for i in (1, 2, 3)
    ]
    assert stored(dsn, "campaign_id = %s AND run_id = %s", ("c1", "r2")) == [
        ("r2", "A2", False, None),
        ("r2", "C9", False, None),
    ]
    assert_frame_equal(current_list(dsn, "c2").select(FRAME_COLUMNS), other.sort("rank"))
    assert stored(dsn, "campaign_id = %s", ("c2",)) == [("r1", "B1", False, None), ("r1", "B2", False, None)]


def test_rerunning_a_run_id_is_idempotent(dsn: str) -> None:
    write_outreach_list(dsn, "c1", "r1", RUN_AT, run_frame("P", 2))
    rows = run_frame("Q", 3)
    write_outreach_list(dsn, "c1", "r2", RUN_AT, rows)
    before = current_list(dsn, "c1")
    table_before = stored(dsn, "campaign_id = %s", ("c1",))

    assert write_outreach_list(dsn, "c1", "r2", RUN_AT, rows) == {"inserted": 3, "superseded": 0}
    assert_frame_equal(current_list(dsn, "c1"), before)
    assert stored(dsn, "campaign_id = %s", ("c1",)) == table_before
    assert stored(dsn, "run_id = %s", ("r2",)) == [("r2", f"Q{i}", False, None) for i in (1, 2, 3)]


def test_failure_mid_write_leaves_the_previous_list(dsn: str) -> None:
    write_outreach_list(dsn, "c1", "r1", RUN_AT, run_frame("P", 2))
    write_outreach_list(dsn, "c1", "r2", RUN_AT, run_frame("Q", 2))
    before = current_list(dsn, "c1")
    table_before = stored(dsn, "campaign_id = %s", ("c1",))

    with pytest.raises(RuntimeError, match="after 1 rows"):
        write_outreach_list(dsn, "c1", "r3", RUN_AT, run_frame("R", 3), fail_after_rows=1)
    assert_frame_equal(current_list(dsn, "c1"), before)
    assert stored(dsn, "campaign_id = %s", ("c1",)) == table_before
    assert stored(dsn, "run_id = %s", ("r3",)) == []


def test_failure_before_the_table_exists_leaves_nothing(dsn: str) -> None:
    with pytest.raises(RuntimeError):
        write_outreach_list(dsn, "c1", "r1", RUN_AT, run_frame("P", 3), fail_after_rows=1)
    assert current_list(dsn, "c1").height == 0


def test_empty_run_is_a_real_empty_list(dsn: str) -> None:
    write_outreach_list(dsn, "c1", "r1", RUN_AT, run_frame("P", 3))
    assert write_outreach_list(dsn, "c1", "r2", RUN_AT, frame()) == {"inserted": 0, "superseded": 3}
    got = current_list(dsn, "c1")
    assert got.height == 0
    assert got.select(FRAME_COLUMNS).schema == pl.Schema(ROW_SCHEMA)
    assert stored(dsn, "campaign_id = %s", ("c1",)) == [("r1", f"P{i}", True, "r2") for i in (1, 2, 3)]


def test_nulls_load_as_null(dsn: str) -> None:
    optional = [c for c in FRAME_COLUMNS if c not in ("person_id", "rank")]
    rows = frame(
        person("N1", 1, **dict.fromkeys(optional)),
        person("N2", 2, segments=[], gap_ids=["gap-1", None], due_dates=[None, date(2026, 1, 5)]),
    )
    write_outreach_list(dsn, "c1", "r1", RUN_AT, rows)

    assert_frame_equal(current_list(dsn, "c1").select(FRAME_COLUMNS), rows)
    checks = sql.SQL(", ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in optional)
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        query = sql.SQL("SELECT {} FROM {} WHERE person_id = %s").format(checks, sql.Identifier(TABLE))
        assert conn.execute(query, ("N1",)).fetchone() == (True,) * len(optional)
        empty_list = conn.execute(
            sql.SQL("SELECT segments IS NULL, cardinality(segments) FROM {} WHERE person_id = 'N2'").format(
                sql.Identifier(TABLE)
            )
        ).fetchone()
        assert empty_list == (False, 0)


@pytest.mark.parametrize(
    ("case", "expected_class"),
    [("duplicate_person", "UniqueViolation"), ("nul_in_text", "CharacterNotInRepertoire")],
)
def test_sink_errors_carry_no_row_values(dsn: str, case: str, expected_class: str) -> None:
    write_outreach_list(dsn, "c1", "r1", RUN_AT, run_frame("P", 2))
    before = current_list(dsn, "c1")
    secret_id, secret_name, secret_contact = "P-SECRET-4711", "Zyxwvut Testperson", "+15559990000"
    values = {"recipient_name": secret_name, "family": secret_name, "contact": secret_contact}
    if case == "duplicate_person":
        rows = frame(person(secret_id, 1, **values), person(secret_id, 2, **values))
    else:
        rows = frame(person(secret_id, 1, **(values | {"template": f"{secret_contact}\x00"})))

    with pytest.raises(OutreachSinkError) as caught:
        write_outreach_list(dsn, "c1", "r2", RUN_AT, rows)
    message = str(caught.value)
    assert "campaign c1 run r2" in message
    assert expected_class in message
    for secret in (secret_id, secret_name, secret_contact):
        assert secret not in message
        assert secret not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert_frame_equal(current_list(dsn, "c1"), before)


def test_invalid_input_is_refused_before_connecting() -> None:
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    rows = run_frame("P", 1).drop("due_dates", "gap_ids")
    with pytest.raises(ValueError, match="gap_ids, due_dates"):
        write_outreach_list(nowhere, "c1", "r1", RUN_AT, rows)
    with pytest.raises(ValueError, match="timezone-aware"):
        write_outreach_list(nowhere, "c1", "r1", datetime(2026, 6, 30), run_frame("P", 1))
    # the binary integer dumper would wrap these silently (2**31 stored as -2**31)
    too_big = frame(person("P1", 2**31), person("P2", -(2**31) - 1), person("P3", 2**31 - 1))
    with pytest.raises(ValueError, match="2 rows do not") as caught:
        write_outreach_list(nowhere, "c1", "r1", RUN_AT, too_big)
    assert str(2**31) not in str(caught.value)


def test_unreachable_server_is_a_sink_error() -> None:
    with pytest.raises(OutreachSinkError, match="connecting to the outreach database failed for campaign c1"):
        write_outreach_list("postgresql://nobody@127.0.0.1:1/none", "c1", "r1", RUN_AT, run_frame("P", 1))


def test_outreach_dsn_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OUTREACH_DSN_ENV, raising=False)
    assert outreach_dsn() is None
    monkeypatch.setenv(OUTREACH_DSN_ENV, "")
    assert outreach_dsn() is None
    monkeypatch.setenv(OUTREACH_DSN_ENV, "   ")
    assert outreach_dsn() is None
    monkeypatch.setenv(OUTREACH_DSN_ENV, "postgresql://outreach@db.example/outreach")
    assert outreach_dsn() == "postgresql://outreach@db.example/outreach"
