"""FHIR readers: NDJSON, Bundles, deleted[] files; every record kept or quarantined with its reason."""

from __future__ import annotations

import orjson
import polars as pl

from pipelines.bronze.fhir_documents import read_fhir_deleted_ndjson, read_fhir_document, read_fhir_documents
from pipelines.bronze.fhir_reader import read_fhir_ndjson
from tests.conftest import observation, patient


def ndjson(*records: object) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records) + b"\n"


def reasons(result) -> dict[int, str]:  # line → reason code
    return dict(
        zip(result.quarantine["line"].to_list(), result.quarantine["reason_code"].to_list(), strict=True)
    )


def test_clean_file_is_kept_whole_with_keys() -> None:
    data = ndjson(patient("p1"), observation("o1", "p1"), {"resourceType": "Practitioner", "id": "dr1"})
    result = read_fhir_ndjson(data)
    assert result.balanced and result.quarantine.is_empty()
    rows = result.bronze.sort("line")
    assert rows["resource_type"].to_list() == ["Patient", "Observation", "Practitioner"]
    assert rows["patient_key"].to_list() == ["Patient/p1", "Patient/p1", None]
    assert rows["version_id"][0] == "1"
    assert str(rows["last_updated"][0]) == "2026-01-02 03:04:05+00:00"
    assert orjson.loads(rows["raw"][1]) == observation("o1", "p1")  # lossless raw text


def test_every_defect_is_quarantined_with_its_reason() -> None:
    data = ndjson(
        patient("p1"),  # 1 ok
        b'{"resourceType":"Patient","id":"p2"',  # 2 truncated
        b"[1,2]",  # 3 array
        {"resourceType": "Observation", "id": 12, "subject": {"reference": "Patient/p1"}},  # 4 id number
        {"resourceType": "Observation", "id": "o5", "subject": "Patient/p1"},  # 5 subject string
        {"resourceType": "Patientt", "id": "x6"},  # 6 unknown type
        {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}},  # 7 no id
        observation("o8", "nobody"),  # 8 orphan
        b'{"resourceType":"Patient","id":"\xff"}',  # 9 invalid utf-8
        {"id": "x10"},  # 10 no resourceType
        {"resourceType": "Observation", "id": "bad id!"},  # 11 invalid id
        {**observation("o12", "p1"), "meta": {"lastUpdated": 20260101}},  # 12 lastUpdated number
        {**observation("o13", "p1"), "meta": {"lastUpdated": "yesterday"}},  # 13 not an instant
        b"null",  # 14 null
        b'{"resourceType":"Patient","id":"p15","id":"p16"}',  # 15 duplicate member
        observation("o16", "p1"),  # 16 ok
        b'{"resourceType":"Observation","id":"o17","valueQuantity":{"value":NaN}}',  # 17 NaN
        {**observation("o18", "p1"), "note": [{"text": "value: NaN, Infinity"}]},  # 18 ok: words in a string
    )
    result = read_fhir_ndjson(data, known_patients=pl.Series([], dtype=pl.String))
    assert result.balanced
    assert result.records_in == 18
    assert sorted(result.bronze["line"].to_list()) == [1, 16, 18]
    assert reasons(result) == {
        2: "invalid_json",
        3: "not_an_object",
        4: "invalid_field_type",
        5: "invalid_field_type",
        6: "unknown_resource_type",
        7: "missing_id",
        8: "unknown_patient_reference",
        9: "invalid_utf8",
        10: "missing_resource_type",
        11: "invalid_id",
        12: "invalid_field_type",
        13: "invalid_field_type",
        14: "not_an_object",
        15: "invalid_json",
        17: "invalid_json",
    }
    raw_by_line = dict(
        zip(result.quarantine["line"].to_list(), result.quarantine["raw"].to_list(), strict=True)
    )
    assert raw_by_line[9] == b'{"resourceType":"Patient","id":"\xff"}'  # bytes kept exactly


def test_reasons_do_not_echo_record_values() -> None:
    secret = "Zebediah-Quarantine-Name"
    data = ndjson(
        {"resourceType": "Patient", "id": 5, "name": [{"family": secret}]},
        {
            "resourceType": "Patient",
            "id": "p1",
            "birthDate": 19700101,
            "name": [{"family": secret}],
            "gender": 3,
            "subject": "x",
        },
        {"resourceType": secret, "id": "p2"},
    )
    result = read_fhir_ndjson(data)
    assert result.quarantine.height == 3
    for reason in result.quarantine["reason"].to_list():
        assert secret not in reason and "19700101" not in reason


def test_legal_shape_outside_the_fast_schema_is_accepted_after_validation() -> None:
    account = {
        "resourceType": "Account",
        "id": "acc1",
        "status": "active",
        "subject": [{"reference": "Patient/p1"}],  # a list in Account, an object elsewhere
    }
    result = read_fhir_ndjson(ndjson(patient("p1"), account))
    assert result.quarantine.is_empty()
    assert sorted(result.bronze["resource_type"].to_list()) == ["Account", "Patient"]


def test_known_patients_from_earlier_ingests_satisfy_references() -> None:
    result = read_fhir_ndjson(ndjson(observation("o1", "p9")), known_patients=pl.Series(["Patient/p9"]))
    assert result.bronze.height == 1 and result.quarantine.is_empty()


