"""Apple Health exports of realistic size through the reader, the bronze step and the whole pipeline →
bench/reports/apple_health.md.

    BENCH_ONLY=apple_health python -m bench.run        (or `python -m bench.apple_health`)

For each size in `BENCH_APPLE_MB` (MB of XML, comma-separated, default 100,500) an export is generated,
seeded (`pipelines.generate.apple_health.write_export`: heart rate, steps, oxygen saturation, weights,
glucose and blood-pressure correlations among the energy, distance, sleep, heart-rate-variability, workout,
activity-summary and clinical elements the platform skips), and zipped as the Health app does
(`apple_health_export/export.xml`). Then, for the .xml and the .zip, each in an interpreter of its own:

- reader: `read_apple_health_export` on the file's bytes: wall time, records out, peak RSS, and the RSS
  before the reader started (the interpreter, its libraries and the file's bytes);
- bronze: the bronze step (`ingest_landing`, as the pipeline's bronze asset calls it) on a landing folder
  holding that one export in a person folder and an enrolment file linking the person to a patient;
- pipeline: `patient-insights ingest` on the same landing folder, as a user runs it (every step, the device
  build included; `bench.e2e`'s wrapper measures it): wall time, peak RSS of its largest process, rows of
  bronze device_records and silver device_reading, and how many readings linked to the patient.

Work files go to `bench/work/apple_health/` (git-ignored) or `BENCH_WORK`; they are removed afterwards
(`BENCH_APPLE_KEEP=1` keeps them).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.e2e import AS_OF, Timed, base_env, dagster_home, ingest_argv, timed
from bench.run import _commit, console, run_stage

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "reports" / "apple_health.md"
SEED = 27
PERSON = "person-1"
BUCKETS = 4
MIB = 1024 * 1024
MAX_PEAK_RATIO = 3.0
"""The budget: a step's peak RSS at most this many times the export's XML size."""
FLOOR_MB = 1
"""An export this small is measured first: its peaks are each step's floor (the interpreter, its libraries,
Dagster for the pipeline), which the peaks of the large exports are also judged above."""
ENROLMENT = (
    "vendor,vendor_user_id,device_id,device_type,patient_source,patient_id,enrolled_on,unenrolled_on\n"
    f"apple_health,{PERSON},iphone,activity_tracker,ehr_a,p1,2018-01-01,\n"
)
CHANGES = """\
First measured at commit d25ef92 (the reader as it was; this report in that commit), on the same exports \
(seed 27), load 3.8–4.6. Before → the figures above:

| export | step | before: seconds | before: peak RSS MiB (÷ XML) |
| --- | --- | ---: | ---: |
| 95 MiB .xml | reader | 2.9 | 553 (5.8) |
| 95 MiB .xml | bronze step | 4.2 | 568 (6.0) |
| 95 MiB .xml | `patient-insights ingest` | 18.0 | 1,232 (12.9) |
| 95 MiB .zip | reader | 3.4 | 465 (4.9) |
| 95 MiB .zip | bronze step | 4.4 | 624 (6.5) |
| 95 MiB .zip | `patient-insights ingest` | 14.7 | 1,289 (13.5) |
| 477 MiB .xml | reader | 11.0 | 2,342 (4.9) |
| 477 MiB .xml | bronze step | 19.1 | 2,353 (4.9) |
| 477 MiB .xml | `patient-insights ingest` | 34.2 | 4,031 (8.5) |
| 477 MiB .zip | reader | 13.4 | 1,901 (4.0) |
| 477 MiB .zip | bronze step | 15.1 | 2,074 (4.3) |
| 477 MiB .zip | `patient-insights ingest` | 33.7 | 4,192 (8.8) |

