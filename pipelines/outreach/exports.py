"""Immutable campaign exports under `<exports>/<campaign>/<run_id>/`, the files outreach systems consume.

A run folder holds `list.csv` and `list.parquet` (the list), `group.json` (a FHIR R4 Group of the members),
`suppressed.csv` (who is not contacted, and why), for a campaign with a randomized hold-out `holdout.csv`
(who would have been listed but is held out to measure the effect: not for the outreach system to contact,
and typed `holdout` in the manifest, which also says the share and how it was drawn), the delta against the
campaign's previous run (`added.csv`, `removed.csv`, `changed.csv`) and, written last, `manifest.json` in
the shape of a Bulk Data manifest: every file with its row count and sha256. A folder without a manifest is
not a run.

Run ids are the as-of day (`2026-06-30`); a re-run the same day on changed data gets a revision
(`2026-06-30.2`), a re-run on unchanged data writes nothing and returns the existing run, so a run folder
never changes once written. Locally the run is assembled in a hidden staging folder and renamed into place
(a killed run leaves nothing visible); folders are 0700 and files 0600: lists are PHI.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq
from upath import UPath

from pipelines.csv_cells import csv_bytes
from pipelines.lake import is_local
from pipelines.outreach.campaigns import Campaign
from pipelines.outreach.holdout import HOLDOUT_SCHEMA
from pipelines.outreach.selection import HISTORY_SCHEMA, LIST_SCHEMA, SUPPRESSION_SCHEMA

MANIFEST = "manifest.json"
LIST_CSV, LIST_PARQUET, GROUP, SUPPRESSED = "list.csv", "list.parquet", "group.json", "suppressed.csv"
HOLDOUT = "holdout.csv"
ADDED, REMOVED, CHANGED = "added.csv", "removed.csv", "changed.csv"
CONTENT_FILES = (LIST_CSV, LIST_PARQUET, GROUP, SUPPRESSED, HOLDOUT)
"""The files that make a run's content; equal hashes mean an unchanged list."""
DELTA_FILES = (ADDED, REMOVED, CHANGED)
_RUN_ID = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?$")
_CHANGE_COLUMNS = ("channel", "contact", "recipient", "language", "template")
"""A listed person whose row differs in one of these since the previous run is in `changed.csv`."""
DIR_MODE, FILE_MODE = 0o700, 0o600
MANIFEST_VERSION = 3
"""2: randomized hold-outs (`holdout`, `holdout.csv`); 3: formula-leading text in the CSV files is prefixed
with `'` (pipelines/csv_cells.py); data_contracts/schemas/README.md says what changed."""


class ExportError(RuntimeError):
    """A campaign run that cannot be exported (the message names campaign and run, never a person)."""


@dataclass(frozen=True)
class RunFolder:
    """One existing run of a campaign."""

    campaign_id: str
    run_id: str
    folder: UPath

    @property
    def as_of(self) -> date:
        """The day the run was made for."""
        return date.fromisoformat(_RUN_ID.match(self.run_id).group(1))  # type: ignore[union-attr]

    @property
    def revision(self) -> int:
        """1 for the day's first run, 2, 3 ... for re-runs on changed data."""
        return int(_RUN_ID.match(self.run_id).group(2) or 1)  # type: ignore[union-attr]

    def manifest(self) -> dict[str, Any]:
        """The run's manifest."""
        return orjson.loads((self.folder / MANIFEST).read_bytes())

    def read_list(self) -> pl.DataFrame:
        """The run's list as written (LIST_SCHEMA)."""
        return pl.read_parquet((self.folder / LIST_PARQUET).read_bytes())

    def read_holdout(self) -> pl.DataFrame:
        """The run's hold-out (HOLDOUT_SCHEMA; empty for a campaign without one, or an older run)."""
        path = self.folder / HOLDOUT
        if not path.exists():
            return pl.DataFrame(schema=HOLDOUT_SCHEMA)
        flat = {**HOLDOUT_SCHEMA, "gap_ids": pl.String()}
        frame = pl.read_csv(path.read_bytes(), schema=flat)
        return frame.with_columns(
            pl.col("gap_ids").fill_null("").str.split(";").list.eval(pl.element().filter(pl.element() != ""))
        )


