"""Leftovers of an aborted export run that sit beside EHR A's export without being in its manifest:
a scratch file of test Patients and a partial Observation file about them. Valid FHIR, but readers
must ignore them because the manifest does not list them."""

from __future__ import annotations

import random

from pipelines.generate import vocab
from pipelines.generate.clock import DAY, Clock
from pipelines.generate.rng import new_uuid
from pipelines.generate.vocab import UCUM, Json


def scratch_resources(rng: random.Random, clock: Clock) -> tuple[list[Json], list[Json]]:
    """(test Patients, Observations about them)."""
    patients: list[Json] = []
    observations: list[Json] = []
    for i in range(3):
        pid = new_uuid(rng)
        stamp = clock.instant(clock.now - (40 + i) * DAY)
        patients.append(
            {
                "resourceType": "Patient",
                "id": pid,
                "meta": {"versionId": "1", "lastUpdated": stamp},
                "identifier": [{"system": vocab.MRN_A, "value": f"TEST{i + 1:04d}"}],
                "active": False,
                "name": [{"use": "official", "family": "Zztest", "given": [f"Interface{i + 1}"]}],
                "gender": "unknown",
                "birthDate": "1900-01-01",
            }
        )
        observations.append(
            {
                "resourceType": "Observation",
                "id": new_uuid(rng),
                "meta": {"versionId": "1", "lastUpdated": stamp},
                "status": "final",
                "category": vocab.VITAL_SIGNS,
                "code": vocab.HEART_RATE,
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": clock.dt(clock.now - (40 + i) * DAY),
                "valueQuantity": {"value": 60 + i, "unit": "/min", "system": UCUM, "code": "/min"},
            }
        )
    return patients, observations
