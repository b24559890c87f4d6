"""What the dashboard reads from the lake and the exports, as plain functions of paths (tested without
Streamlit) - `dashboards/cache.py` wraps them in `st.cache_data` keyed on the lake's version.

Everything is read-only. A table that does not exist yet reads as an empty frame, so every page can show
a friendly empty state instead of failing on a fresh lake.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache

import orjson
import polars as pl
from upath import UPath

from pipelines.config import DEFAULT_EXPORTS, DEFAULT_LAKE
from pipelines.gold.patient_360 import result_values
from pipelines.gold.records import PersonRecords, person_bucket_of
from pipelines.identity.decisions import LINK, NEVER_LINK, current_decisions, decisions_path, pending_review
from pipelines.lake import parquet_files, scan_table, table_path
from pipelines.outreach.exports import campaign_runs
from pipelines.run_record import META, PIPELINE_RUNS

GOLD, SILVER, BRONZE, IDENTITY = "gold", "silver", "bronze", "identity"
SEARCH_LIMIT = 50
_DATE_FORMS = (
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), (1, 2, 3)),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$"), (3, 1, 2)),  # US month/day/year
)


@dataclass(frozen=True)
class Locations:
    """Where the dashboard reads: the lake and the exports folder."""

    lake: UPath
    exports: UPath

    @classmethod
    def from_env(cls) -> Locations:
        """`PATIENT_INSIGHTS_LAKE` / `PATIENT_INSIGHTS_EXPORTS`, else the laptop defaults."""
        return cls(
            UPath(os.environ.get("PATIENT_INSIGHTS_LAKE", DEFAULT_LAKE)),
            UPath(os.environ.get("PATIENT_INSIGHTS_EXPORTS", DEFAULT_EXPORTS)),
        )


def lake_version(lake: UPath, exports: UPath) -> str:
    """Changes whenever a run changes what the dashboard shows: the newest pipeline run record, the
    newest file time of the gold tables and the exports' audit log, and the time of the clerical-review
    table and of the last decision recorded on it (cache key of every read: a decision taken on the Identity
    review page refreshes its queue at once)."""
    parts = []
    runs = lake / META / PIPELINE_RUNS
    if runs.exists():
        names = sorted(p.name for p in runs.iterdir())
        parts.append(names[-1] if names else "")
    for path in (clerical_review_path(lake), decisions_path(lake)):
        parts.append(f"{path.stat().st_mtime:.6f}" if path.exists() else "")
    newest = 0.0
    gold = lake / GOLD
    if gold.exists():
        for table in gold.iterdir():
            for path in parquet_files(table):
                newest = max(newest, path.stat().st_mtime)
    audit = exports / "audit.log"
    if audit.exists():
        newest = max(newest, audit.stat().st_mtime)
    return f"{'|'.join(parts)}|{newest:.6f}"


def read(lake: UPath, layer: str, table: str, columns: list[str] | None = None) -> pl.DataFrame:
    """A whole lake table (selected columns), or an empty frame when it does not exist yet."""
    if not parquet_files(table_path(lake, layer, table)):
        return pl.DataFrame(schema={c: pl.String for c in columns or []})
    scan = scan_table(lake, layer, table)
    if columns is not None:
        present = scan.collect_schema().names()
        scan = scan.select([c for c in columns if c in present])
    frame = scan.collect()
    return frame.drop("bucket") if "bucket" in frame.columns and (columns is None) else frame


def bucket_count(lake: UPath) -> int:
    """The number of person buckets the gold tables were written with."""
    folder = table_path(lake, GOLD, "patient_360")
    if not folder.exists():
        return 1
    return max(1, sum(1 for p in folder.iterdir() if p.name.startswith("bucket=")))


def person_rows(lake: UPath, table: str, person_id: str) -> pl.DataFrame:
    """One person's rows of a gold person table, read from the person's bucket file only."""
    bucket = person_bucket_of(person_id, bucket_count(lake))
    path = table_path(lake, GOLD, table) / f"bucket={bucket}" / "data.parquet"
    if not path.exists():
        return pl.DataFrame(schema={"person_id": pl.String})
    return pl.scan_parquet(str(path)).filter(pl.col("person_id") == person_id).collect()


@dataclass(frozen=True)
class RiskSource:
    """Which score a person's risk tier (or a discharge's readmission tier) comes from, in plain words for a
    care manager."""

    baseline: bool  # the clinical baseline scored (no model deployed), not a model trained on this data
    title: str  # what scored, e.g. "Clinical baseline (Charlson comorbidity index)"
    why: str  # why it is this one
    tiers: str  # how its tiers are made
    scorer: str = ""  # what scored, short and without a version: "the LACE index"

    @property
    def words(self) -> str:
        """Title and reason in one line."""
        return f"{self.title}: {self.why}"


@dataclass(frozen=True)
class _Scored:
    """How the dashboard speaks of one risk model and its clinical baseline."""

    model: str  # the registered model's name
    baseline: str  # the baseline, in words
    points: str  # the baseline's points are "<points> points"
    low: str  # its low tier, in words ({below}: the points below medium)
    kind: str  # of model, in words ("" for the person model, "readmission " for the discharge model)
    whom: str  # what it ranks
    chance: str  # what its probability is the chance of


_PERSON = _Scored(
    "person_180d",
    "Charlson comorbidity index",
    "Charlson",
    "none (serious long-term conditions, weighted as Charlson published)",
    "",
    "people",
    "the 180-day chance of an ED visit or unplanned admission",
)
_DISCHARGE = _Scored(
    "discharge_30d",
    "LACE index",
    "LACE",
    "{below} or fewer (length of stay, an emergency admission, long-term conditions and ED visits before "
    "it, as van Walraven published)",
    "readmission ",
    "discharges",
    "the chance of a readmission or ED visit within 30 days of leaving hospital",
)


def risk_versions(lake: UPath, table: str = "risk_scores") -> list[str]:
    """The model versions (or baselines) that scored the lake's persons (`risk_scores`) or recent discharges
    (`discharge_risk`), most rows first."""
    if not parquet_files(table_path(lake, GOLD, table)):
        return []
    counted = scan_table(lake, GOLD, table).group_by("model_version").len().collect()
    return counted.sort("len", "model_version", descending=[True, False])["model_version"].to_list()


def risk_source(lake: UPath, model_version: str) -> RiskSource:
    """What `model_version` (a registered person or discharge model, `baseline:charlson` or
    `baseline:lace`) is, in words."""
    from models.registry import has_version, read_metadata, registry_of
    from models.risk.config import risk_config
    from models.risk.score import BASELINE_PREFIX, LACE_BASELINE

    registry = registry_of(lake)
    discharge = model_version == LACE_BASELINE or model_version.startswith(f"{_DISCHARGE.model}-")
    scored = _DISCHARGE if discharge else _PERSON
    config = risk_config()
    if model_version.startswith(BASELINE_PREFIX):
        trained = any((registry / scored.model).glob("*/metadata.json")) if registry.exists() else False
        why = f"no {scored.kind}model trained on this data " + (
            f"has ranked {scored.whom} better yet" if trained else "yet"
        )
        medium, high = config.lace_tiers if discharge else config.charlson_tiers
        tiers = (
            f"high: {high} {scored.points} points or more, medium: {medium} to {high - 1}, low: "
            f"{scored.low.format(below=medium - 1)}; no probability"
        )
        title = f"Clinical baseline ({scored.baseline})"
        return RiskSource(True, title, why, tiers, f"the {scored.baseline}")
    tiers = (
        f"high: the highest {config.tier_high:.0%} of scores, medium: the next {config.tier_medium:.0%} "
        "(what a care team can take on)"
    )
    kind = scored.kind.capitalize() or "Risk "
    title = f"{kind}model trained on this data (version {model_version})"
    scorer = f"the {scored.kind or 'risk '}model trained on this data"
    if not has_version(registry, scored.model, model_version):
        return RiskSource(False, title, "its record is not in this lake's model registry", tiers, scorer)
    metadata = read_metadata(registry, scored.model, model_version)
    baseline = metadata.get("baseline", f"{scored.points.lower()}_index")
    metrics = metadata.get("metrics", {})
    model_auroc = metrics.get("model", {}).get("auroc")
    baseline_auroc = metrics.get(baseline, {}).get("auroc")
    why = scored.chance
    if model_auroc is not None and baseline_auroc is not None:
        why += (
            f"; on the latest {scored.whom} it was tested on it ranks them better than the {scored.baseline} "
            f"(AUROC {model_auroc:.2f} against {baseline_auroc:.2f})"
        )
    return RiskSource(False, title, why, tiers, scorer)


def day_words(value: date | str | None) -> str:
    """A day of a person's care as a sentence says it: "on 3 Dec 2026", or "in Dec 2026" when the viewer's
    masking cut it to its month ("2026-12")."""
    if isinstance(value, date):
        return f"on {value.day} {value:%b %Y}"
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value):
        return f"in {date.fromisoformat(f'{value}-01'):%b %Y}"
    return f"on {value}"


def discharge_words(discharge: Mapping, source: RiskSource) -> list[str]:
    """A recent discharge's readmission risk in plain words (a `gold/discharge_risk` row, masked for the
    viewer): what the risk is and what scored it, whether the patient already came back, and why. No ids."""
    ended = day_words(discharge["discharged_on"]).removeprefix("on ")
    if source.baseline:
        points = discharge["points"]
        measure = f"{points} LACE point{'' if points == 1 else 's'}"
        by = f"{source.scorer} ({source.why})"
    else:
        measure = f"{discharge['score']:.0%} chance of a readmission or ED visit within 30 days"
        by = source.scorer
    lines = [
        f"Readmission risk after the hospital stay that ended {ended}: **{discharge['tier']}** ({measure}) — "
        f"scored by {by}."
    ]
    if discharge["returned_on"] is not None:
        lines.append(f"Came back to hospital {day_words(discharge['returned_on'])}.")
    if discharge["reasons"]:
        lines.append("Why, as known when the stay ended: " + "; ".join(discharge["reasons"]))
    elif source.baseline:
        lines.append("Why: nothing the LACE index counts (a short planned stay, no long-term condition).")
    else:
        lines.append("Why: no factor stands out from a typical discharge the model learnt from.")
    return lines


def search_index(lake: UPath) -> pl.DataFrame:
    """Everyone in patient_360 with the fields a care manager searches by: name, birth date and every
    source identifier (MRNs, SSN last digits are not indexed)."""
    view = read(
        lake,
        GOLD,
        "patient_360",
        [
            "person_id",
            "given",
            "family",
            "birth_date",
            "sex",
            "age",
            "deceased",
            "risk_tier",
            "open_care_gaps",
        ],
    )
    if view.is_empty():
        return view.with_columns(pl.lit(None, pl.String).alias("identifiers"), pl.lit("").alias("_name"))
    links = read(lake, IDENTITY, "person_link", ["source", "source_patient_id", "person_id"])
    identifiers = read(lake, SILVER, "patient_identifier", ["source", "patient_id", "type_code", "value"])
    if identifiers.height and links.height:
        ids = (
            identifiers.filter(pl.col("type_code") != "SS")
            .join(links, left_on=["source", "patient_id"], right_on=["source", "source_patient_id"])
            .group_by("person_id")
            .agg(pl.col("value").unique().sort().str.join(" ").alias("identifiers"))
        )
        view = view.join(ids, on="person_id", how="left")
    else:
        view = view.with_columns(pl.lit(None, pl.String).alias("identifiers"))
    name = pl.concat_str(["given", "family"], separator=" ", ignore_nulls=True).str.to_lowercase()
    return view.with_columns(name.alias("_name")).sort("family", "given", "person_id", nulls_last=True)


def search(index: pl.DataFrame, query: str, limit: int = SEARCH_LIMIT) -> pl.DataFrame:
    """Persons matching `query`: a birth date (YYYY-MM-DD or M/D/YYYY), an identifier (exact, or a
    prefix of 4+ characters), a person id, or name words (every word a prefix of a name part)."""
    text = query.strip()
    if not text or index.is_empty():
        return index.head(0)
    for pattern, (y, m, d) in _DATE_FORMS:
        found = pattern.match(text)
        if found:
            try:
                day = date(int(found.group(y)), int(found.group(m)), int(found.group(d)))
            except ValueError:
                return index.head(0)
            return index.filter(pl.col("birth_date") == day.isoformat()).head(limit)
    lowered = text.lower()
    identifier = pl.col("identifiers").fill_null("").str.split(" ")
    by_id = index.filter(
        (pl.col("person_id") == text)
        | identifier.list.contains(text)
        | (pl.lit(len(text) >= 4) & identifier.list.eval(pl.element().str.starts_with(text)).list.any())
    )
    if by_id.height:
        return by_id.head(limit)
    words = [w for w in re.split(r"[\s,]+", lowered) if w]
    parts = pl.col("_name").str.split(" ")
    matches = pl.all_horizontal(
        [parts.list.eval(pl.element().str.starts_with(word)).list.any() for word in words]
    )
    return index.filter(matches).head(limit)


def person_records(lake: UPath, person_id: str) -> PersonRecords:
    """The source records of one person (silver and device tables, read from their buckets only)."""
    buckets = bucket_count(lake)
    links = read(lake, IDENTITY, "person_link", ["person_id", "source", "source_patient_id"])
    links = links.filter(pl.col("person_id") == person_id).select(
        "person_id", "source", pl.col("source_patient_id").alias("patient_id")
    )
    persons = pl.DataFrame({"person_id": [person_id]})
    return PersonRecords(lake, persons, links, person_bucket_of(person_id, buckets), buckets)


def person_results(lake: UPath, person_id: str) -> pl.DataFrame:
    """Every numeric lab and vital result of the person (`result`, `value`, `at`) for trend charts."""
    return result_values(person_records(lake, person_id)).sort("result", "at")


def person_device_days(lake: UPath, person_id: str) -> pl.DataFrame:
    """The person's device readings per day and metric (mean, min, max)."""
    daily = person_records(lake, person_id).table("device_daily", layer=GOLD)
    if "metric" not in daily.columns:
        return pl.DataFrame(schema={"metric": pl.String, "day": pl.Date, "mean": pl.Float64})
    return daily.select("metric", "unit", "day", "readings", "mean", "min", "max").sort("metric", "day")


