"""Helpers for the silver ViewDefinition tests: the view files, FHIR test data, and independent oracles.

The oracles below read the raw FHIR JSON with plain Python, so a view and its oracle only agree when
both say the same thing about the resource; they cover the columns downstream layers rely on most.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

VIEWS_DIR = Path(__file__).resolve().parents[1] / "data_contracts" / "views"

Resource = dict[str, Any]
Row = dict[str, Any]

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CVX = "http://hl7.org/fhir/sid/cvx"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NPI = "http://hl7.org/fhir/sid/us-npi"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"


def view_paths() -> list[Path]:
    """Every view file, sorted by name."""
    return sorted(VIEWS_DIR.glob("*.json"))


def load_view(path: Path) -> dict[str, Any]:
    """One view file as parsed JSON."""
    return orjson.loads(path.read_bytes())


def load_views() -> dict[str, dict[str, Any]]:
    """Every view by table name (its file name without `.json`)."""
    return {path.stem: load_view(path) for path in view_paths()}


def view_columns(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The view's column definitions in output order (own columns, nested selects, first unionAll branch)."""
    columns: list[dict[str, Any]] = []

    def walk(select: dict[str, Any]) -> None:
        columns.extend(select.get("column") or [])
        for child in select.get("select") or []:
            walk(child)
        for branch in (select.get("unionAll") or [])[:1]:
            walk(branch)

    for select in view.get("select") or []:
        walk(select)
    return columns


# ---------------------------------------------------------------------------------------- test data


def read_ndjson(path: Path) -> list[Resource]:
    """The objects of an NDJSON file that carry a resourceType (an export log's lines carry none)."""
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [r for r in records if isinstance(r, dict) and "resourceType" in r]


def _with_references(node: Any, targets: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: targets.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _with_references(value, targets)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_with_references(value, targets) for value in node]
    return node


def bundle_resources(path: Path) -> list[Resource]:
    """A Bundle's entry resources, `urn:uuid:` references rewritten to `Type/id` as bronze does."""
    bundle = orjson.loads(path.read_bytes())
    resources = [entry["resource"] for entry in bundle.get("entry") or [] if "resource" in entry]
    targets = {
        entry["fullUrl"]: f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        for entry in bundle.get("entry") or []
        if "fullUrl" in entry and "resource" in entry
    }
    return [_with_references(resource, targets) for resource in resources]


def landing_resources(landing: Path) -> list[Resource]:
    """The generator's EHR resources: ehr_a/*.ndjson plus every ehr_b Bundle's entries."""
    resources: list[Resource] = []
    for path in sorted((landing / "ehr_a").glob("*.ndjson")):
        resources += read_ndjson(path)
    for path in sorted((landing / "ehr_b").rglob("*.json")):
        resources += bundle_resources(path)
    return resources


def by_type(resources: Iterable[Resource]) -> dict[str, list[Resource]]:
    """Resources grouped by resourceType."""
    grouped: dict[str, list[Resource]] = {}
    for resource in resources:
        grouped.setdefault(resource["resourceType"], []).append(resource)
    return grouped


# ---------------------------------------------------------------------------------- row expectations


def _item_rows(items: list[Resource] | None) -> int:
    """Rows of questionnaire_response_item: every item at any depth, one per answer (at least one)."""
    total = 0
    for item in items or []:
        answers = item.get("answer") or []
        total += max(1, len(answers)) + _item_rows(item.get("item"))
        total += sum(_item_rows(answer.get("item")) for answer in answers)
    return total


ROWS_PER_RESOURCE: dict[str, Callable[[Resource], int]] = {
    "patient_identifier": lambda r: len(r.get("identifier") or []),
    "patient_telecom": lambda r: len(r.get("telecom") or []),
    "patient_name": lambda r: len(r.get("name") or []),
    "patient_contact": lambda r: len(r.get("contact") or []),
    "observation_component": lambda r: len(r.get("component") or []),
    "questionnaire_response_item": lambda r: _item_rows(r.get("item")),
}
"""Views with one row per element; every other view has exactly one row per resource."""


def expected_rows_per_key(table: str, resources: list[Resource]) -> Counter[str]:
    """How many rows each resource id should yield in `table`."""
    per_resource = ROWS_PER_RESOURCE.get(table, lambda _r: 1)
    return Counter({r["id"]: per_resource(r) for r in resources if per_resource(r)})


# -------------------------------------------------------------------------------------------- oracles


def ref_id(reference: Resource | None, resource_type: str) -> str | None:
    """The id of a relative `Type/id` reference of the wanted type."""
    value = (reference or {}).get("reference")
    if isinstance(value, str) and value.startswith(resource_type + "/"):
        return value.split("/", 1)[1].split("/_history/")[0]
    return None


