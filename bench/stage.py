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
        contexts, _ = contexts_from_json(text)  # decoded once for all views of the type, as silver does
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


STAGES = {
    "generate": generate,
    "ingest": ingest,
    "silver": silver,
    "compare": compare,
    "identity": identity,
    "risk": risk,
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