OUTREACH_INDEX_SCHEMA = {
    "person_id": pl.String,
    "campaign": pl.String,
    "run_id": pl.String,
    "outcome": pl.String,  # listed | suppressed
    "channel_or_reason": pl.String,
    "rank": pl.Int64,
}


def outreach_index(exports: UPath) -> pl.DataFrame:
    """Who every campaign run listed (channel, rank) or suppressed (reason): read once per lake version and
    then looked up per person, so a patient's page does not open every export."""
    frames = []
    for folder in sorted(exports.iterdir()) if exports.exists() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        for run in campaign_runs(exports, folder.name):
            listed = run.read_list().select(
                "person_id",
                pl.lit("listed").alias("outcome"),
                pl.col("channel").alias("channel_or_reason"),
                "rank",
            )
            suppressed = pl.read_csv(
                (run.folder / "suppressed.csv").read_bytes(), schema_overrides={"person_id": pl.String}
            )
            if suppressed.height:
                listed = pl.concat(
                    [
                        listed,
                        suppressed.select(
                            "person_id",
                            pl.lit("suppressed").alias("outcome"),
                            pl.col("reason").alias("channel_or_reason"),
                            pl.lit(None, pl.Int64).alias("rank"),
                        ),
                    ]
                )
            frames.append(
                listed.with_columns(pl.lit(folder.name).alias("campaign"), pl.lit(run.run_id).alias("run_id"))
            )
    if not frames:
        return pl.DataFrame(schema=OUTREACH_INDEX_SCHEMA)
    return pl.concat(frames).select([pl.col(c).cast(t) for c, t in OUTREACH_INDEX_SCHEMA.items()])