def first_ref_id(references: list[Resource] | None, resource_type: str) -> str | None:
    """The id of the first reference of the wanted type."""
    ids = (ref_id(r, resource_type) for r in references or [])
    return next((i for i in ids if i is not None), None)


def preferred(items: list[Resource] | None, wanted: Callable[[Resource], bool]) -> Resource:
    """The first wanted item, else the first item, else an empty object."""
    items = items or []
    return next((i for i in items if wanted(i)), items[0] if items else {})


def codings(concept: Resource | list[Resource] | None) -> list[Resource]:
    """The codings of a CodeableConcept or of a list of them."""
    concepts = concept if isinstance(concept, list) else [concept or {}]
    return [coding for c in concepts for coding in c.get("coding") or []]


def first_code(concept: Resource | list[Resource] | None, element: str = "code") -> Any:
    """An element of the first coding."""
    found = codings(concept)
    return found[0].get(element) if found else None


def _joined(values: list[str] | None, separator: str) -> str | None:
    return separator.join(values) if values else None


def _patient(r: Resource) -> Row:
    name = preferred(r.get("name"), lambda n: n.get("use") == "official")
    address = preferred(r.get("address"), lambda a: a.get("use") == "home")
    language = preferred(r.get("communication"), lambda c: c.get("preferred") is True)
    race = [
        part.get("valueCoding", {}).get("code")
        for ext in r.get("extension") or []
        if ext.get("url") == US_CORE_RACE
        for part in ext.get("extension") or []
        if part.get("url") == "ombCategory"
    ]
    return {
        "id": r["id"],
        "active": r.get("active"),
        "gender": r.get("gender"),
        "birth_date": r.get("birthDate"),
        "deceased_date_time": r.get("deceasedDateTime"),
        "multiple_birth_boolean": r.get("multipleBirthBoolean"),
        "multiple_birth_integer": r.get("multipleBirthInteger"),
        "family": name.get("family"),
        "given": _joined(name.get("given"), " "),
        "marital_status": first_code(r.get("maritalStatus")),
        "language": first_code(language.get("language")),
        "race_code": race[0] if race else None,
        "managing_organization_id": ref_id(r.get("managingOrganization"), "Organization"),
        "general_practitioner_id": first_ref_id(r.get("generalPractitioner"), "Practitioner"),
        "address_line": _joined(address.get("line"), ", "),
        "address_city": address.get("city"),
        "address_postal_code": address.get("postalCode"),
        "last_updated": r.get("meta", {}).get("lastUpdated"),
    }


def _encounter(r: Resource) -> Row:
    period = r.get("period") or {}
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("subject"), "Patient"),
        "status": r.get("status"),
        "class_code": (r.get("class") or {}).get("code"),
        "type_code": first_code(r.get("type")),
        "period_start": period.get("start"),
        "period_end": period.get("end"),
        "service_provider_id": ref_id(r.get("serviceProvider"), "Organization"),
        "discharge_disposition_code": first_code(
            (r.get("hospitalization") or {}).get("dischargeDisposition")
        ),
        "practitioner_id": first_ref_id(
            [p.get("individual") or {} for p in r.get("participant") or []], "Practitioner"
        ),
        "reason_code": first_code(r.get("reasonCode")),
    }


def _condition(r: Resource) -> Row:
    coding = preferred(codings(r.get("code")), lambda c: c.get("system") in (SNOMED, ICD10CM))
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("subject"), "Patient"),
        "encounter_id": ref_id(r.get("encounter"), "Encounter"),
        "code": coding.get("code"),
        "code_system": coding.get("system"),
        "clinical_status": first_code(r.get("clinicalStatus")),
        "onset_date_time": r.get("onsetDateTime"),
        "abatement_date_time": r.get("abatementDateTime"),
        "recorded_date": r.get("recordedDate"),
    }


def _observation(r: Resource) -> Row:
    quantity = r.get("valueQuantity") or {}
    effective = (
        r.get("effectiveDateTime")
        or r.get("effectiveInstant")
        or (r.get("effectivePeriod") or {}).get("start")
    )
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("subject"), "Patient"),
        "encounter_id": ref_id(r.get("encounter"), "Encounter"),
        "category_code": first_code(r.get("category")),
        "code": first_code(r.get("code")),
        "code_system": first_code(r.get("code"), "system"),
        "effective_date_time": effective,
        "issued": r.get("issued"),
        "value_quantity_value": quantity.get("value"),
        "value_quantity_unit": quantity.get("unit"),
        "value_quantity_code": quantity.get("code"),
        "value_string": r.get("valueString"),
        "value_integer": r.get("valueInteger"),
        "value_boolean": r.get("valueBoolean"),
        "interpretation_code": first_code(r.get("interpretation")),
    }