@dataclass(frozen=True)
class ExportResult:
    """What one campaign run produced."""

    run: RunFolder
    written: bool  # False: the data was unchanged, the existing run stands
    manifest: dict[str, Any]
    counts: dict[str, int]  # rows per file


def campaign_runs(exports: UPath, campaign_id: str) -> list[RunFolder]:
    """Every complete run (a folder with a manifest) of a campaign, oldest first."""
    folder = exports / campaign_id
    if not folder.exists():
        return []
    runs = [
        RunFolder(campaign_id, child.name, child)
        for child in folder.iterdir()
        if _RUN_ID.match(child.name) and (child / MANIFEST).exists()
    ]
    return sorted(runs, key=lambda r: (r.as_of, r.revision))


def latest_runs_per_day(runs: list[RunFolder]) -> list[RunFolder]:
    """The last revision of each day: earlier revisions were replaced the same day."""
    last: dict[date, RunFolder] = {}
    for run in runs:
        last[run.as_of] = run
    return [last[day] for day in sorted(last)]


def contact_history(
    exports: UPath, campaigns: list[Campaign], campaign: Campaign, as_of: date
) -> pl.DataFrame:
    """Earlier contacts as seen by `campaign` on `as_of` (HISTORY_SCHEMA), read from the exports.

    Each day counts once per campaign (its last revision). The campaign's own runs count before `as_of`
    (a run of `as_of` itself is being redone); another campaign's run of `as_of` counts only when that
    campaign goes first (lower priority, then id): re-running campaigns in any order gives the same lists.
    """
    order = {c.id: (c.priority, c.id) for c in campaigns}
    mine = order.get(campaign.id, (campaign.priority, campaign.id))
    # older runs cannot reach any cap: the longest campaign window, or the 7-day weekly one
    horizon = as_of - timedelta(days=max([7, *(c.campaign_days for c in [*campaigns, campaign])]))
    frames = []
    if exports.exists():
        for folder in sorted(exports.iterdir(), key=lambda p: p.name):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            for run in latest_runs_per_day(campaign_runs(exports, folder.name)):
                same_day = run.as_of == as_of
                goes_first = order.get(run.campaign_id, (-1, "")) < mine
                if (
                    run.as_of <= horizon
                    or run.as_of > as_of
                    or (same_day and (run.campaign_id == campaign.id or not goes_first))
                ):
                    continue
                frames.append(
                    pl.read_parquet((run.folder / LIST_PARQUET).read_bytes(), columns=["person_id"]).select(
                        pl.lit(run.campaign_id).alias("campaign_id"),
                        "person_id",
                        pl.lit(run.as_of).alias("contacted_on"),
                    )
                )
    if not frames:
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    return pl.concat(frames).cast(HISTORY_SCHEMA)  # type: ignore[arg-type]


def export_run(
    exports: UPath,
    campaign: Campaign,
    listed: pl.DataFrame,
    suppressed: pl.DataFrame,
    as_of: date,
    definitions_version: str,
    transaction_time: datetime,
    holdout: pl.DataFrame | None = None,
) -> ExportResult:
    """Write one campaign run (or find it already written with the same content) and return it;
    `holdout` (HOLDOUT_SCHEMA) is written for a campaign with a hold-out."""
    with _campaign_lock(exports, campaign.id):
        runs = campaign_runs(exports, campaign.id)
        if runs and runs[-1].as_of > as_of:
            raise ExportError(
                f"campaign {campaign.id} already has a run for {runs[-1].as_of}; runs for {as_of} would "
                "reorder contacts that were already handed over"
            )
        content = _content_files(campaign, listed, suppressed, as_of, holdout)
        hashes = {name: _sha256(data) for name, (data, _) in content.items()}
        previous = runs[-1] if runs else None
        if previous is not None and previous.as_of == as_of:
            stored = {f["url"]: f["sha256"] for f in previous.manifest()["output"]}
            if all(stored.get(name) == digest for name, digest in hashes.items()):
                manifest = previous.manifest()
                return ExportResult(
                    previous, False, manifest, {f["url"]: f["count"] for f in manifest["output"]}
                )
        same_day = [r for r in runs if r.as_of == as_of]
        run_id = as_of.isoformat() + (f".{same_day[-1].revision + 1}" if same_day else "")
        delta = _delta_files(listed, suppressed, previous.read_list() if previous else None)
        files = {**content, **delta}
        manifest = _manifest(campaign, run_id, as_of, previous, definitions_version, transaction_time, files)
        run = RunFolder(campaign.id, run_id, exports / campaign.id / run_id)
        _write_run_folder(run.folder, {n: d for n, (d, _) in files.items()}, manifest)
        return ExportResult(run, True, manifest, {name: count for name, (_, count) in files.items()})


