"""A faster local event log for the Dagster instance: Dagster's own SQLite storage, with its connections
kept open and SQLite in write-ahead-log mode.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine, opens a new SQLite connection and commits
with a disk sync for every event it stores (asset events twice: the run's file and the index). A pipeline
run stores a few hundred events, so on a laptop that bookkeeping cost more than the data of a small run. Here
each process keeps one engine per database file (a few, least recently used first out) and opens the files
in WAL mode with `synchronous=NORMAL`: a commit no longer waits for the disk, and a crash can lose at most
the last events, never corrupt the file. Readers (the webserver, the daemon) open the same files as before.

Configured in `$DAGSTER_HOME/dagster.yaml` (`make setup` writes it):

    event_log_storage:
      module: pipelines.dagster_storage
      class: PooledSqliteEventLogStorage
      config:
        base_dir: <DAGSTER_HOME>/history/runs
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import NullPool

ENGINES_KEPT = 8
"""Database files a process keeps open: the index, and the latest runs' files."""
BUSY_TIMEOUT_SECONDS = 30


def _pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SQLite event log storage that keeps its connections open and does not sync the disk per event."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        """Built from dagster.yaml, like Dagster's own storage."""
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.engine.Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=db.pool.SingletonThreadPool,
            connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        db.event.listen(engine, "connect", _pragmas)
        if shard not in self._initialized_dbs:
            # Dagster's schema set-up (alembic) on a plain engine, as its own storage does it
            setup = db.create_engine(self.conn_string_for_shard(shard), poolclass=NullPool)
            self._initdb(setup)
            setup.dispose()
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > ENGINES_KEPT:
            _, old = self._engines.popitem(last=False)
            old.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close every kept connection, then what Dagster's storage closes."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()