def _procedure(r: Resource) -> Row:
    period = r.get("performedPeriod") or {}
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("subject"), "Patient"),
        "code": first_code(r.get("code")),
        "performed_date_time": r.get("performedDateTime"),
        "performed_start": period.get("start"),
        "performed_end": period.get("end"),
    }


def _immunization(r: Resource) -> Row:
    coding = preferred(codings(r.get("vaccineCode")), lambda c: c.get("system") == CVX)
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("patient"), "Patient"),
        "vaccine_code": coding.get("code"),
        "vaccine_system": coding.get("system"),
        "occurrence_date_time": r.get("occurrenceDateTime"),
        "primary_source": r.get("primarySource"),
    }


def _medication_request(r: Resource) -> Row:
    coding = preferred(codings(r.get("medicationCodeableConcept")), lambda c: c.get("system") == RXNORM)
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("subject"), "Patient"),
        "status": r.get("status"),
        "medication_code": coding.get("code"),
        "medication_display": coding.get("display"),
        "medication_reference_id": ref_id(r.get("medicationReference"), "Medication"),
        "authored_on": r.get("authoredOn"),
        "requester_id": ref_id(r.get("requester"), "Practitioner"),
    }


def _coverage(r: Resource) -> Row:
    period = r.get("period") or {}
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("beneficiary"), "Patient"),
        "status": r.get("status"),
        "type_code": first_code(r.get("type")),
        "payor_id": first_ref_id(r.get("payor"), "Organization"),
        "period_start": period.get("start"),
        "period_end": period.get("end"),
        "subscriber_id": r.get("subscriberId"),
    }


def _consent(r: Resource) -> Row:
    provision = r.get("provision") or {}
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("patient"), "Patient"),
        "status": r.get("status"),
        "scope_code": first_code(r.get("scope")),
        "date_time": r.get("dateTime"),
        "provision_type": provision.get("type"),
        "provision_code": first_code(provision.get("code")),
        "provision_code_system": first_code(provision.get("code"), "system"),
        "period_start": (provision.get("period") or {}).get("start"),
    }


def _appointment(r: Resource) -> Row:
    actors = [p.get("actor") or {} for p in r.get("participant") or []]
    return {
        "id": r["id"],
        "patient_id": first_ref_id(actors, "Patient"),
        "practitioner_id": first_ref_id(actors, "Practitioner"),
        "status": r.get("status"),
        "reason_code": first_code(r.get("reasonCode")),
        "start_time": r.get("start"),
        "end_time": r.get("end"),
        "created": r.get("created"),
    }


def _practitioner(r: Resource) -> Row:
    name = preferred(r.get("name"), lambda n: n.get("use") == "official")
    npi = [i.get("value") for i in r.get("identifier") or [] if i.get("system") == NPI]
    return {
        "id": r["id"],
        "npi": npi[0] if npi else None,
        "family": name.get("family"),
        "given": _joined(name.get("given"), " "),
        "gender": r.get("gender"),
    }


def _organization(r: Resource) -> Row:
    npi = [i.get("value") for i in r.get("identifier") or [] if i.get("system") == NPI]
    return {
        "id": r["id"],
        "name": r.get("name"),
        "type_code": first_code(r.get("type")),
        "npi": npi[0] if npi else None,
        "part_of_id": ref_id(r.get("partOf"), "Organization"),
    }


def _communication(r: Resource) -> Row:
    texts = [p["contentString"] for p in r.get("payload") or [] if "contentString" in p]
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("subject"), "Patient"),
        "sent": r.get("sent"),
        "category_code": first_code(r.get("category")),
        "payload_text": _joined(texts, " "),
        "sender_reference": (r.get("sender") or {}).get("reference"),
        "about_appointment_id": first_ref_id(r.get("about"), "Appointment"),
    }


def _device(r: Resource) -> Row:
    carriers = r.get("udiCarrier") or [{}]
    return {
        "id": r["id"],
        "patient_id": ref_id(r.get("patient"), "Patient"),
        "type_code": first_code(r.get("type")),
        "udi_device_identifier": carriers[0].get("deviceIdentifier"),
        "serial_number": r.get("serialNumber"),
    }


