"""Commands that do not run the pipeline must not load it: `views run`, `summary`, `generate` and `--help`
import neither Dagster nor Great Expectations nor scikit-learn / SciPy, and `sentiment score` (which loads
a scikit-learn model) imports neither Dagster nor Great Expectations.

Each command runs in a fresh interpreter, since the test process itself has imported everything; a small
wrapper invokes the typer app there and then reports its exit code and which watched modules are loaded.
Nothing here is timed (bench/startup.py measures the start-up time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
from upath import UPath

PIPELINE_ONLY = ("dagster", "great_expectations")
"""Loaded only by commands that run the pipeline (or its Dagster jobs)."""
MODEL_ONLY = ("sklearn", "scipy")
"""Loaded only by commands that train or apply a model (or compute the outreach effect)."""
REPORT = "cli-startup-report: "
WRAPPER = f"""
import json, sys
from pipelines.cli import app
try:
    app(sys.argv[1:], prog_name="patient-insights")
    code = 0
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
watched = {list(PIPELINE_ONLY + MODEL_ONLY)!r}
loaded = sorted(name for name in watched if name in sys.modules)
sys.stdout.flush()
print({REPORT!r} + json.dumps({{"exit_code": code, "loaded": loaded}}))
"""


def run_cli(*args: str) -> tuple[int, list[str], str]:
    """Run `patient-insights ARGS` in a fresh interpreter: its exit code, the watched modules it loaded
    and what it printed."""
    env = {**os.environ, "COLUMNS": "200", "PATIENT_INSIGHTS_LAKE": "/nonexistent-lake"}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env, timeout=120
    )
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith(REPORT), f"no report:\n{done.stdout}\n{done.stderr}"
    report = json.loads(lines[-1].removeprefix(REPORT))
    return report["exit_code"], report["loaded"], "\n".join(lines[:-1]) + done.stderr


def tiny_view(tmp_path: Path) -> list[str]:
    """`views run` arguments over a two-Patient NDJSON file and a two-column ViewDefinition."""
    definition = {
        "resourceType": "ViewDefinition",
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "id", "type": "id"},
                    {"name": "family", "path": "name.first().family", "type": "string"},
                ]
            }
        ],
    }
    (tmp_path / "view.json").write_bytes(orjson.dumps(definition))
    patients = [
        {"resourceType": "Patient", "id": "a", "name": [{"family": "Ng"}]},
        {"resourceType": "Patient", "id": "b", "name": [{"family": "Ode"}]},
    ]
    (tmp_path / "in.ndjson").write_bytes(b"\n".join(orjson.dumps(p) for p in patients) + b"\n")
    return ["--view", str(tmp_path / "view.json"), "--input", str(tmp_path / "in.ndjson")]


def test_help_loads_neither_pipeline_nor_models() -> None:
    code, loaded, output = run_cli("--help")
    assert code == 0, output
    assert "views" in output and "summary" in output
    assert loaded == []


def test_views_run_loads_neither_pipeline_nor_models(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    code, loaded, output = run_cli("views", "run", *tiny_view(tmp_path), "--output", str(out))
    assert code == 0, output
    assert loaded == []
    assert pl.read_parquet(out).sort("id").rows() == [("a", "Ng"), ("b", "Ode")]


def test_views_run_with_a_bad_view_exits_2_without_loading_the_pipeline(tmp_path: Path) -> None:
    args = tiny_view(tmp_path)
    (tmp_path / "view.json").write_bytes(b'{"resource": "Patient", "select": []}')
    code, loaded, output = run_cli("views", "run", *args, "--output", str(tmp_path / "x.parquet"))
    assert code == 2, output
    assert loaded == []


def test_summary_of_a_tiny_lake_loads_neither_pipeline_nor_models(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for folder, frame in (
        ("silver/patient", pl.DataFrame({"id": ["a", "b"]})),
        (
            "bronze/quarantine",
            pl.DataFrame({"target_table": ["fhir_resources"] * 3, "reason_code": ["invalid_json"] * 3}),
        ),
    ):
        (lake / folder).mkdir(parents=True)
        frame.write_parquet(lake / folder / "data.parquet")
    code, loaded, output = run_cli("summary", "--lake", str(lake), "--exports", str(tmp_path / "exports"))
    assert code == 0, output
    assert loaded == []
    assert "Rows per table" in output and "patient" in output
    assert "invalid_json" in output and "fhir_resources" in output


def test_summary_of_an_absent_lake_runs_as_a_module(tmp_path: Path) -> None:
    """`python -m pipelines.cli` reaches the summary helpers (they are defined before the app runs)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "summary", "--lake", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Rows per table" in done.stdout


def test_generate_loads_neither_pipeline_nor_models(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    code, loaded, output = run_cli("generate", "--patients", "2", "--out", str(landing))
    assert code == 0, output
    assert loaded == []
    assert any(landing.iterdir())


def test_sentiment_score_loads_the_model_but_not_the_pipeline(tmp_path: Path) -> None:
    # a deployed model trained on the small labelled texts of the sentiment tests (well under a second)
    from models.sentiment.lifecycle import train_and_deploy_sentiment
    from models.sentiment.provenance import ORGANISATION
    from models.sentiment.train import split_held_out
    from tests.test_sentiment import labelled

    lake = tmp_path / "lake"
    train, held_out = split_held_out(labelled(30, seed=3))
    train_and_deploy_sentiment(UPath(lake) / "models", train, held_out, "test texts", provenance=ORGANISATION)
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pl.DataFrame({"comment": ["Awful, nobody called me back.", "Thank you so much!"]}).write_csv(source)
    args = ["--input", str(source), "--text-column", "comment", "--output", str(out), "--lake", str(lake)]
    code, loaded, output = run_cli("sentiment", "score", *args)
    assert code == 0, output
    assert not set(loaded) & set(PIPELINE_ONLY), loaded
    assert "sklearn" in loaded  # the deployed model is a scikit-learn pipeline: the wrapper does see it
    assert pl.read_csv(out)["sentiment_text_status"].to_list() == ["ok", "ok"]
