"""Build every gold person table of one person bucket in one pass over its records.

Order matters and shows the data flow: the 360 view, the timeline, care gaps (which fill the view's
`open_care_gaps`), risk scores with the deployed model, or the Charlson baseline while none is deployed
(which fill `risk_score` and `risk_tier`), the readmission risk of recent discharges (the deployed
discharge model, or LACE), sentiment of the persons' messages (which fills `latest_sentiment`), trigger
events, then segments.
Each silver table is read once for the bucket (`PersonRecords`) and every table is written to
`gold/<table>/bucket=<key>/data.parquet` atomically. Trigger events, segment membership and static
snapshots carry history, so the bucket's previous files are read first; persons keep their bucket as
long as they keep their id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
from upath import UPath

from models.registry import registry_of
from models.risk.config import risk_config
from models.risk.dataset import DISCHARGE_MODEL
from models.risk.registry import RegisteredModel, deployed_risk_version, load_model
from models.risk.score import (
    CHARLSON_BASELINE,
    DISCHARGE_FEATURE_NAMES,
    DISCHARGE_RISK,
    FEATURE_NAMES,
    LACE_BASELINE,
    PERSON_MODEL,
    RISK_FEATURES,
    RISK_SCORES,
    score_discharges,
    score_persons,
    score_persons_with_baseline,
)
from models.sentiment.aggregate import summarize_conversations
from models.sentiment.registry import choose_scorer
from pipelines.gold.patient_360 import PATIENT_360, build_patient_360
from pipelines.gold.records import PersonRecords
from pipelines.gold.sentiment import (
    SENTIMENT_CONVERSATION,
    SENTIMENT_MESSAGE,
    build_sentiment_messages,
    with_latest_sentiment,
)
from pipelines.gold.timeline import TIMELINE, build_timeline
from pipelines.lake import read_parquet, read_table, remove_files, table_path, write_parquet_atomic
from pipelines.measures.build import (
    CARE_GAP_RATE_HISTORY,
    CARE_GAP_RATES,
    CARE_GAPS,
    care_gap_rates,
    evaluate_care_gaps,
    open_gap_counts,
)
from pipelines.measures.events import person_events
from pipelines.segments.build import SEGMENT_MEMBERSHIP, SEGMENT_SNAPSHOTS, evaluate_segments
from pipelines.segments.engine import MEMBERSHIP_SCHEMA, SNAPSHOT_SCHEMA
from pipelines.segments.triggers import TRIGGER_EVENTS, TRIGGER_SCHEMA, build_trigger_events

GOLD = "gold"
PARTITION_FILE = "data.parquet"
PERSON_TABLES = (
    PATIENT_360,
    TIMELINE,
    CARE_GAPS,
    RISK_SCORES,
    RISK_FEATURES,
    DISCHARGE_RISK,
    SENTIMENT_MESSAGE,
    SENTIMENT_CONVERSATION,
    TRIGGER_EVENTS,
    SEGMENT_MEMBERSHIP,
    SEGMENT_SNAPSHOTS,
)
"""The gold tables partitioned by person bucket, in the order they are built."""


@dataclass(frozen=True)
class PersonBucketReport:
    """Counts of one bucket's build (no person data): rows per table, open gaps per measure, triggers
    fired today per kind, current members per segment."""

    rows: dict[str, int]
    open_gaps: dict[str, int]
    new_triggers: dict[str, int]
    members: dict[str, int]


def person_table_file(lake: UPath, table: str, bucket: str) -> UPath:
    """Where one bucket of a gold person table lives."""
    return table_path(lake, GOLD, table) / f"bucket={bucket}" / PARTITION_FILE


def build_person_tables(
    records: PersonRecords,
    as_of: date,
    history: dict[str, pl.DataFrame],
    risk_model: RegisteredModel | None = None,
    sentiment_model: tuple[str, Any] | None = None,
    discharge_model: RegisteredModel | None = None,
) -> dict[str, pl.DataFrame]:
    """Every gold person table for the persons of `records` as of `as_of`, given the previous
    trigger events, segment membership and snapshots of the same persons (`history`, by table), scored
    with `risk_model` when one is deployed, else with the clinical baseline (the Charlson index), and
    recent discharges with `discharge_model`, else with the LACE index."""
    view = build_patient_360(records, as_of)
    timeline = build_timeline(records, as_of)
    gaps = evaluate_care_gaps(view, person_events(records), as_of)
    view = open_gap_counts(view, gaps)
    if risk_model is not None:
        scores, features = score_persons(records, as_of, risk_model, risk_config())
    else:
        scores, features = score_persons_with_baseline(records, as_of, risk_config())
    view = with_risk(view, scores)
    discharges = score_discharges(records, as_of, discharge_model, risk_config())
    version, scorer = sentiment_model or (None, None)
    messages = build_sentiment_messages(records, as_of, scorer, version)
    conversations = summarize_conversations(messages)
    view = with_latest_sentiment(view, messages)
    triggers = build_trigger_events(records, as_of, history[TRIGGER_EVENTS])
    membership, snapshots = evaluate_segments(
        view, gaps, triggers, history[SEGMENT_MEMBERSHIP], history[SEGMENT_SNAPSHOTS], as_of
    )
    return {
        PATIENT_360: view,
        TIMELINE: timeline,
        CARE_GAPS: gaps,
        RISK_SCORES: scores,
        RISK_FEATURES: features,
        DISCHARGE_RISK: discharges,
        SENTIMENT_MESSAGE: messages,
        SENTIMENT_CONVERSATION: conversations,
        TRIGGER_EVENTS: triggers,
        SEGMENT_MEMBERSHIP: membership,
        SEGMENT_SNAPSHOTS: snapshots,
    }


def no_history() -> dict[str, pl.DataFrame]:
    """The history of a first run: no trigger fired, no segment membership, no static snapshot."""
    return {
        TRIGGER_EVENTS: pl.DataFrame(schema=TRIGGER_SCHEMA),
        SEGMENT_MEMBERSHIP: pl.DataFrame(schema=MEMBERSHIP_SCHEMA),
        SEGMENT_SNAPSHOTS: pl.DataFrame(schema=SNAPSHOT_SCHEMA),
    }


def build_person_bucket(
    lake: UPath, bucket: str, buckets: int, as_of: date, generated_texts: bool = False
) -> PersonBucketReport:
    """Build and write every gold person table of person bucket `bucket` (of `buckets`); `generated_texts`:
    the lake's landing folder is the generator's (a model of generated texts may score its texts)."""
    records = PersonRecords.load(lake, bucket, buckets)
    history = {
        TRIGGER_EVENTS: _previous(lake, TRIGGER_EVENTS, bucket, TRIGGER_SCHEMA),
        SEGMENT_MEMBERSHIP: _previous(lake, SEGMENT_MEMBERSHIP, bucket, MEMBERSHIP_SCHEMA),
        SEGMENT_SNAPSHOTS: _previous(lake, SEGMENT_SNAPSHOTS, bucket, SNAPSHOT_SCHEMA),
    }
    tables = build_person_tables(
        records,
        as_of,
        history,
        deployed_risk_model(lake),
        sentiment_scorer(lake, generated_texts),
        deployed_discharge_model(lake),
    )
    for table in PERSON_TABLES:
        write_parquet_atomic(tables[table], person_table_file(lake, table, bucket))
    # lakes written before gold was bucketed hold one whole-table file, which would now double every row
    remove_files(table_path(lake, GOLD, t) / PARTITION_FILE for t in PERSON_TABLES)
    gaps, triggers, membership = tables[CARE_GAPS], tables[TRIGGER_EVENTS], tables[SEGMENT_MEMBERSHIP]
    return PersonBucketReport(
        rows={t: f.height for t, f in tables.items()},
        open_gaps=_counts(gaps.filter(pl.col("status") == "open-gap"), "measure_id"),
        new_triggers=_counts(triggers.filter(pl.col("fired_on") == as_of), "kind"),
        members=_counts(membership.filter(pl.col("exited").is_null()), "segment_id"),
    )


def deployed_risk_model(lake: UPath) -> RegisteredModel | None:
    """The deployed (or pinned) person risk model, None when none is deployed yet; a model that does not
    fit this code raises RegistryError (scoring with it would be wrong)."""
    if deployed_risk_version(lake, PERSON_MODEL) is None:
        return None
    return load_model(lake, PERSON_MODEL, FEATURE_NAMES)


def deployed_discharge_model(lake: UPath) -> RegisteredModel | None:
    """The deployed (or pinned) discharge risk model, None when none is deployed yet (LACE scores); a model
    that does not fit this code raises RegistryError."""
    if deployed_risk_version(lake, DISCHARGE_MODEL) is None:
        return None
    return load_model(lake, DISCHARGE_MODEL, DISCHARGE_FEATURE_NAMES)


def sentiment_scorer(lake: UPath, generated_texts: bool) -> tuple[str, Any]:
    """The version and model that score the lake's texts: the deployed (or pinned) sentiment model when
    its training texts' provenance allows it, else VADER (`models/sentiment/provenance.py`)."""
    scorer = choose_scorer(registry_of(lake), generated_texts=generated_texts)
    return scorer.version, scorer.model


