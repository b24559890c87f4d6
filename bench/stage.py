"""Run one benchmark stage in this process and print its measurements as JSON (peak RSS included).

Each stage runs in a fresh interpreter so that its peak resident memory is its own.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from upath import UPath


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def generate(out: str, patients: int, seed: int) -> dict[str, object]:
    """Generate a landing folder."""
    from pipelines.generate import generate_landing

    started = time.perf_counter()
    summary = generate_landing(Path(out), patients, seed, as_of=date(2026, 6, 30))
    seconds = time.perf_counter() - started
    records = sum(summary.records_per_source.values())
    return {
        "seconds": seconds,
        "patients": patients,
        "records": records,
        "bytes": _tree_bytes(Path(out)),
    }


def ingest(landing: str, lake: str, buckets: int) -> dict[str, object]:
    """Ingest a landing folder into bronze (the pure function the bronze asset calls)."""
    from pipelines.bronze.ingest import ingest_landing

    report = ingest_landing(UPath(landing), UPath(lake), buckets)
    return {
        "seconds": report.seconds,
        "records": report.records_in,
        "bytes": report.bytes_read,
        "files": report.files_ingested,
        "quarantined": report.rows["quarantine"],
        "lake_bytes": _tree_bytes(Path(lake)),
    }


def silver(landing: str, lake: str, buckets: int, workers: int) -> dict[str, object]:
    """Build every silver partition from bronze (the function the silver asset calls), `workers`
    partitions at a time as Dagster's multiprocess executor would; also time a plain read of the FHIR
    landing files for comparison."""
    from concurrent.futures import ProcessPoolExecutor

    from pipelines.silver.build import build_partition, partition_keys

    fhir_files = [
        p for source in ("ehr_a", "ehr_b") for p in (Path(landing) / source).rglob("*") if p.is_file()
    ]
    fhir_bytes = sum(p.stat().st_size for p in fhir_files)
    cold = _drop_page_cache()
    started = time.perf_counter()
    for first in range(0, len(fhir_files), 500):  # in groups: one argument list cannot hold 100k bundles
        batch = fhir_files[first : first + 500]
        subprocess.run(["cat", *map(str, batch)], stdout=subprocess.DEVNULL, check=True)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        reports = list(pool.map(build_partition, [UPath(lake)] * (buckets + 1), partition_keys(buckets)))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": sum(r.resources for r in reports),
        "rows": sum(sum(r.rows.values()) for r in reports),
        "bytes": fhir_bytes,
        "raw_read_mb_s": fhir_bytes / 2**20 / read_seconds,
        "raw_read_cold": cold,
    }


def _drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only) so that the plain read measures the disk and silver
    reads bronze from disk too; False when not permitted (then the read is from a warm cache)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def compare(landing: str, per_type: int) -> dict[str, object]:
    """Every silver view through this engine and through `sqlonfhir` (fhirpathpy, row by row) over the
    same fixed sample: the first `per_type` resources of each type in the ehr_a Bulk export. Ours reads
    the NDJSON text (as silver does); sqlonfhir gets the resources already parsed, untimed. One core each."""
    import orjson
    import polars as pl

    from pipelines.silver.views import load_views
    from pipelines.sof.engine import view_rows
    from pipelines.sof.frames import contexts_from_json
    from pipelines.sof.view import parse_view

    views = load_views()
    wanted = {v.view.resource for v in views}
    sample: dict[str, list[bytes]] = {t: [] for t in wanted}
    for path in sorted((Path(landing) / "ehr_a").glob("*.ndjson")):
        resource_type = path.name.split(".")[0]
        if resource_type not in wanted or len(sample[resource_type]) >= per_type:
            continue
        with path.open("rb") as lines:
            for line in lines:
                if len(sample[resource_type]) >= per_type:
                    break
                sample[resource_type].append(line.rstrip(b"\n"))
    ours = theirs = 0.0
    resources = 0
    dropped: list[str] = []
    for resource_type, lines in sorted(sample.items()):
        parsed = [orjson.loads(line) for line in lines]  # sqlonfhir gets parsed JSON; its parse is untimed
        comparable = []
        for silver_view in (v for v in views if v.view.resource == resource_type):
            # probe on a few resources first; if the full sample then fails, probe on all of it
            definition, lost = _what_sqlonfhir_runs(silver_view.definition, parsed[:200])
            seconds = _timed_sqlonfhir(definition, parsed)
            if seconds is None:
                definition, lost = _what_sqlonfhir_runs(silver_view.definition, parsed)
                seconds = _timed_sqlonfhir(definition, parsed)
            dropped += [f"{silver_view.name}.{name}" for name in lost]
            if definition is None or seconds is None:
                continue
            theirs += seconds
            comparable.append(parse_view(definition))
        if not comparable:
            continue
        text = pl.Series([line.decode() for line in lines], dtype=pl.String)
        started = time.perf_counter()
        # decoded once for all views of the type, as silver does
        contexts = contexts_from_json(text).contexts
        for view in comparable:
            view_rows(view, contexts)
        ours += time.perf_counter() - started
        resources += len(lines) * len(comparable)
    return {
        "seconds": ours,
        "records": resources,  # resource × view evaluations
        "bytes": 0,
        "sqlonfhir_seconds": theirs,
        "columns_sqlonfhir_cannot_run": dropped,
    }


def _timed_sqlonfhir(definition: dict[str, Any] | None, resources: list[dict[str, Any]]) -> float | None:
    """Seconds `sqlonfhir` takes for the view over the resources; None when it fails."""
    import sqlonfhir

    if definition is None:
        return None
    started = time.perf_counter()
    try:
        sqlonfhir.evaluate(resources, definition)
    except Exception:
        return None
    return time.perf_counter() - started


def _what_sqlonfhir_runs(
    definition: dict[str, Any], probe: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The view without the columns `sqlonfhir` fails on (it has no %constants or %rowIndex and fails on
    an absent reference in getReferenceKey), and those columns' names; None when nothing is left."""
    import sqlonfhir

    def runs(candidate: dict[str, Any] | None) -> bool:
        try:
            return candidate is not None and sqlonfhir.evaluate(probe, candidate) is not None
        except Exception:
            return False

    names = _column_names(definition)
    kept = {name for name in names if runs(_keep_columns(definition, {name}))}
    reduced = _keep_columns(definition, kept)
    if not runs(reduced):
        return None, names
    return reduced, [name for name in names if name not in kept]


