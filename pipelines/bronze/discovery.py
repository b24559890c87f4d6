"""Which landing files to read, in which format, in which order.

Layout: `<landing>/<source>/…`; a source is a folder. Its format comes from an optional
`<source>/source.yaml` (`format: fhir | openmhealth | ihealth | withings | fitbit | device_csv |
device_enrolment | conversations | outreach_events`), else from the files themselves. Outreach outcome
files (`*.csv`, `*.ndjson`, `*.jsonl`) are read as such only in a source declaring `outreach_events`;
nothing sniffs for them. A `device_csv` source also names the column mapping its files follow
(`mapping: <name>` → data_contracts/devices/csv_mappings/<name>.yaml).
A FHIR source holding a Bulk Data manifest (`manifest.json`, or any top-level `*.json` with
`transactionTime` and `output`) is read through the manifest: only listed outputs, with `deleted[]` and
`error[]` files, never a file outside the source folder and never a download. A `.gz` file is read as the
file it holds (`Patient.000.ndjson.gz` is NDJSON; see `compression`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
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
)
SNIFF_BYTES = 65536
MAX_URL_CHARS = 4096  # longer manifest urls are refused (and shown shortened): no file name is this long
IGNORED_SUFFIXES = (".md", ".txt", ".yaml", ".yml")
IGNORED_PREFIXES = ("license", "licence", "readme", "notice", "copying")  # documentation shipped with data

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


def discover(landing: UPath) -> LandingPlan:
    """Walk the landing folder and plan what to read; deterministic order (sources, then priority, path)."""
    plan = LandingPlan()
    if not landing.exists():
        raise FileNotFoundError("the landing folder does not exist")
    for source_dir in sorted((p for p in landing.iterdir() if p.is_dir() and not _hidden(p.name)), key=_name):
        _discover_source(landing, source_dir, plan)
    plan.files.sort(key=lambda f: (f.source, f.order, f.relative))
    return plan


def _discover_source(landing: UPath, source_dir: UPath, plan: LandingPlan) -> None:
    source = source_dir.name
    declared, mapping = _declared_format(source_dir)
    files = [
        p
        for p in _walk(source_dir)
        if not p.name.lower().endswith(IGNORED_SUFFIXES) and not p.name.lower().startswith(IGNORED_PREFIXES)
    ]
    manifests = [p for p in files if p.parent == source_dir and p.suffix == ".json" and _is_manifest(p)]
    if manifests and declared in (None, "fhir"):
        listed = _plan_manifests(landing, source, source_dir, manifests, plan)
        for p in files:
            rel = _relative(landing, p)
            if rel not in listed and p not in manifests:
                plan.unlisted.append(rel)
        return
    for p in files:
        fmt = _file_format(p, declared)
        order = _PATIENT_FIRST if fmt.startswith("fhir") and p.name.startswith("Patient") else _OTHER
        plan.files.append(
            LandingFile(
                source=source,
                path=p,
                relative=_relative(landing, p),
                format=fmt,
                folder_user=_folder_user(source_dir, p),
                mapping=mapping if fmt == DEVICE_CSV else None,
                order=order,
                compression=compression_of(p.name),
            )
        )


def _plan_manifests(
    landing: UPath, source: str, source_dir: UPath, manifests: list[UPath], plan: LandingPlan
) -> set[str]:
    listed: set[str] = set()
    for manifest in sorted(manifests, key=_name):
        manifest_rel = _relative(landing, manifest)
        try:
            body = orjson.loads(manifest.read_bytes().removeprefix(UTF8_BOM))
        except orjson.JSONDecodeError:
            body = None
        transaction_time = (
            body.get("transactionTime")
            if isinstance(body, dict) and isinstance(body.get("transactionTime"), str)
            else None
        )
        # logged even when unusable: its ingest_log row says why nothing it lists was read
        plan.files.append(
            LandingFile(
                source, manifest, manifest_rel, BULK_MANIFEST, transaction_time=transaction_time, order=-1
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
                refusal = _not_a_file_inside(source_dir, path)
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


def _not_a_file_inside(source_dir: UPath, path: UPath) -> str | None:
    """Why an existing listed path cannot be read: a folder, or a link that leads out of the source folder
    (object stores have no links, so only local paths are resolved)."""
    if not path.is_file():
        return "the url names a folder, not a file"
    if path.protocol in ("", "file", "local"):
        real, root = os.path.realpath(_local(path)), os.path.realpath(_local(source_dir))
        if os.path.commonpath([real, root]) != root:
            return "the file is a link that leads out of the source folder"
    return None


def _local(path: UPath) -> str:
    return path.path if hasattr(path, "path") else os.fspath(path)


def _declared_format(source_dir: UPath) -> tuple[str | None, str | None]:
    """The format source.yaml declares, and the CSV mapping it names (checked here: a wrong name is a
    configuration error to fix before any file is read, not a quarantine of every row)."""
    config = source_dir / SOURCE_CONFIG
    if not config.exists():
        return None, None
    where = f"{SOURCE_CONFIG} of source {source_dir.name}"
    try:
        settings = yaml.safe_load(config.read_bytes().decode("utf-8")) or {}
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


def _file_format(path: UPath, declared: str | None) -> str:
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
    head = _head(path)
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


def _is_manifest(path: UPath) -> bool:
    if path.name == "manifest.json":
        return True
    head = _head(path)
    return bool(re.search(rb'"transactionTime"\s*:', head) and re.search(rb'"output"\s*:', head))


def _head(path: UPath) -> bytes:
    with path.open("rb") as handle:
        return read_head(handle, path.name, SNIFF_BYTES)


def _walk(folder: UPath) -> list[UPath]:
    found: list[UPath] = []
    for p in folder.iterdir():
        if _hidden(p.name):
            continue
        if p.is_dir():
            if not p.is_symlink():  # a linked folder can loop back on itself
                found.extend(_walk(p))
        elif p.is_file():
            found.append(p)
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
