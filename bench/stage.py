"""Run one benchmark stage in this process and print its measurements as JSON (peak RSS included).

Each stage runs in a fresh interpreter so that its peak resident memory is its own.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import date
from pathlib import Path

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
    started = time.perf_counter()
    fhir_bytes = sum(len(p.read_bytes()) for p in fhir_files)
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
    }


STAGES = {"generate": generate, "ingest": ingest, "silver": silver}


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