def _column_names(node: dict[str, Any]) -> list[str]:
    names = [c["name"] for c in node.get("column", [])]
    for child in [*node.get("select", []), *node.get("unionAll", [])]:
        names += _column_names(child)
    return names


def _keep_columns(definition: dict[str, Any], keep: set[str]) -> dict[str, Any] | None:
    """A copy of the view with only the columns in `keep` (select nodes left empty are dropped)."""

    def prune(node: dict[str, Any]) -> dict[str, Any] | None:
        node = dict(node)
        if "column" in node:
            node["column"] = [c for c in node["column"] if c["name"] in keep]
            if not node["column"]:
                del node["column"]
        for key in ("select", "unionAll"):
            if key in node:
                node[key] = [p for p in (prune(child) for child in node[key]) if p is not None]
                if not node[key]:
                    del node[key]
        return node if any(k in node for k in ("column", "select", "unionAll")) else None

    pruned = prune(copy.deepcopy(definition))
    return pruned if pruned is not None and "select" in pruned else None


def identity(lake: str, truth: str) -> dict[str, object]:
    """Build identity over the silver patients and score it against the generator's ground truth:
    pairwise precision and recall of "these two records are the same person"."""
    import polars as pl

    from pipelines.identity.build import build_identity
    from pipelines.lake import read_table

    started = time.perf_counter()
    report = build_identity(UPath(lake))
    seconds = time.perf_counter() - started
    key = pl.format("{}|{}", "source", "source_patient_id").alias("unique_id")
    expected = pl.read_csv(Path(truth) / "identity.csv", infer_schema_length=0).select(key, "person_index")
    found = read_table(UPath(lake), "identity", "person_link").select(key, "person_id")

    def pairs(frame: pl.DataFrame, by: str) -> pl.DataFrame:
        joined = frame.join(frame, on=by, suffix="_r").filter(pl.col("unique_id") < pl.col("unique_id_r"))
        return joined.select("unique_id", "unique_id_r")

    true_pairs, predicted = pairs(expected, "person_index"), pairs(found, "person_id")
    hits = predicted.join(true_pairs, on=["unique_id", "unique_id_r"]).height
    return {
        "seconds": seconds,
        "records": report.records,
        "bytes": 0,
        "persons": report.persons,
        "true_persons": expected["person_index"].n_unique(),
        "true_pairs": true_pairs.height,
        "predicted_pairs": predicted.height,
        "precision": hits / max(predicted.height, 1),
        "recall": hits / max(true_pairs.height, 1),
        "clerical_review": report.clerical_review,
    }