def pipeline_runs(lake: UPath) -> list[dict]:
    """Every recorded pipeline run, newest first."""
    folder = lake / META / PIPELINE_RUNS
    if not folder.exists():
        return []
    return [
        orjson.loads(p.read_bytes()) for p in sorted(folder.iterdir(), key=lambda p: p.name, reverse=True)
    ]


def campaign_history(exports: UPath) -> pl.DataFrame:
    """Every complete run of every campaign with the manifest's counts, newest first."""
    rows = []
    for folder in sorted(exports.iterdir()) if exports.exists() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        for run in campaign_runs(exports, folder.name):
            manifest = run.manifest()
            counts = {f["url"]: f["count"] for f in manifest["output"]}
            rows.append(
                {
                    "campaign": folder.name,
                    "run_id": run.run_id,
                    "as_of": run.as_of,
                    "transaction_time": manifest["transactionTime"],
                    "listed": counts.get("list.csv", 0),
                    "suppressed": counts.get("suppressed.csv", 0),
                    "added": counts.get("added.csv", 0),
                    "removed": counts.get("removed.csv", 0),
                    "changed": counts.get("changed.csv", 0),
                    "previous_run": manifest.get("previousRunId"),
                }
            )
    schema = {
        "campaign": pl.String,
        "run_id": pl.String,
        "as_of": pl.Date,
        "transaction_time": pl.String,
        "listed": pl.Int64,
        "suppressed": pl.Int64,
        "added": pl.Int64,
        "removed": pl.Int64,
        "changed": pl.Int64,
        "previous_run": pl.String,
    }
    return pl.DataFrame(rows, schema=schema).sort("as_of", "run_id", descending=True)