def test_absolute_and_versioned_patient_references_are_normalized() -> None:
    obs = observation("o1", "p1")
    obs["subject"] = {"reference": "https://ehr.example.org/fhir/Patient/p1/_history/3"}
    appointment = {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "participant": [{"actor": {"reference": "Practitioner/d1"}}, {"actor": {"reference": "Patient/p1"}}],
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "c1",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
    }
    result = read_fhir_ndjson(ndjson(patient("p1"), obs, appointment, coverage))
    assert result.bronze["patient_key"].to_list() == ["Patient/p1"] * 4


def bundle(entries: list[object], kind: str = "transaction") -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})


def test_bundle_urn_uuid_references_are_resolved() -> None:
    pid, oid = "7d0b6d8c-0000-4000-8000-000000000001", "7d0b6d8c-0000-4000-8000-000000000002"
    obs = observation(oid, "ignored")
    obs["subject"] = {"reference": f"urn:uuid:{pid}"}
    obs["encounter"] = {"reference": "urn:uuid:not-in-bundle"}
    data = bundle(
        [
            {
                "fullUrl": f"urn:uuid:{pid}",
                "resource": patient(pid),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"urn:uuid:{oid}",
                "resource": obs,
                "request": {"method": "POST", "url": "Observation"},
            },
        ]
    )
    result = read_fhir_document(data, known_patients=pl.Series([], dtype=pl.String))
    assert result.balanced and result.quarantine.is_empty()
    resolved = orjson.loads(result.bronze.filter(pl.col("resource_type") == "Observation")["raw"][0])
    assert resolved["subject"]["reference"] == f"Patient/{pid}"
    assert resolved["encounter"]["reference"] == "urn:uuid:not-in-bundle"  # unknown targets stay as they are
    assert result.bronze["patient_key"].to_list() == [f"Patient/{pid}"] * 2
    assert result.bronze["entry"].to_list() == [0, 1]


def test_bundle_entry_without_id_takes_its_urn_uuid() -> None:
    resource = patient("x")
    del resource["id"]
    data = bundle([{"fullUrl": "urn:uuid:abc-1", "resource": resource}])
    result = read_fhir_document(data)
    assert result.bronze["resource_id"].to_list() == ["abc-1"]


def test_bundle_entry_defects() -> None:
    data = bundle(
        [
            {"fullUrl": "urn:uuid:p1", "resource": patient("p1")},
            {"fullUrl": "urn:uuid:x"},  # no resource, not a delete
            "just a string",
            {"resource": {"resourceType": "Foo", "id": "f1"}},
            {"request": {"method": "DELETE", "url": "Observation/o9"}},
        ]
    )
    result = read_fhir_document(data)
    assert result.records_in == 5 and result.balanced
    by_entry = dict(
        zip(result.quarantine["entry"].to_list(), result.quarantine["reason_code"].to_list(), strict=True)
    )
    assert by_entry == {1: "missing_resource", 2: "not_an_object", 3: "unknown_resource_type"}
    delete = result.bronze.filter(pl.col("operation") == "delete")
    assert delete.select("resource_type", "resource_id").row(0) == ("Observation", "o9")


def test_broken_bundle_file_is_one_quarantined_record() -> None:
    result = read_fhir_document(b'{"resourceType": "Bundle", "entry": [')
    assert result.records_in == 1 and result.quarantine["reason_code"].to_list() == ["invalid_json"]
    assert result.quarantine["raw"][0] == b'{"resourceType": "Bundle", "entry": ['


def test_single_resource_document() -> None:
    result = read_fhir_document(orjson.dumps(patient("p1")))
    assert result.bronze["resource_id"].to_list() == ["p1"]


def test_deleted_file_yields_delete_records() -> None:
    deletions = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Observation/o1"}},
            {"request": {"method": "DELETE", "url": "Patient/p1"}},
        ],
    }
    data = ndjson(deletions, b"{broken", {"resourceType": "Patient", "id": "p2"})
    result = read_fhir_deleted_ndjson(data)
    assert result.records_in == 4 and result.balanced
    assert result.bronze.select(
        "line", "entry", "operation", "resource_type", "resource_id", "patient_key"
    ).rows() == [
        (1, 0, "delete", "Observation", "o1", None),
        (1, 1, "delete", "Patient", "p1", "Patient/p1"),
    ]
    assert sorted(result.quarantine["reason_code"].to_list()) == ["invalid_field_type", "invalid_json"]


def test_only_reference_values_are_rewritten_and_only_within_their_bundle() -> None:
    pid = "11111111-0000-4000-8000-000000000001"
    document = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{pid}"},
        "subject": {"reference": f"urn:uuid:{pid}"},
        "content": [{"attachment": {"url": "https://x.example/1"}}],
    }
    first = bundle([{"fullUrl": f"urn:uuid:{pid}", "resource": patient(pid)}, {"resource": document}])
    stray = observation("o2", "ignored")
    stray["subject"] = {"reference": f"urn:uuid:{pid}"}  # names an entry of the *other* Bundle
    second = bundle([{"resource": stray}])
    results = read_fhir_documents([first, second])
    kept = orjson.loads(results[0].bronze.filter(pl.col("resource_type") == "DocumentReference")["raw"][0])
    assert kept["subject"]["reference"] == f"Patient/{pid}"
    assert kept["masterIdentifier"]["value"] == f"urn:uuid:{pid}"  # not a reference: untouched
    # fullUrls do not leak across Bundles: unresolved, the Observation names no patient (issue 25)
    assert results[1].bronze.is_empty()
    assert results[1].quarantine["reason_code"].to_list() == ["no_patient_reference"]
    other = orjson.loads(results[1].quarantine["raw"][0])
    assert other["subject"]["reference"] == f"urn:uuid:{pid}"
    assert [r.records_in for r in results] == [2, 1]
