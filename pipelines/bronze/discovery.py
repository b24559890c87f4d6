"""Which landing files to read, in which format, in which order.

Layout: `<landing>/<source>/…`; a source is a folder. Its format comes from an optional
`<source>/source.yaml` (`format: fhir | openmhealth | ihealth | withings | fitbit | device_csv |
device_enrolment | conversations | outreach_events | apple_health_export`), else from the files themselves.
Outreach outcome files (`*.csv`, `*.ndjson`, `*.jsonl`) and Apple Health exports (`*.xml`, `*.zip`, one
folder per person; the rest of an unpacked export is skipped) are read as such only in a source declaring
them; nothing sniffs for them. A `device_csv` source also names the column mapping its files follow
(`mapping: <name>` → data_contracts/devices/csv_mappings/<name>.yaml).
A FHIR source holding a Bulk Data manifest (`manifest.json`, or any top-level `*.json` with
`transactionTime` and `output`) is read through the manifest: only listed outputs, with `deleted[]` and
`error[]` files, never a file outside the source folder and never a download. A `.gz` file is read as the
file it holds (`Patient.000.ndjson.gz` is NDJSON; see `compression`).

Which files may be read, whatever the format or the way they were found (folder walk, manifest url,
source.yaml, the manifest itself): only regular files that are inside the landing folder once links are
resolved (`check_file`). A link to a file elsewhere in the landing folder is read as the file it names:
it reaches nothing that was not delivered, delivery tools make such links (a `latest` name), and the
content hash makes the same content reached twice one delivery. A linked folder is never walked (it can
loop, and would show one delivery under two paths); a link that leads out of the landing folder or
nowhere, and a FIFO, socket or device file, are never opened: each is `refused` with a reason. The
check is repeated when the file is opened (`read_checked`): the opened handle must be the regular file
that was checked, so a file swapped for a link in between is refused, not read.

Files that are not data are `skipped` with a reason: documentation recognised by its whole name
(README, LICENSE/LICENCE, NOTICE, COPYING, with or without a text suffix: `notices_2026-07.csv` is data),
`.txt`, `.md`, `.yaml`, `.yml` files, hidden files and folders (names starting with `.` or `_`), and files
beside a Bulk manifest that it does not list. A source whose source.yaml cannot be used is refused
whole: none of its files is read, the other sources are.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import orjson
import yaml
from upath import UPath

from pipelines.bronze.compression import compression_of, content_name, read_head
from pipelines.bronze.device_reader import load_csv_mapping
from pipelines.bronze.lines import UTF8_BOM

SOURCE_CONFIG = "source.yaml"
SOURCE_FORMATS = (
    "fhir",
    "openmhealth",
    "ihealth",
    "withings",
    "fitbit",
    "device_csv",
    "device_enrolment",
    "conversations",
    "outreach_events",
    "apple_health_export",
)
SNIFF_BYTES = 65536
MAX_URL_CHARS = 4096  # longer manifest urls are refused (and shown shortened): no file name is this long
IGNORED_SUFFIXES = (".md", ".txt", ".yaml", ".yml")
DOCUMENTATION_NAMES = frozenset({"license", "licence", "readme", "notice", "copying"})
"""Documentation shipped with data, recognised by the first word of its name (`README`, `LICENSE.apache2`,
`COPYING-LESSER`, `NOTICE.md`) unless the name ends like a file the platform reads: a prefix alone would
also match data (`notices_2026-07.csv` is an outreach file, so is `notice.csv`)."""
DATA_SUFFIXES = (".ndjson", ".jsonl", ".json", ".csv", ".gz", ".zip", ".xml")
SKIPPED, REFUSED = "skipped", "refused"

FHIR_NDJSON = "fhir_ndjson"
FHIR_DOCUMENT = "fhir_document"
FHIR_DELETED = "fhir_deleted_ndjson"
FHIR_ERRORS = "fhir_error_ndjson"
OMH_NDJSON = "openmhealth_ndjson"
OMH_DOCUMENT = "openmhealth_json"
IHEALTH = "ihealth_json"
WITHINGS = "withings_json"
FITBIT = "fitbit_json"
DEVICE_CSV = "device_csv"
APPLE_HEALTH = "apple_health_export"
ENROLMENT_CSV = "device_enrolment_csv"
CONVERSATIONS = "conversations_ndjson"
OUTREACH_CSV = "outreach_events_csv"
OUTREACH_NDJSON = "outreach_events_ndjson"
BULK_MANIFEST = "bulk_manifest"
UNRECOGNIZED = "unrecognized"

_PATIENT_FIRST = 0
_OTHER = 1
_DELETED_LAST = 2


@dataclass(frozen=True)
class LandingFile:
    """One file to ingest and how to read it."""

    source: str
    path: UPath
    relative: str  # POSIX path relative to the landing root
    format: str
    folder_user: str | None = None  # device payloads: the vendor-user folder they were delivered in
    mapping: str | None = None  # device CSV: the column mapping named by source.yaml
    manifest: str | None = None  # the Bulk manifest that listed the file
    transaction_time: str | None = None
    order: int = _OTHER
    compression: str | None = None  # "gzip": the content is decompressed (within limits) before reading
    checked: Checked | None = None  # local files: what `read_checked` must find when it opens the file


@dataclass(frozen=True)
class Checked:
    """A local landing file as checked: the real path to open and the identity (device, inode) the
    opened handle must have."""

    real: str
    device: int
    inode: int


class FileRefused(OSError):
    """A landing file that may not be read (see `check_file`); the message names no record content."""


@dataclass(frozen=True)
class NotRead:
    """A landing path discovery did not plan to read: `skipped` (not data) or `refused` (not allowed)."""

    source: str
    relative: str  # POSIX path relative to the landing root
    status: str  # skipped | refused
    reason: str


@dataclass
class ManifestIssue:
    """A manifest entry that could not be honoured (missing file or refused url)."""

    source: str
    manifest: str
    url: str
    status: str  # missing | refused
    reason: str


@dataclass
class LandingPlan:
    """Everything discovery found."""

    files: list[LandingFile] = field(default_factory=list)
    manifest_issues: list[ManifestIssue] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # files beside a manifest that it does not list
    not_read: list[NotRead] = field(default_factory=list)  # skipped and refused paths, with reasons
    refused_sources: dict[str, str] = field(default_factory=dict)  # source → why none of it was read


def discover(landing: UPath) -> LandingPlan:
    """Walk the landing folder and plan what to read; deterministic order (sources, then priority, path).

    Every top-level folder is a source; any other top-level entry is listed as skipped or refused."""
    plan = LandingPlan()
    if not landing.exists():
        raise FileNotFoundError("the landing folder does not exist")
    root = _root(landing)
    for entry in sorted(landing.iterdir(), key=_name):
        name = entry.name
        if _hidden(name):
            plan.not_read.append(NotRead(name, name, SKIPPED, HIDDEN))
            continue
        kind, _, refusal = examine(root, landing, entry)
        if kind == FOLDER:
            _discover_source(landing, root, entry, plan)
        elif refusal is not None:
            plan.not_read.append(NotRead(name, name, REFUSED, refusal))
            plan.refused_sources[name] = refusal
        else:
            plan.not_read.append(NotRead(name, name, SKIPPED, "a file outside any source folder"))
    plan.files.sort(key=lambda f: (f.source, f.order, f.relative))
    plan.not_read.sort(key=lambda n: (n.source, n.relative))
    return plan


HIDDEN = "a hidden file or folder (its name starts with . or _)"
FOLDER, FILE, REFUSED_KIND = "folder", "file", "refused"
LINK_OUT = "a link that leads out of the landing folder"
LINKED_FOLDER = "a linked folder (folders are never followed through links)"


def _root(landing: UPath) -> str | None:
    """The landing folder's real path (local), or None for object stores (they have no links)."""
    if landing.protocol in ("", "file", "local"):
        return os.path.realpath(_local(landing))
    return None