ORACLES: dict[str, Callable[[Resource], Row]] = {
    "patient": _patient,
    "encounter": _encounter,
    "condition": _condition,
    "observation": _observation,
    "procedure": _procedure,
    "immunization": _immunization,
    "medication_request": _medication_request,
    "coverage": _coverage,
    "consent": _consent,
    "appointment": _appointment,
    "practitioner": _practitioner,
    "organization": _organization,
    "communication": _communication,
    "device": _device,
}
"""Per-resource views: the expected values of some columns, keyed like the view's `id` column."""


def element_tuples(table: str, resources: list[Resource]) -> Iterator[tuple[Any, ...]]:
    """Per-element views: the expected (key, …) tuples, compared as a multiset with the view's rows."""
    for r in resources:
        if table == "patient_identifier":
            for i in r.get("identifier") or []:
                yield r["id"], i.get("system"), i.get("value"), first_code(i.get("type")), i.get("use")
        elif table == "patient_telecom":
            for t in r.get("telecom") or []:
                yield r["id"], t.get("system"), t.get("value"), t.get("use"), t.get("rank")
        elif table == "patient_contact":
            for index, c in enumerate(r.get("contact") or []):
                phones = [t for t in c.get("telecom") or [] if t.get("system") in ("phone", "sms")]
                emails = [t for t in c.get("telecom") or [] if t.get("system") == "email"]
                yield (
                    r["id"],
                    index,
                    first_code(c.get("relationship")),
                    (c.get("name") or {}).get("family"),
                    " ".join((c.get("name") or {}).get("given") or []) or None,
                    phones[0]["value"] if phones else None,
                    emails[0]["value"] if emails else None,
                    (c.get("address") or {}).get("postalCode"),
                )
        elif table == "patient_name":
            for index, n in enumerate(r.get("name") or []):
                given = " ".join(g for g in n.get("given") or [] if g) or None
                suffix = " ".join(g for g in n.get("suffix") or [] if g) or None
                yield r["id"], index, n.get("use"), n.get("family"), given, suffix
        elif table == "observation_component":
            for index, c in enumerate(r.get("component") or []):
                q = c.get("valueQuantity") or {}
                yield r["id"], index, first_code(c.get("code")), q.get("value"), q.get("unit"), q.get("code")
        elif table == "questionnaire_response_item":
            yield from _answers(r["id"], r.get("item"))


def _answers(qr_id: str, items: list[Resource] | None) -> Iterator[tuple[Any, ...]]:
    for item in items or []:
        answers = item.get("answer") or [{}]
        for answer in answers:
            coding = answer.get("valueCoding") or {}
            yield (
                qr_id,
                item.get("linkId"),
                answer.get("valueString"),
                answer.get("valueInteger"),
                answer.get("valueBoolean"),
                answer.get("valueDate"),
                coding.get("code"),
            )
        yield from _answers(qr_id, item.get("item"))
        for answer in answers:
            yield from _answers(qr_id, answer.get("item"))


ELEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "patient_identifier": ("patient_id", "system", "value", "type_code", "use"),
    "patient_telecom": ("patient_id", "system", "value", "use", "rank"),
    "patient_name": ("patient_id", "name_index", "use", "family", "given", "suffix"),
    "patient_contact": (
        "patient_id",
        "contact_index",
        "relationship_code",
        "family",
        "given",
        "phone",
        "email",
        "address_postal_code",
    ),
    "observation_component": (
        "observation_id",
        "component_index",
        "code",
        "value_quantity_value",
        "value_quantity_unit",
        "value_quantity_code",
    ),
    "questionnaire_response_item": (
        "questionnaire_response_id",
        "item_link_id",
        "answer_value_string",
        "answer_value_integer",
        "answer_value_boolean",
        "answer_value_date",
        "answer_value_coding_code",
    ),
}
"""The view columns that `element_tuples` yields, in the same order."""


def row_mismatches(table: str, rows: list[Row], resources: list[Resource]) -> list[str]:
    """Where the view's rows disagree with the oracle (empty when they agree); a few examples at most."""
    if table in ELEMENT_COLUMNS:
        got = Counter(tuple(row[c] for c in ELEMENT_COLUMNS[table]) for row in rows)
        want = Counter(element_tuples(table, resources))
        return [f"missing {t}" for t in (want - got)][:5] + [f"unexpected {t}" for t in (got - want)][:5]
    oracle = ORACLES[table]
    by_id = {row["id"]: row for row in rows}
    problems = []
    for resource in resources:
        expected = oracle(resource)
        actual = {key: by_id.get(resource["id"], {}).get(key) for key in expected}
        if actual != expected:
            diff = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
            problems.append(f"{resource['id']}: (got, expected) {diff}")
    return problems[:5]
