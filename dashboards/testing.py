"""A small generated lake for the dashboard's tests (AppTest and the real browser): the whole pipeline on a
few hundred synthetic people, outreach runs included."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from upath import UPath

from pipelines.config import Settings
from pipelines.generate.landing import generate_landing
from pipelines.run import run_pipeline

DEMO_PEOPLE = 300
DEMO_SEED = 11
DEMO_AS_OF = date(2026, 6, 30)
DEMO_BUCKETS = 2


@contextmanager
def _environment(**values: str):
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo_lake(
    root: Path, people: int = DEMO_PEOPLE, dagster_home: str = "", workers: int = 1
) -> tuple[Path, Path]:
    """Generate `people` under `root/landing`, run every asset into `root/lake` and `root/exports`; return
    (lake, exports). The Dagster instance is ephemeral unless `dagster_home` names one; `workers` processes
    run the buckets of each job. Fails when the run does."""
    landing, lake, exports = root / "landing", root / "lake", root / "exports"
    generate_landing(landing, people, seed=DEMO_SEED, as_of=DEMO_AS_OF)
    labels = root / "ground_truth" / "conversation_turns.csv"
    settings = Settings(UPath(landing), UPath(lake), UPath(exports), DEMO_BUCKETS, DEMO_AS_OF)
    with _environment(PATIENT_INSIGHTS_SENTIMENT_LABELS=str(labels), DAGSTER_HOME=dagster_home):
        run = run_pipeline(settings, workers=workers)
    if not run.success:
        raise RuntimeError(f"the demo pipeline run failed: {run.failed_checks}")
    return lake, exports
