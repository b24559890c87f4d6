"""EHR B: one FHIR R4 transaction Bundle per patient, plus a shared directory Bundle.

Layout: ``ehr_b/<NNNN>/<bundle id>.json`` with NNNN = person index // 1000, and
``ehr_b/directory.json``, a "collection" Bundle of the Practitioners and Organizations that patient
bundles reference literally (``Practitioner/<id>``, ``Organization/<id>``). Inside a patient bundle each
entry has fullUrl ``urn:uuid:<id>`` (the resource id is the same uuid), a POST request, and every
reference to another entry of the bundle is that entry's fullUrl.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from pipelines.generate.bulk_writer import Counters, write_files
from pipelines.generate.defects import Defects
from pipelines.generate.directory import Directory
from pipelines.generate.truth import Truth
from pipelines.generate.vocab import Json

SOURCE = "ehr_b"
DIRECTORY_FILE = "ehr_b/directory.json"
DIRECTORY_BASE = "https://clinic-b.example.org/fhir/"
PATIENTS_PER_FOLDER = 1000


class BundleWriter:
    """Collects one patient's entries, then writes the Bundle in one go (bounded per patient)."""

    def __init__(self, landing: Path, defects: Defects, truth: Truth, counters: Counters) -> None:
        self.landing = landing
        self.defects = defects
        self.truth = truth
        self.counters = counters
        self.files = 0
        self._entries: list[Json] = []
        self._defects: list[tuple[int, str, str]] = []
        self._folder = -1

    def begin(self) -> None:
        """Start a new patient bundle."""
        self._entries = []
        self._defects = []

    def emit(self, resource: Json) -> None:
        """Add one resource as a POST entry (and, maybe, a defective companion entry)."""
        rtype = resource["resourceType"]
        entry = {
            "fullUrl": f"urn:uuid:{resource['id']}",
            "resource": resource,
            "request": {"method": "POST", "url": rtype},
        }
        self._entries.append(entry)
        if self.defects.rate and self.defects.roll():
            defect = self.defects.bundle_entry(entry)
            self._defects.append((len(self._entries), defect.defect, defect.reason))
            self._entries.append(defect.payload)  # type: ignore[arg-type]

    def end(self, person_index: int, bundle_id: str, timestamp: str) -> None:
        """Write the bundle to ``ehr_b/<index // 1000>/<bundle_id>.json``."""
        folder = person_index // PATIENTS_PER_FOLDER
        rel = f"{SOURCE}/{folder:04d}/{bundle_id}.json"
        if folder != self._folder:  # patients arrive in index order
            (self.landing / SOURCE / f"{folder:04d}").mkdir(parents=True, exist_ok=True)
            self._folder = folder
        bundle = {
            "resourceType": "Bundle",
            "id": bundle_id,
            "meta": {"versionId": "1", "lastUpdated": timestamp},
            "type": "transaction",
            "timestamp": timestamp,
            "entry": self._entries,
        }
        data = orjson.dumps(bundle)
        write_files(self.landing / SOURCE / f"{folder:04d}", [(f"{bundle_id}.json", data)])
        self._account(rel, data)
        for entry, defect, reason in self._defects:
            self.truth.defect(SOURCE, rel, None, entry, defect, reason)
        self._entries = []

    def write_directory(self, directory: Directory, timestamp: str) -> None:
        """ehr_b/directory.json: the shared Practitioners and Organizations (a collection Bundle)."""
        self._entries = []
        self._defects = []
        for resource in [*directory.organizations, *directory.practitioners]:
            entry = {
                "fullUrl": f"{DIRECTORY_BASE}{resource['resourceType']}/{resource['id']}",
                "resource": resource,
            }
            self._entries.append(entry)
            if self.defects.rate and self.defects.roll():
                defect = self.defects.bundle_entry(
                    {**entry, "request": {"method": "PUT", "url": "Practitioner"}}
                )
                payload = dict(defect.payload)  # type: ignore[arg-type]
                payload.pop("request", None)
                self._defects.append((len(self._entries), defect.defect, defect.reason))
                self._entries.append(payload)
        bundle = {
            "resourceType": "Bundle",
            "id": "directory",
            "meta": {"versionId": "1", "lastUpdated": timestamp},
            "type": "collection",
            "timestamp": timestamp,
            "entry": self._entries,
        }
        data = orjson.dumps(bundle)
        (self.landing / DIRECTORY_FILE).parent.mkdir(parents=True, exist_ok=True)
        (self.landing / DIRECTORY_FILE).write_bytes(data)
        self._account(DIRECTORY_FILE, data)
        for entry, defect, reason in self._defects:
            self.truth.defect(SOURCE, DIRECTORY_FILE, None, entry, defect, reason)
        self._entries = []

    def _account(self, rel: str, data: bytes) -> None:
        n = len(self._entries)
        self.truth.file_records(rel, n)
        self.counters.files += 1
        self.counters.bytes += len(data)
        self.counters.add_records(SOURCE, n)
        self.files += 1
