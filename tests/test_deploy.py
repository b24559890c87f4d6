"""deploy/ agrees with the code: the image serves the code location the workspace names, the Helm values
use the chart's run launcher and executor switch the code understands, every credential comes from a
Secret, and the executor choice is validated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def test_the_image_serves_the_workspace_module_from_the_lock() -> None:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert f'"--module-name", "{module}"' in DOCKERFILE
    assert "--require-hashes" in DOCKERFILE and "requirements.lock" in DOCKERFILE
    assert re.search(r"^USER 10001$", DOCKERFILE, re.MULTILINE)  # not root at run time
    for folder in ("pipelines", "assets", "models", "dashboards", "data_contracts"):
        assert f"COPY {folder} ./{folder}" in DOCKERFILE


def test_the_values_point_the_chart_at_the_code_location() -> None:
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "pipelines.definitions"]
    assert deployment["port"] == 3030 and "EXPOSE 3030" in DOCKERFILE
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["PATIENT_INSIGHTS_LAKE"].startswith("s3://")
    assert env["PATIENT_INSIGHTS_EXECUTOR"] == "k8s_job"
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["postgresql"]["enabled"] is False and VALUES["generatePostgresqlPasswordSecret"] is False
    limits = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"][
        "tagConcurrencyLimits"
    ]
    from assets.pipeline import PIPELINE_TAG

    assert {"key": PIPELINE_TAG, "limit": 1} in limits  # one pipeline run writes the lake at a time


def _leaves(node: object, path: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, node)]


def test_no_credential_is_written_in_the_values() -> None:
    suspicious = re.compile(r"password|secret|token|access_key|credential", re.IGNORECASE)
    for path, value in _leaves(VALUES):
        if suspicious.search(path) and not path.endswith(".name") and not isinstance(value, bool):
            pytest.fail(f"{path} holds a value ({value!r}): credentials belong in a Secret")
        assert not re.search(r"://[^/\s]*:[^/\s]*@", str(value)), f"{path}: a URL with a password"
    secrets = {s["name"] for s in VALUES["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    assert secrets == {
        "patient-insights-object-storage",
        "patient-insights-outreach-db",
        "patient-insights-deid-salt",
    }
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert all(name in readme for name in [*secrets, "dagster-postgresql-secret"])


def test_the_executor_is_chosen_by_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from pipelines.definitions import _executor

    monkeypatch.delenv("PATIENT_INSIGHTS_EXECUTOR", raising=False)
    assert _executor() is dg.in_process_executor
    monkeypatch.setenv("PATIENT_INSIGHTS_EXECUTOR", "multiprocess")
    assert _executor() is dg.multiprocess_executor
    monkeypatch.setenv("PATIENT_INSIGHTS_EXECUTOR", "k8s_job")
    assert _executor().name == "k8s"
    monkeypatch.setenv("PATIENT_INSIGHTS_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="in_process, multiprocess or k8s_job"):
        _executor()


def test_heavy_steps_name_their_pool_and_pod_size() -> None:
    from assets.gold.assets import person_tables
    from assets.risk.assets import risk_models
    from assets.scaling import BUCKET_POOL, TRAINING_POOL
    from assets.silver.assets import silver_tables

    for asset, pool in (
        (silver_tables, BUCKET_POOL),
        (person_tables, BUCKET_POOL),
        (risk_models, TRAINING_POOL),
    ):
        op = asset.op
        assert op.pool == pool
        assert "dagster-k8s/config" in op.tags