def with_risk(view: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """The 360 view with `risk_score` and `risk_tier` from the person's score (null when unscored; the score
    is null too when the clinical baseline scored: it gives points and a tier, not a probability)."""
    return (
        view.drop("risk_score", "risk_tier")
        .join(
            scores.select(
                "person_id", pl.col("score").alias("risk_score"), pl.col("tier").alias("risk_tier")
            ),
            on="person_id",
            how="left",
            maintain_order="left",
        )
        .select(view.columns)
    )


def build_care_gap_rates(lake: UPath) -> pl.DataFrame:
    """`gold/care_gap_rates` over every bucket of `gold/care_gaps` (one small file, not partitioned), and
    `gold/care_gap_rate_history`: the rates of every as-of day run so far (a re-run of a day replaces
    that day's rows), for trends."""
    rates = care_gap_rates(read_table(lake, GOLD, CARE_GAPS).drop("bucket", strict=False))
    write_parquet_atomic(rates, table_path(lake, GOLD, CARE_GAP_RATES) / PARTITION_FILE)
    history_file = table_path(lake, GOLD, CARE_GAP_RATE_HISTORY) / PARTITION_FILE
    earlier = read_parquet(history_file) if history_file.exists() else rates.clear()
    days = rates["as_of"].unique().implode()
    history = pl.concat([earlier.filter(~pl.col("as_of").is_in(days)), rates], how="vertical_relaxed")
    write_parquet_atomic(history.sort("as_of", "measure_id"), history_file)
    return rates


def _previous(lake: UPath, table: str, bucket: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    path = person_table_file(lake, table, bucket)
    return read_parquet(path) if path.exists() else pl.DataFrame(schema=schema)


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return dict(frame.group_by(column).len().sort(column).iter_rows())


def deployed_model_versions(lake: UPath, generated_texts: bool = False) -> dict[str, str | None]:
    """The model versions the person tables are scored with (a change rebuilds every person bucket); while no
    person (discharge) model is deployed, the Charlson (LACE) baseline with its tier cut-offs (new cut-offs
    rescore everyone); the sentiment scorer as `sentiment_scorer` chooses it for these texts (generated or
    not)."""
    from models.registry import registry_of
    from models.sentiment.registry import NAME, scorer_version

    config = risk_config()
    baselines = {PERSON_MODEL: (CHARLSON_BASELINE, config.charlson_tiers)}
    baselines[DISCHARGE_MODEL] = (LACE_BASELINE, config.lace_tiers)
    return {
        **{
            name: deployed_risk_version(lake, name) or f"{baseline} {medium}/{high}"
            for name, (baseline, (medium, high)) in baselines.items()
        },
        NAME: scorer_version(registry_of(lake), generated_texts=generated_texts),
    }