def counts(lake: UPath, layer: str, table: str, by: list[str]) -> pl.DataFrame:
    """Rows of a (possibly large) table per value of `by`, counted in a streaming scan: pages that only
    show a breakdown never load the rows."""
    if not parquet_files(table_path(lake, layer, table)):
        return pl.DataFrame(schema={**{c: pl.String for c in by}, "rows": pl.UInt32})
    scan = scan_table(lake, layer, table)
    present = scan.collect_schema().names()
    keys = [c for c in by if c in present]
    if not keys:
        return pl.DataFrame(schema={**{c: pl.String for c in by}, "rows": pl.UInt32})
    return (
        scan.group_by(keys)
        .agg(pl.len().alias("rows"))
        .collect(engine="streaming")
        .sort("rows", descending=True)
    )


def care_gap_patients(lake: UPath, measure: str, status: str) -> pl.DataFrame:
    """The persons with `measure` in `status`, with the columns a care manager calls them with, most
    overdue first."""
    gaps_folder = table_path(lake, GOLD, "care_gaps")
    if not parquet_files(gaps_folder):
        return pl.DataFrame(schema={"person_id": pl.String})
    columns = [
        "person_id",
        "status",
        "exclusion_reason",
        "due_date",
        "days_overdue",
        "evidence_date",
        "evidence_code",
        "pcp_practitioner_id",
    ]
    gaps = (
        scan_table(lake, GOLD, "care_gaps")
        .filter((pl.col("measure_id") == measure) & (pl.col("status") == status))
        .select(columns)
    )
    people = scan_table(lake, GOLD, "patient_360").select(
        "person_id", "given", "family", "age", "sex", "risk_tier", "preferred_phone"
    )
    return (
        gaps.join(people, on="person_id", how="left")
        .collect()
        .sort("days_overdue", "person_id", descending=[True, False], nulls_last=True)
    )


