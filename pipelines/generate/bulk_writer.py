"""Writers that stream records to the landing folder and keep only counters.

- `RotatingNdjson`: ``<stem>.000.ndjson``, ``<stem>.001.ndjson`` ... rotated every `ROTATE_LINES`
  lines; remembers the (relative path, line count) of each file it wrote.
- `BulkExport`: EHR A's FHIR Bulk Data export (one rotating writer per resource type, the deleted
  Bundles, the error OperationOutcomes and `manifest.json`).
- `JsonLinesSink`: Open mHealth data points and service-center conversations.
- `EnrolmentCsv`: the remote-monitoring enrolment CSV.
- `write_files`: whole small files (EHR B bundles, iHealth payloads).

Every sink asks the `Defects` injector, record by record, whether to add a defective companion, and
reports it to the ground truth with the file and 1-based physical line it landed on.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import orjson

from pipelines.generate.clock import Clock
from pipelines.generate.defects import Defect, Defects
from pipelines.generate.rng import named_rng, new_uuid
from pipelines.generate.truth import Truth
from pipelines.generate.vocab import Json

ROTATE_LINES = 50_000
"""Lines per NDJSON file before rotating to the next file number."""
BUFFER_BYTES = 1 << 18
DELETED_PER_BUNDLE = 1
"""DELETE entries per transaction Bundle (one line of deleted/Bundle.NNN.ndjson). The spec allows
several; one makes a line and a deleted resource the same record for per-file accounting."""
BULK_TYPE_ORDER = (
    "Patient",
    "Practitioner",
    "Organization",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "Coverage",
    "Consent",
    "Appointment",
    "Communication",
    "QuestionnaireResponse",
)
EXPORT_ERRORS = (
    "Unable to export Media resources: storage timeout",
    "Unable to export DocumentReference resources: binary store unavailable, retry later",
)
_NL = orjson.OPT_APPEND_NEWLINE


class Counters:
    """Landing-wide totals: files, bytes and records per source."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self.records: dict[str, int] = {}

    def add_records(self, source: str, n: int) -> None:
        """Count `n` records for `source`."""
        self.records[source] = self.records.get(source, 0) + n


def write_files(folder: Path, files: list[tuple[str, bytes]], make_folder: bool = False) -> None:
    """Write whole small files (name, bytes) into `folder`, creating it first when `make_folder`."""
    if make_folder:
        folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / name).write_bytes(data)


class RotatingNdjson:
    """An NDJSON file series under `landing/<folder>/` rotated every `ROTATE_LINES` lines."""

    def __init__(self, landing: Path, folder: str, stem: str) -> None:
        self.landing = landing
        self.folder = folder
        self.stem = stem
        self.files: list[tuple[str, int]] = []
        self.rel = ""
        self.lines = 0
        self.bytes = 0
        self._fh: IO[bytes] | None = None

    def write(self, line: bytes) -> None:
        """Append one line (`line` ends with a newline)."""
        if self._fh is None or self.lines >= ROTATE_LINES:
            self._rotate()
        self._fh.write(line)  # type: ignore[union-attr]
        self.lines += 1
        self.bytes += len(line)

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self.files.append((self.rel, self.lines))
        name = f"{self.stem}.{len(self.files):03d}.ndjson"
        self.rel = f"{self.folder}/{name}" if self.folder else name
        path = self.landing / self.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "wb", buffering=BUFFER_BYTES)  # noqa: SIM115 - closed on rotate/close
        self.lines = 0

    def close(self) -> list[tuple[str, int]]:
        """Close the current file; the (relative path, lines) of every file written."""
        if self._fh is not None:
            self._fh.close()
            self.files.append((self.rel, self.lines))
            self._fh = None
        return self.files