1. The bronze reader (`pipelines/bronze/apple_health.py`) kept a Python tuple per record, its JSON as a \
`str` (a source name such as "Sam Example’s iPhone" makes the whole string two bytes a character), about \
2.6 KB a record, and built the frame from that list while the list was alive. Now the records become \
columns every `FRAME_ROWS` (8,192) records (the JSON as bytes, checked as UTF-8 by the cast to String; the \
record id a column expression), and the loose blood-pressure records, known to be readings of their own \
only at the end, go into the chunk their position belongs to, so the frame is never sorted whole. Same \
rows in the same order (`test_records_are_in_export_order_whatever_the_chunks_and_frames`). CPU time on \
the 95 MiB .xml, old and new reader alternating: 2.02 / 1.97 s before, 1.86 / 1.84 s after.
2. The device build (silver) decoded a partition's JSON in one Polars call \
(`pipelines/devices/vendors.decode_column`, used by the Apple Health, iHealth, Withings and Fitbit \
readers), which held 2 GB above the records' text for the 688k records of the 500 MB export: the device \
build of that partition alone peaked at 2,977 MiB, 911 MiB before the decode. Now `DECODE_ROWS` (16,384) \
records per call: 1,368 MiB for the whole device build, the decode 5.3 → 4.0 s \
(`test_items_decoded_a_slice_at_a_time_give_the_same_readings_and_rejects`).

Not done, with what was measured (probes, nothing committed):

- The lake writer (`pipelines/lake.write_parquet_atomic`) converts each frame with `to_arrow()`, which \
copies every string column (Polars' string views into Arrow large strings): +430 MiB for the 500 MB \
export's records, now the bronze step's peak. With `to_arrow(compat_level=pl.CompatLevel.newest())` the \
bronze step peaked at 859 MiB (.zip) and 1,120 MiB (.xml) instead of 1,349 / 1,330. Left alone: it \
changes the Arrow type of every string column of every lake table (string_view in each Parquet file's \
schema), a change for the whole lake to check against every reader of it.
- Reading the landing file from disk as a stream instead of `bytes`: the ingest holds the whole .xml \
while it is read (477 MiB: the .xml reader peaks at 1,108 MiB above, the .zip reader at 660). Not the cost \
today: the bronze step peaks in the writer, after the bytes are released, and the .xml and the .zip peak \
alike. It becomes the cost once the writer stops copying (1,120 MiB .xml against 859 .zip above). Doing it \
means hashing the file while it streams (sha256 of the file as delivered: the same ingest key) through \
`discovery.open_checked` (O_NOFOLLOW, device and inode checked) and a reader taking a file object, a \
branch of `ingest.read_unit` for Apple Health.
- The pipeline's peak is now in the device build: it reads the person's whole bronze partition with its \
JSON and sorts it (`devices/build._bronze_records`, about 800 MiB for the 688k records) before decoding, \
in a process that already holds Dagster and its libraries (the 1 MB floor) and what the bronze step left \
allocated. Reading the partition in slices, or without `raw` where only the decoded fields are needed, \
is the next step there.
- Time is linear and CPU-bound in expat's callbacks (about half inside expat, half in the Python \
handlers); a skipped element's children (a heart-rate-variability record's 40–70 beats, a workout's \
statistics and route) still cost a callback each.
"""
"""What was changed after the first measurement, with the figures before and after (written by hand: the
first figures were measured on the code as it was)."""


@dataclass
class Measured:
    """One export (a size, as .xml or .zip) through the three steps."""

    mb: int
    kind: str  # "xml" or "zip"
    export: dict[str, Any]
    reader: dict[str, Any]
    bronze: dict[str, Any]
    pipeline: Timed
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def file_bytes(self) -> int:
        return int(self.export["xml_bytes" if self.kind == "xml" else "zip_bytes"])

    @property
    def xml_mib(self) -> float:
        return self.export["xml_bytes"] / MIB

    def peak_mib(self, step: str) -> float:
        """The step's peak RSS (bronze: at the end of the ingest, before its rows were counted)."""
        if step == "pipeline":
            return self.pipeline.peak_rss_mib
        return float(self.bronze["rss_after_mib"] if step == "bronze" else self.reader["peak_rss_mib"])


