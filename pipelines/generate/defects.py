"""Deterministic defect injection.

With probability `rate`, each record about to be written gets a defective companion written right after
it (the genuine record is always kept, so references, identity truth and signals stay intact; the
defective line is an *additional* record). Each defect has exactly one problem, so that one quarantine
reason applies, and is listed in the ground truth's defects.csv with the reason a correct reader gives:

| defect               | where                          | expected_reason            |
|----------------------|--------------------------------|----------------------------|
| truncated_json       | any JSON line                  | invalid_json               |
| json_array / number  | any JSON line                  | not_an_object              |
| id_number            | FHIR line                      | invalid_field_type         |
| subject_string       | FHIR line with `subject`       | invalid_field_type         |
| last_updated_number  | FHIR line                      | invalid_field_type         |
| unknown_type         | FHIR line, bundle entry        | unknown_resource_type      |
| missing_id           | FHIR, OMH, conversation line   | missing_id                 |
| unknown_patient      | FHIR line with subject/patient | unknown_patient_reference  |
| invalid_utf8         | any JSON line                  | invalid_utf8               |
| newer_version        | FHIR line                      | kept_newer_version         |
| missing_resource     | bundle entry                   | missing_resource           |
| wrong_field_count    | enrolment CSV row              | malformed_csv_row          |

Defective copies get a fresh id (except `newer_version`, which is the point), drawn from the defect
stream, so no defect collides with a genuine id. The defect stream is separate from the patient
stream: the genuine records are byte-identical whatever the rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import orjson

from pipelines.generate.rng import defect_rng, named_rng, new_uuid
from pipelines.generate.vocab import Json

UNKNOWN_TYPES = ("Patientt", "Foo", "Observasion", "Encountr", "Conditon", "MedicationRequests")
PATIENT_ELEMENTS = ("subject", "patient")
INVALID_UTF8 = b"\xff\xfe"


@dataclass(frozen=True, slots=True)
class Defect:
    """A defective record, ready to write, with its truth labels."""

    payload: bytes | Json | str
    defect: str
    reason: str


def _small_change(resource: Json, rng: random.Random) -> None:
    """A plausible correction made in a later version of the resource."""
    rtype = resource.get("resourceType")
    if rtype == "Observation":
        resource["status"] = "amended"
        value = resource.get("valueQuantity")
        if value is not None:
            value["value"] = round(value["value"] * rng.choice((0.98, 1.02)), 1)
        else:
            resource["note"] = [{"text": "Corrected after device recalibration."}]
    elif rtype == "Patient":
        telecom = resource.setdefault("telecom", [])
        telecom.append({"system": "phone", "value": f"(555) 555-{rng.randrange(10000):04d}", "use": "work"})
    elif rtype == "Encounter":
        minutes = rng.choice((15, 20, 30, 45, 60))
        resource["length"] = {
            "value": minutes,
            "unit": "min",
            "system": "http://unitsofmeasure.org",
            "code": "min",
        }
    elif rtype == "Condition":
        resource["note"] = [{"text": "Problem list reviewed."}]
    elif rtype == "Appointment":
        resource["comment"] = "Patient asked for a reminder call."
    else:
        resource["language"] = "en-US"


class Defects:
    """Decides which records get a defective companion and builds it."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.seed = seed
        self.rng: random.Random = named_rng(seed, "defects/shared")
        self.count = 0

    def begin(self, index: int) -> None:
        """Switch to the defect stream of person `index`."""
        if self.rate > 0:
            self.rng = defect_rng(self.seed, index)

    def begin_shared(self, name: str) -> None:
        """Switch to the defect stream of a shared artefact (directories)."""
        if self.rate > 0:
            self.rng = named_rng(self.seed, f"defects/{name}")

    def roll(self) -> bool:
        """True when the record about to be written gets a defect."""
        return self.rate > 0 and self.rng.random() < self.rate

    # --- generic JSON lines -----------------------------------------------------------------------
    def _truncated(self, data: bytes) -> bytes:
        body = data.rstrip(b"\n")
        cut = self.rng.randrange(max(2, len(body) // 4), len(body) - 1)
        while True:  # never cut inside a multi-byte character: that would be invalid_utf8 instead
            try:
                body[:cut].decode("utf-8")
                break
            except UnicodeDecodeError:
                cut -= 1
        return body[:cut] + b"\n"

    def _not_object(self, data: bytes) -> bytes:
        if self.rng.random() < 0.5:
            return b"[" + data.rstrip(b"\n") + b"]\n"
        return str(self.rng.choice((0, 1, 42, 404, 2024, -1))).encode() + b"\n"

    def _utf8(self, copy: Json, id_key: bytes) -> bytes:
        data = orjson.dumps(copy, option=orjson.OPT_APPEND_NEWLINE)
        marker = b'"' + id_key + b'":"'
        at = data.index(marker) + len(marker)
        return data[:at] + INVALID_UTF8 + data[at:]

    def _copy(self, data: bytes) -> Json:
        return orjson.loads(data)

    # --- FHIR NDJSON ------------------------------------------------------------------------------
    def fhir_line(
        self, resource: Json, data: bytes, deleted: bool, fhir_now: str
    ) -> tuple[Defect, Json | None]:
        """A defective companion for a FHIR NDJSON line; the second value is the newer version, if any."""
        self.count += 1
        kinds = [
            "truncated_json",
            "not_an_object",
            "invalid_field_type",
            "unknown_type",
            "missing_id",
            "invalid_utf8",
        ]
        patient_element = next((e for e in PATIENT_ELEMENTS if e in resource), None)
        if patient_element:
            kinds.append("unknown_patient")
        if not deleted:
            kinds += ["newer_version", "newer_version"]
        kind = self.rng.choice(kinds)
        rng = self.rng
        if kind == "truncated_json":
            return Defect(self._truncated(data), kind, "invalid_json"), None
        if kind == "not_an_object":
            return Defect(self._not_object(data), "json_array_or_number", "not_an_object"), None
        copy = self._copy(data)
        if kind == "newer_version":
            meta = copy.setdefault("meta", {})
            meta["versionId"] = "2"
            meta["lastUpdated"] = _later(meta.get("lastUpdated"), fhir_now, rng)
            _small_change(copy, rng)
            return Defect(copy, kind, "kept_newer_version"), copy
        copy["id"] = new_uuid(rng)
        if kind == "invalid_field_type":
            options = ["id_number", "last_updated_number"]
            if isinstance(copy.get("subject"), dict):
                options.append("subject_string")
            variant = rng.choice(options)
            if variant == "id_number":
                copy["id"] = rng.randrange(1, 10**9)
            elif variant == "subject_string":
                copy["subject"] = copy["subject"]["reference"]
            else:
                copy.setdefault("meta", {})["lastUpdated"] = rng.randrange(1_600_000_000, 1_780_000_000)
            return Defect(copy, variant, "invalid_field_type"), None
        if kind == "unknown_type":
            copy["resourceType"] = rng.choice(UNKNOWN_TYPES)
            return Defect(copy, "unknown_resource_type", "unknown_resource_type"), None
        if kind == "missing_id":
            del copy["id"]
            return Defect(copy, kind, "missing_id"), None
        if kind == "unknown_patient":
            copy[patient_element] = {"reference": f"Patient/{new_uuid(rng)}"}  # type: ignore[index]
            return Defect(copy, "unknown_patient_reference", "unknown_patient_reference"), None
        return Defect(self._utf8(copy, b"id"), kind, "invalid_utf8"), None

    # --- OMH data points and conversations --------------------------------------------------------
    def json_line(self, data: bytes, id_path: tuple[str, ...]) -> Defect:
        """A defective companion for an OMH or conversation line (`id_path` locates its id)."""
        self.count += 1
        kind = self.rng.choice(
            ("truncated_json", "not_an_object", "missing_id", "missing_id", "invalid_utf8")
        )
        if kind == "truncated_json":
            return Defect(self._truncated(data), kind, "invalid_json")
        if kind == "not_an_object":
            return Defect(self._not_object(data), "json_array_or_number", "not_an_object")
        copy = self._copy(data)
        holder = copy
        for key in id_path[:-1]:
            holder = holder[key]
        if kind == "missing_id":
            del holder[id_path[-1]]
            return Defect(copy, kind, "missing_id")
        holder[id_path[-1]] = new_uuid(self.rng)
        return Defect(self._utf8(copy, id_path[-1].encode()), kind, "invalid_utf8")

    # --- Bundle entries ---------------------------------------------------------------------------
    def bundle_entry(self, entry: Json) -> Defect:
        """A defective companion entry for a transaction Bundle."""
        self.count += 1
        new_id = new_uuid(self.rng)
        if self.rng.random() < 0.5:
            return Defect(
                {"fullUrl": f"urn:uuid:{new_id}", "request": dict(entry["request"])},
                "missing_resource",
                "missing_resource",
            )
        resource = orjson.loads(orjson.dumps(entry["resource"]))
        resource["id"] = new_id
        resource["resourceType"] = self.rng.choice(UNKNOWN_TYPES)
        return Defect(
            {
                "fullUrl": f"urn:uuid:{new_id}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            },
            "unknown_resource_type",
            "unknown_resource_type",
        )

    # --- CSV rows ---------------------------------------------------------------------------------
    def csv_row(self, fields: list[str]) -> Defect:
        """A defective companion row with one field too few or too many."""
        self.count += 1
        if self.rng.random() < 0.5:
            row = [*fields[:-2], fields[-2] + " " + fields[-1]] if fields[-1] else fields[:-1]
            return Defect(",".join(row), "missing_field", "malformed_csv_row")
        return Defect(
            ",".join([*fields, self.rng.choice(("manual", "legacy", "retry"))]),
            "extra_field",
            "malformed_csv_row",
        )


def _later(last_updated: str | None, cap: str, rng: random.Random) -> str:
    """An instant after `last_updated` and not after `cap` (both ...Z instants)."""
    start = datetime.fromisoformat(last_updated) if last_updated else datetime.fromisoformat(cap)
    end = datetime.fromisoformat(cap)
    span = max(1, int((end - start).total_seconds()))
    moment = start.timestamp() + min(span, rng.randrange(3600, 90 * 86400))
    return datetime.fromtimestamp(moment, tz=start.tzinfo).strftime("%Y-%m-%dT%H:%M:%SZ")
