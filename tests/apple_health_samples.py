"""Small Apple Health exports written for the tests from Apple's documented format (no real data).

The header, records and blood-pressure correlations are written by `pipelines.generate.apple_health` (which
also writes the benchmark's whole exports); the zip holds the export as `apple_health_export/export.xml`
beside `export_cda.xml`. Names, dates and values are made up; the source names carry the corpus's planted
patient name, which must never reach a reason or a log.
"""

from __future__ import annotations

import io
import zipfile

from pipelines.generate import apple_health as generated
from pipelines.generate.apple_health import FOOTER, HEADER

ME = (
    ' <ExportDate value="2026-06-01 09:00:00 -0700"/>\n'
    ' <Me HKCharacteristicTypeIdentifierDateOfBirth="1950-01-01"'
    ' HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale"/>\n'
)
PHONE = "Zorblax Quuxley&apos;s iPhone"
WATCH = "Zorblax Quuxley&apos;s Apple Watch"
CUFF = "Cuff Connect"
DEVICE = (
    "&lt;&lt;HKDevice: 0x280e4d180&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, "
    "hardware:Watch6,1, software:9.4&gt;"
)


def record(kind: str, unit: str, value: str, start: str, end: str | None = None, source: str = PHONE) -> str:
    """One top-level `<Record>` of HealthKit type `HKQuantityTypeIdentifier<kind>`."""
    return generated.record(kind, unit, value, start, end, source=source)


def pressure(systolic: str, diastolic: str, at: str, source: str = CUFF, copies: bool = True) -> str:
    """A blood-pressure correlation and, as Apple writes them, its members again as top-level records."""
    return generated.pressure(systolic, diastolic, at, source=source, copies=copies)


OTHER_ELEMENTS = (
    ' <Record type="HKQuantityTypeIdentifierActiveEnergyBurned" sourceName="' + WATCH + '" unit="kcal"'
    ' startDate="2026-05-03 10:00:00 -0700" endDate="2026-05-03 10:05:00 -0700" value="12.5"/>\n'
    ' <Record type="HKQuantityTypeIdentifierRestingHeartRate" sourceName="' + WATCH + '" unit="count/min"'
    ' startDate="2026-05-03 00:00:00 -0700" endDate="2026-05-03 23:59:59 -0700" value="58"/>\n'
    ' <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="' + WATCH + '"'
    ' startDate="2026-05-02 23:00:00 -0700" endDate="2026-05-03 06:30:00 -0700"'
    ' value="HKCategoryValueSleepAnalysisAsleepCore"/>\n'
    ' <Correlation type="HKCorrelationTypeIdentifierFood" sourceName="Food Log"'
    ' startDate="2026-05-03 12:00:00 -0700" endDate="2026-05-03 12:00:00 -0700">\n'
    '  <Record type="HKQuantityTypeIdentifierDietaryEnergyConsumed" sourceName="Food Log" unit="kcal"'
    ' startDate="2026-05-03 12:00:00 -0700" endDate="2026-05-03 12:00:00 -0700" value="650"/>\n'
    " </Correlation>\n"
    ' <Workout workoutActivityType="HKWorkoutActivityTypeWalking" duration="31.2" durationUnit="min"'
    ' sourceName="' + WATCH + '" startDate="2026-05-03 07:00:00 -0700" endDate="2026-05-03 07:31:12 -0700">\n'
    '  <WorkoutStatistics type="HKQuantityTypeIdentifierHeartRate" startDate="2026-05-03 07:00:00 -0700"'
    ' endDate="2026-05-03 07:31:12 -0700" average="104" minimum="88" maximum="121" unit="count/min"/>\n'
    " </Workout>\n"
    ' <ActivitySummary dateComponents="2026-05-03" activeEnergyBurned="410" activeEnergyBurnedGoal="500"'
    ' activeEnergyBurnedUnit="kcal" appleExerciseTime="31" appleExerciseTimeGoal="30"/>\n'
)
"""Elements the platform does not read: 6 top-level elements (the food correlation is one)."""