def bench_apple_health(work: Path) -> None:
    """Generate the exports, measure each through the reader, bronze and the pipeline, write the report."""
    sizes = [int(s) for s in os.environ.get("BENCH_APPLE_MB", "100,500").split(",") if s.strip()]
    folder = work / "apple_health"
    commit, load_before = _commit(), _loadavg()
    measured: list[Measured] = []
    for mb in [FLOOR_MB, *(s for s in sizes if s != FLOOR_MB)]:
        here = folder / f"{mb}mb"
        shutil.rmtree(here, ignore_errors=True)
        here.mkdir(parents=True)
        console.print(f"[bold]Apple Health export of {mb} MB[/bold]: generating")
        export = run_stage(
            "apple_generate",
            xml=str(here / "export.xml"),
            zip_path=str(here / "export.zip"),
            mb=mb,
            seed=SEED,
        )
        console.print(
            f"  {export['elements']:,} elements, {export['records']:,} kept by the reader, zip "
            f"{export['zip_bytes'] / MIB:,.0f} MiB, in {export['seconds']:.0f} s"
        )
        for kind in ("xml", "zip"):
            measured.append(_measure(here, mb, kind, export))
        if not os.environ.get("BENCH_APPLE_KEEP"):
            shutil.rmtree(here, ignore_errors=True)
    write_report(sizes, measured, commit, load_before, _loadavg())
    console.print(f"report written to {REPORT.relative_to(ROOT)}")


def _measure(here: Path, mb: int, kind: str, export: dict[str, Any]) -> Measured:
    delivered = here / f"export.{kind}"
    console.print(f"  export.{kind}: the reader alone")
    reader = run_stage("apple_read", path=str(delivered), person=PERSON)
    console.print(
        f"    {reader['records']:,} records in {reader['seconds']:.1f} s, "
        f"peak {reader['peak_rss_mib']:,.0f} MiB"
    )
    landing = _landing(here / f"landing-{kind}", delivered)
    console.print(f"  export.{kind}: the bronze step")
    bronze = run_stage(
        "apple_bronze", landing=str(landing), lake=str(here / f"lake-bronze-{kind}"), buckets=BUCKETS
    )
    console.print(
        f"    {bronze['records']:,} rows in {bronze['seconds']:.1f} s, "
        f"peak {bronze['rss_after_mib']:,.0f} MiB"
    )
    console.print(f"  export.{kind}: `patient-insights ingest`")
    lake = here / f"lake-{kind}"
    home = dagster_home(here / f"dagster-{kind}")
    argv = [*ingest_argv(landing, lake, here / f"exports-{kind}"), "--buckets", str(BUCKETS)]
    pipeline = timed(
        argv,
        base_env(DAGSTER_HOME=home, PATIENT_INSIGHTS_AS_OF=AS_OF.isoformat(), PYTHONPATH=_pythonpath()),
        ROOT,
        here / f"ingest-{kind}.log",
    )
    counts = run_stage("apple_counts", lake=str(lake)) if pipeline.ok else {}
    counts["cpu_s"] = _wrapper_cpu_s(pipeline)
    console.print(
        f"    {'ok' if pipeline.ok else 'FAILED: ' + pipeline.reason()} in {pipeline.seconds:.1f} s, peak "
        f"{pipeline.peak_rss_mib:,.0f} MiB; silver device_reading {counts.get('silver', 0):,} rows"
    )
    return Measured(mb, kind, export, reader, bronze, pipeline, counts)