def generate_identity(out: str, people: int, seed: int, cases: bool = True) -> dict[str, object]:
    """Generate the hard identity set (Patients only), or with `cases` false the same base people with only
    the population's usual noise (the easy set)."""
    from pipelines.generate.identity_cases import ORDINARY_ONLY, CaseMix, generate_identity_set

    started = time.perf_counter()
    summary = generate_identity_set(Path(out), people, seed, mix=CaseMix() if cases else ORDINARY_ONLY)
    return {
        "seconds": time.perf_counter() - started,
        "records": summary.records,
        "bytes": _tree_bytes(Path(out)),
        "persons": summary.persons,
        "persons_by_kind": summary.persons_by_kind,
    }


def identity_cases(lake: str, truth: str) -> dict[str, object]:
    """Build identity over the silver patients and score it per case kind of the identity set's ground truth
    (`bench.identity_score`): pairwise precision and recall, false links between relatives, and the share of
    persons left with a pending clerical-review pair."""
    import polars as pl

    from bench.identity_score import score_identity_cases
    from pipelines.identity.build import build_identity
    from pipelines.lake import read_table

    started = time.perf_counter()
    report = build_identity(UPath(lake))
    seconds = time.perf_counter() - started
    key = pl.format("{}|{}", "source", "source_patient_id").alias("unique_id")
    truth_dir = Path(truth)
    scores = score_identity_cases(
        pl.read_csv(truth_dir / "identity.csv", infer_schema_length=0).select(key, "person_index"),
        pl.read_csv(truth_dir / "identity_cases.csv", infer_schema_length=0),
        read_table(UPath(lake), "identity", "person_link").select(key, "person_id"),
        _pending_review(UPath(lake)),
    )
    return {
        "seconds": seconds,
        "records": report.records,
        "bytes": 0,
        "persons_built": report.persons,
        "links_by_rule": report.links_by_rule,
        **scores,
    }


def apple_generate(xml: str, zip_path: str, mb: int, seed: int) -> dict[str, object]:
    """An Apple Health export of about `mb` MB of XML (`pipelines.generate.apple_health`) and the zip the
    Health app makes of it."""
    from pipelines.generate.apple_health import write_export, zip_export

    started = time.perf_counter()
    counts = write_export(Path(xml), mb * 1_000_000, seed)
    zip_export(Path(xml), Path(zip_path))
    return {
        "seconds": time.perf_counter() - started,
        "xml_bytes": counts.xml_bytes,
        "zip_bytes": Path(zip_path).stat().st_size,
        "elements": counts.elements,
        "records": counts.records,
        "pressure_pairs": counts.pressure_pairs,
    }


