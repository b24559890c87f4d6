"""The sentiment model (trained on weak labels from survey ratings, judged against VADER on held-out
texts, the better by macro-F1 deployed) and the sentiment reports over every gold person bucket."""

import os

import dagster as dg
import polars as pl

from assets.contracts import contract_check
from assets.resources import LakeResource
from assets.scaling import TRAINING_POOL, TRAINING_STEP
from assets.steps import CHANGED, plan_whole_step, unchanged_results, wants_retraining
from models.registry import registry_of
from models.retraining import NONE_DEPLOYED, retraining_reason
from models.sentiment.labelled import describe_bands
from models.sentiment.lifecycle import train_and_deploy_sentiment
from models.sentiment.provenance import training_provenance, written_by_generator
from models.sentiment.registry import NAME, deployed_sentiment_version
from models.sentiment.train import (
    SURVEY_SCALE,
    WEAK,
    SentimentTrainingError,
    split_held_out,
    survey_weak_labels,
)
from pipelines.gold.sentiment import (
    GOLD,
    REPORT_FILE,
    REPORT_TABLES,
    SENTIMENT_AGENT_WEEKLY,
    SENTIMENT_DEPARTMENT_WEEKLY,
    SENTIMENT_MESSAGE,
    SENTIMENT_THEMES,
    SURVEY_SCORES,
    build_sentiment_reports,
)
from pipelines.lake import read_table, table_path
from pipelines.reports.sentiment_report import render_sentiment_report
from pipelines.silver.build import SILVER
from pipelines.silver.expectations import EXPECTATIONS_DIR

SENTIMENT_GROUP = "sentiment"
CONTRACT_CHECK = "contract"
SENTIMENT_MODEL_KEY = dg.AssetKey(["models", "sentiment"])
LABELS_VARIABLE = "PATIENT_INSIGHTS_SENTIMENT_LABELS"
"""Optional CSV of hand-labelled texts (`text`, `label`, optional `kind`: conversation_turn,
patient_message or survey_comment) added to the weak labels (both splits)."""


def labelled_file(path: str) -> pl.DataFrame:
    """A labelled CSV (`text`, `label` in negative/neutral/positive); other labels are refused by name."""
    frame = pl.read_csv(path, infer_schema_length=0)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{LABELS_VARIABLE} file lacks the column(s) {sorted(missing)}")
    wrong = sorted(set(frame["label"].drop_nulls().to_list()) - {"negative", "neutral", "positive"})
    if wrong:
        raise ValueError(
            f"{LABELS_VARIABLE} file has labels other than negative/neutral/positive: {wrong[:5]}"
        )
    if "kind" not in frame.columns:
        frame = frame.with_columns(pl.lit("labelled").alias("kind"))
    return frame.select("text", "label", "kind", pl.lit(False).alias(WEAK))


