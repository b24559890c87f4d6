"""Shared directories: each EHR's Practitioners and Organizations (care sites, departments, payers) and
the service center's agents. They are drawn once per run from their own seeded streams and are small
(bounded: at most a few thousand practitioners whatever the number of patients).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pipelines.generate import names, vocab
from pipelines.generate.clock import DAY, Clock
from pipelines.generate.rng import clamp, named_rng, new_uuid
from pipelines.generate.vocab import Json

DEPARTMENTS = ("scheduling", "billing", "pharmacy", "nurse_line", "referrals")

_PAYERS = (
    # (kind, name) — invented plan names plus the public programmes
    ("medicare", "Medicare Part B"),
    ("medicare", "Silverleaf Medicare Advantage"),
    ("medicaid", "State Medicaid Fee-for-Service"),
    ("medicaid", "Harborlight Community Health Plan (Medicaid)"),
    ("commercial", "Northwind Health Plan"),
    ("commercial", "Evergreen Mutual Insurance"),
    ("commercial", "Summit Commercial PPO"),
    ("commercial", "Bluestone Employee Health"),
)
_SITES = {
    "ehr_a": ("Riverbend Regional Medical Center", "hospital-a.example.org"),
    "ehr_b": ("Lakeshore Community Clinics", "clinic-b.example.org"),
}


@dataclass
class Directory:
    """One source's practitioners and organizations, with the role lists the generator picks from."""

    source: str
    practitioners: list[Json] = field(default_factory=list)
    organizations: list[Json] = field(default_factory=list)
    pcps: list[str] = field(default_factory=list)
    emergency: list[str] = field(default_factory=list)
    hospitalists: list[str] = field(default_factory=list)
    specialists: list[str] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)
    """Practitioner id → "Dr. Family" (used in reminder texts)."""
    manner: dict[str, float] = field(default_factory=dict)
    """Practitioner id → bedside-manner effect on survey ratings (about -1.5 .. +1)."""
    root: str = ""
    emergency_dept: str = ""
    inpatient_dept: str = ""
    imaging_dept: str = ""
    clinics: list[str] = field(default_factory=list)
    payers: dict[str, list[str]] = field(default_factory=dict)

    def ref(self, resource_type: str, rid: str) -> dict[str, str]:
        """A literal reference to a directory resource (the same in both sources' formats)."""
        return {"reference": f"{resource_type}/{rid}"}


