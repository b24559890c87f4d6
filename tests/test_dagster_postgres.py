"""The Dagster instance on PostgreSQL (dagster-postgres), as on a cluster: the whole pipeline runs with its
run, event and schedule storage on the test server, two worker processes running the buckets of each job
side by side against it, and gives the same lake as a one-process run on an ephemeral instance."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

GOLD_TABLES = ("patient_360", "care_gaps", "segment_membership", "trigger_events", "timeline")


@pytest.fixture
def instance_dsn(server_dsn: str) -> str:
    """A fresh database for one Dagster instance, dropped afterwards."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _url(dsn: str) -> str:
    parts = conninfo_to_dict(dsn)
    user = parts.get("user", "postgres")
    return f"postgresql://{user}@{parts['host']}:{parts.get('port', 5432)}/{parts['dbname']}"


def _table(lake: Path, table: str) -> pl.DataFrame:
    frame = pl.read_parquet(lake / "gold" / table / "**" / "*.parquet", hive_partitioning=False)
    return frame.sort(frame.columns)


def test_the_pipeline_on_a_postgres_instance_matches_an_ephemeral_run(
    tmp_path: Path, instance_dsn: str, dashboard_lake: tuple[Path, Path]
) -> None:
    import dagster as dg

    from dashboards.testing import demo_lake

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {_url(instance_dsn)}\ntelemetry:\n  enabled: false\n"
    )
    lake, _ = demo_lake(tmp_path / "run", dagster_home=str(home), workers=2)

    # the runs, their events and the asset checks are in PostgreSQL
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert len(runs) == 1 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)  # one per pass
        assert instance.get_latest_materialization_event(dg.AssetKey(["gold", "care_gap_rates"])) is not None
    with psycopg.connect(instance_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == len(runs)

    reference, _ = dashboard_lake  # the same generated people, on an ephemeral instance
    for table in GOLD_TABLES:
        assert _table(lake, table).equals(_table(reference, table)), table
