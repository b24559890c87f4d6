"""FHIR Observations made by a device become device readings through the silver views."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pipelines.devices.fhir_readings import fhir_device_readings
from pipelines.devices.units import normalize_units
from pipelines.silver.views import load_views
from pipelines.sof import run_view

OBSERVATIONS = [
    {
        "resourceType": "Observation",
        "id": "bp1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": "Device/cuff-1"},
        "effectiveDateTime": "2026-06-01T08:30:00-04:00",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {
                    "value": 142,
                    "unit": "mmHg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {
                    "value": 91,
                    "unit": "mmHg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
        ],
    },
    {
        "resourceType": "Observation",
        "id": "w1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": "Device/scale-1"},
        "effectiveDateTime": "2026-06-01T07:00:00Z",
        "valueQuantity": {
            "value": 176.4,
            "unit": "lb",
            "system": "http://unitsofmeasure.org",
            "code": "[lb_av]",
        },
    },
    {  # no device: a clinic measurement, not a device reading
        "resourceType": "Observation",
        "id": "clinic",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 80, "unit": "kg", "code": "kg"},
    },
]


def silver_rows(view_name: str) -> pl.DataFrame:
    view = next(v for v in load_views() if v.name == view_name)
    rows = run_view(view.definition, OBSERVATIONS)
    return pl.DataFrame(rows, schema=view.dtypes).with_columns(pl.lit("ehr_a").alias("source"))


def test_device_observations_and_their_components_become_readings() -> None:
    readings = fhir_device_readings(silver_rows("observation"), silver_rows("observation_component"))
    normalized, rejects = normalize_units(
        readings.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    )
    assert rejects.is_empty()
    by_metric = {row["metric"]: row for row in normalized.iter_rows(named=True)}
    assert set(by_metric) == {"systolic_blood_pressure", "diastolic_blood_pressure", "body_weight"}
    systolic = by_metric["systolic_blood_pressure"]
    assert (systolic["value"], systolic["unit"], systolic["device_id"]) == (142.0, "mm[Hg]", "cuff-1")
    assert systolic["effective_start"] == datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    assert systolic["time_zone"] == "-04:00"
    assert systolic["group_id"] == by_metric["diastolic_blood_pressure"]["group_id"] == "Observation/bp1"
    assert systolic["raw_ref"] == "Observation/bp1#component0"
    weight = by_metric["body_weight"]
    assert abs(weight["value"] - 80.0145) < 1e-3 and weight["original_unit"] == "[lb_av]"
    assert (weight["patient_id"], weight["link_method"]) == ("p1", "fhir_subject")


def test_no_silver_observations_means_no_fhir_readings() -> None:
    assert fhir_device_readings(pl.DataFrame(), pl.DataFrame()).is_empty()
