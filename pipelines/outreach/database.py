"""The PostgreSQL sink for outreach lists: each campaign run's list, stored where consumers can read it.

Every run of a campaign is kept. Writing a run replaces whatever that run id had stored (so re-running a
run id is an idempotent upsert) and marks the rows of the campaign's other runs as superseded by it, all
in one transaction: readers see the previous list or the new one, never a mix. The current list of a
campaign is its rows that are not superseded (`current_list`); an empty run is a real, empty list.

Rows are bulk-loaded with COPY in binary format with declared column types. Writers of the same campaign
are serialized by a transaction-scoped advisory lock, so two concurrent runs cannot both stay current.

The rows are protected health information. Errors raised here name the campaign, the run and the
database error's class only: a database error's message can echo the values of a row (a duplicate key,
an out-of-range number), so it is neither shown nor chained.

The sink is enabled by setting `PATIENT_INSIGHTS_OUTREACH_DSN` to a libpq connection string or URL.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from pipelines.outreach.selection import LIST_SCHEMA

OUTREACH_DSN_ENV = "PATIENT_INSIGHTS_OUTREACH_DSN"
TABLE = "outreach_list"
CONNECT_TIMEOUT_S = 5
_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("campaign_id", "text"),
    ("run_id", "text"),
    ("person_id", "text"),
    ("rank", "integer"),
    ("priority", "double precision"),
    ("channel", "text"),
    ("recipient", "text"),
    ("recipient_name", "text"),
    ("contact", "text"),
    ("language", "text"),
    ("template", "text"),
    ("given", "text"),
    ("family", "text"),
    ("source_identifiers", "text[]"),
    ("segments", "text[]"),
    ("gap_ids", "text[]"),
    ("due_dates", "date[]"),
    ("run_at", "timestamptz"),
)
"""The loaded columns and their SQL types, in COPY order (`superseded`/`superseded_by` are set later)."""
FRAME_COLUMNS: tuple[str, ...] = tuple(
    name for name, _ in _COLUMNS if name not in ("campaign_id", "run_id", "run_at")
)
"""The columns `write_outreach_list` reads from its frame (other columns are ignored)."""
_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    **{name: LIST_SCHEMA[name] for name in FRAME_COLUMNS},  # typed as selection makes the list
    "run_at": pl.Datetime("us", "UTC"),
}
"""The schema of `current_list` frames."""


class OutreachSinkError(RuntimeError):
    """Reading or writing outreach lists in PostgreSQL failed; the message holds no row values."""


def outreach_dsn() -> str | None:
    """The sink's connection string from `PATIENT_INSIGHTS_OUTREACH_DSN`; None (sink disabled) if unset
    or empty."""
    return os.environ.get(OUTREACH_DSN_ENV, "").strip() or None


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        dsn, connect_timeout=CONNECT_TIMEOUT_S, application_name="patient-insights outreach sink"
    )


def _sink_error(action: str, campaign_id: str, run_id: str | None, exc: BaseException) -> OutreachSinkError:
    """The error to raise instead of `exc`: what failed and the error's class, never its message."""
    run = f" run {run_id}" if run_id is not None else ""
    return OutreachSinkError(f"{action} failed for campaign {campaign_id}{run}: {type(exc).__name__}")


def _table_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    return bool(row and row[0])


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    """Create the outreach list table and its index of current rows if missing, in `conn`'s current
    transaction (the caller commits). Concurrent first-time creators wait for each other."""
    if _table_exists(conn):
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{TABLE}:ddl",))
    columns = [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in _COLUMNS]
    columns += [
        sql.SQL("superseded boolean NOT NULL DEFAULT false"),
        sql.SQL("superseded_by text"),
        sql.SQL("PRIMARY KEY (campaign_id, run_id, person_id)"),
    ]
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            sql.Identifier(TABLE), sql.SQL(", ").join(columns)
        )
    )
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (campaign_id) WHERE NOT superseded").format(
            sql.Identifier(f"{TABLE}_current_idx"), sql.Identifier(TABLE)
        )
    )