def body(*parts: str) -> bytes:
    """An export holding `parts` (records, correlations, ...) after ExportDate and Me."""
    return (HEADER + ME + "".join(parts) + FOOTER).encode()


def several_metrics() -> bytes:
    """Each metric the platform reads, in Apple's units, in three time zones, with a blood-pressure
    correlation (and its members' top-level copies), a loose diastolic record, and elements that are
    skipped. 20 top-level elements, 10 of them bronze records."""
    return body(
        record("BodyMass", "lb", "182.6", "2016-05-02 08:00:00 -0700"),
        record("BodyMass", "kg", "82.4", "2016-05-09 08:05:00 +0200"),
        record("HeartRate", "count/min", "71", "2026-05-03 08:01:00 -0700", source=WATCH),
        record("BloodGlucose", "mmol&lt;180.1558800000541&gt;/L", "6.1", "2026-05-03 07:30:00 +0530"),
        record("BloodGlucose", "mg/dL", "104", "2026-05-04 07:30:00 +0530"),
        record("OxygenSaturation", "%", "0.97", "2026-05-03 03:00:00 -0700", source=WATCH),
        record("StepCount", "count", "412", "2026-05-03 09:00:00 -0700", "2026-05-03 09:10:00 -0700"),
        record("BodyTemperature", "degF", "98.6", "2026-05-03 21:00:00 -0700"),
        pressure("128", "82", "2026-05-03 08:15:00 -0700"),
        record("BloodPressureDiastolic", "mmHg", "79", "2026-05-04 08:15:00 -0700", source=CUFF),
        OTHER_ELEMENTS,
    )


def zipped(
    xml: bytes, name: str = "apple_health_export/export.xml", extra: dict[str, bytes] | None = None
) -> bytes:
    """The zip the Health app makes: the export (and the clinical-document copy, ECG and route files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, xml)
        archive.writestr("apple_health_export/export_cda.xml", b"<?xml version='1.0'?><ClinicalDocument/>")
        archive.writestr("apple_health_export/electrocardiograms/ecg_2026-05-03.csv", b"Name,Zorblax\n")
        for member, data in (extra or {}).items():
            archive.writestr(member, data)
    return buffer.getvalue()


def entity_expansion(levels: int = 10) -> bytes:
    """The "billion laughs": entities that each expand to ten of the one before."""
    entities = ['<!ENTITY lol0 "Zorblax">'] + [
        f'<!ENTITY lol{n} "{"".join(f"&lol{n - 1};" for _ in range(10))}">' for n in range(1, levels)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE HealthData [\n' + "\n".join(entities) + "\n]>\n"
        '<HealthData locale="en_US">\n'
        f' <Record type="HKQuantityTypeIdentifierBodyMass" sourceName="&lol{levels - 1};" unit="kg"'
        ' startDate="2026-05-02 08:00:00 -0700" endDate="2026-05-02 08:00:00 -0700" value="80"/>\n'
        "</HealthData>\n"
    ).encode()


def external_entity() -> bytes:
    """An entity naming a file: never read (refused with the declaration)."""
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE HealthData [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
        b'<HealthData locale="en_US">\n'
        b' <Record type="HKQuantityTypeIdentifierBodyMass" sourceName="&secret;" unit="kg"'
        b' startDate="2026-05-02 08:00:00 -0700" endDate="2026-05-02 08:00:00 -0700" value="80"/>\n'
        b"</HealthData>\n"
    )


def zip_with_traversal() -> bytes:
    """A zip whose members would be written outside their folder if it were extracted."""
    return zipped(several_metrics(), extra={"../../outside/evil.xml": b"<HealthData/>"})


def zip_bomb(size: int = 64 << 20) -> bytes:
    """An export member that inflates far past any sane ratio (zeros after a valid start)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("apple_health_export/export.xml", "w", force_zip64=True) as member,
    ):
        member.write(HEADER.encode() + ME.encode())
        block = b" " * (1 << 20)
        for _ in range(size >> 20):
            member.write(block)
        member.write(FOOTER.encode())
    return buffer.getvalue()