def _content_files(
    campaign: Campaign,
    listed: pl.DataFrame,
    suppressed: pl.DataFrame,
    as_of: date,
    holdout: pl.DataFrame | None,
) -> dict[str, tuple[bytes, int]]:
    listed = listed.select([pl.col(n).cast(t) for n, t in LIST_SCHEMA.items()])
    suppressed = suppressed.select([pl.col(n).cast(t) for n, t in SUPPRESSION_SCHEMA.items()])
    files = {
        LIST_CSV: (_csv(listed), listed.height),
        LIST_PARQUET: (_parquet(listed), listed.height),
        GROUP: (group_json(campaign, listed, as_of), listed.height),
        SUPPRESSED: (_csv(suppressed), suppressed.height),
    }
    if campaign.holdout is not None:
        held = (holdout if holdout is not None else pl.DataFrame(schema=HOLDOUT_SCHEMA)).select(
            [pl.col(n).cast(t) for n, t in HOLDOUT_SCHEMA.items()]
        )
        files[HOLDOUT] = (_csv(held.sort("person_id")), held.height)
    return files


def _delta_files(
    listed: pl.DataFrame, suppressed: pl.DataFrame, previous: pl.DataFrame | None
) -> dict[str, tuple[bytes, int]]:
    """added: listed now, not before; removed: listed before, not now (with why: a suppression reason or
    `left_segments`); changed: listed both times with another channel, contact, recipient, language or
    template."""
    if previous is None:
        previous = pl.DataFrame(schema=LIST_SCHEMA)
    added = listed.join(previous.select("person_id"), on="person_id", how="anti")
    removed = (
        previous.join(listed.select("person_id"), on="person_id", how="anti")
        .join(suppressed.select("person_id", "reason"), on="person_id", how="left")
        .select(
            "campaign_id",
            "person_id",
            "source_identifiers",
            pl.col("rank").alias("previous_rank"),
            pl.col("reason").fill_null("left_segments").alias("why"),
        )
        .sort("person_id")
    )
    both = listed.join(previous.select("person_id", *_CHANGE_COLUMNS), on="person_id", suffix="_before")
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_before")) for c in _CHANGE_COLUMNS])
    changed = both.filter(differs).select(
        *LIST_SCHEMA,
        pl.concat_str(
            [pl.when(pl.col(c).ne_missing(pl.col(f"{c}_before"))).then(pl.lit(c)) for c in _CHANGE_COLUMNS],
            separator=";",
            ignore_nulls=True,
        ).alias("changed_fields"),
    )
    return {
        ADDED: (_csv(added), added.height),
        REMOVED: (_csv(removed), removed.height),
        CHANGED: (_csv(changed), changed.height),
    }


def group_json(campaign: Campaign, listed: pl.DataFrame, as_of: date) -> bytes:
    """A FHIR R4 Group (actual, person) of the listed persons, identified by campaign and day."""
    group = {
        "resourceType": "Group",
        "id": f"{campaign.id}-{as_of.isoformat()}".replace("_", "-")[:64],
        "identifier": [
            {"system": "urn:patient-insights:campaign-run", "value": f"{campaign.id}/{as_of.isoformat()}"}
        ],
        "active": True,
        "type": "person",
        "actual": True,
        "name": f"{campaign.title} ({as_of.isoformat()})",
        "quantity": listed.height,
        "characteristic": [
            {
                "code": {"text": "segment"},
                "valueCodeableConcept": {"text": segment},
                "exclude": False,
            }
            for segment in campaign.segments
        ],
        "member": [
            {"entity": {"reference": f"Patient/{person_id}", "display": f"rank {rank}"}, "inactive": False}
            for person_id, rank in listed.select("person_id", "rank").iter_rows()
        ],
    }
    return orjson.dumps(group, option=orjson.OPT_INDENT_2) + b"\n"