def apple_read(path: str, person: str) -> dict[str, object]:
    """`read_apple_health_export` on one export's bytes (as the ingest hands them over); the peak RSS
    before the reader (interpreter, libraries and the file's bytes) beside the stage's."""
    from pipelines.bronze.apple_health import read_apple_health_export

    load = _loadavg()
    data = Path(path).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu = time.perf_counter(), time.process_time()
    read = read_apple_health_export(data, person, Path(path).name)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "file_bytes": len(data),
        "records": read.bronze.height,
        "quarantined": read.quarantine.height,
        "skipped": sum(read.skipped.values()),
        "rss_before_mib": before,
        "load": [load, _loadavg()],
    }


def apple_bronze(landing: str, lake: str, buckets: int) -> dict[str, object]:
    """The bronze step (`ingest_landing`, as the pipeline's bronze asset calls it) on a landing folder; its
    records are the export's rows in bronze (counted after the peak RSS of the step was taken)."""
    import polars as pl

    from pipelines.bronze.ingest import ingest_landing
    from pipelines.bronze.tables import DEVICE_RECORDS

    load, cpu = _loadavg(), time.process_time()
    report = ingest_landing(UPath(landing), UPath(lake), buckets)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": report.seconds,
        "cpu_s": time.process_time() - cpu,
        "records": _rows(lake, "bronze", DEVICE_RECORDS, pl.col("record_format") == "apple_health"),
        "rss_after_mib": peak,
        "quarantined": report.rows["quarantine"],
        "unbalanced_files": report.unbalanced_files,
        "load": [load, _loadavg()],
    }


def apple_counts(lake: str) -> dict[str, object]:
    """Rows of the Apple Health exports in bronze device_records, and of silver device_reading (linked to a
    patient) and its rejects."""
    import polars as pl

    from pipelines.bronze.tables import DEVICE_RECORDS
    from pipelines.devices.build import DEVICE_READING, DEVICE_READING_REJECTS
    from pipelines.silver.build import SILVER

    return {
        "bronze": _rows(lake, "bronze", DEVICE_RECORDS, pl.col("record_format") == "apple_health"),
        "silver": _rows(lake, SILVER, DEVICE_READING),
        "linked": _rows(lake, SILVER, DEVICE_READING, pl.col("patient_id").is_not_null()),
        "rejects": _rows(lake, SILVER, DEVICE_READING_REJECTS),
    }


def _rows(lake: str, layer: str, table: str, where: Any = None) -> int:
    """Rows of a lake table (those matching `where`); 0 when it has none."""
    import polars as pl

    from pipelines.lake import parquet_files, scan_table, table_path

    if not parquet_files(table_path(UPath(lake), layer, table)):
        return 0
    frame = scan_table(UPath(lake), layer, table)
    return int((frame if where is None else frame.filter(where)).select(pl.len()).collect().item())