def conversation_turns(lake: UPath, conversation_id: str) -> pl.DataFrame:
    """The turns of one conversation with their sentiment, in order."""
    if not parquet_files(table_path(lake, GOLD, "sentiment_message")):
        return pl.DataFrame(schema={"turn": pl.Int64})
    return (
        scan_table(lake, GOLD, "sentiment_message")
        .filter(pl.col("conversation_id") == conversation_id)
        .select("turn", "speaker", "at", "text", "label", "score")
        .collect()
        .sort("turn")
    )


_NAME_TABLES = (
    (IDENTITY, "person", ("given", "family")),
    (SILVER, "patient_name", ("given", "family", "text")),
    (SILVER, "patient", ("given", "family")),
    (SILVER, "patient_contact", ("given", "family")),
    (SILVER, "practitioner", ("given", "family")),
)
"""Where the names of patients, their contacts and clinicians are: none of their words is a shareable term."""


def term_persons(lake: UPath, terms: list[str]) -> dict[str, int]:
    """For each of `terms` (words or word pairs of the sentiment themes), how many distinct persons wrote it
    in the texts the themes are made of: patients' negative texts in gold/sentiment_message, split into words
    as negative_themes' TF-IDF does (lower case, two or more word characters, English stop words removed,
    pairs of neighbouring words). A term found in no text counts 0 (and is not shareable)."""
    # the themes' own definition of a word (imported here: only the Sentiment page needs scikit-learn)
    from models.sentiment.aggregate import THEME_STOP_WORDS, THEME_TOKEN

    counts = dict.fromkeys(terms, 0)
    if not terms or not parquet_files(table_path(lake, GOLD, "sentiment_message")):
        return counts
    words = (
        pl.col("text").str.to_lowercase().str.extract_all(THEME_TOKEN)
        .list.eval(pl.element().filter(~pl.element().is_in(sorted(THEME_STOP_WORDS))))
    )  # fmt: skip
    pairs = pl.col("words").list.eval(pl.concat_str([pl.element(), pl.element().shift(-1)], separator=" "))
    found = (
        scan_table(lake, GOLD, "sentiment_message")
        .filter((pl.col("label") == "negative") & (pl.col("speaker") == "patient"))
        .select("person_id", words.alias("words"))
        .select("person_id", pl.concat_list("words", pairs.list.drop_nulls()).alias("term"))
        .explode("term")
        .filter(pl.col("term").is_in(terms))
        .group_by("term")
        .agg(pl.col("person_id").n_unique().alias("persons"))
        .collect(engine="streaming")
    )
    counts.update(dict(found.iter_rows()))
    return counts