def _manifest(
    campaign: Campaign,
    run_id: str,
    as_of: date,
    previous: RunFolder | None,
    definitions_version: str,
    transaction_time: datetime,
    files: dict[str, tuple[bytes, int]],
) -> dict[str, Any]:
    kinds = {
        LIST_CSV: ("list", "text/csv"),
        LIST_PARQUET: ("list", "application/vnd.apache.parquet"),
        GROUP: ("Group", "application/fhir+json"),
        SUPPRESSED: ("suppressed", "text/csv"),
        HOLDOUT: ("holdout", "text/csv"),
        ADDED: ("delta-added", "text/csv"),
        REMOVED: ("delta-removed", "text/csv"),
        CHANGED: ("delta-changed", "text/csv"),
    }
    return {
        "manifestVersion": MANIFEST_VERSION,
        "transactionTime": transaction_time.isoformat(),
        "campaign": {"id": campaign.id, "title": campaign.title, "template": campaign.template},
        "runId": run_id,
        "asOf": as_of.isoformat(),
        "previousRunId": previous.run_id if previous else None,
        "definitionsVersion": definitions_version,
        "requiresAccessToken": False,
        **(
            {
                "holdout": {
                    "share": campaign.holdout.share,
                    "followUpDays": campaign.holdout.follow_up_days,
                    "count": files[HOLDOUT][1],
                    "method": "HMAC-SHA256(campaign hold-out key, person_id) read as [0, 1) < share",
                    "note": "held-out persons must not be contacted by this campaign",
                }
            }
            if campaign.holdout is not None and HOLDOUT in files
            else {}
        ),
        "output": [
            {
                "type": kinds[name][0],
                "url": name,
                "format": kinds[name][1],
                "count": count,
                "bytes": len(data),
                "sha256": _sha256(data),
            }
            for name, (data, count) in files.items()
        ],
        "error": [],
    }


def _csv(frame: pl.DataFrame) -> bytes:
    """CSV with list columns joined by `;`, dates as YYYY-MM-DD and formula-leading text neutralized
    (`pipelines/csv_cells.py`; stable bytes for equal frames). Parquet and the Group keep the text as is."""
    return csv_bytes(frame)


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer, compression="zstd")
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_run_folder(folder: UPath, files: dict[str, bytes], manifest: dict[str, Any]) -> None:
    """Every file, then the manifest; locally in a staging folder renamed into place at the end."""
    manifest_bytes = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    if not is_local(folder):
        for name, data in files.items():
            (folder / name).write_bytes(data)
        (folder / MANIFEST).write_bytes(manifest_bytes)  # last: the run exists from here on
        return
    parent = str(folder.parent)
    staging = os.path.join(parent, f".staging-{folder.name}-{uuid.uuid4().hex}")
    os.mkdir(staging, DIR_MODE)
    try:
        for name, data in [*files.items(), (MANIFEST, manifest_bytes)]:
            _write_private(os.path.join(staging, name), data)
        _fsync_dir(staging)
        os.rename(staging, str(folder))
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, FILE_MODE)  # whatever the umask


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(folder: UPath) -> None:
    """Create `folder` (and parents) readable by the owner only, when local."""
    if not is_local(folder):
        return
    os.makedirs(str(folder), mode=DIR_MODE, exist_ok=True)
    os.chmod(str(folder), DIR_MODE)


@contextlib.contextmanager
def _campaign_lock(exports: UPath, campaign_id: str) -> Iterator[None]:
    """One writer per campaign at a time; stale staging folders of killed runs are removed under it."""
    folder = exports / campaign_id
    ensure_private_dir(exports)
    ensure_private_dir(folder)
    if not is_local(folder):
        yield
        return
    fd = os.open(os.path.join(str(folder), ".lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for child in os.listdir(str(folder)):
            if child.startswith(".staging-"):
                shutil.rmtree(os.path.join(str(folder), child), ignore_errors=True)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