def _inside(real: str, root: str) -> bool:
    return os.path.commonpath([real, root]) == root


def examine(root: str | None, landing: UPath, path: UPath) -> tuple[str, Checked | None, str | None]:
    """THE rule for what may be read: (`folder` | `file` | `refused`, the checked file, why refused).

    A file may be read only when it is a regular file inside the landing folder once links are resolved;
    a folder may be walked only when neither it nor a folder above it (up to the landing root) is a link.
    Nothing is opened here: links and file types are read from the file system's metadata (lstat).
    """
    if root is None:  # object stores: no links, no special files
        if path.is_dir():
            return FOLDER, None, None
        if path.is_file():
            return FILE, None, None
        return REFUSED_KIND, None, "not a regular file"
    local = _local(path)
    try:
        lexical_parent = os.path.join(root, *path.parent.relative_to(landing).parts)
        if os.path.realpath(os.path.dirname(local)) != lexical_parent:
            return REFUSED_KIND, None, LINKED_FOLDER
        info = os.lstat(local)
    except (OSError, ValueError):
        return REFUSED_KIND, None, "the path cannot be examined"
    if stat.S_ISLNK(info.st_mode):
        real = os.path.realpath(local)
        if not _inside(real, root):
            return REFUSED_KIND, None, LINK_OUT
        try:
            info = os.stat(real)
        except OSError:
            return REFUSED_KIND, None, "a link that leads nowhere (its target does not exist)"
        if stat.S_ISDIR(info.st_mode):
            return REFUSED_KIND, None, LINKED_FOLDER
    else:
        real = os.path.join(lexical_parent, path.name)
    if stat.S_ISDIR(info.st_mode):
        return FOLDER, None, None
    if not stat.S_ISREG(info.st_mode):
        return REFUSED_KIND, None, "not a regular file (a FIFO, socket or device file is never opened)"
    return FILE, Checked(real, info.st_dev, info.st_ino), None