def _loadavg() -> float | None:
    """The 1-minute load average (None where there is no /proc/loadavg)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return None


def _pending_review(lake: UPath) -> Any:
    """The clerical-review pairs nobody has decided (`pipelines.identity.decisions`; before decisions
    existed, every review pair was pending)."""
    try:
        from pipelines.identity.decisions import pending_review
    except ImportError:
        from pipelines.lake import read_table

        return read_table(lake, "identity", "clerical_review").select("unique_id_l", "unique_id_r")
    return pending_review(lake).select("unique_id_l", "unique_id_r")


def risk(landing: str, lake: str, truth: str, buckets: int) -> dict[str, object]:
    """The whole pipeline on a generated landing folder (as of 2026-06-30), then each deployed risk model's
    test metrics against its baseline, and the ceiling: the AUROC of the generator's own latent rates
    (ground_truth/risk.csv) on the same test rows."""
    import json as _json

    import polars as pl
    from sklearn.metrics import roc_auc_score

    from models.risk.config import risk_config
    from models.risk.dataset import discharge_training_set, person_training_set
    from pipelines.config import Settings
    from pipelines.lake import read_table
    from pipelines.run import run_pipeline

    as_of = date(2026, 6, 30)
    settings = Settings(UPath(landing), UPath(lake), UPath(lake) / "exports", buckets, as_of)
    started = time.perf_counter()
    run = run_pipeline(settings)
    seconds = time.perf_counter() - started
    latent = pl.read_csv(Path(truth) / "risk.csv")
    known = pl.read_csv(Path(truth) / "identity.csv", infer_schema_length=0).with_columns(
        pl.col("person_index").cast(pl.Int64)
    )
    persons = (
        read_table(UPath(lake), "identity", "person_link")
        .join(known, on=["source", "source_patient_id"])
        .group_by("person_id")
        .agg(pl.col("person_index").first())
    )
    oracles = {
        "person_180d": (person_training_set, pl.col("ed_rate") + pl.col("ip_rate")),
        "discharge_30d": (
            discharge_training_set,
            1 - (1 - pl.col("readmit_p")) * (-pl.col("ed_rate") * 30 / 365).exp(),
        ),
    }
    result: dict[str, object] = {"seconds": seconds, "records": 0, "bytes": 0, "pipeline_ok": run.success}
    for name, (build, oracle) in oracles.items():
        pointer = UPath(lake) / "models" / name / "deployed.json"
        if not pointer.exists():
            result[name] = None
            continue
        version = _json.loads(pointer.read_text())["version"]
        metadata = _json.loads((pointer.parent / version / "metadata.json").read_text())
        test = build(UPath(lake), buckets, as_of, risk_config()).part("test")
        rows = (
            test.join(persons, on="person_id")
            .join(latent, on="person_index")
            .with_columns(oracle.alias("_o"))
        )
        ceiling = roc_auc_score(rows["outcome"].cast(pl.Int8).to_numpy(), rows["_o"].to_numpy())
        result[name] = {
            "version": version,
            "chosen": metadata["chosen"],
            "rows": metadata["rows"],
            "positives": metadata["positives"],
            "baseline": metadata["baseline"],
            "metrics": metadata["metrics"],
            "calibration": metadata["calibration"],
            "oracle_auroc": ceiling,
        }
    return result


GENERIC_BUILTINS = (
    "<built-in method builtins.next>",
    "<built-in method builtins.exec>",
    "<built-in method builtins.__import__>",
)
"""Built-ins that only carry a caller's time (generators, imports): left out of the profile table."""


DASHBOARD_APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
WARM_RENDERS = 5
RENDER_TIMEOUT_S = 900


