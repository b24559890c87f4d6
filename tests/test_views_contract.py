"""The silver ViewDefinitions (data_contracts/views): well-formed contracts that give the right rows.

Every view is checked as a file (keys, names, types, descriptions), run on no resources, run on a
generated landing folder (row counts and values against the raw JSON), and run on hand-written
resources that reach the branches generated data never takes (choice types, fallbacks, nesting).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.generate import generate_landing
from pipelines.sof import ViewDefinitionError, run_view
from tests.views_support import (
    ROWS_PER_RESOURCE,
    by_type,
    expected_rows_per_key,
    landing_resources,
    load_view,
    load_views,
    row_mismatches,
    view_columns,
    view_paths,
)

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
FHIR_PRIMITIVES = {
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "integer64",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
}
REQUIRED_TABLES = {  # ARCHITECTURE.md, "Lake layout": silver tables that must come from a view
    "patient",
    "patient_identifier",
    "encounter",
    "condition",
    "observation",
    "observation_component",
    "procedure",
    "immunization",
    "medication_request",
    "coverage",
    "consent",
    "appointment",
    "questionnaire_response_item",
    "communication",
}
VIEWS = load_views()
TABLES = sorted(VIEWS)
PATHS = {path.stem: path for path in view_paths()}


def test_every_required_table_has_a_view() -> None:
    assert set(TABLES) >= REQUIRED_TABLES


@pytest.mark.parametrize("table", TABLES)
def test_view_file_is_a_valid_contract(table: str) -> None:
    view = load_view(PATHS[table])
    assert view["resourceType"] == "ViewDefinition"
    assert view["name"] == table == PATHS[table].stem
    assert SNAKE_CASE.match(view["name"])
    assert view["status"] == "active"
    assert isinstance(view["resource"], str) and view["resource"][:1].isupper()
    assert isinstance(view["description"], str) and view["description"].strip()
    assert isinstance(view["select"], list) and view["select"]

    columns = view_columns(view)
    names = [c["name"] for c in columns]
    assert len(names) == len(set(names)), f"repeated column names in {table}"
    for column in columns:
        assert SNAKE_CASE.match(column["name"]), column["name"]
        assert column.get("type") in FHIR_PRIMITIVES, f"{table}.{column['name']}: type {column.get('type')}"
        assert isinstance(column.get("description"), str) and column["description"].strip(), column["name"]
        assert not column.get("collection"), f"{table}.{column['name']}: silver columns are scalars"
    # the first column is the key of the resource a row came from (id, or <resource>_id per element)
    assert columns[0]["path"] == "getResourceKey()"
    if table in ROWS_PER_RESOURCE:
        assert columns[0]["name"].endswith("_id")
    else:
        assert columns[0]["name"] == "id"


@pytest.mark.parametrize("table", TABLES)
def test_view_runs_on_no_resources_and_on_a_bare_resource(table: str) -> None:
    view = VIEWS[table]
    names = [c["name"] for c in view_columns(view)]
    assert run_view(view, []) == []
    rows = run_view(view, [{"resourceType": view["resource"], "id": "bare"}])
    if table in ROWS_PER_RESOURCE:
        assert rows == []
    else:
        assert rows == [{"id": "bare"} | {name: None for name in names[1:]}]


def test_a_broken_view_is_rejected() -> None:
    """The contract test would notice a view the engine refuses (so passing it means something)."""
    broken = VIEWS["patient"] | {"select": [{"column": [{"name": "x", "path": "name.(", "type": "string"}]}]}
    with pytest.raises(ViewDefinitionError):
        run_view(broken, [])


# ---------------------------------------------------------------------------------- generated data


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Resources of a 40-person landing folder (seed 3), by type, Bundle references resolved."""
    root = tmp_path_factory.mktemp("views")
    generate_landing(root / "landing", 40, seed=3)
    return by_type(landing_resources(Path(root / "landing")))


