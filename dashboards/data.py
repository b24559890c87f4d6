"""What the dashboard reads from the lake and the exports, as plain functions of paths (tested without
Streamlit) - `dashboards/cache.py` wraps them in `st.cache_data` keyed on the lake's version.

Everything is read-only. A table that does not exist yet reads as an empty frame, so every page can show
a friendly empty state instead of failing on a fresh lake.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date

import orjson
import polars as pl
from upath import UPath

from pipelines.config import DEFAULT_EXPORTS, DEFAULT_LAKE
from pipelines.gold.patient_360 import result_values
from pipelines.gold.records import PersonRecords, person_bucket_of
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
    """Changes whenever a run changes what the dashboard shows: the newest pipeline run record and the
    newest file time of the gold tables and the exports' audit log (cache key of every read)."""
    parts = []
    runs = lake / META / PIPELINE_RUNS
    if runs.exists():
        names = sorted(p.name for p in runs.iterdir())
        parts.append(names[-1] if names else "")
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
