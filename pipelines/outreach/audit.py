"""The outreach audit log `<exports>/audit.log`: one JSON line per campaign run, appended, never rewritten.

Entries say who ran which campaign when, with counts, the run id and the manifest's sha256 - no person
ids, names or contacts. Each entry carries the sha256 of the line before it, so a deleted or edited entry
breaks the chain (`verify_audit_log`).
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import os
from datetime import UTC, datetime
from typing import Any

import orjson
from upath import UPath

from pipelines.lake import is_local
from pipelines.outreach.exports import FILE_MODE, ensure_private_dir

AUDIT_LOG = "audit.log"
GENESIS = "0" * 64
_ALLOWED_KEYS = {
    "at",
    "by",
    "campaign",
    "run_id",
    "as_of",
    "outcome",
    "counts",
    "suppressed_by_reason",
    "manifest_sha256",
    "database",
    "previous",
}


class AuditError(RuntimeError):
    """The audit log cannot be appended to or its chain is broken."""


def run_by(dagster_run_id: str | None = None) -> str:
    """Who runs: the operating-system user, with the Dagster run id when there is one."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return f"{user} (dagster run {dagster_run_id})" if dagster_run_id else user


def append_audit_entry(exports: UPath, entry: dict[str, Any]) -> dict[str, Any]:
    """Append `entry` (keys from a fixed set, so nothing else slips in) chained to the last line."""
    unknown = set(entry) - _ALLOWED_KEYS
    if unknown:
        raise AuditError(f"audit entries take no {sorted(unknown)}")
    path = exports / AUDIT_LOG
    ensure_private_dir(exports)
    if not is_local(path):
        # object stores have no append: rewrite the object with the new line (a single PUT)
        old = path.read_bytes() if path.exists() else b""
        full = {**entry, "previous": _last_hash(old)}
        path.write_bytes(old + orjson.dumps(full) + b"\n")
        return full
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16))) if size else b""
        full = {**entry, "previous": _last_hash(tail)}
        os.write(fd, orjson.dumps(full) + b"\n")
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    os.chmod(str(path), FILE_MODE)
    return full


def _last_hash(data: bytes) -> str:
    lines = data.rstrip(b"\n").split(b"\n") if data.strip() else []
    return hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS


def read_audit_log(exports: UPath) -> list[dict[str, Any]]:
    """Every entry, oldest first (empty when no run was audited yet)."""
    path = exports / AUDIT_LOG
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def verify_audit_log(exports: UPath) -> list[str]:
    """Where the chain is broken (empty when every entry follows the one before it)."""
    path = exports / AUDIT_LOG
    if not path.exists():
        return []
    problems, previous = [], GENESIS
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            problems.append(f"line {number}: not JSON")
            previous = hashlib.sha256(line).hexdigest()
            continue
        if entry.get("previous") != previous:
            problems.append(f"line {number}: does not follow the line before it")
        previous = hashlib.sha256(line).hexdigest()
    return problems


def now_utc() -> datetime:
    """The audit clock (UTC, seconds)."""
    return datetime.now(UTC).replace(microsecond=0)