def name_words(lake: UPath) -> set[str]:
    """Every word (lower case) of the names of patients, their contacts and clinicians in the lake."""
    words: set[str] = set()
    for layer, table, columns in _NAME_TABLES:
        if not parquet_files(table_path(lake, layer, table)):
            continue
        scan = scan_table(lake, layer, table)
        present = [c for c in columns if c in scan.collect_schema().names()]
        if not present:
            continue
        found = (
            scan.select(pl.concat_list([pl.col(c).cast(pl.String) for c in present]).alias("name"))
            .explode("name")
            .select(pl.col("name").str.to_lowercase().str.extract_all(r"\w+").alias("word"))
            .explode("word")
            .drop_nulls()
            .unique()
            .collect()
        )
        words.update(found["word"].to_list())
    return words


# Identity review: the pairs of records the matching model was unsure about, shown to a care manager who
# decides whether they are one person (pipelines/identity/decisions.py records the decision).

CLERICAL_REVIEW = "clerical_review"
REVIEW_FIELDS = (
    ("given", "Given name"),
    ("family", "Family name"),
    ("suffix", "Name suffix"),
    ("birth_date", "Birth date"),
    ("multiple_birth", "Multiple birth"),
    ("gender", "Sex"),
    ("address_line", "Address"),
    ("postal_code", "Postal code"),
    ("phones", "Phones"),
    ("email", "E-mail"),
    ("ssn", "SSN"),
)
"""(field, its name in plain words) of the evidence shown side by side, in the order shown; a field is
shown when the clerical-review table has its `<field>_l` / `<field>_r` columns."""
DECISION_WORDS = {LINK: "same person: linked", NEVER_LINK: "different people: never linked"}
MISSING_IN_ONE, MISSING_IN_BOTH = "missing in one", "missing in both"
_LEVEL_WORDS = {
    "a short form of the same name": "close: a nickname or another form of the same name",
    "one is the other's initial": "close: one is the other's initial",
    "one day or one digit apart (within a year)": "close: one day apart or one digit mistyped",
    "more than a year apart": "different: more than a year apart",
    "another name of the record": "close: matches another name on the record (e.g. a former name)",
    "first word of a compound name": "close: same first part of a double name",
    "day and month swapped": "close: day and month swapped",
    "year off by one": "close: same day and month, years one apart",
    "same month": "close: same year and month, another day",
    "a phone in common": "same: a phone number in common",
}
"""Plain words for the matching model's own level labels (pipelines/identity/matching.py)."""
_SQL_SIGNS = re.compile(r"[\"=<>()]")


def clerical_review_path(lake: UPath) -> UPath:
    """Where the identity build writes the pairs it leaves to a person."""
    return table_path(lake, IDENTITY, CLERICAL_REVIEW) / "data.parquet"


def has_clerical_review(lake: UPath) -> bool:
    """Has an identity build written its clerical-review table (possibly empty) yet?"""
    return clerical_review_path(lake).exists()


def _source(column: str) -> pl.Expr:
    # a unique_id is '<source>|<patient id>': the source is a configured name, never an id
    return pl.col(column).str.split_exact("|", 1).struct.field("field_0")


def _title(column: str) -> pl.Expr:
    # the model compares folded names (lower case, no accents): capitals make them easier to read
    return pl.col(column).str.to_titlecase()