_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
)


@contextmanager
def open_checked(path: UPath, checked: Checked | None) -> Iterator[BinaryIO]:
    """Open a landing file that `examine` admitted, guarding the gap between the check and the read.

    Local files are opened by their checked real path without following a link (O_NOFOLLOW) and without
    blocking on a FIFO (O_NONBLOCK); the open handle must be the very regular file that was checked
    (same device and inode), else `FileRefused`. Object-store paths are opened as they are."""
    if checked is None:
        with path.open("rb") as handle:
            yield handle
        return
    try:
        fd = os.open(checked.real, _OPEN_FLAGS)
    except OSError as err:
        reason = {
            errno.ELOOP: "the file became a link after it was checked",
            errno.ENOENT: "the file disappeared after it was checked",
        }.get(err.errno or 0, "the file could not be opened")
        raise FileRefused(reason) from None
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            checked.device,
            checked.inode,
        ):
            raise FileRefused("the file was replaced after it was checked")
        yield handle


def read_checked(path: UPath, checked: Checked | None) -> bytes:
    """The whole content of a landing file, opened through `open_checked`."""
    with open_checked(path, checked) as handle:
        return handle.read()


def not_data(name: str) -> str | None:
    """Why a file found in a source folder is not read as data (None: it is read)."""
    lower = name.lower()
    if _hidden(name):
        return HIDDEN
    first_word = re.split(r"[.\-_ ]", lower, maxsplit=1)[0]
    if first_word in DOCUMENTATION_NAMES and not lower.endswith(DATA_SUFFIXES):
        return "documentation (README, LICENSE, NOTICE, COPYING)"
    if lower.endswith(IGNORED_SUFFIXES):
        return "not a data file (.txt, .md, .yaml and .yml files are never read)"
    return None


def _discover_source(landing: UPath, root: str | None, source_dir: UPath, plan: LandingPlan) -> None:
    source = source_dir.name
    try:
        declared, mapping = _declared_format(root, landing, source_dir)
        found = _walk(root, landing, source, source_dir, plan)
    except (ValueError, OSError) as err:  # this source only: the others are read
        reason = str(err) if isinstance(err, ValueError) else "the source folder could not be read"
        plan.refused_sources[source] = reason
        plan.not_read[:] = [n for n in plan.not_read if n.source != source]
        plan.not_read.append(NotRead(source, f"{source}/{SOURCE_CONFIG}", REFUSED, reason))
        return
    files: list[tuple[UPath, Checked | None]] = []
    for p, checked in found:
        if p.parent == source_dir and p.name == SOURCE_CONFIG:
            continue  # configuration, read above
        why = not_data(p.name) or (_beside_an_export(p.name) if declared == "apple_health_export" else None)
        if why is not None:
            plan.not_read.append(NotRead(source, _relative(landing, p), SKIPPED, why))
        else:
            files.append((p, checked))
    manifests = [
        (p, c) for p, c in files if p.parent == source_dir and p.suffix == ".json" and _is_manifest(p, c)
    ]
    if manifests and declared in (None, "fhir"):
        listed = _plan_manifests(landing, root, source, source_dir, manifests, plan)
        manifest_paths = {p for p, _ in manifests}
        for p, _ in files:
            rel = _relative(landing, p)
            if rel not in listed and p not in manifest_paths:
                plan.unlisted.append(rel)
                plan.not_read.append(NotRead(source, rel, SKIPPED, UNLISTED))
        return
    for p, checked in files:
        head = _Head(p, checked)
        try:
            fmt = _file_format(p, declared, head)
            patients = fmt.startswith("fhir") and (p.name.startswith("Patient") or head.names_a_patient())
        except OSError as err:
            plan.not_read.append(NotRead(source, _relative(landing, p), REFUSED, _open_failure(err)))
            continue
        plan.files.append(
            LandingFile(
                source=source,
                path=p,
                relative=_relative(landing, p),
                format=fmt,
                folder_user=_folder_user(source_dir, p),
                mapping=mapping if fmt == DEVICE_CSV else None,
                order=_PATIENT_FIRST if patients else _OTHER,
                compression=compression_of(p.name),
                checked=checked,
            )
        )


