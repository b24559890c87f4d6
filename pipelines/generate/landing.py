"""The generator's entry point: `generate_landing` writes a landing folder and its ground truth.

Landing layout (the contract the ingestion readers implement)::

    <out>/.generated-by-patient-insights     marker: this folder may be regenerated (deleted and rewritten)
    <out>/ehr_a/manifest.json                FHIR Bulk Data manifest (urls relative to ehr_a/)
    <out>/ehr_a/<Type>.NNN.ndjson            one series per resource type, rotated every 50,000 lines
    <out>/ehr_a/deleted/Bundle.NNN.ndjson    transaction Bundles of DELETE requests
    <out>/ehr_a/error/OperationOutcome.NNN.ndjson
    <out>/ehr_a/Scratch.000.ndjson, Observation.export-retry.ndjson   NOT in the manifest: ignore
    <out>/ehr_b/directory.json               collection Bundle: Practitioners and Organizations
    <out>/ehr_b/NNNN/<bundle id>.json        one transaction Bundle per patient (NNNN = index // 1000)
    <out>/rpm_enrolment/enrolment.csv
    <out>/devices_omh/datapoints.NNN.ndjson
    <out>/devices_ihealth/<vendor_user_id>/bp.json | weight.json | glucose.json
    <out>/service_center/conversations.NNN.ndjson
    <truth_out>/identity.csv, defects.csv, risk.csv, conversation_turns.csv, summary.json (truth)

Decisions where the contract is silent:

- `patients` counts *people*. A person in both EHRs yields two Patient resources, so the number of
  Patient resources is about 1.3 x `patients`. Person indexes run 0 .. patients-1.
- Manifest entries of `deleted` and `error` carry a `count` too (the Bulk Data spec allows it on
  every file item). Each deleted Bundle line holds one DELETE entry, so lines = deleted resources.
  About 0.2% of Observations and 1% of Appointments (5% of cancelled ones) are listed as deleted;
  the deleted resources are still present in the output files, as in an export taken mid-change.
- Defects never replace a genuine record: a defective companion is added right after it (see
  `defects`), so every genuine Patient, reference and signal stays intact. Defects are injected into
  every file that carries records (including EHR A's Practitioner/Organization files and the EHR B
  directory), never into manifest.json, deleted/, error/ or unlisted files; iHealth payloads are
  whole documents and get none.
- meta.lastUpdated is a UTC instant (``...Z``) no later than the manifest's transactionTime minus six
  hours, so a newer version (defect `kept_newer_version`) always fits before transactionTime.
  Clinical dateTimes are US Eastern with their offset.
- The EHR B Bundle itself carries id, meta, type "transaction" and `timestamp`.
- summary.json `files` holds every file readers should ingest (not manifest.json, not unlisted files)
  with its record count; `unlisted_files` lists the unlisted files' paths; `deleted_ids` items are
  {type, id}; `duplicate_versions` items are {type, id, versions: ["1", "2"]}.
- Output goes to hidden sibling folders (``.<name>.partial``) and is moved into place at the end, so
  a killed run never leaves a half-written landing folder behind under the real name.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.generate.bulk_writer import ROTATE_LINES, BulkExport, Counters
from pipelines.generate.bundles import BundleWriter
from pipelines.generate.clinical import ResourceWriter, Src, hash_index, make_profile, make_timeline
from pipelines.generate.clock import DAY, Clock
from pipelines.generate.conversations import ServiceCenter
from pipelines.generate.defects import Defects
from pipelines.generate.devices import DeviceFeeds
from pipelines.generate.directory import build_agents, build_directory
from pipelines.generate.population import make_person
from pipelines.generate.rng import named_rng, new_uuid, patient_rng
from pipelines.generate.truth import Truth
from pipelines.generate.unlisted import scratch_resources

MARKER = ".generated-by-patient-insights"
MARKER_TEXT = (
    b"Synthetic data written by `patient-insights generate`. This folder may be deleted and rewritten.\n"
)
DEFAULT_AS_OF = date(2026, 6, 30)
FORMAT_VERSION = 1
_PROGRESS_EVERY = 50


@dataclass(frozen=True)
class GenerationSummary:
    """What one `generate_landing` run wrote."""

    out: Path
    truth_out: Path
    patients: int
    """People generated (each may have a Patient in one or both EHRs)."""
    files_written: int
    """Files under the landing folder (data files, manifest, marker, unlisted files)."""
    records_per_source: dict[str, int] = field(default_factory=dict)
    """Records per landing source folder, defective records included."""
    patient_resources: dict[str, int] = field(default_factory=dict)
    """Patient resources per EHR."""
    defects_injected: int = 0
    bytes_written: int = 0
    """Bytes under the landing folder."""
    elapsed_seconds: float = 0.0

    @property
    def records(self) -> int:
        """All records written to the landing folder."""
        return sum(self.records_per_source.values())

    @property
    def patients_per_second(self) -> float:
        """Generation throughput."""
        return self.patients / self.elapsed_seconds if self.elapsed_seconds else 0.0


def generate_landing(
    out: Path,
    patients: int,
    seed: int,
    defects: float = 0.0,
    truth_out: Path | None = None,
    as_of: date = DEFAULT_AS_OF,
    progress: bool = False,
) -> GenerationSummary:
    """Write a synthetic landing folder for `patients` people and its ground truth.

    The output depends only on (patients, seed, defects, as_of): the same arguments give
    byte-identical files. `out` must be missing, empty, or a previous generator output (it has the
    marker file); the same holds for `truth_out` (default: ``out.parent / "ground_truth"``).
    `defects` is the probability that a record gets a defective companion (0 disables defects).
    Memory stays bounded whatever `patients` is: records are streamed to disk as they are generated.
    """
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
        raise ValueError("patients must be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed must be an integer")
    if not 0.0 <= float(defects) <= 1.0:
        raise ValueError("defects must be a rate between 0 and 1")
    out = Path(out)
    truth_out = Path(truth_out) if truth_out is not None else out.parent / "ground_truth"
    check_targets(out, truth_out)
    started = time.perf_counter()
    landing, truth_dir = staging_folder(out), staging_folder(truth_out)
    try:
        counters, people, truth = _generate(
            landing, truth_dir, patients, seed, float(defects), as_of, progress
        )
        counters.files += 1
        counters.bytes += len(MARKER_TEXT)
        swap_into_place(landing, out)
        swap_into_place(truth_dir, truth_out)
    except BaseException:
        shutil.rmtree(landing, ignore_errors=True)
        shutil.rmtree(truth_dir, ignore_errors=True)
        raise
    return GenerationSummary(
        out=out,
        truth_out=truth_out,
        patients=people,
        files_written=counters.files,
        records_per_source=dict(sorted(counters.records.items())),
        patient_resources=dict(sorted(truth.patients_per_source.items())),
        defects_injected=sum(truth.defects_by_reason.values()),
        bytes_written=counters.bytes,
        elapsed_seconds=time.perf_counter() - started,
    )


def _generate(
    landing: Path, truth_dir: Path, patients: int, seed: int, rate: float, as_of: date, progress: bool
) -> tuple[Counters, int, Truth]:
    clock = Clock(as_of)
    counters = Counters()
    truth = Truth(truth_dir)
    defects = Defects(rate, seed)
    dir_a = build_directory(seed, "ehr_a", patients, clock)
    dir_b = build_directory(seed, "ehr_b", patients, clock)
    bulk = BulkExport(landing, clock, defects, truth, seed)
    bundles = BundleWriter(landing, defects, truth, counters)
    devices = DeviceFeeds(landing, clock, defects, truth, counters)
    center = ServiceCenter(landing, clock, defects, truth, build_agents(seed, patients))
    writer = ResourceWriter(clock)

    defects.begin_shared("directory/ehr_a")
    for resource in [*dir_a.organizations, *dir_a.practitioners]:
        bulk.emit(resource)
    defects.begin_shared("directory/ehr_b")
    bundles.write_directory(dir_b, clock.instant(clock.now - 6 * 3600))
    src_a = Src("ehr_a", dir_a, bulk.emit, bulk.delete)
    src_b = Src("ehr_b", dir_b, bundles.emit, None)
    directories = {"ehr_a": dir_a, "ehr_b": dir_b}
    membership = {"ehr_a_only": 0, "ehr_b_only": 0, "both": 0}

    bar = _progress_bar(patients) if progress else None
    try:
        for index in range(patients):
            rng = patient_rng(seed, index)
            defects.begin(index)
            person = make_person(rng, index, seed, clock)
            for source in person.sources:
                d = directories[source]
                pcp = d.pcps[rng.randrange(len(d.pcps))]
                person.pcp[source] = pcp
                person.clinic[source] = d.clinics[hash_index(pcp, len(d.clinics))]
            profile = make_profile(rng, person, clock)
            timeline = make_timeline(rng, person, profile, clock)
            for source in person.sources:
                truth.identity(source, person.ids[source], index)
            truth.risk(index, profile.ed_rate, profile.ip_rate, profile.readmit_p)
            membership["both" if len(person.sources) == 2 else f"{person.sources[0]}_only"] += 1
            if "ehr_a" in person.sources:
                bulk.begin_patient()
                writer.write_person(rng, person, profile, timeline, src_a)
            if "ehr_b" in person.sources:
                bundles.begin()
                writer.write_person(rng, person, profile, timeline, src_b)
                stamp = clock.instant(min(timeline.last_activity["ehr_b"] + 3 * DAY, writer.cap))
                bundles.end(index, new_uuid(rng), stamp)
            devices.generate(rng, person, profile)
            center.generate(rng, person, profile)
            if bar is not None and (index + 1) % _PROGRESS_EVERY == 0:
                bar[0].update(bar[1], completed=index + 1)
    finally:
        if bar is not None:
            bar[0].update(bar[1], completed=patients)
            bar[0].stop()

    files: dict[str, int] = bulk.finish(counters)
    scratch_patients, scratch_observations = scratch_resources(named_rng(seed, "scratch"), clock)
    unlisted = bulk.write_unlisted(scratch_patients, scratch_observations)
    for rel, _ in unlisted:
        counters.files += 1
        counters.bytes += (landing / rel).stat().st_size
    files.update(devices.finish())
    files.update(center.finish(counters))
    (landing / "ehr_b").mkdir(parents=True, exist_ok=True)
    head: dict[str, Any] = {
        "generator": "patient-insights synthetic landing generator",
        "format_version": FORMAT_VERSION,
        "parameters": {
            "patients": patients,
            "seed": seed,
            "defects": rate,
            "as_of": as_of.isoformat(),
            "rotate_lines": ROTATE_LINES,
        },
        "transaction_time": clock.instant(clock.now),
        "people": patients,
        "people_by_membership": membership,
        "records_per_source": dict(sorted(counters.records.items())),
        "defects_injected": defects.count,
        "device_enrolments": devices.enrolled,
        "implausible_device_readings": devices.implausible,
        "orphan_device_readings": devices.orphan_readings,
    }
    truth.finish(head, files, [rel for rel, _ in unlisted])
    return counters, patients, truth


def _progress_bar(total: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    task = bar.add_task("generating patients", total=total)
    bar.start()
    return bar, task


# --- folder safety -------------------------------------------------------------------------------------
def check_targets(out: Path, truth_out: Path) -> None:
    """Refuse a landing and a ground-truth folder that are not separate or hold other files."""
    check_target(out)
    check_target(truth_out)
    a, b = out.resolve(), truth_out.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ValueError("the ground truth folder must be outside the landing folder (and vice versa)")


def check_target(path: Path) -> None:
    """Refuse a target that exists and is neither empty nor a previous generator output."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise ValueError(f"{path} is not empty and was not written by the generator (no {MARKER} marker)")


def staging_folder(target: Path) -> Path:
    """A fresh hidden sibling of `target` to write into, holding the marker from the start."""
    stage = target.parent / f".{target.name}.partial"
    if stage.exists():
        if not (stage / MARKER).is_file() and any(stage.iterdir()):
            raise ValueError(f"{stage} exists and was not written by the generator")
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    (stage / MARKER).write_bytes(MARKER_TEXT)
    return stage


def swap_into_place(stage: Path, target: Path) -> None:
    """Replace `target` (missing, empty or a previous output) with the finished `stage` folder."""
    if target.exists():
        check_target(target)
        old = target.parent / f".{target.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(stage, target)
        shutil.rmtree(old)
    else:
        os.replace(stage, target)