def _full_name(given: pl.Expr, family: pl.Expr) -> pl.Expr:
    name = pl.concat_str([given, family], separator=" ", ignore_nulls=True).replace("", None)
    return name.fill_null("(no name)")


def review_queue(lake: UPath) -> pl.DataFrame:
    """The clerical-review pairs nobody has decided yet, most probable first, with each record's name
    (`name_l`, `name_r`) and source (`source_l`, `source_r`) for a care manager's list."""
    pending = pending_review(lake)
    if pending.is_empty():
        return pending.with_columns(
            [pl.lit(None, pl.String).alias(c) for c in ("name_l", "name_r", "source_l", "source_r")]
        )
    named = pending.with_columns(
        [
            _full_name(_title(f"given_{side}"), _title(f"family_{side}")).alias(f"name_{side}")
            if {f"given_{side}", f"family_{side}"} <= set(pending.columns)
            else pl.lit("(no name)").alias(f"name_{side}")
            for side in ("l", "r")
        ]
    ).with_columns(_source("unique_id_l").alias("source_l"), _source("unique_id_r").alias("source_r"))
    if "match_probability" not in named.columns:
        return named
    return named.sort(
        "match_probability", "unique_id_l", "unique_id_r", descending=[True, False, False], nulls_last=True
    )


def persons_involved(queue: pl.DataFrame) -> int:
    """How many distinct persons (as the last build assigned them) the pairs of `queue` touch."""
    columns = [c for c in ("person_id_l", "person_id_r") if c in queue.columns]
    if not columns:  # an older table without person ids: count records instead
        columns = ["unique_id_l", "unique_id_r"]
    return pl.concat([queue.select(pl.col(c).alias("who")) for c in columns])["who"].drop_nulls().n_unique()


def _level_words(label: str, is_null: bool) -> str:
    """A comparison level of the matching model in plain words, from its label."""
    if is_null:
        return MISSING_IN_ONE
    if label.startswith("Exact match"):
        return "same"
    if label == "All other comparisons":
        return "different"
    if label in _LEVEL_WORDS:
        return _LEVEL_WORDS[label]
    threshold = re.search(r"Jaro-Winkler .*>= ?([0-9.]+)", label)
    if threshold:
        return "close: a typo or small spelling difference" if float(threshold[1]) >= 0.9 else "alike"
    if "Levenshtein" in label:
        return "close: one character off (a typo)"
    return "similar" if _SQL_SIGNS.search(label) else f"close: {label}"


@cache
def comparison_levels() -> dict[str, dict[int, str]]:
    """Per field the matching model compares, each comparison level (`gamma_<field>`: its position counted
    from the least similar, -1 for a missing value) in plain words, read from the model's own definition so
    that the words follow its levels."""
    from pipelines.identity.matching import _comparisons  # Splink: imported only when a pair is shown

    levels: dict[str, dict[int, str]] = {}
    for creator in _comparisons():
        comparison = creator.get_comparison("duckdb")  # type: ignore[attr-defined]
        levels[comparison.output_column_name] = {
            level.comparison_vector_value: _level_words(level.label_for_charts, level.is_null_level)
            for level in comparison.comparison_levels
        }
    return levels


def comparison_words(gamma: int | None, levels: Mapping[int, str] | None = None) -> str:
    """How two values compare, in plain words, from the model's comparison level `gamma` and the field's
    `levels` (`comparison_levels`); a level the words do not know reads as "similar" (or "different" at 0,
    the least similar level), so a new level of the model never breaks the page."""
    if gamma is None:
        return "not compared"
    if gamma < 0:
        return MISSING_IN_ONE
    known = (levels or {}).get(gamma)
    if known:
        return known
    return "different" if gamma == 0 else "similar"


def _shown(field: str, value: object) -> str | None:
    """One evidence value as a care manager reads it (the SSN by its last four digits only)."""
    if value is None:
        return None
    if field == "phones":
        return ", ".join(str(p) for p in value) or None  # type: ignore[attr-defined]
    if field == "ssn":
        digits = re.sub(r"[^0-9]", "", str(value))
        return f"ending {digits[-4:]}" if digits else None
    if field == "multiple_birth":
        order = int(value)  # type: ignore[call-overload]
        return "no" if order == 0 else "yes" if order == 1 else f"yes, birth order {order}"
    if field in ("given", "family", "suffix"):
        return str(value).title()
    return str(value)


