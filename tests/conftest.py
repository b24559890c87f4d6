"""Shared fixtures: temporary landing/lake folders, helpers to write landing files, the PostgreSQL test
server (`PATIENT_INSIGHTS_TEST_POSTGRES_DSN`, else started by scripts/postgres.sh; a schema per test)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from upath import UPath

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
POSTGRES_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


@pytest.fixture(autouse=True)
def _keep_the_main_module() -> Iterator[None]:
    """Streamlit's AppTest runs a page as `__main__` and leaves it there; a process pool started later
    (spawn) would then re-run the dashboard in every worker. Every test gets the interpreter's own back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture
def landing(tmp_path: Path) -> UPath:
    """An empty landing folder."""
    folder = tmp_path / "landing"
    folder.mkdir()
    return UPath(folder)


@pytest.fixture
def lake(tmp_path: Path) -> UPath:
    """An empty lake folder."""
    return UPath(tmp_path / "lake")


def write_ndjson(path: UPath | Path, records: list[object]) -> None:
    """Write records as NDJSON (objects serialized, bytes written as they are)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    Path(path).write_bytes(b"\n".join(lines) + b"\n")


def patient(pid: str, family: str = "Testperson", **extra: object) -> dict[str, object]:
    """A small valid Patient resource."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": "1", "lastUpdated": "2026-01-02T03:04:05Z"},
        "name": [{"family": family, "given": ["Ann"]}],
        "birthDate": "1970-01-01",
        **extra,
    }


def observation(oid: str, pid: str, **extra: object) -> dict[str, object]:
    """A small valid Observation for a patient."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 7.1, "unit": "%"},
        **extra,
    }


def _start_server() -> tuple[str | None, str]:
    """(DSN, "") from scripts/postgres.sh, or (None, why it failed)."""
    try:
        proc = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{POSTGRES_SCRIPT.name} could not run: {type(exc).__name__}"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return lines[-1].strip(), ""
    errors = proc.stderr.strip().splitlines()
    return None, errors[
        -1
    ] if errors else f"{POSTGRES_SCRIPT.name} exited with {proc.returncode} and printed no DSN"


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """The test server's DSN: from the environment, else from starting one with scripts/postgres.sh."""
    dsn = os.environ.get("PATIENT_INSIGHTS_TEST_POSTGRES_DSN", "").strip()
    if dsn:
        return dsn
    dsn, reason = _start_server()
    if dsn:
        return dsn
    message = f"no PostgreSQL server for the outreach sink tests: {reason}"
    if os.environ.get("PATIENT_INSIGHTS_REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def dsn(server_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped after the test."""
    schema = f"test_outreach_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield make_conninfo(server_dsn, options=f"-c search_path={schema}")
    finally:
        with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def dashboard_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(lake, exports): the whole pipeline on a few hundred generated people, shared by the dashboard's
    AppTest and browser tests (dashboards/testing.py)."""
    from dashboards.testing import demo_lake

    return demo_lake(tmp_path_factory.mktemp("dashboard_lake"))