UNLISTED = "beside a Bulk manifest that does not list it"
APPLE_CDA = "export_cda.xml"


def _beside_an_export(name: str) -> str | None:
    """Why a file of an Apple Health export source is not read: the Health app's zip unpacked holds, beside
    the export XML (named in the phone's language: export.xml, exportar.xml, ...), the same data as a
    clinical document (export_cda.xml), ECG recordings, workout routes and clinical records."""
    content = content_name(name)
    if content == APPLE_CDA:
        return "the clinical-document copy of an Apple Health export (its records are read from export.xml)"
    if not content.lower().endswith((".xml", ".zip")):
        return "not an Apple Health export (only the export XML, or a .zip holding it, is read)"
    return None


class _Head:
    """The first bytes of a file, read once when first asked for (format sniffing, patient ordering)."""

    def __init__(self, path: UPath, checked: Checked | None) -> None:
        self._path, self._checked = path, checked
        self._bytes: bytes | None = None

    def __call__(self) -> bytes:
        if self._bytes is None:
            self._bytes = _head(self._path, self._checked)
        return self._bytes

    def names_a_patient(self) -> bool:
        """Whether a Patient resource starts in the file's first bytes: such files are read first, so the
        reference check of the others sees their Patients whatever the files are called."""
        try:
            return bool(re.search(rb'"resourceType"\s*:\s*"Patient"', self()))
        except OSError:  # the reader will say why it cannot be read
            return False


def _plan_manifests(
    landing: UPath,
    root: str | None,
    source: str,
    source_dir: UPath,
    manifests: list[tuple[UPath, Checked | None]],
    plan: LandingPlan,
) -> set[str]:
    listed: set[str] = set()
    for manifest, manifest_checked in sorted(manifests, key=lambda m: m[0].name):
        manifest_rel = _relative(landing, manifest)
        try:
            body = orjson.loads(read_checked(manifest, manifest_checked).removeprefix(UTF8_BOM))
        except orjson.JSONDecodeError:
            body = None
        except OSError as err:
            plan.not_read.append(NotRead(source, manifest_rel, REFUSED, _open_failure(err)))
            continue
        transaction_time = (
            body.get("transactionTime")
            if isinstance(body, dict) and isinstance(body.get("transactionTime"), str)
            else None
        )
        # logged even when unusable: its ingest_log row says why nothing it lists was read
        plan.files.append(
            LandingFile(
                source,
                manifest,
                manifest_rel,
                BULK_MANIFEST,
                transaction_time=transaction_time,
                order=-1,
                checked=manifest_checked,
            )
        )
        if not isinstance(body, dict):
            issue = ManifestIssue(source, manifest_rel, "", "refused", "the manifest is not a JSON object")
            plan.manifest_issues.append(issue)
            continue
        for section, fmt in (("output", FHIR_NDJSON), ("deleted", FHIR_DELETED), ("error", FHIR_ERRORS)):
            entries = body.get(section) or []
            if not isinstance(entries, list):
                plan.manifest_issues.append(
                    ManifestIssue(source, manifest_rel, "", "refused", f"{section} is not a list")
                )
                continue
            for entry in entries:
                url = entry.get("url") if isinstance(entry, dict) else None
                if not isinstance(url, str):
                    plan.manifest_issues.append(
                        ManifestIssue(source, manifest_rel, "", "refused", f"a {section}[] entry has no url")
                    )
                    continue
                path, refusal = resolve_manifest_url(source_dir, url)
                if refusal:
                    plan.manifest_issues.append(
                        ManifestIssue(source, manifest_rel, _shown(url), "refused", refusal)
                    )
                    continue
                assert path is not None
                try:
                    exists = path.exists()
                except OSError:  # e.g. a name longer than the file system allows
                    exists = False
                if not exists:
                    plan.manifest_issues.append(
                        ManifestIssue(
                            source, manifest_rel, url, "missing", "listed but not in the landing folder"
                        )
                    )
                    continue
                kind, checked, refusal = examine(root, landing, path)
                if kind == FOLDER:
                    refusal = "the url names a folder, not a file"
                if refusal:
                    plan.manifest_issues.append(
                        ManifestIssue(source, manifest_rel, _shown(url), "refused", refusal)
                    )
                    continue
                rel = _relative(landing, path)
                if rel in listed:
                    continue
                listed.add(rel)
                kind = entry.get("type") if isinstance(entry.get("type"), str) else ""
                order = {FHIR_DELETED: _DELETED_LAST}.get(
                    fmt, _PATIENT_FIRST if kind == "Patient" else _OTHER
                )
                plan.files.append(
                    LandingFile(
                        source,
                        path,
                        rel,
                        fmt,
                        manifest=manifest_rel,
                        transaction_time=transaction_time,
                        order=order,
                        compression=compression_of(path.name),
                        checked=checked,
                    )
                )
    return listed


