"""Device and service-center readers: Open mHealth, iHealth payloads, enrolment CSV, conversations."""

from __future__ import annotations

import orjson

from pipelines.bronze.device_reader import (
    read_enrolment_csv,
    read_ihealth_payload,
    read_omh_document,
    read_omh_ndjson,
)
from pipelines.bronze.feedback_reader import read_conversations_ndjson


def omh_point(
    point_id: str | None, user: str | None = "u1", schema: str = "blood-pressure"
) -> dict[str, object]:
    header: dict[str, object] = {
        "creation_date_time": "2026-01-01T08:00:00Z",
        "schema_id": {"namespace": "omh", "name": schema, "version": "4.0"},
        "acquisition_provenance": {"source_name": "cuff app", "modality": "sensed", "device_id": "dev-1"},
    }
    if point_id is not None:
        header["id"] = point_id
    if user is not None:
        header["user_id"] = user
    body = {
        "systolic_blood_pressure": {"value": 128, "unit": "mmHg"},
        "diastolic_blood_pressure": {"value": 81, "unit": "mmHg"},
        "effective_time_frame": {"date_time": "2026-01-01T07:59:00Z"},
    }
    return {"header": header, "body": body}


def test_omh_ndjson_keys_and_defects() -> None:
    lines = [
        orjson.dumps(omh_point("a1")),
        orjson.dumps(omh_point(None)),
        b'{"header": {"id": "x"',
        orjson.dumps({"body": {}}),
        orjson.dumps(omh_point("a5", user=None)),
        orjson.dumps({"header": {"id": 7, "schema_id": {"name": "heart-rate"}}, "body": {}}),
    ]
    result = read_omh_ndjson(b"\n".join(lines), folder_user="folder-user")
    assert result.balanced and result.records_in == 6
    kept = result.bronze.sort("line")
    assert kept.select("line", "record_type", "record_id", "device_id", "patient_key").rows() == [
        (1, "blood-pressure", "a1", "dev-1", "u1"),
        (5, "blood-pressure", "a5", "dev-1", "folder-user"),
    ]
    assert dict(zip(result.quarantine["line"], result.quarantine["reason_code"], strict=True)) == {
        2: "missing_id",
        3: "invalid_json",
        4: "not_a_data_point",
        6: "invalid_field_type",
    }


def test_omh_document_single_and_list() -> None:
    assert read_omh_document(orjson.dumps(omh_point("a1")), None).bronze.height == 1
    result = read_omh_document(orjson.dumps([omh_point("a1"), 5, omh_point("a3")]), None)
    assert result.bronze["entry"].to_list() == [0, 2]
    assert result.quarantine["reason_code"].to_list() == ["not_an_object"]


def test_ihealth_payload_items_carry_their_unit_context() -> None:
    payload = {
        "BPDataList": [
            {"DataID": "d1", "HP": 120, "LP": 80, "MDate": 1442491463, "TimeZone": "-0800"},
            {"HP": 130},
            "oops",
        ],
        "BPUnit": 0,
        "RecordCount": 3,
    }
    result = read_ihealth_payload(orjson.dumps(payload), folder_user="ih-user-9")
    assert result.balanced and result.records_in == 3
    row = result.bronze.row(0, named=True)
    assert (row["record_type"], row["record_id"], row["patient_key"]) == ("BPDataList", "d1", "ih-user-9")
    assert orjson.loads(row["payload_context"]) == {"BPUnit": 0, "RecordCount": 3}
    assert sorted(result.quarantine["reason_code"].to_list()) == ["missing_id", "not_an_object"]


def test_ihealth_empty_and_unrecognized_payloads() -> None:
    empty = read_ihealth_payload(orjson.dumps({"WeightDataList": [], "RecordCount": 0}), "u")
    assert empty.records_in == 0 and empty.balanced and empty.bronze.is_empty()
    other = read_ihealth_payload(orjson.dumps({"activities": []}), "u")
    assert other.records_in == 1 and other.quarantine["reason_code"].to_list() == ["unrecognized_format"]
    broken = read_ihealth_payload(b"{", "u")
    assert broken.quarantine["reason_code"].to_list() == ["invalid_json"]


def test_enrolment_csv_rows_and_malformed_rows() -> None:
    data = (
        b"vendor,vendor_user_id,device_id,device_type,patient_source,patient_id,enrolled_on,unenrolled_on\r\n"
        b"ihealth,u1,d1,bp_cuff,ehr_a,p1,2025-01-01,\r\n"
        b"\r\n"
        b"omh_app,u2,d2,scale,ehr_b,p2\r\n"
        b'omh_app,"u3",d3,scale,ehr_b,p3,2025-02-01,2025-03-01\r\n'
        b"omh_app,,d4,scale,ehr_b,p4,2025-02-01,\r\n"
    )
    result = read_enrolment_csv(data)
    assert result.balanced and result.records_in == 4 and result.blank_lines == 1
    assert result.bronze.select("line", "record_id", "patient_key").rows() == [
        (2, "ihealth/u1/d1", "u1"),
        (5, "omh_app/u3/d3", "u3"),
    ]
    assert orjson.loads(result.bronze["raw"][1])["unenrolled_on"] == "2025-03-01"
    assert dict(zip(result.quarantine["line"], result.quarantine["reason_code"], strict=True)) == {
        4: "malformed_csv_row",
        6: "missing_id",
    }


def test_enrolment_csv_without_required_columns() -> None:
    result = read_enrolment_csv(b"a,b\n1,2\n3,4\n")
    assert result.records_in == 2 and result.quarantine["reason_code"].unique().to_list() == [
        "unrecognized_format"
    ]


def conversation(cid: str | None, **extra: object) -> dict[str, object]:
    record: dict[str, object] = {
        "patient_source": "ehr_a",
        "patient_reference": "Patient/p1",
        "channel": "chat",
        "agent_id": "agent-3",
        "department": "billing",
        "started_at": "2026-02-03T10:00:00-05:00",
        "turns": [{"turn": 1, "speaker": "patient", "text": "My bill is wrong."}],
        **extra,
    }
    if cid is not None:
        record["conversation_id"] = cid
    return record


def test_conversations() -> None:
    data = b"\n".join(
        [
            orjson.dumps(conversation("c1")),
            orjson.dumps(conversation(None)),
            b"[]",
            orjson.dumps(conversation(5)),
        ]
    )
    result = read_conversations_ndjson(data)
    assert result.balanced
    row = result.bronze.row(0, named=True)
    assert (row["record_id"], row["patient_source"], row["patient_key"]) == ("c1", "ehr_a", "Patient/p1")
    assert str(row["occurred_at"]) == "2026-02-03 15:00:00+00:00"
    assert sorted(result.quarantine["reason_code"].to_list()) == [
        "invalid_field_type",
        "missing_id",
        "not_an_object",
    ]