@pytest.fixture(scope="module")
def generated_rows(generated: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {table: run_view(view, generated.get(view["resource"], [])) for table, view in VIEWS.items()}


def test_generated_data_reaches_every_view_but_device(generated: dict[str, list[dict[str, Any]]]) -> None:
    empty = sorted(t for t, v in VIEWS.items() if not generated.get(v["resource"]))
    assert empty == ["device"]  # the generator writes no Device resources; Synthea data covers it


@pytest.mark.parametrize("table", TABLES)
def test_rows_per_resource_on_generated_data(
    table: str, generated: dict[str, list[dict[str, Any]]], generated_rows: dict[str, list[dict[str, Any]]]
) -> None:
    view = VIEWS[table]
    resources = generated.get(view["resource"], [])
    key = view_columns(view)[0]["name"]
    rows = generated_rows[table]
    assert Counter(row[key] for row in rows) == expected_rows_per_key(table, resources)
    assert len(rows) == sum(expected_rows_per_key(table, resources).values())


@pytest.mark.parametrize("table", TABLES)
def test_values_match_the_raw_json(
    table: str, generated: dict[str, list[dict[str, Any]]], generated_rows: dict[str, list[dict[str, Any]]]
) -> None:
    resources = generated.get(VIEWS[table]["resource"], [])
    assert row_mismatches(table, generated_rows[table], resources) == []


def test_patient_keys_resolve(generated_rows: dict[str, list[dict[str, Any]]]) -> None:
    """Every clinical row names a Patient of the data (EHR B's urn:uuid references included)."""
    patients = {row["id"] for row in generated_rows["patient"]}
    encounters = {row["id"] for row in generated_rows["encounter"]}
    for table, rows in generated_rows.items():
        if rows and "patient_id" in rows[0]:
            assert {row["patient_id"] for row in rows} <= patients, table
        if rows and "encounter_id" in rows[0]:
            assert {row["encounter_id"] for row in rows} - {None} <= encounters, table


def test_spot_checks(
    generated: dict[str, list[dict[str, Any]]], generated_rows: dict[str, list[dict[str, Any]]]
) -> None:
    """A few values read straight from one resource each, as a reader of the JSON would."""
    patient = generated["Patient"][0]
    row = next(r for r in generated_rows["patient"] if r["id"] == patient["id"])
    assert row["birth_date"] == patient["birthDate"]
    assert row["last_updated"] == patient["meta"]["lastUpdated"]

    observation = next(o for o in generated["Observation"] if "valueQuantity" in o)
    row = next(r for r in generated_rows["observation"] if r["id"] == observation["id"])
    assert row["value_quantity_value"] == observation["valueQuantity"]["value"]
    assert row["value_quantity_unit"] == observation["valueQuantity"]["unit"]

    encounter = generated["Encounter"][-1]
    row = next(r for r in generated_rows["encounter"] if r["id"] == encounter["id"])
    assert row["period_start"] == encounter["period"]["start"]

    opt_outs = generated_rows["consent"]
    assert opt_outs and {r["provision_type"] for r in opt_outs} == {"deny"}
    assert {r["provision_code_system"] for r in opt_outs} == {"urn:patient-insights:contact-channel"}
    assert {r["provision_code"] for r in opt_outs} <= {"email", "sms", "phone", "mail", "all"}

    response = next(q for q in generated["QuestionnaireResponse"] if q.get("item"))
    answers = {
        (r["item_link_id"], r["answer_value_integer"], r["answer_value_string"])
        for r in generated_rows["questionnaire_response_item"]
        if r["questionnaire_response_id"] == response["id"]
    }
    item = response["item"][0]
    answer = item["answer"][0]
    assert (item["linkId"], answer.get("valueInteger"), answer.get("valueString")) in answers

    panel = next(o for o in generated["Observation"] if o.get("component"))
    components = sorted(
        (r["component_index"], r["value_quantity_value"])
        for r in generated_rows["observation_component"]
        if r["observation_id"] == panel["id"]
    )
    assert components == [(i, c["valueQuantity"]["value"]) for i, c in enumerate(panel["component"])]


# ---------------------------------------------------------------------- branches generated data misses


def rows_of(table: str, *resources: dict[str, Any]) -> list[dict[str, Any]]:
    """The view's rows over hand-written resources, without the columns that are empty."""
    return [
        {k: v for k, v in row.items() if v is not None} for row in run_view(VIEWS[table], list(resources))
    ]


def test_patient_prefers_official_name_home_address_and_preferred_language() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "deceasedBoolean": True,
        "name": [
            {"use": "maiden", "family": "Old", "given": ["Ann"]},
            {"use": "official", "family": "New", "given": ["Ann", "Marie"]},
        ],
        "address": [
            {"use": "work", "line": ["1 Work St"], "city": "Worktown"},
            {"use": "home", "line": ["2 Home St", "Apt 3"], "city": "Hometown", "postalCode": "10001"},
        ],
        "communication": [
            {"language": {"coding": [{"code": "en"}]}},
            {"language": {"coding": [{"code": "es"}]}, "preferred": True},
        ],
        "generalPractitioner": [{"reference": "Organization/o1"}, {"reference": "Practitioner/dr2"}],
    }
    fallback = {
        "resourceType": "Patient",
        "id": "p2",
        "name": [{"family": "Solo"}],
        "address": [{"use": "work", "city": "Worktown"}],
        "communication": [{"language": {"coding": [{"code": "fr"}]}}],
    }
    rows = {r["id"]: r for r in rows_of("patient", patient, fallback)}
    assert rows["p1"] == {
        "id": "p1",
        "deceased_boolean": True,
        "family": "New",
        "given": "Ann Marie",
        "language": "es",
        "general_practitioner_id": "dr2",
        "address_line": "2 Home St, Apt 3",
        "address_city": "Hometown",
        "address_postal_code": "10001",
    }
    # no given name is an empty value, not an empty string
    assert rows["p2"] == {"id": "p2", "family": "Solo", "language": "fr", "address_city": "Worktown"}


