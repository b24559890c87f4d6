"""One campaign run end to end: members and people from gold, contact history from earlier exports,
selection, the immutable export, the audit entry and (when configured) the PostgreSQL table."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from upath import UPath

from pipelines.measures.definitions import load_measures
from pipelines.outreach.audit import append_audit_entry, now_utc
from pipelines.outreach.campaigns import CAMPAIGNS_DIR, Campaign, load_campaigns
from pipelines.outreach.exports import ExportResult, contact_history, export_run
from pipelines.outreach.holdout import split_holdout
from pipelines.outreach.inputs import campaign_members, campaign_people
from pipelines.outreach.selection import select_campaign
from pipelines.segments.engine import SEGMENTS_DIR, segment_titles


@dataclass(frozen=True)
class CampaignOutcome:
    """What a campaign run did: the export (None when the campaign is not active that day), counts."""

    campaign: Campaign
    export: ExportResult | None
    suppressed_by_reason: dict[str, int]
    database: dict[str, int] | None  # rows inserted / superseded; None when the sink is disabled


def shipped_campaigns() -> list[Campaign]:
    """The campaigns of data_contracts/campaigns, checked against the shipped segments and measures."""
    return load_campaigns(set(segment_titles()), measure_ids={m.id for m in load_measures()})


def definitions_version(campaign: Campaign) -> str:
    """sha256 over the campaign file and every segment definition: which rules made a list."""
    digest = hashlib.sha256()
    for path in [CAMPAIGNS_DIR / campaign.source, *sorted(SEGMENTS_DIR.glob("*.yaml"))]:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_campaign(
    lake: UPath,
    exports: UPath,
    campaign: Campaign,
    campaigns: list[Campaign],
    as_of: date,
    *,
    run_by: str,
    dsn: str | None = None,
    transaction_time: datetime | None = None,
) -> CampaignOutcome:
    """Select, export, audit and (with `dsn`) load one campaign's list for `as_of`."""
    if not campaign.active_on(as_of):
        return CampaignOutcome(campaign, None, {}, None)
    members = campaign_members(lake, campaign)
    people = campaign_people(lake, campaign, members["person_id"], as_of)
    history = contact_history(exports, campaigns, campaign, as_of)
    listed, suppressed = select_campaign(campaign, members, people, history, as_of)
    listed, holdout = split_holdout(campaign, listed)
    at = transaction_time or now_utc()
    result = export_run(
        exports, campaign, listed, suppressed, as_of, definitions_version(campaign), at, holdout
    )
    reasons = dict(sorted(Counter(suppressed["reason"].to_list()).items()))
    loaded = None
    if dsn:
        from pipelines.outreach.database import FRAME_COLUMNS, write_outreach_list

        # the run's own transaction time: loading an unchanged run again stores identical rows
        run_at = datetime.fromisoformat(result.manifest["transactionTime"])
        loaded = write_outreach_list(
            dsn, campaign.id, result.run.run_id, run_at, result.run.read_list().select(FRAME_COLUMNS)
        )
    manifest_sha = hashlib.sha256((result.run.folder / "manifest.json").read_bytes()).hexdigest()
    append_audit_entry(
        exports,
        {
            "at": now_utc().isoformat(),
            "by": run_by,
            "campaign": campaign.id,
            "run_id": result.run.run_id,
            "as_of": as_of.isoformat(),
            "outcome": "written" if result.written else "unchanged",
            "counts": result.counts,
            "suppressed_by_reason": reasons,
            "manifest_sha256": manifest_sha,
            "database": loaded,
        },
    )
    return CampaignOutcome(campaign, result, reasons, loaded)
