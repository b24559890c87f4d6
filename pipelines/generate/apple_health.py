"""Apple Health exports written from Apple's documented format (no real data): the pieces the tests build
small exports from, and whole exports of a chosen size for the benchmark (`write_export`).

The layout follows what the Health app's "Export All Health Data" writes: an XML declaration, a DOCTYPE
whose internal subset declares elements and attributes (and no entities), `HealthData` holding
`ExportDate`, `Me`, then `Record`s, `Correlation`s (each member record also written as a top-level
`Record`), `Workout`s, `ActivitySummary`s and `ClinicalRecord`s; the zip holds it as
`apple_health_export/export.xml` beside `export_cda.xml`.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 11 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData locale CDATA #REQUIRED>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate value CDATA #REQUIRED>
<!ELEMENT Me EMPTY>
<!ATTLIST Me
  HKCharacteristicTypeIdentifierDateOfBirth CDATA #REQUIRED
  HKCharacteristicTypeIdentifierBiologicalSex CDATA #REQUIRED>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type CDATA #REQUIRED
  unit CDATA #IMPLIED
  value CDATA #IMPLIED
  sourceName CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device CDATA #IMPLIED
  creationDate CDATA #IMPLIED
  startDate CDATA #REQUIRED
  endDate CDATA #REQUIRED>
<!-- Records that are members of a correlation also appear as top-level records. -->
<!ELEMENT Correlation ((MetadataEntry|Record)*)>
<!ATTLIST Correlation
  type CDATA #REQUIRED
  sourceName CDATA #REQUIRED
  startDate CDATA #REQUIRED
  endDate CDATA #REQUIRED>
<!ELEMENT MetadataEntry EMPTY>
<!ATTLIST MetadataEntry key CDATA #REQUIRED value CDATA #REQUIRED>
]>
<HealthData locale="en_US">
"""
FOOTER = "</HealthData>\n"
EXPORT_MEMBER = "apple_health_export/export.xml"
CDA_MEMBER = "apple_health_export/export_cda.xml"