def _pythonpath() -> str:
    """PYTHONPATH with this checkout first: the console script otherwise imports whatever checkout the
    package was installed from (an editable install in another worktree), not the code measured here."""
    return os.pathsep.join([str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def _wrapper_cpu_s(run: Timed) -> float | None:
    """The user + system CPU seconds of the command's process tree, as `bench.e2e`'s wrapper wrote them."""
    try:
        return float(json.loads(run.log.with_name(run.log.name + ".measured.json").read_text())["cpu_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _landing(landing: Path, export: Path) -> Path:
    """A landing folder holding the export in a person folder of an Apple Health source, and the enrolment
    file linking that person to a patient (the export is linked there, not copied)."""
    shutil.rmtree(landing, ignore_errors=True)
    person = landing / "apple" / PERSON
    person.mkdir(parents=True)
    (landing / "apple" / "source.yaml").write_text("format: apple_health_export\n")
    try:
        os.link(export, person / export.name)
    except OSError:
        shutil.copyfile(export, person / export.name)
    enrolment = landing / "enrolment"
    enrolment.mkdir()
    (enrolment / "source.yaml").write_text("format: device_enrolment\n")
    (enrolment / "enrolment.csv").write_text(ENROLMENT)
    return landing


def _loadavg() -> str | None:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def _mem_total_gib() -> float | None:
    try:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024 / 1024


def _load_text(load: list[float | None] | None) -> str:
    if not load or None in load:
        return "–"
    return f"{load[0]:.1f} → {load[1]:.1f}"


def write_report(
    sizes: list[int], measured: list[Measured], commit: str, load_before: str | None, load_after: str | None
) -> None:
    """The markdown report: the exports, then one line per export and step, the verdicts and the changes."""
    memory = _mem_total_gib()
    lines = [
        "# Apple Health exports of realistic size: the reader, the bronze step and the pipeline",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'} with "
        f"`BENCH_ONLY=apple_health BENCH_APPLE_MB={','.join(map(str, sizes))} python -m bench.run` on "
        f"{platform.machine()}, {os.cpu_count()} cores"
        + (f", {memory:.0f} GiB RAM" if memory else "")
        + f", Python {platform.python_version()}. Machine load (1 / 5 / 15 minute averages from "
        f"/proc/loadavg): {load_before or '?'} before, {load_after or '?'} after; the machine is shared, "
        "so a 1-minute load above the cores this benchmark keeps busy (one) lengthened the wall times.",
        "",
        "Each step ran in an interpreter of its own; peak RSS is that process's maximum resident set size "
        "(for the pipeline, its largest process), CPU s its user + system time (less sensitive than the wall "
        "time to what else the machine runs). MiB/s is MiB of XML read per second (for the zip, the XML it "
        "inflates to). Peak ÷ XML is the peak RSS over the export's XML size (budget: "
        f"≤ {MAX_PEAK_RATIO:g}); "
        f"the {FLOOR_MB} MB export gives each step's floor (interpreter, libraries, Dagster). "
        "`patient-insights ingest` ran with this checkout first on PYTHONPATH and "
        f"PATIENT_INSIGHTS_AS_OF={AS_OF.isoformat()}, {BUCKETS} buckets, a fresh lake and DAGSTER_HOME.",
        "",
        "## The exports (seed 27)",
        "",
        "| XML MiB | top-level elements | kept by the reader | of which blood-pressure pairs | zip MiB | "
        "generated in s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    seen: set[int] = set()
    for m in measured:
        if m.mb in seen:
            continue
        seen.add(m.mb)
        e = m.export
        lines.append(
            f"| {m.xml_mib:,.0f} | {e['elements']:,} | {e['records']:,} | {e['pressure_pairs']:,} | "
            f"{e['zip_bytes'] / MIB:,.1f} | {e['seconds']:,.0f} |"
        )
    lines += [
        "",
        "## Figures",
        "",
        "| export | step | records out | seconds | CPU s | MiB/s | peak RSS MiB | peak ÷ XML | "
        "load (1 min) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in measured:
        name = f"{m.xml_mib:,.0f} MiB .{m.kind}" + (
            f" ({m.file_bytes / MIB:,.1f} MiB)" if m.kind == "zip" else ""
        )
        rows = [
            (
                f"reader (RSS {m.reader['rss_before_mib']:,.0f} MiB before it)",
                m.reader["records"],
                m.reader["seconds"],
                m.reader.get("cpu_s"),
                m.peak_mib("reader"),
                _load_text(m.reader.get("load")),
            ),
            (
                "bronze step",
                m.bronze["records"],
                m.bronze["seconds"],
                m.bronze.get("cpu_s"),
                m.peak_mib("bronze"),
                _load_text(m.bronze.get("load")),
            ),
        ]
        if m.pipeline.ok:
            other = "–" if m.pipeline.other_cores is None else f"{m.pipeline.other_cores:.1f} other cores"
            rows.append(
                (
                    "`patient-insights ingest`",
                    m.counts.get("silver", 0),
                    m.pipeline.seconds,
                    m.counts.get("cpu_s"),
                    m.peak_mib("pipeline"),
                    other,
                )
            )
        for step, records, seconds, cpu, peak, load in rows:
            lines.append(
                f"| {name} | {step} | {int(records):,} | {seconds:,.1f} | "
                f"{'–' if cpu is None else f'{cpu:,.1f}'} | {m.xml_mib / seconds:,.1f} | "
                f"{peak:,.0f} | {peak / m.xml_mib:,.1f} | {load} |"
            )
        if not m.pipeline.ok:
            lines.append(
                f"| {name} | `patient-insights ingest` | failed: {m.pipeline.reason()[:300]} | | | | | | |"
            )
    lines += ["", "Rows in the lake after `patient-insights ingest`:", ""]
    for m in measured:
        if m.pipeline.ok and m.counts:
            c = m.counts
            lines.append(
                f"- {m.xml_mib:,.0f} MiB .{m.kind}: bronze device_records {c['bronze']:,}; silver "
                f"device_reading {c['silver']:,} ({c['linked']:,} linked to the patient), rejects "
                f"{c['rejects']:,}."
            )
    lines += ["", "## Verdicts", "", *_verdicts(measured)]
    if CHANGES.strip():
        lines += ["", "## What was changed", "", CHANGES.strip()]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


def _verdicts(measured: list[Measured]) -> list[str]:
    """Peak memory against the budget (as measured, and above the floor of a 1 MB export), and how time
    grows with size (wall and CPU seconds per MiB)."""
    floors = {m.kind: m for m in measured if m.mb == FLOOR_MB}
    sized = [m for m in measured if m.mb != FLOOR_MB]
    lines = []
    for step in ("reader", "bronze", "pipeline"):
        for m in sized:
            if step == "pipeline" and not m.pipeline.ok:
                continue
            peak, ratio = m.peak_mib(step), m.peak_mib(step) / m.xml_mib
            line = (
                f"- {step}, {m.xml_mib:,.0f} MiB .{m.kind}: peak {peak:,.0f} MiB = {ratio:.1f}× the XML "
                f"({'within' if ratio <= MAX_PEAK_RATIO else '**over**'} the budget)"
            )
            floor = floors.get(m.kind)
            if floor is not None and (step != "pipeline" or floor.pipeline.ok):
                above = (peak - floor.peak_mib(step)) / m.xml_mib
                line += f"; above the {FLOOR_MB} MB export's {floor.peak_mib(step):,.0f} MiB: {above:.1f}×"
            lines.append(line + ".")
    for kind in ("xml", "zip"):
        runs = [m for m in sized if m.kind == kind]
        if len(runs) < 2:
            continue
        small, large = runs[0], runs[-1]
        for step in ("reader", "bronze"):
            wall = [getattr(r, step)["seconds"] / r.xml_mib for r in (small, large)]
            cpu = [(getattr(r, step).get("cpu_s") or 0.0) / r.xml_mib for r in (small, large)]
            lines.append(
                f"- {step}, .{kind}: {wall[0]:.3f} s wall ({cpu[0]:.3f} s CPU) per MiB at "
                f"{small.xml_mib:,.0f} MiB, {wall[1]:.3f} s ({cpu[1]:.3f} s CPU) at "
                f"{large.xml_mib:,.0f} MiB: "
                f"{wall[1] / wall[0]:.2f}× wall, {cpu[1] / cpu[0] if cpu[0] else float('nan'):.2f}× CPU "
                "(1 is linear)."
            )
    return lines


def main() -> None:
    """`python -m bench.apple_health`: this benchmark on its own."""
    bench_apple_health(Path(os.environ.get("BENCH_WORK", ROOT / "bench" / "work")))


if __name__ == "__main__":
    main()