class BulkExport:
    """EHR A's Bulk Data export: NDJSON per resource type, deleted Bundles, errors and the manifest."""

    SOURCE = "ehr_a"

    def __init__(self, landing: Path, clock: Clock, defects: Defects, truth: Truth, seed: int) -> None:
        self.landing = landing
        self.folder = "ehr_a"
        self.clock = clock
        self.defects = defects
        self.truth = truth
        self.writers: dict[str, RotatingNdjson] = {}
        self._deleted_writer = RotatingNdjson(landing, "ehr_a/deleted", "Bundle")
        self._pending_deletes: list[Json] = []
        self._deleted_now: set[str] = set()
        self._delete_rng = named_rng(seed, "deleted-bundles")
        self._fhir_now = clock.instant(clock.now)
        self._seed = seed

    def begin_patient(self) -> None:
        """Forget the ids deleted for the previous patient (only used to avoid re-versioning them)."""
        self._deleted_now.clear()

    def emit(self, resource: Json) -> None:
        """Write one resource (and, maybe, a defective companion)."""
        rtype = resource["resourceType"]
        writer = self.writers.get(rtype)
        if writer is None:
            writer = self.writers[rtype] = RotatingNdjson(self.landing, self.folder, rtype)
        data = orjson.dumps(resource, option=_NL)
        writer.write(data)
        if self.defects.rate and self.defects.roll():
            defect, newer = self.defects.fhir_line(
                resource, data, resource["id"] in self._deleted_now, self._fhir_now
            )
            _write_defect(writer, defect, self.SOURCE, self.truth)
            if newer is not None:
                self.truth.duplicate(rtype, newer["id"], ["1", "2"])

    def delete(self, rtype: str, rid: str) -> None:
        """List `rtype/rid` (a resource this export also contains) in the deleted Bundles."""
        self._deleted_now.add(rid)
        self.truth.deleted(rtype, rid)
        self._pending_deletes.append({"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}})
        if len(self._pending_deletes) >= DELETED_PER_BUNDLE:
            self._flush_deletes()

    def _flush_deletes(self) -> None:
        if not self._pending_deletes:
            return
        bundle = {
            "resourceType": "Bundle",
            "id": new_uuid(self._delete_rng),
            "meta": {"versionId": "1", "lastUpdated": self._fhir_now},
            "type": "transaction",
            "entry": self._pending_deletes,
        }
        self._deleted_writer.write(orjson.dumps(bundle, option=_NL))
        self._pending_deletes = []

    def write_unlisted(self, patients: list[Json], observations: list[Json]) -> list[tuple[str, int]]:
        """Files beside the export that the manifest does not list (readers must ignore them)."""
        written = []
        for name, resources in (
            ("Scratch.000.ndjson", patients),
            ("Observation.export-retry.ndjson", observations),
        ):
            data = b"".join(orjson.dumps(r, option=_NL) for r in resources)
            (self.landing / self.folder / name).write_bytes(data)
            written.append((f"{self.folder}/{name}", len(resources)))
        return written

    def finish(self, counters: Counters) -> dict[str, int]:
        """Close every file and write `manifest.json`; the records per file written."""
        self._flush_deletes()
        per_file: dict[str, int] = {}
        output = []
        order = [t for t in BULK_TYPE_ORDER if t in self.writers] + sorted(
            set(self.writers) - set(BULK_TYPE_ORDER)
        )
        for rtype in order:
            writer = self.writers[rtype]
            for rel, lines in writer.close():
                output.append({"type": rtype, "url": rel.removeprefix(f"{self.folder}/"), "count": lines})
                per_file[rel] = lines
            counters.bytes += writer.bytes
        deleted = []
        for rel, lines in self._deleted_writer.close():
            deleted.append({"type": "Bundle", "url": rel.removeprefix(f"{self.folder}/"), "count": lines})
            per_file[rel] = lines
        counters.bytes += self._deleted_writer.bytes
        error_writer = RotatingNdjson(self.landing, "ehr_a/error", "OperationOutcome")
        rng = named_rng(self._seed, "export-errors")
        for message in EXPORT_ERRORS:
            outcome = {
                "resourceType": "OperationOutcome",
                "id": new_uuid(rng),
                "meta": {"versionId": "1", "lastUpdated": self._fhir_now},
                "issue": [{"severity": "error", "code": "processing", "diagnostics": message}],
            }
            error_writer.write(orjson.dumps(outcome, option=_NL))
        errors = []
        for rel, lines in error_writer.close():
            errors.append(
                {"type": "OperationOutcome", "url": rel.removeprefix(f"{self.folder}/"), "count": lines}
            )
            per_file[rel] = lines
        counters.bytes += error_writer.bytes
        manifest = {
            "transactionTime": self._fhir_now,
            "request": "https://ehr-a.example.org/fhir/$export",
            "requiresAccessToken": False,
            "output": output,
            "deleted": deleted,
            "error": errors,
        }
        data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | _NL)
        (self.landing / self.folder / "manifest.json").write_bytes(data)
        counters.bytes += len(data)
        counters.files += len(per_file) + 1
        counters.add_records(self.SOURCE, sum(per_file.values()))
        return per_file


class JsonLinesSink:
    """Rotating JSON lines for OMH data points or conversations, with defect injection."""

    def __init__(
        self,
        landing: Path,
        source: str,
        folder: str,
        stem: str,
        id_path: tuple[str, ...],
        defects: Defects,
        truth: Truth,
    ) -> None:
        self.source = source
        self.writer = RotatingNdjson(landing, folder, stem)
        self.id_path = id_path
        self.defects = defects
        self.truth = truth

    def emit(self, record: Json) -> None:
        """Write one record (and, maybe, a defective companion)."""
        data = orjson.dumps(record, option=_NL)
        self.writer.write(data)
        if self.defects.rate and self.defects.roll():
            _write_defect(self.writer, self.defects.json_line(data, self.id_path), self.source, self.truth)

    def finish(self, counters: Counters) -> dict[str, int]:
        """Close the files; the records per file written."""
        per_file = dict(self.writer.close())
        counters.bytes += self.writer.bytes
        counters.files += len(per_file)
        counters.add_records(self.source, sum(per_file.values()))
        return per_file


ENROLMENT_HEADER = (
    "vendor",
    "vendor_user_id",
    "device_id",
    "device_type",
    "patient_source",
    "patient_id",
    "enrolled_on",
    "unenrolled_on",
)


class EnrolmentCsv:
    """rpm_enrolment/enrolment.csv; no field ever holds a comma, quote or newline."""

    SOURCE = "rpm_enrolment"
    REL = "rpm_enrolment/enrolment.csv"

    def __init__(self, landing: Path, defects: Defects, truth: Truth) -> None:
        path = landing / self.REL
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in finish()
        self._fh.write(",".join(ENROLMENT_HEADER) + "\n")
        self.rows = 0
        self.line = 1
        self.bytes = 0
        self.defects = defects
        self.truth = truth

    def emit(self, fields: list[str]) -> None:
        """Write one data row (and, maybe, a malformed companion row)."""
        self._write(",".join(fields))
        if self.defects.rate and self.defects.roll():
            defect = self.defects.csv_row(fields)
            self._write(defect.payload)  # type: ignore[arg-type]
            self.truth.defect(self.SOURCE, self.REL, self.line, None, defect.defect, defect.reason)

    def _write(self, text: str) -> None:
        self._fh.write(text + "\n")
        self.rows += 1
        self.line += 1

    def finish(self, counters: Counters) -> dict[str, int]:
        """Close the file; its data-row count."""
        self._fh.close()
        counters.bytes += Path(self._fh.name).stat().st_size
        counters.files += 1
        counters.add_records(self.SOURCE, self.rows)
        return {self.REL: self.rows}


def _write_defect(writer: RotatingNdjson, defect: Defect, source: str, truth: Truth) -> None:
    payload = defect.payload
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload, option=_NL)
    writer.write(data)
    truth.defect(source, writer.rel, writer.lines, None, defect.defect, defect.reason)
