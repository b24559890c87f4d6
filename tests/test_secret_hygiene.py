"""Secrets stay in the environment: the outreach sink's database password and the de-identification salt
appear nowhere an operator reads or a run leaves behind.

A whole pipeline run loads its lists into PostgreSQL through a connection string with a password, the
de-identified export runs with its salt, and an outreach run then fails against a closed port with another
password; everything beside the data is searched for the three secrets: Python log records at DEBUG,
stdout/stderr, every Dagster event and run record of a persisted (SQLite) instance and its raw files, the
lake's run records and model records, the outreach audit log, every file of the exports, and the
de-identified tables' bytes.
"""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner
from upath import UPath

from pipelines.config import Settings
from pipelines.deid.rules import SALT_ENV
from pipelines.generate import generate_landing
from pipelines.outreach.database import OUTREACH_DSN_ENV
from tests.test_phi_hygiene import DAGSTER_YAML, _files, _on_every_logger, _record_text, dagster_records

pytestmark = pytest.mark.slow
PEOPLE, SEED, BUCKETS = 150, 31, 2
AS_OF = date(2026, 6, 30)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_secrets_appear_in_no_log_event_record_or_export(
    tmp_path: Path,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import dagster as dg

    import pipelines.definitions  # noqa: F401 - its imports create the loggers before they are listened to
    from assets.outreach.assets import OUTREACH_LIST_KEY
    from assets.pipeline import PIPELINE_JOB
    from assets.resources import lake_resource_for
    from pipelines.cli import app
    from pipelines.definitions import build_definitions
    from pipelines.run import QUIET_RUN, run_pipeline

    password, salt, other_password = (f"{kind}-{uuid.uuid4().hex}" for kind in ("pw", "salt", "pw2"))
    salt = salt + uuid.uuid4().hex  # the export wants at least 32 characters
    landing, lake, exports, home = (tmp_path / n for n in ("landing", "lake", "exports", "dagster_home"))
    generate_landing(landing, PEOPLE, seed=SEED, as_of=AS_OF)
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # the test server trusts loopback connections, so the password is sent along and never checked
    monkeypatch.setenv(OUTREACH_DSN_ENV, make_conninfo(dsn, password=password))
    monkeypatch.setenv(SALT_ENV, salt)
    settings = Settings(UPath(landing), UPath(lake), UPath(exports), BUCKETS, AS_OF)
    caplog.set_level(logging.DEBUG)
    with _on_every_logger(caplog.handler):
        run = run_pipeline(settings, workers=1)
        assert run.success, (run.failed_checks, run.warnings)
        exported = CliRunner().invoke(app, ["deidentify", "--lake", str(lake)])
        assert exported.exit_code == 0, exported.output
        # the sink down: the run fails, and its error names neither password
        down = {**conninfo_to_dict(dsn), "host": "127.0.0.1", "port": str(_closed_port())}
        monkeypatch.setenv(OUTREACH_DSN_ENV, make_conninfo(**down, password=other_password))
        failed = (
            build_definitions(lake_resource_for(settings))
            .resolve_job_def(PIPELINE_JOB)
            .execute_in_process(
                instance=dg.DagsterInstance.get(),
                asset_selection=[OUTREACH_LIST_KEY],
                raise_on_error=False,
                run_config=QUIET_RUN,
            )
        )
    assert not failed.success
    (failure,) = failed.get_step_failure_events()
    error = failure.step_failure_data.error
    assert "OperationalError" in str(error.cls_name) + str(error.cause), error.message[:200]
    with psycopg.connect(dsn) as conn:  # the lists did reach the database through the secret connection
        assert conn.execute("SELECT count(*) FROM outreach_list").fetchone()[0] > 0

    out, err = capfd.readouterr()
    haystack = [("stdout", out), ("stderr", err), ("cli output", exported.output)]
    haystack += [(f"log record {r.name}", _record_text(r)) for r in caplog.records]
    records, runs, events = dagster_records(home)
    haystack += records
    haystack += [(f"dagster home file {n}", t) for n, t in _files(home, ("**/*",))]
    haystack += [
        (f"lake file {n}", t) for n, t in _files(lake, ("meta/**/*", "models/**/*", "deidentified/**/*"))
    ]
    haystack += [(f"exports file {n}", t) for n, t in _files(exports, ("**/*",))]
    # the pipeline run, the de-identified export's run and the outreach run that failed
    assert len(runs) >= 3 and events > 100 and any("deidentified" in n for n, _ in haystack)
    assert any(n == f"dagster event {PIPELINE_JOB} STEP_FAILURE" for n, _ in haystack)  # the failure was kept
    leaks = [
        f"{name}: {kind}"
        for name, text in haystack
        for kind, secret in (("sink password", password), ("salt", salt), ("second password", other_password))
        if secret in text
    ]
    assert not leaks, "secrets outside the environment:\n" + "\n".join(leaks[:20])