def test_observation_value_and_effective_choices() -> None:
    observations = [
        {
            "resourceType": "Observation",
            "id": "period",
            "effectivePeriod": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-02T08:00:00Z"},
            "valueString": "positive",
        },
        {
            "resourceType": "Observation",
            "id": "instant",
            "effectiveInstant": "2024-02-01T08:00:00Z",
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]},
            "device": {"reference": "Device/d1"},
        },
        {"resourceType": "Observation", "id": "boolean", "valueBoolean": False},
        {
            "resourceType": "Observation",
            "id": "integer",
            "effectiveDateTime": "2024-03-01",
            "valueInteger": 7,
        },
    ]
    assert rows_of("observation", *observations) == [
        {
            "id": "period",
            "effective_date_time": "2024-01-01T08:00:00Z",
            "effective_period_end": "2024-01-02T08:00:00Z",
            "value_string": "positive",
        },
        {
            "id": "instant",
            "effective_date_time": "2024-02-01T08:00:00Z",
            "value_codeable_concept_code": "260385009",
            "value_codeable_concept_system": "http://snomed.info/sct",
            "device_id": "d1",
        },
        {"id": "boolean", "value_boolean": False},
        {"id": "integer", "effective_date_time": "2024-03-01", "value_integer": 7},
    ]


def test_questionnaire_items_at_any_depth_and_without_answers() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": "q1",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {
                "linkId": "g1",
                "text": "Group",
                "item": [
                    {"linkId": "g1.1", "answer": [{"valueCoding": {"system": "urn:s", "code": "LA1"}}]},
                    {"linkId": "g1.2", "answer": [{"valueDate": "2020-01-01"}, {"valueDate": "2021-01-01"}]},
                ],
            },
            {
                "linkId": "q2",
                "answer": [
                    {"valueBoolean": True, "item": [{"linkId": "q2.1", "answer": [{"valueDecimal": 1.5}]}]}
                ],
            },
            {"linkId": "q3", "text": "Unanswered"},
        ],
    }
    rows = rows_of("questionnaire_response_item", response)
    answers = sorted(
        ((r["item_link_id"], {k: v for k, v in r.items() if k.startswith("answer_")}) for r in rows), key=str
    )
    assert answers == [
        ("g1", {}),
        ("g1.1", {"answer_value_coding_code": "LA1", "answer_value_coding_system": "urn:s"}),
        ("g1.2", {"answer_value_date": "2020-01-01"}),
        ("g1.2", {"answer_value_date": "2021-01-01"}),
        ("q2", {"answer_value_boolean": True}),
        ("q2.1", {"answer_value_decimal": 1.5}),
        ("q3", {}),
    ]
    assert {(r["questionnaire_response_id"], r["patient_id"]) for r in rows} == {("q1", "p1")}
    assert len(rows) == ROWS_PER_RESOURCE["questionnaire_response_item"](response)


def test_preferred_code_systems_and_references() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {
            "coding": [
                {"system": "urn:local", "code": "L1"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"},
            ]
        },
    }
    assert rows_of("condition", condition) == [
        {"id": "c1", "code": "E11.9", "code_system": "http://hl7.org/fhir/sid/icd-10-cm"}
    ]
    immunization = {
        "resourceType": "Immunization",
        "id": "i1",
        "vaccineCode": {
            "coding": [
                {"system": "http://hl7.org/fhir/sid/ndc", "code": "N"},
                {"system": "http://hl7.org/fhir/sid/cvx", "code": "140"},
            ]
        },
    }
    assert rows_of("immunization", immunization) == [
        {"id": "i1", "vaccine_code": "140", "vaccine_system": "http://hl7.org/fhir/sid/cvx"}
    ]
    referenced = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "medicationReference": {"reference": "Medication/med1"},
        "requester": {"reference": "PractitionerRole/r1"},
    }
    assert rows_of("medication_request", referenced) == [{"id": "m1", "medication_reference_id": "med1"}]
    procedure = {
        "resourceType": "Procedure",
        "id": "pr1",
        "performedPeriod": {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z"},
    }
    assert rows_of("procedure", procedure) == [
        {"id": "pr1", "performed_start": "2024-01-01T10:00:00Z", "performed_end": "2024-01-01T11:00:00Z"}
    ]
    message = {
        "resourceType": "Communication",
        "id": "k1",
        "payload": [{"contentString": "a"}, {"contentAttachment": {"url": "urn:x"}}, {"contentString": "b"}],
        "recipient": [{"reference": "Group/g1"}, {"reference": "Patient/p9"}],
    }
    assert rows_of("communication", message) == [
        {"id": "k1", "payload_text": "a b", "recipient_id": "g1", "recipient_reference": "Group/g1"}
    ]
    device = {
        "resourceType": "Device",
        "id": "d1",
        "patient": {"reference": "Patient/p1"},
        "udiCarrier": [{"deviceIdentifier": "0001"}, {"deviceIdentifier": "0002"}],
        "manufacturer": "Acme",
        "modelNumber": "BP-1",
    }
    assert rows_of("device", device) == [
        {
            "id": "d1",
            "patient_id": "p1",
            "udi_device_identifier": "0001",
            "manufacturer": "Acme",
            "model_number": "BP-1",
        }
    ]
