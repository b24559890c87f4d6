"""Real data with no settings (issue 27): the 79-patient Synthea bundles through `patient-insights ingest`
as a new user runs it, no PATIENT_INSIGHTS_* variable set. Their history ends on 2021-09-23 and they carry
no Bulk transaction time: care gaps are measured in the year the data ends, trigger windows hold the
events near it, and every living person has a risk score."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.lake import read_table

ROOT = Path(__file__).resolve().parents[2]
DATA_ENDS = date(2021, 9, 23)  # the bundles' last encounter


@pytest.fixture(scope="module")
def default_run(synthea_bundles: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("synthea_defaults")
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENT_INSIGHTS_")}
    env["DAGSTER_HOME"] = str(home)
    lake, exports = root / "lake", root / "exports"
    command = [sys.executable, "-m", "pipelines.cli", "ingest", "--landing", str(synthea_bundles)]
    command += ["--lake", str(lake), "--exports", str(exports)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return {"stdout": done.stdout, "lake": UPath(lake)}


def test_the_as_of_day_is_where_the_data_ends_and_the_run_says_why(default_run: dict[str, object]) -> None:
    stdout = str(default_run["stdout"])
    assert f"as-of day {DATA_ENDS.isoformat()}: the latest clinical event in the data" in stdout
    assert "days before today" in stdout  # the data is old: said, with how to choose another day
    lake = default_run["lake"]
    assert isinstance(lake, UPath)
    runs = sorted((Path(lake) / "meta" / "pipeline_runs").glob("*.json"))
    recorded = orjson.loads(runs[-1].read_bytes())["as_of"]
    assert recorded["day"] == DATA_ENDS.isoformat() and recorded["basis"] == "clinical_events"
    assert recorded["notice"] and "PATIENT_INSIGHTS" not in recorded["notice"]


def test_care_gaps_are_measured_in_the_year_the_data_ends(default_run: dict[str, object]) -> None:
    gaps = read_table(default_run["lake"], "gold", "care_gaps")  # type: ignore[arg-type]
    assert gaps.height
    assert gaps["as_of"].unique().to_list() == [DATA_ENDS]
    assert gaps["period_end"].cast(pl.Date).dt.year().max() == DATA_ENDS.year
    # not every gap open, as it was when the data was measured as of today
    assert gaps.filter(pl.col("status") == "closed-gap").height > 0


def test_windows_hold_the_events_near_the_end_of_the_data(default_run: dict[str, object]) -> None:
    lake = default_run["lake"]
    people = read_table(lake, "gold", "patient_360")  # type: ignore[arg-type]
    # measured as of today every window of this history was empty; as of its last day they hold its visits
    assert people.filter(pl.col("outpatient_visits_12m") > 0).height >= people.height // 2
    assert people.filter(pl.col("outpatient_visits_6m") > 0).height > 0
    # the trigger window (30 days up to the as-of day) holds exactly the discharges the data has in it
    encounters = read_table(lake, "silver", "encounter")  # type: ignore[arg-type]
    ends = encounters.filter(pl.col("class_code").is_in(["IMP", "EMER"])).select(
        pl.col("period_end").str.slice(0, 10).str.to_date(strict=False).alias("day")
    )
    window = ends.filter(pl.col("day").is_between(DATA_ENDS - timedelta(days=30), DATA_ENDS)).height
    triggers = read_table(lake, "gold", "trigger_events")  # type: ignore[arg-type]
    discharges = triggers.filter(pl.col("kind").is_in(["inpatient_discharge", "ed_discharge"]))
    assert discharges.height == window
    assert triggers.is_empty() or triggers["fired_on"].unique().to_list() == [DATA_ENDS]


def test_every_living_person_has_a_risk_score(default_run: dict[str, object]) -> None:
    lake = default_run["lake"]
    people = read_table(lake, "gold", "patient_360")  # type: ignore[arg-type]
    living = people.filter(~pl.col("deceased").cast(pl.Boolean).fill_null(False)).select("person_id")
    scores = read_table(lake, "gold", "risk_scores")  # type: ignore[arg-type]
    assert living.height > 0
    # a model, or while none can be trained honestly on 79 persons the clinical baseline: a tier for all
    scored = scores.drop_nulls("tier").drop_nulls("model_version").select("person_id").unique()
    missing = living.join(scored, on="person_id", how="anti")
    assert missing.is_empty(), f"{missing.height} of {living.height} living persons without a risk score"