def _npi(rng: random.Random) -> str:
    """A 10-digit NPI with a valid check digit (Luhn over the prefix 80840 and the first nine digits)."""
    body = f"{rng.choice('12')}{rng.randrange(10**8):08d}"
    digits = [int(c) for c in "80840" + body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def _meta(rng: random.Random, clock: Clock) -> Json:
    return {"versionId": "1", "lastUpdated": clock.instant(clock.now - rng.randrange(30, 900) * DAY)}


def build_directory(seed: int, source: str, patients: int, clock: Clock) -> Directory:
    """Practitioners and Organizations of `source` ("ehr_a" or "ehr_b"), sized for `patients` people."""
    rng = named_rng(seed, f"directory/{source}")
    d = Directory(source=source)
    system_name, domain = _SITES[source]

    def org(name: str, kind: str, part_of: str | None = None, payer_code: str | None = None) -> str:
        """Add an Organization; its id."""
        oid = new_uuid(rng)
        resource: Json = {
            "resourceType": "Organization",
            "id": oid,
            "meta": _meta(rng, clock),
            "active": True,
            "type": vocab.ORGANIZATION_TYPE[kind],
            "name": name,
        }
        if kind == "pay":
            resource["identifier"] = [{"system": "urn:patient-insights:payer-id", "value": payer_code}]
        else:
            resource["identifier"] = [{"system": vocab.NPI, "value": _npi(rng)}]
            resource["telecom"] = [{"system": "phone", "value": _phone(rng), "use": "work"}]
        if part_of:
            resource["partOf"] = {"reference": f"Organization/{part_of}"}
        d.organizations.append(resource)
        return oid

    d.root = org(system_name, "prov")
    if source == "ehr_a":
        d.emergency_dept = org(f"{system_name} - Emergency Department", "dept", d.root)
        d.inpatient_dept = org(f"{system_name} - Inpatient Services", "dept", d.root)
        d.imaging_dept = org(f"{system_name} - Breast and GI Imaging Center", "dept", d.root)
        clinic_names = (
            "Primary Care North",
            "Primary Care South",
            "Internal Medicine Associates",
            "Pediatrics at Riverbend",
            "Family Medicine West",
        )
    else:
        d.emergency_dept = org(f"{system_name} - Urgent and Emergency Care", "dept", d.root)
        d.inpatient_dept = org(f"{system_name} - Community Hospital Unit", "dept", d.root)
        d.imaging_dept = org(f"{system_name} - Diagnostic Center", "dept", d.root)
        clinic_names = ("Harbor Street Clinic", "Elm Grove Family Health", "Lakeshore Pediatrics")
    d.clinics = [org(f"{system_name} - {name}", "dept", d.root) for name in clinic_names]
    for i, (kind, name) in enumerate(_PAYERS):
        d.payers.setdefault(kind, []).append(org(name, "pay", payer_code=f"PY{i + 100:04d}"))

    scale = 1.0 if source == "ehr_a" else 0.5
    roles = (
        ("pcp", int(clamp(patients * scale / 350, 6, 2500))),
        ("emergency", int(clamp(patients * scale / 2500, 3, 400))),
        ("hospitalist", int(clamp(patients * scale / 3000, 3, 300))),
        ("specialist", int(clamp(patients * scale / 2000, 4, 500))),
    )
    for role, count in roles:
        for _ in range(count):
            pid = new_uuid(rng)
            female = rng.random() < 0.5
            tradition = rng.choices(("en", "es", "zh", "vi"), (70, 14, 10, 6))[0]
            given = rng.choice((names.FEMALE_GIVEN if female else names.MALE_GIVEN)[tradition])
            family = rng.choice(names.FAMILY[tradition])
            qual = rng.choices(("MD", "DO", "NP"), (70, 15, 15) if role == "pcp" else (85, 15, 0))[0]
            name: Json = {"use": "official", "family": family, "given": [given]}
            if qual != "NP":
                name["prefix"] = ["Dr."]
            email = f"{given[0].lower()}.{_ascii(family).lower()}{rng.randrange(10, 99)}@{domain}"
            d.practitioners.append(
                {
                    "resourceType": "Practitioner",
                    "id": pid,
                    "meta": _meta(rng, clock),
                    "identifier": [{"system": vocab.NPI, "value": _npi(rng)}],
                    "active": True,
                    "name": [name],
                    "telecom": [{"system": "email", "value": email, "use": "work"}],
                    "gender": "female" if female else "male",
                    "qualification": [{"code": vocab.QUALIFICATION[qual]}],
                }
            )
            _ROLE_LISTS[role](d).append(pid)
            d.display[pid] = f"Dr. {family}" if qual != "NP" else f"{given} {family}, NP"
            # a few practitioners are consistently rated lower (rushed, dismissive), a few higher
            d.manner[pid] = rng.choices((-1.5, -0.5, 0.0, 0.5, 1.0), (8, 17, 40, 25, 10))[0]
    return d


@dataclass(frozen=True)
class Agent:
    """A service-center agent: the department they sit in, whether they take the escalated (harder)
    queue, and how well they defuse a conversation (negative = curt)."""

    agent_id: str
    department: str
    escalation_queue: bool
    empathy: float


def build_agents(seed: int, patients: int) -> dict[str, list[Agent]]:
    """Agents per department; about one in five takes the escalation queue."""
    rng = named_rng(seed, "agents")
    per_department = int(clamp(patients / 2500, 3, 80))
    agents: dict[str, list[Agent]] = {}
    n = 0
    for department in DEPARTMENTS:
        team = []
        for _ in range(per_department):
            n += 1
            team.append(
                Agent(
                    agent_id=f"agent-{n:04d}",
                    department=department,
                    escalation_queue=rng.random() < 0.2,
                    empathy=round(rng.gauss(0.0, 0.5), 2),
                )
            )
        if not any(a.escalation_queue for a in team):
            team[0] = Agent(team[0].agent_id, department, True, team[0].empathy)
        agents[department] = team
    return agents


_ROLE_LISTS = {
    "pcp": lambda d: d.pcps,
    "emergency": lambda d: d.emergency,
    "hospitalist": lambda d: d.hospitalists,
    "specialist": lambda d: d.specialists,
}


def _phone(rng: random.Random) -> str:
    return f"({rng.choice(names.AREA_CODES)}) 555-{rng.randrange(10000):04d}"


_ASCII = str.maketrans("áéíóúÁÉÍÓÚñÑüÜ'", "aeiouAEIOUnNuU-")


def _ascii(text: str) -> str:
    return text.translate(_ASCII)