def dashboard(landing: str, lake: str, exports: str, buckets: int) -> dict[str, object]:
    """The whole pipeline on a generated landing folder (as of 2026-06-30, in a child process so that each
    part's peak memory is its own), then every dashboard page through Streamlit's AppTest as a care manager:
    after one untimed view of each (the process's first-use costs), one cold render (cache cleared) and
    `WARM_RENDERS` warm ones (cache kept), each a fresh AppTest whose page run alone is timed, and two
    Patient 360 searches; finally one warm render of the slowest page under cProfile."""
    import multiprocessing
    import statistics
    from concurrent.futures import ProcessPoolExecutor

    import polars as pl

    from pipelines.lake import read_table, scan_table

    labels = Path(landing).parent / "ground_truth" / "conversation_turns.csv"
    os.environ.update(PATIENT_INSIGHTS_SENTIMENT_LABELS=str(labels), DAGSTER_HOME="")
    machine = _MachineLoad()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pipeline = pool.submit(_pipeline, landing, lake, exports, buckets).result()
    pipeline["other_cores"] = machine.other_cores()
    pipeline["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    import streamlit as st

    from dashboards.pages import PAGES

    scripts = [f"views/{script}" for script, *_ in PAGES]
    titles = dict(zip(scripts, (title for _, title, *_ in PAGES), strict=True))
    os.environ.update(
        PATIENT_INSIGHTS_LAKE=lake,
        PATIENT_INSIGHTS_EXPORTS=exports,
        PATIENT_INSIGHTS_DASHBOARD_ROLE="care_manager",
    )
    # every page once, untimed but the first: what a server process pays once, at its first page views
    # (imports such as pandas at the first st.dataframe, altair's first chart), is then behind the figures
    first_view = _render(scripts[0], scripts[0])[1]
    started = time.perf_counter()
    for script in scripts[1:]:
        _render(script, scripts[0])
    warm_up = first_view + time.perf_counter() - started
    machine = _MachineLoad()
    pages = []
    for script in scripts:
        app, cold = _render(script, scripts[0], clear=True)
        errors = _exceptions(app)
        warm = []
        for _ in range(WARM_RENDERS):
            app, seconds = _render(script, scripts[0])
            warm.append(seconds)
            errors += _exceptions(app)
        pages.append(
            {
                "page": titles[script],
                "script": script,
                "cold_s": cold,
                "warm_median_s": statistics.median(warm),
                "warm_max_s": max(warm),
                "warm_s": warm,
                "exceptions": errors,
            }
        )

    columns = ("person_id", "given", "family", "birth_date")
    everyone = scan_table(UPath(lake), "gold", "patient_360").select(columns).collect()
    people = everyone.drop_nulls().sort("person_id")
    named = people.row(0, named=True)
    mrns = (
        read_table(UPath(lake), "silver", "patient_identifier")
        .filter(pl.col("type_code") == "MR")
        .join(
            read_table(UPath(lake), "identity", "person_link"),
            left_on=["source", "patient_id"],
            right_on=["source", "source_patient_id"],
        )
        .join(people, on="person_id")
        .filter(pl.col("person_id") != named["person_id"])  # another person: their reads are not cached
        .sort("person_id", "value")
    )
    numbered = mrns.row(0, named=True)
    searches = {
        "name": _search(f"{named['family'][:4]} {named['given'].split()[0]}", named, scripts[0]),
        "mrn": _search(numbered["value"], numbered, scripts[0]),
    }
    slowest = max(pages, key=lambda p: p["warm_median_s"])
    profile = _profiled_render(slowest["script"], scripts[0])
    renders = machine.other_cores()
    st.cache_data.clear()
    return {
        "seconds": pipeline["seconds"],
        "records": everyone.height,
        "bytes": _tree_bytes(Path(lake) / "gold"),
        "pipeline": pipeline,
        "persons": everyone.height,
        "first_view_s": first_view,
        "warm_up_s": warm_up,
        "compiles_imports": sys.flags.dont_write_bytecode,
        "pages": pages,
        "searches": searches,
        "profiled_page": slowest["page"],
        "profile": profile,
        "other_cores_during_renders": renders,
        "dashboard_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _pipeline(landing: str, lake: str, exports: str, buckets: int) -> dict[str, object]:
    from pipelines.config import Settings
    from pipelines.run import run_pipeline

    settings = Settings(UPath(landing), UPath(lake), UPath(exports), buckets, date(2026, 6, 30))
    started = time.perf_counter()
    run = run_pipeline(settings)
    return {
        "seconds": time.perf_counter() - started,
        "success": run.success,
        "failed_checks": run.failed_checks,
        "warnings": run.warnings,
    }


def _render(script: str, home: str, *, clear: bool = False) -> tuple[Any, float]:
    """A fresh AppTest switched to the page `script` and the seconds of that page's run (the home page:
    its first run); `clear` empties Streamlit's data cache just before the timed run."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(DASHBOARD_APP), default_timeout=RENDER_TIMEOUT_S)
    if script != home:
        app.run()
        app.switch_page(script)
    if clear:
        st.cache_data.clear()
    started = time.perf_counter()
    app.run()
    return app, time.perf_counter() - started


def _exceptions(app: Any) -> list[str]:
    return [str(e.value) for e in app.exception]


def _search(query: str, person: dict[str, Any], home: str) -> dict[str, object]:
    """`WARM_RENDERS` times on a fresh Patient 360 page (search index cached): the run after typing `query`
    into the search box; the first is the person's first look-up (their rows not cached yet)."""
    import statistics

    seconds, errors, found, matches = [], [], False, 0
    for _ in range(WARM_RENDERS):
        app, _ = _render("views/patient.py", home)
        app.text_input(key="search").input(query)
        started = time.perf_counter()
        app.run()
        seconds.append(time.perf_counter() - started)
        errors += _exceptions(app)
        options = [str(o) for o in app.selectbox[0].options] if app.selectbox else []
        matches = len(options)
        found = any(person["family"] in o and person["birth_date"] in o for o in options)
    return {
        "first_s": seconds[0],
        "repeat_median_s": statistics.median(seconds[1:]),
        "repeat_max_s": max(seconds[1:]),
        "matches": matches,
        "found": found,
        "exceptions": errors,
    }


def _profiled_render(script: str, home: str, top: int = 16) -> list[dict[str, object]]:
    """One warm render of `script` under cProfile (of the script thread, where the page runs): the page
    script's module and the functions within it with the most cumulative time."""
    import cProfile
    import pstats
    import threading

    from streamlit.testing.v1 import AppTest

    profiler = cProfile.Profile()

    def start_in_script_thread(*_: object) -> None:
        sys.setprofile(None)
        if threading.current_thread().name == "ScriptRunner.scriptThread":
            profiler.enable()

    app = AppTest.from_file(str(DASHBOARD_APP), default_timeout=RENDER_TIMEOUT_S)
    if script != home:
        app.run()
        app.switch_page(script)
    threading.setprofile(start_in_script_thread)
    try:
        app.run()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        {"function": f"{_short(file)}:{line}({name})", "calls": calls, "own_s": own, "cumulative_s": cum}
        for (file, line, name), (_, calls, own, cum, _) in stats.items()
    ]
    page = next((r for r in rows if r["function"].startswith(f"dashboards/{script}:1(<module>)")), None)
    inside = [r for r in rows if page is None or r["cumulative_s"] <= page["cumulative_s"]]  # not the runner
    return sorted(inside, key=lambda r: (-r["cumulative_s"], r is not page))[:top]


def _short(file: str) -> str:
    """A profiled function's file relative to site-packages, the checkout or the standard library."""
    stdlib = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/"
    for marker in ("site-packages/", str(Path(__file__).resolve().parents[1]) + "/", stdlib):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


class _MachineLoad:
    """How many cores other processes kept busy since creation: the machine's busy CPU time (/proc/stat)
    minus this process's and its waited-for children's, over the wall time."""

    def __init__(self) -> None:
        self.started, self.busy, self.own = time.perf_counter(), _machine_busy_s(), _own_cpu_s()

    def other_cores(self) -> float | None:
        busy = _machine_busy_s()
        if busy is None or self.busy is None:
            return None
        other = (busy - self.busy) - (_own_cpu_s() - self.own)
        return max(0.0, other) / (time.perf_counter() - self.started)


def _machine_busy_s() -> float | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


STAGES = {
    "generate": generate,
    "ingest": ingest,
    "silver": silver,
    "compare": compare,
    "identity": identity,
    "generate_identity": generate_identity,
    "identity_cases": identity_cases,
    "risk": risk,
    "dashboard": dashboard,
    "apple_generate": apple_generate,
    "apple_read": apple_read,
    "apple_bronze": apple_bronze,
    "apple_counts": apple_counts,
}


def main() -> None:
    """`python -m bench.stage <stage> <json kwargs>`."""
    stage, kwargs = sys.argv[1], json.loads(sys.argv[2])
    result = STAGES[stage](**kwargs)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # pool workers, the largest one
    result["peak_rss_mib"] = max(own, children) / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
