"""Risk models: training, registry and deployment (one asset), and the drift of the scored population
(a summary table with a warning check). Scoring itself happens in the gold person buckets."""

import dagster as dg
import polars as pl
from upath import UPath

from assets.contracts import contract_check
from assets.resources import LakeResource
from assets.scaling import TRAINING_POOL, TRAINING_STEP
from assets.steps import CHANGED, plan_whole_step, unchanged_results, wants_retraining
from models.registry import registry_of
from models.retraining import NONE_DEPLOYED, retraining_reason
from models.risk.config import risk_config
from models.risk.drift_report import DRIFT_SCHEMA, RISK_DRIFT, drift_table
from models.risk.lifecycle import MODEL_NAMES, train_and_deploy
from models.risk.registry import deployed_risk_version
from models.risk.score import PERSON_MODEL, RISK_FEATURES, RISK_SCORES
from pipelines.gold.as_of import resolve_as_of
from pipelines.gold.build import GOLD, PARTITION_FILE, deployed_risk_model
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.lake import parquet_files, read_parquet, read_table, table_path, write_parquet_atomic
from pipelines.silver.expectations import EXPECTATIONS_DIR

RISK_GROUP = "risk"
RISK_MODELS_KEY = dg.AssetKey(["models", "risk"])
DRIFT_CHECK = "score_drift"
CONTRACT_CHECK = "contract"


@dg.asset(
    key=RISK_MODELS_KEY,
    group_name=RISK_GROUP,
    deps=[
        dg.AssetDep([IDENTITY, PERSON]),
        dg.AssetDep([IDENTITY, PERSON_LINK]),
        *[
            dg.AssetDep(["silver", t])
            for t in ("encounter", "condition", "observation", "observation_component", "medication_request")
        ],
        dg.AssetDep([GOLD, "device_alerts"]),
    ],
    pool=TRAINING_POOL,
    op_tags=TRAINING_STEP,
)
def risk_models(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Keep the deployed person (180-day ED/unplanned admission) and discharge (30-day readmission) risk
    models, or retrain them when it pays (none deployed, asked for, too old, drift: `models.retraining`):
    point-in-time features at historical as-of days, each version registered with its model card under
    `<lake>/models/`, deployed when it beats its clinical baseline (Charlson, LACE) and the deployed
    version on the same test rows (the rule of `patient-insights risk train`)."""
    settings = lake.settings()
    registry = registry_of(settings.lake)
    drifted = last_drifted(settings.lake)
    inputs_changed = bool(plan_whole_step(context, lake).todo)
    before = {name: deployed_risk_version(settings.lake, name) for name in MODEL_NAMES}
    reasons = {
        name: retraining_reason(
            registry,
            name,
            before[name],
            wants_retraining(context),
            drifted if name == PERSON_MODEL else None,
        )
        for name in MODEL_NAMES
    }
    # a model that could not be trained is tried again only on new data, not on every run
    reasons = {n: None if r == NONE_DEPLOYED and not inputs_changed else r for n, r in reasons.items()}
    metadata: dict[str, str | float | bool] = {
        f"{name}_kept": "deployed version kept" if before[name] else "none deployed; inputs unchanged"
        for name, reason in reasons.items()
        if reason is None
    }
    to_train = [name for name, reason in reasons.items() if reason is not None]
    if not to_train:
        return dg.MaterializeResult(metadata={**metadata, CHANGED: False})
    as_of = resolve_as_of(settings.as_of, settings.lake)
    outcomes = train_and_deploy(settings.lake, lake.buckets_of_lake(), as_of, risk_config(), names=to_train)
    for outcome in outcomes:
        metadata[f"{outcome.name}_why"] = str(reasons[outcome.name])
        metadata[f"{outcome.name}_status"] = outcome.status
        metadata[f"{outcome.name}_decision"] = outcome.decision or "none"
        metadata[f"{outcome.name}_deployed"] = outcome.deployed or "none"
        metadata[f"{outcome.name}_detail"] = outcome.detail
        if outcome.metrics:
            metadata[f"{outcome.name}_test_auroc"] = round(outcome.metrics["model"]["auroc"], 4)
            metadata[f"{outcome.name}_test_brier"] = round(outcome.metrics["model"]["brier"], 4)
        if outcome.status == "skipped":
            context.log.warning(f"{outcome.name}: {outcome.detail}")
    after = {name: deployed_risk_version(settings.lake, name) for name in MODEL_NAMES}
    return dg.MaterializeResult(metadata={**metadata, CHANGED: after != before})


def last_drifted(lake: UPath) -> list[str]:
    """The variables whose drift the last run's check flagged (PSI above the warning level)."""
    path = table_path(lake, GOLD, RISK_DRIFT) / PARTITION_FILE
    if not path.exists():
        return []
    table = read_parquet(path)
    if "psi" not in table.columns:
        return []
    return table.filter(pl.col("psi") > risk_config().psi_warning)["variable"].to_list()


@dg.asset(
    key=[GOLD, RISK_DRIFT],
    group_name="gold_summary",
    deps=[
        dg.AssetDep([GOLD, RISK_SCORES]),
        dg.AssetDep([GOLD, RISK_FEATURES]),
    ],
    check_specs=[
        dg.AssetCheckSpec(DRIFT_CHECK, asset=[GOLD, RISK_DRIFT], description="PSI of score and features"),
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[GOLD, RISK_DRIFT], blocking=True, description="GE suite"),
    ],
)
def risk_drift(context: dg.AssetExecutionContext, lake: LakeResource):
    """Population stability index of today's scores and top features against the deployed model's test
    population; the check warns above the configured level (0.2)."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    model = deployed_risk_model(settings.lake)
    path = table_path(settings.lake, GOLD, RISK_DRIFT) / PARTITION_FILE
    if model is None or not parquet_files(table_path(settings.lake, GOLD, RISK_SCORES)):
        table = pl.DataFrame(schema=DRIFT_SCHEMA)
    else:
        scores = read_table(settings.lake, GOLD, RISK_SCORES).filter(pl.col("model_version") == model.version)
        features = read_table(settings.lake, GOLD, RISK_FEATURES).join(
            scores.select("person_id"), on="person_id"
        )
        table = drift_table(model, scores, features)
    write_parquet_atomic(table, path)
    limit = risk_config().psi_warning
    drifted = table.filter(pl.col("psi") > limit)
    yield dg.MaterializeResult(
        metadata={
            "variables": table.height,
            **{f"psi_{v}": round(p, 4) for v, p in table.select("variable", "psi").drop_nulls().iter_rows()},
        }
    )
    yield dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=drifted.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"psi_warning": limit, "drifted": ", ".join(drifted["variable"].to_list()) or "none"},
    )
    yield contract_check(
        path, RISK_DRIFT, EXPECTATIONS_DIR / "gold", dg.AssetKey([GOLD, RISK_DRIFT]), CONTRACT_CHECK
    )