def pair_evidence(pair: Mapping[str, object], levels: Mapping[str, Mapping[int, str]]) -> pl.DataFrame:
    """The two records of one clerical-review pair side by side: a row per field in plain words (`field`),
    each record's value (`record_l`, `record_r`) and how they compare (`comparison`: from the model's level
    `gamma_<field>`, else from the values themselves)."""
    rows = []
    for field, words in REVIEW_FIELDS:
        if f"{field}_l" not in pair or f"{field}_r" not in pair:
            continue
        left, right = _shown(field, pair[f"{field}_l"]), _shown(field, pair[f"{field}_r"])
        gamma = pair.get(f"gamma_{field}")
        if left is None and right is None:
            compared = MISSING_IN_BOTH
        elif left is None or right is None:
            compared = MISSING_IN_ONE
        elif gamma is not None:
            compared = comparison_words(int(gamma), levels.get(field))  # type: ignore[call-overload]
        else:
            compared = "same" if left.lower() == right.lower() else "different"
        rows.append((words, left, right, compared))
    # a missing value reads as a dash, not as "None"
    return (
        pl.DataFrame(rows, schema=["field", "record_l", "record_r", "comparison"], orient="row")
        .cast(pl.String)
        .with_columns(pl.col("record_l", "record_r").fill_null("—"))
    )


RECENT_DECISIONS = 50


def recent_decisions(lake: UPath, limit: int = RECENT_DECISIONS) -> pl.DataFrame:
    """The decisions in force, newest first (at most `limit`), with each record's name and source:
    `unique_id_l`, `unique_id_r`, `name_l`, `source_l`, `name_r`, `source_r`, `decision`, `decided_by`,
    `decided_at`, `review_note`. A record no longer in silver is named as such."""
    decided = current_decisions(lake).sort("decided_at", descending=True).head(limit)
    names = pl.DataFrame(schema={"source": pl.String, "id": pl.String, "name": pl.String})
    if decided.height and parquet_files(table_path(lake, SILVER, "patient")):
        ids = pl.concat([decided["unique_id_l"], decided["unique_id_r"]]).unique().to_list()
        names = (
            scan_table(lake, SILVER, "patient")
            .select("source", "id", "given", "family")
            .filter(pl.concat_str(["source", "id"], separator="|").is_in(ids))
            .select("source", "id", _full_name(pl.col("given"), pl.col("family")).alias("name"))
            .unique(["source", "id"], keep="first")
            .collect()
        )
    keyed = names.select(pl.concat_str(["source", "id"], separator="|").alias("unique_id"), "name")
    out = decided
    for side in ("l", "r"):
        out = out.join(
            keyed.rename({"unique_id": f"unique_id_{side}", "name": f"name_{side}"}),
            on=f"unique_id_{side}",
            how="left",
            maintain_order="left",
        ).with_columns(
            pl.col(f"name_{side}").fill_null("(a record no longer in the lake)"),
            _source(f"unique_id_{side}").alias(f"source_{side}"),
        )
    return out.select(
        "unique_id_l", "unique_id_r", "name_l", "source_l", "name_r", "source_r",
        "decision", "decided_by", "decided_at", pl.col("note").alias("review_note"),
    )  # fmt: skip


@dataclass(frozen=True)
class ReviewCounts:
    """What an analyst may know of the clerical review: counts only."""

    pending: int  # pairs nobody has decided
    persons: int  # distinct persons those pairs touch
    decided: int  # pairs with a decision in force
    by_decision: pl.DataFrame  # decision, pairs
    by_reason: pl.DataFrame  # review_reason, pairs (pending)


def review_counts(lake: UPath) -> ReviewCounts:
    """The clerical review in numbers: pairs pending and the persons they touch, pairs decided by
    decision, pairs pending by the reason they are in review."""
    queue = review_queue(lake)
    decided = current_decisions(lake)
    by_decision = decided.group_by("decision").len("pairs").sort("decision")
    by_reason = (
        queue.group_by("review_reason").len("pairs").sort("pairs", "review_reason", descending=[True, False])
        if "review_reason" in queue.columns
        else pl.DataFrame(schema={"review_reason": pl.String, "pairs": pl.UInt32})
    )
    return ReviewCounts(
        queue.height, persons_involved(queue) if queue.height else 0, decided.height, by_decision, by_reason
    )
