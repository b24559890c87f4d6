"""The closed outreach loop's gold tables, built from the lake and the exports folder (no Dagster here):

    bronze/outreach_events + exports + identity ─► outreach_events, outreach_events_quarantine,
                                                    communication_opt_out, invalid_contact_point
    exports (every run's list and hold-out)      ─► campaign_assignment
    campaign_assignment + outreach_events + care_gaps ─► campaign_effect, campaign_funnel

The responses are built before the day's campaign runs (their opt-outs and bounced contact points steer
selection) and read the runs already exported; the assignment and effect tables follow the day's runs.
Each table is one Parquet file under `<lake>/gold/<table>/`, rewritten whole and atomically.
"""

from __future__ import annotations

from datetime import date

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.lake import parquet_files, scan_table, table_path, write_parquet_atomic
from pipelines.measures.build import CARE_GAPS
from pipelines.outreach.assignment import ASSIGNMENT_SCHEMA, CAMPAIGN_ASSIGNMENT, campaign_assignments
from pipelines.outreach.campaigns import Campaign
from pipelines.outreach.effect import CAMPAIGN_EFFECT, CAMPAIGN_FUNNEL, campaign_effect, campaign_funnel
from pipelines.outreach.responses import (
    COMMUNICATION_OPT_OUT,
    EVENT_SCHEMA,
    INVALID_CONTACT_POINT,
    OUTREACH_EVENTS,
    OUTREACH_EVENTS_QUARANTINE,
    REJECT_SCHEMA,
    current_opt_outs,
    invalid_contact_points,
    resolve_events,
)
from pipelines.silver.build import SILVER

GOLD = "gold"
TABLE_FILE = "data.parquet"
BRONZE_OUTREACH_EVENTS = "outreach_events"
RESPONSE_TABLES = (OUTREACH_EVENTS, OUTREACH_EVENTS_QUARANTINE, COMMUNICATION_OPT_OUT, INVALID_CONTACT_POINT)
EFFECT_TABLES = (CAMPAIGN_EFFECT, CAMPAIGN_FUNNEL)


def gold_file(lake: UPath, table: str) -> UPath:
    """The one Parquet file of a closed-loop table."""
    return table_path(lake, GOLD, table) / TABLE_FILE


def read_gold(lake: UPath, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A closed-loop table, or an empty frame of `schema` before it was first built."""
    path = gold_file(lake, table)
    if not path.exists():
        return pl.DataFrame(schema=schema)
    with path.open("rb") as handle:
        return pl.read_parquet(handle)


def _scan(lake: UPath, layer: str, table: str) -> pl.LazyFrame | None:
    return scan_table(lake, layer, table) if parquet_files(table_path(lake, layer, table)) else None


def known_campaign_ids(exports: UPath, campaigns: list[Campaign]) -> list[str]:
    """The shipped campaigns and every campaign that has an exports folder (a retired campaign's runs still
    receive answers)."""
    found = {c.id for c in campaigns}
    if exports.exists():
        found |= {p.name for p in exports.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(found)


def _identifiers(lake: UPath) -> pl.DataFrame:
    """`system|value` of every patient identifier with the person it belongs to."""
    links, identifiers = _scan(lake, IDENTITY, PERSON_LINK), _scan(lake, SILVER, "patient_identifier")
    if links is None or identifiers is None:
        return pl.DataFrame(schema={"identifier": pl.String, "person_id": pl.String})
    return (
        identifiers.join(
            links.select("source", "source_patient_id", "person_id"),
            left_on=["source", "patient_id"],
            right_on=["source", "source_patient_id"],
        )
        .select(pl.format("{}|{}", "system", "value").alias("identifier"), "person_id")
        .unique()
        .collect()
    )


def build_outreach_responses(
    lake: UPath, exports: UPath, campaigns: list[Campaign], as_of: date
) -> dict[str, pl.DataFrame]:
    """Resolve every bronze outreach event, derive opt-outs and bounced contact points, write the four
    tables and return them (with `bronze_rows`: how many events bronze holds). Events dated after `as_of`
    (beyond the tolerance of `pipelines/future_dates.py`) are quarantined, never trusted."""
    bronze = _scan(lake, BRONZE, BRONZE_OUTREACH_EVENTS)
    ids = known_campaign_ids(exports, campaigns)
    persons = _scan(lake, IDENTITY, PERSON)
    if bronze is None:
        events, rejects = pl.DataFrame(schema=EVENT_SCHEMA), pl.DataFrame(schema=REJECT_SCHEMA)
        bronze_rows = 0
    else:
        frame = bronze.collect()
        bronze_rows = frame.height
        events, rejects = resolve_events(
            frame,
            ids,
            campaign_assignments(exports, ids),
            persons.select("person_id").collect()["person_id"]
            if persons is not None
            else pl.Series([], dtype=pl.String),
            _identifiers(lake),
            as_of=as_of,
        )
    tables = {
        OUTREACH_EVENTS: events,
        OUTREACH_EVENTS_QUARANTINE: rejects,
        COMMUNICATION_OPT_OUT: current_opt_outs(events),
        INVALID_CONTACT_POINT: invalid_contact_points(events),
    }
    for table, frame in tables.items():
        write_parquet_atomic(frame, gold_file(lake, table))
    return {**tables, "bronze_rows": pl.DataFrame({"rows": [bronze_rows]})}


def build_campaign_assignment(lake: UPath, exports: UPath, campaigns: list[Campaign]) -> pl.DataFrame:
    """gold/campaign_assignment from every export run."""
    frame = campaign_assignments(exports, known_campaign_ids(exports, campaigns))
    write_parquet_atomic(frame, gold_file(lake, CAMPAIGN_ASSIGNMENT))
    return frame


def build_campaign_effect(lake: UPath, campaigns: list[Campaign], as_of: date) -> dict[str, pl.DataFrame]:
    """gold/campaign_effect and gold/campaign_funnel as of `as_of`."""
    assignments = read_gold(lake, CAMPAIGN_ASSIGNMENT, ASSIGNMENT_SCHEMA)
    events = read_gold(lake, OUTREACH_EVENTS, EVENT_SCHEMA)
    rejected = read_gold(lake, OUTREACH_EVENTS_QUARANTINE, REJECT_SCHEMA)
    gaps_scan = _scan(lake, GOLD, CARE_GAPS)
    gaps = (
        gaps_scan.select("person_id", "measure_id", "status", "evidence_date").collect()
        if gaps_scan is not None
        else pl.DataFrame(
            schema={
                "person_id": pl.String,
                "measure_id": pl.String,
                "status": pl.String,
                "evidence_date": pl.Date,
            }
        )
    )
    tables = {
        CAMPAIGN_EFFECT: campaign_effect(assignments, gaps, rejected, campaigns, as_of),
        CAMPAIGN_FUNNEL: campaign_funnel(assignments, events, gaps, campaigns),
    }
    for table, frame in tables.items():
        write_parquet_atomic(frame, gold_file(lake, table))
    return tables