def write_outreach_list(
    dsn: str,
    campaign_id: str,
    run_id: str,
    run_at: datetime,
    rows: pl.DataFrame,
    *,
    fail_after_rows: int | None = None,
) -> dict[str, int]:
    """Store one campaign run's list and make it the campaign's current list, in one transaction.

    `rows` holds the `FRAME_COLUMNS` (lists as list columns, `due_dates` as list[date]); `run_at` must be
    timezone-aware. Rows already stored for (campaign_id, run_id) are replaced; every other run's rows of
    the campaign that are not yet superseded are marked superseded by `run_id`. Returns
    {"inserted": rows loaded, "superseded": rows newly marked superseded}.

    `fail_after_rows` is for tests: a RuntimeError is raised once that many rows are loaded, before the
    supersede step and the commit, so nothing of the run is stored. Database failures raise
    `OutreachSinkError`."""
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ValueError("run_at must be timezone-aware")
    missing = [c for c in FRAME_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"outreach list frame lacks columns: {', '.join(missing)}")
    # psycopg's binary int4 dumper wraps out-of-range values silently (2**31 is stored as -2**31)
    out_of_range = rows.filter(~pl.col("rank").is_between(_INT4_MIN, _INT4_MAX)).height
    if out_of_range:
        raise ValueError(f"rank must fit a PostgreSQL integer; {out_of_range} rows do not")
    copy_columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in _COLUMNS)
    copy_stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(TABLE), copy_columns)
    action = "connecting to the outreach database"
    try:
        with _connect(dsn) as conn:
            action = "writing the outreach list"
            with conn.transaction(), conn.cursor() as cur:
                ensure_table(conn)
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{TABLE}:{campaign_id}",)
                )
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE campaign_id = %s AND run_id = %s").format(
                        sql.Identifier(TABLE)
                    ),
                    (campaign_id, run_id),
                )
                inserted = 0
                with cur.copy(copy_stmt) as copy:
                    copy.set_types([kind for _, kind in _COLUMNS])
                    for row in rows.select(FRAME_COLUMNS).iter_rows():
                        if inserted == fail_after_rows:
                            break
                        try:
                            copy.write_row((campaign_id, run_id, *row, run_at))
                        except Exception as exc:
                            # raised here, the message would also reach the server (COPY is aborted with it)
                            raise _sink_error(action, campaign_id, run_id, exc) from None
                        inserted += 1
                if inserted == fail_after_rows:
                    raise RuntimeError(
                        f"injected failure after {inserted} rows of campaign {campaign_id} run {run_id}"
                    )
                cur.execute(
                    sql.SQL(
                        "UPDATE {} SET superseded = true, superseded_by = %s"
                        " WHERE campaign_id = %s AND run_id <> %s AND NOT superseded"
                    ).format(sql.Identifier(TABLE)),
                    (run_id, campaign_id, run_id),
                )
                superseded = cur.rowcount
    except psycopg.Error as exc:
        raise _sink_error(action, campaign_id, run_id, exc) from None
    return {"inserted": inserted, "superseded": superseded}


def current_list(dsn: str, campaign_id: str) -> pl.DataFrame:
    """The campaign's current list (its rows not superseded), ordered by rank then person id; empty when
    the campaign (or the table) has none. For consumers of the list and for tests."""
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in _COLUMNS)
    query = sql.SQL(
        "SELECT {} FROM {} WHERE campaign_id = %s AND NOT superseded ORDER BY rank, person_id"
    ).format(columns, sql.Identifier(TABLE))
    action = "connecting to the outreach database"
    try:
        with _connect(dsn) as conn:
            action = "reading the outreach list"
            conn.execute("SET TIME ZONE 'UTC'")
            records = conn.execute(query, (campaign_id,)).fetchall() if _table_exists(conn) else []
    except psycopg.Error as exc:
        raise _sink_error(action, campaign_id, None, exc) from None
    return pl.DataFrame(records, schema=_FRAME_SCHEMA, orient="row")