@dg.asset(
    key=SENTIMENT_MODEL_KEY,
    group_name=SENTIMENT_GROUP,
    deps=[dg.AssetDep([SILVER, "questionnaire_response_item"])],
    pool=TRAINING_POOL,
    op_tags=TRAINING_STEP,
)
def sentiment_model(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Train the TF-IDF classifier on survey comments labelled by their rating (0-6 negative, 7-8 neutral,
    9-10 positive; every comment: the survey asks one question, so the improvement filter of `sentiment train
    --form two-questions` is off) and any hand-labelled texts, compare it with VADER on a held-out fifth of
    them, overall and per kind of text, and deploy the choices when they beat the deployed model on the same
    held-out texts (the same rule as `patient-insights sentiment train`). The model records its provenance:
    `generated` when the landing folder (or the hand-labelled file's folder) is the generator's — it then
    scores only the generator's texts — else `organisation`. A run trains only when it pays (none deployed,
    asked for, the deployed version too old: `models.retraining`)."""
    settings = lake.settings()
    registry = registry_of(settings.lake)
    before = deployed_sentiment_version(registry)
    reason = retraining_reason(registry, NAME, before, wants_retraining(context))
    if reason == NONE_DEPLOYED and not plan_whole_step(context, lake).todo:
        reason = None  # could not be trained before, and nothing it learns from changed since
    if reason is None:
        status = "deployed version kept" if before else "none deployed; inputs unchanged"
        return dg.MaterializeResult(metadata={"status": status, CHANGED: False})
    context.log.info(f"sentiment model: training, because {reason}")
    weak = survey_weak_labels(read_table(settings.lake, SILVER, "questionnaire_response_item"))
    train, held_out = split_held_out(weak)
    data = (
        f"{weak.height} survey comments with weak labels from their rating ({describe_bands(SURVEY_SCALE)})"
    )
    extra = os.environ.get(LABELS_VARIABLE)
    columns = ("text", "label", "kind", WEAK)
    if extra:
        labelled = labelled_file(extra)
        labelled_train, labelled_held_out = split_held_out(labelled)
        train = pl.concat([train.select(columns), labelled_train])
        held_out = pl.concat([held_out.select(columns), labelled_held_out])
        data += f", plus {labelled.height} hand-labelled texts"
    provenance = training_provenance(
        written_by_generator(settings.landing), bool(extra) and written_by_generator(str(extra))
    )
    try:
        outcome = train_and_deploy_sentiment(
            registry_of(settings.lake),
            train.select(columns),
            held_out.select(columns),
            data,
            provenance=provenance,
        )
    except SentimentTrainingError as error:
        context.log.warning(f"sentiment model not trained: {error}")
        return dg.MaterializeResult(metadata={"status": "skipped", "detail": str(error), CHANGED: False})
    training = outcome.training
    if outcome.decision == "kept":
        context.log.warning(f"sentiment model {outcome.version} not deployed: {outcome.detail}")
    return dg.MaterializeResult(
        metadata={
            "status": "deployed" if outcome.deployed == outcome.version else "not deployed",
            "version": outcome.version,
            "provenance": outcome.provenance,
            "deployed": outcome.deployed or "none",
            "decision": outcome.decision,
            "detail": outcome.detail,
            "chosen": training.chosen,
            **{f"model_for_{kind}": name for kind, name in sorted(training.choice_by_kind.items())},
            **{f"{name}_macro_f1": round(m["macro_f1"], 4) for name, m in outcome.held_out_metrics.items()},
            "train_rows": training.rows["train"],
            "held_out_rows": training.rows["held_out"],
            CHANGED: outcome.deployed != before,
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [GOLD, table],
            description=description,
            group_name="gold_summary",
            deps=[
                dg.AssetDep([GOLD, SENTIMENT_MESSAGE]),
                dg.AssetDep([SILVER, "questionnaire_response_item"]),
            ],
        )
        for table, description in (
            (
                SENTIMENT_AGENT_WEEKLY,
                "Per week and agent: conversations, scored patient messages, mean score and negative share "
                "with 95 % intervals, and whether the volume is enough to read them.",
            ),
            (SENTIMENT_DEPARTMENT_WEEKLY, "The same per week and department."),
            (SURVEY_SCORES, "Per week: survey responses, promoters, passives, detractors, NPS, mean rating."),
            (SENTIMENT_THEMES, "Themes of negative patient feedback: top terms, size, three short snippets."),
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[GOLD, table], blocking=True, description="GE suite")
        for table in REPORT_TABLES
    ],
    can_subset=False,
)
def sentiment_reports(context: dg.AssetExecutionContext, lake: LakeResource):
    """Weekly agent and department sentiment, survey scores and negative themes over every bucket."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    reports = build_sentiment_reports(settings.lake)
    for table, frame in reports.items():
        yield dg.MaterializeResult(asset_key=[GOLD, table], metadata={"rows": frame.height})
    for table in REPORT_TABLES:
        path = table_path(settings.lake, GOLD, table) / REPORT_FILE
        yield contract_check(
            path, table, EXPECTATIONS_DIR / "gold", dg.AssetKey([GOLD, table]), CONTRACT_CHECK
        )


@dg.asset(
    key=["exports", "sentiment_report"],
    group_name="gold_summary",
    deps=[[GOLD, t] for t in REPORT_TABLES] + [dg.AssetDep([GOLD, "sentiment_conversation"])],
)
def sentiment_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """The latest week's sentiment report as one self-contained HTML file under the exports folder
    (charts inlined; patient words only as short theme snippets)."""
    settings = lake.settings()
    if not plan_whole_step(context, lake).todo:
        return dg.MaterializeResult(metadata={CHANGED: False, "rebuilt": "no: nothing it reads changed"})
    try:
        path = render_sentiment_report(settings.lake, settings.exports)
    except ValueError as nothing:  # no conversation has been scored yet: nothing to report, not a failure
        context.log.warning(str(nothing))
        return dg.MaterializeResult(metadata={"status": "no sentiment figures yet"})
    return dg.MaterializeResult(
        metadata={"report": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size}
    )
