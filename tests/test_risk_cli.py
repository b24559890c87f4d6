"""`patient-insights risk train / evaluate` on a generated lake: the temporal split's figures against the
clinical baselines and the deployed version, deploy-only-if-better and --force, and evaluation of any
registered version reproducing its registration figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner
from upath import UPath

from pipelines.cli import app
from pipelines.incremental import LakeState, write_state
from tests.test_identity import identity  # noqa: F401  (800 generated people through identity)

pytestmark = pytest.mark.slow
AS_OF = "2026-06-30"
EARLIER = "2026-03-31"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def lake(identity, tmp_path_factory) -> Path:  # noqa: F811
    """A copy of the 800-person lake (its registry is this module's own)."""
    _, source = identity
    copy = tmp_path_factory.mktemp("risk_cli") / "lake"
    shutil.copytree(str(source), copy)
    return copy


def evaluate(lake: Path, version: str, out: Path, *extra: str) -> tuple[int, str]:
    return invoke(
        "risk", "evaluate", "--lake", str(lake), "--model", version, "--as-of", AS_OF, "--buckets", "4",
        "--output", str(out), *extra,
    )  # fmt: skip


def deployed(lake: Path, name: str) -> str | None:
    pointer = lake / "models" / name / "deployed.json"
    return json.loads(pointer.read_text())["version"] if pointer.exists() else None


def train(lake: Path, tmp_path: Path, *extra: str) -> tuple[int, str, dict]:
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    code, output = invoke(
        "risk", "train", "--lake", str(lake), "--buckets", "4", "--report", str(report), *extra
    )
    return code, output, json.loads(report.read_text()) if report.exists() else {}


def test_train_deploys_only_a_version_that_beats_the_baseline_and_the_deployed_one(
    lake: Path, tmp_path: Path
) -> None:
    code, output, body = train(lake, tmp_path, "--as-of", AS_OF)
    assert code == 0, output
    assert "Risk models trained on data up to 2026-06-30" in output
    by_name = {m["model"]: m for m in body["models"]}
    assert set(by_name) == {"person_180d", "discharge_30d"}
    person = by_name["person_180d"]
    assert person["status"] == "registered", person["detail"]
    metrics = person["test_metrics"]
    beats_baseline = metrics["model"]["auroc"] > metrics["charlson_index"]["auroc"]
    assert person["decision"] == ("deployed" if beats_baseline else "kept")
    assert deployed(lake, "person_180d") == (person["version"] if beats_baseline else None)
    if not beats_baseline:
        code, output, body = train(lake, tmp_path, "--as-of", AS_OF, "--model", "person_180d", "--force")
        assert code == 0 and body["models"][0]["decision"] == "forced", output
    first = person["version"]
    assert deployed(lake, "person_180d") == first

    code, output, body = train(lake, tmp_path, "--as-of", AS_OF, "--model", "person_180d")
    assert code == 0 and [(m["status"], m["decision"]) for m in body["models"]] == [
        ("reused", "already_deployed")
    ]

    # trained on earlier data: judged against the deployed version on its own test rows
    code, output, body = train(lake, tmp_path, "--as-of", EARLIER, "--model", "person_180d")
    assert code == 0, output
    (later,) = body["models"]
    assert later["version"] != first and later["compared_with"] == first
    mine, theirs = later["test_metrics"]["model"]["auroc"], later["compared_metrics"]["auroc"]
    baseline = later["test_metrics"]["charlson_index"]["auroc"]
    earns = mine > theirs and mine > baseline
    assert later["decision"] == ("deployed" if earns else "kept")
    assert deployed(lake, "person_180d") == (later["version"] if earns else first)
    assert f"deployed {first}" in later["detail"] and "trained on later data" in later["detail"]
    if not earns:
        code, output, body = train(lake, tmp_path, "--as-of", EARLIER, "--model", "person_180d", "--force")
        assert code == 0 and body["models"][0]["decision"] == "forced", output
        assert deployed(lake, "person_180d") == later["version"]
    record = json.loads((lake / "models" / "person_180d" / "deployed.json").read_text())
    assert record["replaces"] == first and record["reason"]


def test_evaluate_reproduces_the_registration_figures_and_writes_json(lake: Path, tmp_path: Path) -> None:
    code, output, body = train(lake, tmp_path, "--as-of", AS_OF, "--model", "person_180d")
    assert code == 0, output
    version = body["models"][0]["version"]
    out = tmp_path / "evaluation.json"
    code, output = evaluate(lake, version, out)
    assert code == 0, output
    assert "Calibration" in output and "By sex and age band" in output
    result = json.loads(out.read_text())
    registered = json.loads((lake / "models" / "person_180d" / version / "metadata.json").read_text())
    # the same version on the same test rows: the figures it was registered with
    assert result["metrics"]["model"]["auroc"] == pytest.approx(registered["metrics"]["model"]["auroc"])
    assert result["metrics"]["model"]["brier"] == pytest.approx(registered["metrics"]["model"]["brier"])
    assert result["metrics"]["charlson_index"]["auroc"] == pytest.approx(
        registered["metrics"]["charlson_index"]["auroc"]
    )
    assert sum(b["n"] for b in result["calibration"]) == result["metrics"]["model"]["n"]
    assert len(result["calibration"]) == 10 and {s["slice"] for s in result["fairness"]} == {"sex", "age"}
    code, output = evaluate(lake, version, tmp_path / "v.json", "--rows", "validation")
    assert code == 0, output


def test_bad_requests_give_clear_errors(lake: Path, tmp_path: Path) -> None:
    cases = [
        (
            [
                "risk",
                "evaluate",
                "--lake",
                str(lake),
                "--model",
                "person_180d-000000000000",
                "--buckets",
                "4",
            ],
            1,
            "not in the registry",
        ),
        (
            ["risk", "evaluate", "--lake", str(lake), "--model", "sentiment-0123", "--buckets", "4"],
            1,
            "is not a risk model version",
        ),
        (
            ["risk", "evaluate", "--lake", str(lake), "--model", "person_180d-0", "--rows", "all"],
            2,
            "--rows must be",
        ),
        (
            ["risk", "train", "--lake", str(tmp_path / "empty"), "--as-of", AS_OF],
            2,
            "has no identity/person table",
        ),
        (
            ["risk", "train", "--lake", str(lake), "--model", "person_365d"],
            2,
            "unknown model(s) ['person_365d']",
        ),
        (
            ["risk", "train", "--lake", str(lake), "--as-of", "30/06/2026", "--buckets", "4"],
            2,
            "Invalid isoformat",
        ),
    ]
    for args, exit_code, message in cases:
        code, output = invoke(*args)
        assert code == exit_code and message in output, (args, output)
    recorded = tmp_path / "recorded"
    shutil.copytree(lake / "identity", recorded / "identity")
    write_state(UPath(recorded), LakeState(frozenset(), AS_OF, 4, {}))
    code, output = invoke("risk", "train", "--lake", str(recorded), "--buckets", "8", "--as-of", AS_OF)
    assert code == 2 and "built with 4 buckets, not 8" in output, output