def record(
    kind: str,
    unit: str,
    value: str,
    start: str,
    end: str | None = None,
    *,
    source: str,
    version: str = "16.5",
    device: str | None = None,
    created: str | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> str:
    """One top-level `<Record>` of HealthKit type `HKQuantityTypeIdentifier<kind>` (attributes already
    escaped), with its `MetadataEntry` children."""
    attributes = (
        f' <Record type="HKQuantityTypeIdentifier{kind}" sourceName="{source}" sourceVersion="{version}"'
        + (f' device="{device}"' if device else "")
        + f' unit="{unit}" creationDate="{created or start}" startDate="{start}" endDate="{end or start}"'
        f' value="{value}"'
    )
    if not metadata:
        return attributes + "/>\n"
    entries = "".join(f'  <MetadataEntry key="{key}" value="{v}"/>\n' for key, v in metadata)
    return attributes + ">\n" + entries + " </Record>\n"


def pressure(
    systolic: str,
    diastolic: str,
    at: str,
    *,
    source: str,
    copies: bool = True,
    external_id: str = "cuff-0001",
) -> str:
    """A blood-pressure correlation and, as Apple writes them, its members again as top-level records."""
    members = [
        f'  <Record type="HKQuantityTypeIdentifierBloodPressure{kind}" sourceName="{source}" unit="mmHg"'
        f' creationDate="{at}" startDate="{at}" endDate="{at}" value="{value}">\n'
        '   <MetadataEntry key="HKWasUserEntered" value="0"/>\n'
        "  </Record>\n"
        for kind, value in (("Systolic", systolic), ("Diastolic", diastolic))
    ]
    correlation = (
        f' <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="{source}"'
        f' creationDate="{at}" startDate="{at}" endDate="{at}">\n'
        f'  <MetadataEntry key="HKExternalUUID" value="{external_id}"/>\n'
        + "".join(members)
        + " </Correlation>\n"
    )
    if not copies:
        return correlation
    top = "".join(m.replace("  <Record", " <Record", 1).replace("  </Record>", " </Record>") for m in members)
    return top.replace("   <MetadataEntry", "  <MetadataEntry") + correlation


def zip_export(xml: Path, out: Path, member: str = EXPORT_MEMBER) -> None:
    """The zip the Health app makes, from an export on disk: the XML as `member` (copied in as a stream,
    deflated), beside the clinical-document copy."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with xml.open("rb") as source, archive.open(member, "w", force_zip64=True) as target:
            while block := source.read(1 << 20):
                target.write(block)
        archive.writestr(CDA_MEMBER, b"<?xml version='1.0'?><ClinicalDocument/>")


# --- whole exports of a chosen size ----------------------------------------------------------------------
@dataclass
class ExportCounts:
    """What `write_export` wrote: bytes, and top-level elements by what the platform makes of them."""

    xml_bytes: int = 0
    elements: int = 0  # top-level elements under HealthData (ExportDate and Me included)
    records: int = 0  # elements the reader keeps: carried records and blood-pressure correlations
    pressure_pairs: int = 0  # correlations among `records`


_HK_DEVICE = (
    "&lt;&lt;HKDevice: 0x{address:x}&gt;, name:{name}, manufacturer:Apple Inc., model:{model}, "
    "hardware:{hardware}, software:{software}&gt;"
)
_WATCH = ("Sam Example’s Apple Watch", "10.1", "Apple Watch", "Watch", "Watch6,1")
_PHONE = ("Sam Example’s iPhone", "17.1", "iPhone", "iPhone", "iPhone12,1")
_SCALE, _METER, _CUFF = "Withings", "Contour", "OMRON connect"
_SKIPPED_QUANTITIES = (
    ("ActiveEnergyBurned", "kcal", 0.1, 12.0, _WATCH),
    ("BasalEnergyBurned", "kcal", 0.5, 2.0, _WATCH),
    ("DistanceWalkingRunning", "km", 0.001, 0.4, _PHONE),
    ("FlightsClimbed", "count", 1, 4, _PHONE),
    ("AppleExerciseTime", "min", 1, 5, _WATCH),
    ("RestingHeartRate", "count/min", 50, 70, _WATCH),
)
_WEIGHTS = (
    ("heart_rate", 36),
    ("step_count", 22),
    ("oxygen_saturation", 4),
    ("body_mass", 1),
    ("blood_glucose", 2),
    ("pressure", 1),
    ("skipped_quantity", 28),
    ("sleep", 3),
    ("hrv", 1),
    ("workout", 1),
    ("clinical", 1),
)
"""Relative frequency of each kind of element (an ActivitySummary is added per day besides)."""


def write_export(path: Path, xml_bytes: int, seed: int) -> ExportCounts:
    """An export of about `xml_bytes` bytes at `path`, the same for the same seed: mostly heart-rate and
    step-count records from a watch and a phone (with `device` and metadata), oxygen saturation, weights,
    glucose and blood-pressure correlations from other apps, and the elements the platform skips (energy,
    distance, sleep, heart-rate variability with its beat list, workouts with statistics and a route,
    activity summaries, clinical records, `Me`). Written as it is generated: memory stays flat."""
    counts = ExportCounts()
    with path.open("w", encoding="utf-8", newline="\n") as out:
        buffer: list[str] = []
        size = 0
        for element, elements, kept, pairs in _elements(random.Random(seed)):
            buffer.append(element)
            size += len(element.encode())
            counts.elements += elements
            counts.records += kept
            counts.pressure_pairs += pairs
            if size >= xml_bytes - len(FOOTER):
                break
            if len(buffer) >= 4096:
                out.write("".join(buffer))
                buffer = []
        buffer.append(FOOTER)
        out.write("".join(buffer))
    counts.xml_bytes = path.stat().st_size
    return counts


def _elements(rng: random.Random) -> Iterator[tuple[str, int, int, int]]:
    """(text, top-level elements, elements the reader keeps, blood-pressure pairs) of an endless export:
    the header, ExportDate and Me, then elements in time order from 2019 on, a minute or so apart."""
    yield HEADER, 0, 0, 0
    yield ' <ExportDate value="2026-06-01 09:00:00 -0700"/>\n', 1, 0, 0
    yield (
        ' <Me HKCharacteristicTypeIdentifierDateOfBirth="1956-03-14"'
        ' HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale"'
        ' HKCharacteristicTypeIdentifierBloodType="HKBloodTypeNotSet"'
        ' HKCharacteristicTypeIdentifierFitzpatrickSkinType="HKFitzpatrickSkinTypeNotSet"'
        ' HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse="None"/>\n',
        1,
        0,
        0,
    )
    kinds, weights = zip(*_WEIGHTS, strict=True)
    at = datetime(2019, 1, 1, 6, tzinfo=UTC)
    day = at.date()
    serial = 0
    while True:
        at += timedelta(seconds=rng.randint(20, 160))
        if at.date() != day:
            yield _activity_summary(rng, day.isoformat()), 1, 0, 0
            day = at.date()
        serial += 1
        text, kept, pairs = _ELEMENT_MAKERS[rng.choices(kinds, weights)[0]](rng, at, serial)
        yield text, 1 + 2 * pairs, kept, pairs  # a correlation's members are written again at the top


def _when(at: datetime) -> str:
    """Apple's timestamp: local wall-clock time and its offset (the person lives at -07:00)."""
    return (at - timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S -0700")


def _device(rng: random.Random, which: tuple[str, str, str, str, str]) -> tuple[str, str, str]:
    """(sourceName, sourceVersion, device) of the watch or the phone."""
    name, software, display, model, hardware = which
    device = _HK_DEVICE.format(
        address=rng.randrange(0x280000000, 0x28FFFFFFF),
        name=display,
        model=model,
        hardware=hardware,
        software=software,
    )
    return name, software, device


def _heart_rate(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    source, version, device = _device(rng, _WATCH)
    start = _when(at)
    motion = (("HKMetadataKeyHeartRateMotionContext", str(rng.choice((0, 0, 1, 2)))),)
    text = record(
        "HeartRate",
        "count/min",
        str(rng.randint(52, 128)),
        start,
        source=source,
        version=version,
        device=device,
        created=_when(at + timedelta(seconds=rng.randint(1, 400))),
        metadata=motion if rng.random() < 0.8 else (),
    )
    return text, 1, 0


def _step_count(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    source, version, device = _device(rng, _PHONE if rng.random() < 0.6 else _WATCH)
    text = record(
        "StepCount",
        "count",
        str(rng.randint(3, 900)),
        _when(at),
        _when(at + timedelta(seconds=rng.randint(30, 600))),
        source=source,
        version=version,
        device=device,
        created=_when(at + timedelta(seconds=rng.randint(600, 3600))),
    )
    return text, 1, 0


def _oxygen(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    source, version, device = _device(rng, _WATCH)
    value = f"{rng.randint(91, 100) / 100:.2f}"
    metadata = (("HKMetadataKeyBarometricPressure", f"{rng.randint(980, 1030)} hPa"),)
    text = record(
        "OxygenSaturation",
        "%",
        value,
        _when(at),
        source=source,
        version=version,
        device=device,
        metadata=metadata,
    )
    return text, 1, 0


def _body_mass(rng: random.Random, at: datetime, serial: int) -> tuple[str, int, int]:
    pounds = rng.random() < 0.3
    value = f"{rng.uniform(150, 190):.1f}" if pounds else f"{rng.uniform(68, 86):.2f}"
    metadata = (("HKWasUserEntered", "0"), ("HKExternalUUID", f"withings-{serial:09d}"))
    unit = "lb" if pounds else "kg"
    text = record("BodyMass", unit, value, _when(at), source=_SCALE, version="6.4", metadata=metadata)
    return text, 1, 0


def _blood_glucose(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    molar = rng.random() < 0.25
    value = f"{rng.uniform(4.0, 11.0):.1f}" if molar else str(rng.randint(70, 210))
    unit = "mmol&lt;180.1558800000541&gt;/L" if molar else "mg/dL"
    metadata = (("HKBloodGlucoseMealTime", str(rng.randint(1, 2))), ("HKWasUserEntered", "0"))
    return (
        record("BloodGlucose", unit, value, _when(at), source=_METER, version="4.2", metadata=metadata),
        1,
        0,
    )


def _pressure(rng: random.Random, at: datetime, serial: int) -> tuple[str, int, int]:
    systolic = rng.randint(105, 165)
    diastolic = rng.randint(60, min(systolic - 20, 100))
    text = pressure(str(systolic), str(diastolic), _when(at), source=_CUFF, external_id=f"omron-{serial:09d}")
    return text, 1, 1  # two top-level copies of its members too, which the reader skips


def _skipped_quantity(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    kind, unit, low, high, which = rng.choice(_SKIPPED_QUANTITIES)
    source, version, device = _device(rng, which)
    value = str(rng.randint(low, high)) if isinstance(low, int) else f"{rng.uniform(low, high):.3f}"
    end = _when(at + timedelta(seconds=rng.randint(10, 300)))
    return record(kind, unit, value, _when(at), end, source=source, version=version, device=device), 0, 0


def _sleep(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    source, version, device = _device(rng, _WATCH)
    stage = rng.choice(("AsleepCore", "AsleepDeep", "AsleepREM", "Awake", "InBed"))
    text = (
        f' <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="{source}"'
        f' sourceVersion="{version}" device="{device}" creationDate="{_when(at)}"'
        f' startDate="{_when(at)}" endDate="{_when(at + timedelta(minutes=rng.randint(1, 90)))}"'
        f' value="HKCategoryValueSleepAnalysis{stage}">\n'
        '  <MetadataEntry key="HKTimeZone" value="America/Los_Angeles"/>\n'
        " </Record>\n"
    )
    return text, 0, 0


def _hrv(rng: random.Random, at: datetime, _: int) -> tuple[str, int, int]:
    source, version, device = _device(rng, _WATCH)
    local = at - timedelta(hours=7)
    beats = "".join(
        f'    <InstantaneousBeatsPerMinute bpm="{rng.randint(55, 90)}"'
        f' time="{local:%I:%M}:{i % 60:02d}.{i * 37 % 100:02d} {local:%p}"/>\n'
        for i in range(rng.randint(40, 70))
    )
    text = (
        f' <Record type="HKQuantityTypeIdentifierHeartRateVariabilitySDNN" sourceName="{source}"'
        f' sourceVersion="{version}" device="{device}" unit="ms" creationDate="{_when(at)}"'
        f' startDate="{_when(at)}" endDate="{_when(at + timedelta(minutes=1))}"'
        f' value="{rng.uniform(20, 90):.4f}">\n'
        "  <HeartRateVariabilityMetadataList>\n"
        + beats
        + "  </HeartRateVariabilityMetadataList>\n </Record>\n"
    )
    return text, 0, 0


def _workout(rng: random.Random, at: datetime, serial: int) -> tuple[str, int, int]:
    source, version, device = _device(rng, _WATCH)
    minutes = rng.uniform(15, 75)
    start, end = _when(at), _when(at + timedelta(minutes=minutes))
    activity = rng.choice(("Walking", "Running", "Cycling", "TraditionalStrengthTraining"))
    text = (
        f' <Workout workoutActivityType="HKWorkoutActivityType{activity}" duration="{minutes:.4f}"'
        f' durationUnit="min" sourceName="{source}" sourceVersion="{version}" device="{device}"'
        f' creationDate="{end}" startDate="{start}" endDate="{end}">\n'
        '  <MetadataEntry key="HKIndoorWorkout" value="0"/>\n'
        f'  <MetadataEntry key="HKAverageMETs" value="{rng.uniform(3, 9):.4f} kcal/hr·kg"/>\n'
        f'  <WorkoutEvent type="HKWorkoutEventTypeSegment" date="{start}" duration="{minutes:.4f}"'
        ' durationUnit="min"/>\n'
        f'  <WorkoutStatistics type="HKQuantityTypeIdentifierHeartRate" startDate="{start}" endDate="{end}"'
        f' average="{rng.randint(95, 140)}" minimum="{rng.randint(70, 95)}" maximum="{rng.randint(140, 175)}"'
        ' unit="count/min"/>\n'
        f'  <WorkoutStatistics type="HKQuantityTypeIdentifierActiveEnergyBurned" startDate="{start}"'
        f' endDate="{end}" sum="{minutes * rng.uniform(5, 11):.3f}" unit="kcal"/>\n'
        f'  <WorkoutRoute sourceName="{source}" sourceVersion="{version}" creationDate="{end}"'
        f' startDate="{start}" endDate="{end}">\n'
        '   <MetadataEntry key="HKMetadataKeySyncVersion" value="2"/>\n'
        f'   <FileReference path="/workout-routes/route_{at:%Y-%m-%d_%H.%M}_{serial}.gpx"/>\n'
        "  </WorkoutRoute>\n"
        " </Workout>\n"
    )
    return text, 0, 0


def _clinical(rng: random.Random, at: datetime, serial: int) -> tuple[str, int, int]:
    kind = rng.choice(("LabResultRecord", "VitalSignRecord", "MedicationRecord", "ConditionRecord"))
    resource = {"LabResultRecord": "Observation", "VitalSignRecord": "Observation"}.get(kind, "Condition")
    text = (
        f' <ClinicalRecord type="HKClinicalTypeIdentifier{kind}" identifier="{resource}/{serial:08x}"'
        f' sourceName="Example Health" sourceURL="https://fhir.example.org/api/{resource}/{serial:08x}"'
        f' fhirVersion="4.0.1" receivedDate="{_when(at)}"'
        f' resourceFilePath="/clinical-records/{resource}-{serial:08X}.json"/>\n'
    )
    return text, 0, 0


def _activity_summary(rng: random.Random, day: str) -> str:
    return (
        f' <ActivitySummary dateComponents="{day}" activeEnergyBurned="{rng.uniform(150, 700):.3f}"'
        ' activeEnergyBurnedGoal="500" activeEnergyBurnedUnit="kcal" appleMoveTime="0"'
        f' appleMoveTimeGoal="0" appleExerciseTime="{rng.randint(0, 80)}" appleExerciseTimeGoal="30"'
        f' appleStandHours="{rng.randint(4, 16)}" appleStandHoursGoal="12"/>\n'
    )


_ELEMENT_MAKERS = {
    "heart_rate": _heart_rate,
    "step_count": _step_count,
    "oxygen_saturation": _oxygen,
    "body_mass": _body_mass,
    "blood_glucose": _blood_glucose,
    "pressure": _pressure,
    "skipped_quantity": _skipped_quantity,
    "sleep": _sleep,
    "hrv": _hrv,
    "workout": _workout,
    "clinical": _clinical,
}