def resolve_manifest_url(source_dir: UPath, url: str) -> tuple[UPath | None, str | None]:
    """Map a manifest `url` to a file inside the source folder, or refuse it with a reason.

    Relative urls resolve inside the source folder; http(s) urls name a file the export client
    downloaded, so only their last path segment is used and nothing is ever fetched. Absolute paths,
    `file:` and other schemes, and paths climbing out with `..` are refused.
    """
    if len(url) > MAX_URL_CHARS:
        return None, f"the url is too long (over {MAX_URL_CHARS} characters)"
    if "\x00" in unquote(url):
        return None, "the url holds a NUL character"
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        name = PurePosixPath(unquote(parts.path)).name
        if not name or name in (".", ".."):
            return None, "the url names no file"
        return source_dir / name, None
    if parts.scheme or parts.netloc:
        return (
            None,
            f"url scheme {parts.scheme or 'network path'} is not allowed (only relative paths or http(s))",
        )
    relative = PurePosixPath(unquote(parts.path))
    if relative.is_absolute() or re.match(r"^[A-Za-z]:", str(relative)):
        return None, "absolute paths are not allowed"
    if not relative.parts:
        return None, "the url names no file"
    if ".." in relative.parts:
        return None, "the path leaves the source folder"
    return source_dir.joinpath(*relative.parts), None


def _shown(url: str) -> str:
    """A manifest url as logged: cut short when it is absurdly long."""
    return url if len(url) <= MAX_URL_CHARS else url[:200] + "…"


def _open_failure(err: OSError) -> str:
    """The reason logged for a file that could not be opened (never the error text: it may name paths
    outside the landing folder)."""
    return str(err) if isinstance(err, FileRefused) else "the file could not be opened"


def _local(path: UPath) -> str:
    return path.path if hasattr(path, "path") else os.fspath(path)


def _declared_format(root: str | None, landing: UPath, source_dir: UPath) -> tuple[str | None, str | None]:
    """The format source.yaml declares, and the CSV mapping it names (checked here: a wrong name is a
    configuration error to fix before any file is read, not a quarantine of every row). A source.yaml
    that cannot be used raises ValueError with a message naming the source, never the file's content."""
    config = source_dir / SOURCE_CONFIG
    if not (config.exists() or (root is not None and config.is_symlink())):  # a dangling link is refused
        return None, None
    where = f"{SOURCE_CONFIG} of source {source_dir.name}"
    kind, checked, refusal = examine(root, landing, config)
    if kind != FILE:
        raise ValueError(f"{where}: {refusal or 'a folder, not a file'}")
    try:
        settings = yaml.safe_load(read_checked(config, checked).decode("utf-8")) or {}
    except OSError as err:
        raise ValueError(f"{where}: {_open_failure(err)}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ValueError(f"{source_dir.name}/{SOURCE_CONFIG}:{line}: not valid YAML") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{where}: must be a mapping with format: <format>")
    declared = settings.get("format")
    if declared not in SOURCE_FORMATS:
        raise ValueError(
            f"{SOURCE_CONFIG} of source {source_dir.name}: format must be one of {SOURCE_FORMATS}"
        )
    mapping = settings.get("mapping")
    if declared != "device_csv":
        return declared, None
    if not isinstance(mapping, str):
        raise ValueError(
            f"{SOURCE_CONFIG} of source {source_dir.name}: format device_csv needs mapping: <name>"
        )
    load_csv_mapping(mapping)
    return declared, mapping


