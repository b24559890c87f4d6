"""Apple Health exports (`export.xml`, or the `export.zip` the Health app makes) → bronze/device_records.

An export is one person's whole Health history: hundreds of megabytes of XML, most of it records the
platform does not carry (energy burned, distances, workouts, daily activity rings). It is read as a stream:
the expat parser is fed the file (or the zip's export member, decompressed as it is read) a megabyte at a
time and calls back per element, so no document tree is built and a zip's XML is never held whole; the
records kept become columns a few thousand at a time (`FRAME_ROWS`), so what the reader holds is about the
size of their JSON, not a Python object per record (bench/reports/apple_health.md has the figures).

What becomes a bronze record (`record_format` apple_health, `record_type` the HealthKit type):
- a `<Record>` of a type the platform carries (`RECORD_METRICS`: body mass, heart rate, blood pressure,
  blood glucose, oxygen saturation, step count, body temperature), with its attributes and children
  (`MetadataEntry`) kept as JSON;
- a blood-pressure `<Correlation>` with its member records: silver pairs them into one reading. Apple
  writes each member again as a top-level `<Record>` (its DTD says so); those copies are counted as
  skipped (read with their correlation), and a systolic or diastolic record without a correlation is a
  record of its own.

Everything else (other record types, category records such as sleep, correlations of food, workouts,
activity summaries, `Me` with the owner's birth date and sex, `ExportDate`) is counted by kind in
`ReadResult.skipped` (the ingest log's `detail`) and not stored: every element of the export is in bronze,
in quarantine or in that count.

One export is one person's, and nothing in it names the person (`<Me>` carries birth date and sex, no
name or identifier). So an export is read only from a folder per person (`<source>/<person>/export.zip`):
the folder name is the records' patient key, which the enrolment file links to a patient like any vendor
account. A record's `device_id` is its `sourceName` within that folder (`<person>/<sourceName>`), so that
a phone called like another person's enrolled device can never link across people.

Hostile input: a DOCTYPE that declares entities is refused whole (`xml_entity_declaration`; Apple's
declares none, and an entity can expand to gigabytes or name a file to read: expat would fetch nothing, but
expands internal entities); XML that is not well-formed stops the reading where it breaks, and what follows
is one quarantined record (`invalid_xml`) holding the bytes around that point; a zip with a member path
that is absolute or climbs out with `..` is refused whole (`unsafe_archive`), as is a zip whose export
inflates past the decompression limits (`decompression_limit`) or that is corrupt (`invalid_compression`).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from xml.parsers import expat

import orjson
import polars as pl

from pipelines.bronze.compression import (
    INVALID_COMPRESSION,
    DecompressionLimits,
    DecompressionRefused,
    check_inflation,
)
from pipelines.bronze.json_records import whole_file_quarantine
from pipelines.bronze.tables import DEVICE_RECORDS, ReadResult

RECORD_FORMAT = "apple_health"
APPLE_FOLDER = "apple_health_export"
"""The folder Apple's zip holds the export in: never a person's folder (two people's exports unpacked into
one source would otherwise become one person)."""
ROOT = "HealthData"
BLOOD_PRESSURE = "HKCorrelationTypeIdentifierBloodPressure"
SYSTOLIC = "HKQuantityTypeIdentifierBloodPressureSystolic"
DIASTOLIC = "HKQuantityTypeIdentifierBloodPressureDiastolic"
RECORD_METRICS = {
    "HKQuantityTypeIdentifierBodyMass": "body_weight",
    "HKQuantityTypeIdentifierHeartRate": "heart_rate",
    SYSTOLIC: "systolic_blood_pressure",
    DIASTOLIC: "diastolic_blood_pressure",
    "HKQuantityTypeIdentifierBloodGlucose": "blood_glucose",
    "HKQuantityTypeIdentifierOxygenSaturation": "oxygen_saturation",
    "HKQuantityTypeIdentifierStepCount": "step_count",
    "HKQuantityTypeIdentifierBodyTemperature": "body_temperature",
}
"""HealthKit quantity types read, and the platform metric each is. Resting and walking heart rate are
daily estimates Apple derives, not measurements: they are skipped like every other type."""
TOP_LEVEL_ELEMENTS = frozenset(
    {
        "ExportDate",
        "Me",
        "Record",
        "Correlation",
        "Workout",
        "ActivitySummary",
        "ClinicalRecord",
        "Audiogram",
        "VisionPrescription",
    }
)
"""Elements an export holds under HealthData; another name is counted as `another element`."""
CHUNK_BYTES = 1 << 20
FRAME_ROWS = 8192
"""Kept records gathered as Python objects before they become a chunk of the bronze frame: what the reader
holds is columns (about the size of the records' JSON), not Python objects per record."""
KEPT_DEPTH = 3
"""Levels kept below a record (Correlation → Record → MetadataEntry); deeper elements are not kept."""
SNIFF_BYTES = 65536  # Apple's DTD alone is about 10 KB
WINDOW_BYTES = 32768  # kept either side of where a document stops being well-formed
MAX_SKIPPED_KINDS = 200
_TYPE_NAME = re.compile(r"^HK[A-Za-z]{1,40}Identifier[A-Za-z0-9]{1,80}$")
_DRIVE = re.compile(r"^[A-Za-z]:")

XML_ENTITIES = "xml_entity_declaration"
INVALID_XML = "invalid_xml"
UNSAFE_ARCHIVE = "unsafe_archive"
NOT_AN_EXPORT = "unrecognized_format"


class _Refused(Exception):
    """The whole file is not read: `code` and `reason` go to its one quarantine record."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def read_apple_health_export(
    data: bytes, folder_user: str | None, name: str, limits: DecompressionLimits | None = None
) -> ReadResult:
    """One Apple Health export (`name` ending in .zip: the archive the Health app makes; else the XML).

    Returns the bronze records of the carried types (`entry` = the element's position among the export's
    top-level elements), the quarantine, and the counts of what was skipped, by kind."""
    if folder_user is None or folder_user == APPLE_FOLDER:  # unpacked straight into the source folder
        reason = (
            "an Apple Health export is one person's and names nobody: deliver it in a folder per person "
            "(<source>/<person>/export.zip), whose name the enrolment file links to a patient"
        )
        return _whole_file(data, "missing_id", reason)
    try:
        chunks = _zip_member(data, limits) if name.lower().endswith(".zip") else _slices(data)
        export = _Export(folder_user, hashlib.sha256(data).hexdigest()[:16])
        export.read(chunks)
    except _Refused as refused:
        return _whole_file(data, refused.code, refused.reason)
    return export.result()


def _whole_file(data: bytes, code: str, reason: str) -> ReadResult:
    return ReadResult(DEVICE_RECORDS, 1, pl.DataFrame(), whole_file_quarantine(data, code, reason))


def _slices(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])


# --- the zip ---------------------------------------------------------------------------------------------
def _zip_member(data: bytes, limits: DecompressionLimits | None) -> Iterator[bytes]:
    """The export XML of a Health app zip, decompressed as a stream within the decompression limits.

    The member read is the one XML file directly in the archive's folder (or at its root) whose content
    starts like an export: its name follows the phone's language (`export.xml`, `exportar.xml`, `导出.xml`),
    and `export_cda.xml` beside it is the same data as a clinical document. Nothing is extracted."""
    limits = limits or DecompressionLimits.from_env()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise _Refused(INVALID_COMPRESSION, "the file is not a readable zip archive") from None
    for member in members:
        if _unsafe(member.filename):
            raise _Refused(
                UNSAFE_ARCHIVE,
                "the zip holds a member whose path is absolute or climbs out with '..': an archive made to "
                "write outside its folder is not read",
            )
    chosen = next((m for m in sorted(members, key=lambda m: m.filename) if _is_export(archive, m)), None)
    if chosen is None:
        raise _Refused(
            NOT_AN_EXPORT, "the zip holds no Apple Health export (an XML file whose root is HealthData)"
        )
    try:  # the sizes the archive declares, before anything is inflated (a lie is caught while reading)
        check_inflation(chosen.file_size, len(data), limits)
    except DecompressionRefused as err:
        raise _Refused(err.code, str(err)) from None
    return _inflate(archive, chosen, len(data), limits)


def _inflate(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, delivered: int, limits: DecompressionLimits
) -> Iterator[bytes]:
    total = 0
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                total += len(chunk)
                check_inflation(total, delivered, limits)
                yield chunk
    except DecompressionRefused as err:
        raise _Refused(err.code, str(err)) from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError) as err:
        # a bad CRC or a truncated stream (BadZipFile, zlib.error), an encrypted member (RuntimeError), a
        # compression method Python cannot read (NotImplementedError)
        raise _Refused(
            INVALID_COMPRESSION, f"the export in the zip cannot be decompressed ({type(err).__name__})"
        ) from None


def _unsafe(name: str) -> bool:
    path = name.replace("\\", "/")
    return path.startswith("/") or bool(_DRIVE.match(path)) or ".." in PurePosixPath(path).parts


def _is_export(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    parts = PurePosixPath(member.filename).parts
    if member.is_dir() or not 1 <= len(parts) <= 2 or parts[0].startswith(("__MACOSX", ".")):
        return False
    file_name = parts[-1]
    if not file_name.lower().endswith(".xml") or file_name.startswith(".") or file_name == "export_cda.xml":
        return False
    try:
        with archive.open(member) as stream:
            head = stream.read(SNIFF_BYTES)  # bounded, whatever the member inflates to
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError):
        return False
    return b"<" + ROOT.encode() in head


# --- the XML ---------------------------------------------------------------------------------------------
@dataclass
class _Export:
    """The state of one export's reading: expat calls `_start` and `_end` per element."""

    folder_user: str
    file_id: str
    pending: list[tuple[int, str, str | None, bytes]] = field(
        default_factory=list
    )  # entry, type, device, raw
    frames: list[pl.DataFrame] = field(default_factory=list)  # the kept records so far, in entry order
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: list[tuple[int | None, int, str, str, bytes]] = field(default_factory=list)
    depth: int = 0
    entry: int = -1
    stack: list[dict[str, Any]] = field(default_factory=list)  # the open elements of a record being kept
    loose_pressure: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    correlated: set[tuple[str | None, ...]] = field(default_factory=set)
    window: tuple[int, bytes] = (0, b"")  # the bytes fed last (offset in the stream, bytes)
    rooted: bool = False  # the HealthData element has started

    def read(self, chunks: Iterable[bytes]) -> None:
        """Feed the document through expat; an XML fault ends the reading with an `invalid_xml` record."""
        parser = expat.ParserCreate()
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.EntityDeclHandler = _refuse_entities
        parser.UnparsedEntityDeclHandler = _refuse_entities
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        fed, previous = 0, b""
        try:
            for chunk in chunks:
                self.window = (fed - len(previous), previous + chunk)
                parser.Parse(chunk, False)
                fed += len(chunk)
                previous = chunk
                if len(self.pending) >= FRAME_ROWS:
                    self._frame()
            parser.Parse(b"", True)
        except expat.ExpatError as err:
            if not self.rooted:
                raise _Refused(
                    INVALID_XML,
                    f"not well-formed XML at line {err.lineno} ({expat.ErrorString(err.code)}) before any "
                    "element: nothing was read",
                ) from None
            self._stopped(err, parser.ErrorByteIndex)
        except (LookupError, ValueError):  # an encoding Python has no codec for, or one expat cannot use
            raise _Refused(
                INVALID_XML, "the XML declares a character encoding that cannot be read: nothing was read"
            ) from None
        self._settle_loose_pressure()

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        depth = self.depth
        self.depth += 1
        if depth == 0:
            if name != ROOT:
                raise _Refused(
                    NOT_AN_EXPORT, f"the XML's root element is not {ROOT}: not an Apple Health export"
                )
            self.rooted = True
            return
        if depth == 1:
            self.entry += 1
            kind = self._kind(name, attributes)
            if kind is None:
                self.stack = [{"element": name, "attributes": attributes}]
            else:
                self.skipped[kind] += 1
                self.stack = []
            return
        # a child is kept when its parent is the deepest kept element, down to KEPT_DEPTH levels
        if self.stack and len(self.stack) == depth - 1 and depth - 1 <= KEPT_DEPTH:
            node = {"element": name, "attributes": attributes}
            self.stack[-1].setdefault("children", []).append(node)
            self.stack.append(node)

    def _end(self, name: str) -> None:
        self.depth -= 1
        depth = self.depth
        if depth == 1 and self.stack:
            self._keep(self.stack[0])
            self.stack = []
        elif depth > 1 and len(self.stack) == depth:  # a kept child ends
            self.stack.pop()

    def _kind(self, name: str, attributes: dict[str, str]) -> str | None:
        """None for an element that is read, else the kind it is counted under as skipped."""
        kind_of = attributes.get("type")
        if name == "Record" and kind_of in RECORD_METRICS:
            return None
        if name == "Correlation" and kind_of == BLOOD_PRESSURE:
            return None
        if name not in TOP_LEVEL_ELEMENTS:
            return "another element"
        if name not in ("Record", "Correlation"):
            return name
        shown = kind_of if kind_of is not None and _TYPE_NAME.match(kind_of) else "an unnamed type"
        kind = f"{name} {shown}"
        return (
            kind
            if kind in self.skipped or len(self.skipped) < MAX_SKIPPED_KINDS
            else f"{name} of other types"
        )

    def _keep(self, node: dict[str, Any]) -> None:
        kind = node["attributes"].get("type", "")
        if node["element"] == "Record" and kind in (SYSTOLIC, DIASTOLIC):
            self.loose_pressure.append((self.entry, node))  # a copy of a correlation's member, or not
            return
        if node["element"] == "Correlation":
            for member in node.get("children", []):
                if member["element"] == "Record":
                    self.correlated.add(_pressure_key(member))
        self._row(self.entry, node)

    def _row(self, entry: int, node: dict[str, Any]) -> None:
        source = node["attributes"].get("sourceName")
        device = f"{self.folder_user}/{source.strip()}" if source and source.strip() else None
        self.pending.append((entry, node["attributes"].get("type", ""), device, orjson.dumps(node)))

    def _frame(self) -> None:
        """The pending records become a chunk of the bronze frame (entry order is kept)."""
        if self.pending:
            self.frames.append(_records_frame(self.pending))
            self.pending = []

    def _settle_loose_pressure(self) -> None:
        """Top-level systolic and diastolic records: copies of a correlation's members are skipped (read
        with it); the others are readings of their own, each put in its place among the chunks (by entry)
        so that the frame stays in entry order without sorting all of it."""
        self._frame()
        loose: dict[int, list[tuple[int, str, str | None, bytes]]] = {}
        lasts = [frame["entry"][-1] for frame in self.frames]
        for entry, node in self.loose_pressure:
            if _pressure_key(node) in self.correlated:
                self.skipped[
                    f"Record {node['attributes']['type']} (read with its blood-pressure correlation)"
                ] += 1
            else:
                self._row(entry, node)
                loose.setdefault(bisect.bisect_left(lasts, entry), []).append(self.pending.pop())
        for at, rows in loose.items():
            if at == len(self.frames):
                self.frames.append(_records_frame(rows))
            else:
                self.frames[at] = pl.concat([self.frames[at], _records_frame(rows)]).sort("entry")
        self.loose_pressure = []

    def _stopped(self, err: expat.ExpatError, at: int) -> None:
        """The document is not well-formed from byte `at` on: one quarantined record stands for the element
        in progress (or the next) and everything after it, holding the bytes around the fault."""
        offset, window = self.window
        where = max(at - offset, 0)
        raw = window[max(where - WINDOW_BYTES, 0) : where + WINDOW_BYTES]
        reason = (
            f"the XML is not well-formed from line {err.lineno} ({expat.ErrorString(err.code)}): the element "
            "in progress and everything after it were not read (the bytes around that point are kept here)"
        )
        in_progress = self.depth >= 2
        self.stack = []
        self.quarantined.append(
            (err.lineno, self.entry if in_progress else self.entry + 1, INVALID_XML, reason, raw)
        )

    def result(self) -> ReadResult:
        """The bronze records, quarantine and skipped counts of the export."""
        bronze = pl.concat(self.frames, rechunk=False) if self.frames else _records_frame([])
        self.frames = []
        bronze = bronze.with_columns(
            (pl.lit(f"{self.file_id}/") + pl.col("entry").cast(pl.String)).alias("record_id"),
            pl.lit(None, pl.Int64).alias("line"),
            pl.lit(RECORD_FORMAT).alias("record_format"),
            pl.lit(self.folder_user).alias("patient_key"),
        )
        quarantine = pl.DataFrame(
            self.quarantined,
            schema={
                "line": pl.Int64,
                "entry": pl.Int64,
                "reason_code": pl.String,
                "reason": pl.String,
                "raw": pl.Binary,
            },
            orient="row",
        )
        return ReadResult(
            DEVICE_RECORDS,
            bronze.height + quarantine.height,
            bronze,
            quarantine,
            skipped=dict(sorted(self.skipped.items())),
        )


def _records_frame(rows: list[tuple[int, str, str | None, bytes]]) -> pl.DataFrame:
    """Kept records as columns: entry, record_type, device_id and raw (the JSON, checked as UTF-8)."""
    entries, types, devices, raws = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pl.DataFrame(
        [
            pl.Series("entry", entries, pl.Int64),
            pl.Series("record_type", types, pl.String),
            pl.Series("device_id", devices, pl.String),
            pl.Series("raw", raws, pl.Binary).cast(pl.String),
        ]
    )


def _pressure_key(node: dict[str, Any]) -> tuple[str | None, ...]:
    attributes = node["attributes"]
    return tuple(attributes.get(k) for k in ("type", "sourceName", "startDate", "endDate", "value", "unit"))


def _refuse_entities(name: str, *_: object) -> None:
    raise _Refused(
        XML_ENTITIES,
        "the document's DOCTYPE declares XML entities (Apple's exports declare none): refused unread, since "
        "an entity can expand to gigabytes or name a file",
    )