def _file_format(path: UPath, declared: str | None, head_of: _Head) -> str:
    suffix = PurePosixPath(content_name(path.name)).suffix.lower()
    by_declared = {
        ("fhir", ".ndjson"): FHIR_NDJSON,
        ("fhir", ".jsonl"): FHIR_NDJSON,
        ("fhir", ".json"): FHIR_DOCUMENT,
        ("openmhealth", ".ndjson"): OMH_NDJSON,
        ("openmhealth", ".jsonl"): OMH_NDJSON,
        ("openmhealth", ".json"): OMH_DOCUMENT,
        ("ihealth", ".json"): IHEALTH,
        ("withings", ".json"): WITHINGS,
        ("fitbit", ".json"): FITBIT,
        ("device_csv", ".csv"): DEVICE_CSV,
        ("apple_health_export", ".xml"): APPLE_HEALTH,
        ("apple_health_export", ".zip"): APPLE_HEALTH,
        ("device_enrolment", ".csv"): ENROLMENT_CSV,
        ("conversations", ".ndjson"): CONVERSATIONS,
        ("conversations", ".jsonl"): CONVERSATIONS,
        ("outreach_events", ".csv"): OUTREACH_CSV,
        ("outreach_events", ".ndjson"): OUTREACH_NDJSON,
        ("outreach_events", ".jsonl"): OUTREACH_NDJSON,
    }
    if declared is not None:
        return by_declared.get((declared, suffix), UNRECOGNIZED)
    if suffix == ".csv":
        return ENROLMENT_CSV
    if suffix not in (".ndjson", ".jsonl", ".json"):
        return UNRECOGNIZED
    head = head_of()
    if suffix == ".json":
        if re.search(rb'"resourceType"\s*:', head):
            return FHIR_DOCUMENT
        if re.search(rb'"\w+DataList"\s*:', head):
            return IHEALTH
        if re.search(rb'"header"\s*:', head) and re.search(rb'"schema_id"\s*:', head):
            return OMH_DOCUMENT
        return UNRECOGNIZED
    first_line = head.split(b"\n", 1)[0]
    if re.search(rb'"header"\s*:', first_line) and re.search(rb'"body"\s*:', first_line):
        return OMH_NDJSON
    if re.search(rb'"conversation_id"\s*:', first_line):
        return CONVERSATIONS
    return FHIR_NDJSON  # NDJSON in landing is FHIR unless it says otherwise; what is not FHIR is quarantined


def _is_manifest(path: UPath, checked: Checked | None) -> bool:
    if path.name == "manifest.json":
        return True
    try:
        head = _head(path, checked)
    except OSError:  # not a manifest that can be read; read as a document, its reader says why not
        return False
    return bool(re.search(rb'"transactionTime"\s*:', head) and re.search(rb'"output"\s*:', head))


def _head(path: UPath, checked: Checked | None) -> bytes:
    with open_checked(path, checked) as handle:
        return read_head(handle, path.name, SNIFF_BYTES)


def _walk(
    root: str | None, landing: UPath, source: str, folder: UPath, plan: LandingPlan
) -> list[tuple[UPath, Checked | None]]:
    """The files of a source folder that `examine` admits, with their checks; hidden entries are listed as
    skipped (hidden folders are not walked) and refused entries as refused."""
    found: list[tuple[UPath, Checked | None]] = []
    for p in sorted(folder.iterdir(), key=_name):
        if _hidden(p.name):
            plan.not_read.append(NotRead(source, _relative(landing, p), SKIPPED, HIDDEN))
            continue
        kind, checked, refusal = examine(root, landing, p)
        if kind == FOLDER:
            found.extend(_walk(root, landing, source, p, plan))
        elif kind == FILE:
            found.append((p, checked))
        else:
            plan.not_read.append(NotRead(source, _relative(landing, p), REFUSED, refusal or "refused"))
    return found


def _folder_user(source_dir: UPath, path: UPath) -> str | None:
    relative = path.relative_to(source_dir).parts if hasattr(path, "relative_to") else ()
    return relative[0] if len(relative) > 1 else None


def _relative(landing: UPath, path: UPath) -> str:
    return PurePosixPath(*path.relative_to(landing).parts).as_posix()


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _name(path: UPath) -> str:
    return path.name
