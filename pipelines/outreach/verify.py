"""Checks of a written campaign run, as a consumer would make them: the manifest's hashes and row counts,
and the rules no list may break (nobody deceased, no channel the person opted out of, no frequency cap
exceeded). Problems are counts and file names, never person data."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import orjson
import polars as pl

from pipelines.outreach.campaigns import Campaign
from pipelines.outreach.exports import GROUP, LIST_PARQUET, MANIFEST, RunFolder
from pipelines.outreach.holdout import holdout_draws


def verify_export(run: RunFolder) -> list[str]:
    """Files missing, unlisted, or differing from the manifest in sha256 or row count."""
    manifest_path = run.folder / MANIFEST
    if not manifest_path.exists():
        return [f"{run.run_id}: no manifest"]
    manifest = orjson.loads(manifest_path.read_bytes())
    problems = []
    listed_files = {entry["url"] for entry in manifest["output"]}
    present = {p.name for p in run.folder.iterdir()} - {MANIFEST}
    problems += [f"{name}: not in the manifest" for name in sorted(present - listed_files)]
    for entry in manifest["output"]:
        path = run.folder / entry["url"]
        if not path.exists():
            problems.append(f"{entry['url']}: missing")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['url']}: sha256 differs from the manifest")
        rows = _rows(entry["url"], data)
        if rows != entry["count"]:
            problems.append(f"{entry['url']}: {rows} rows, the manifest says {entry['count']}")
    return problems


def _rows(name: str, data: bytes) -> int:
    if name.endswith(".parquet"):
        return pl.read_parquet(data).height
    if name == GROUP:
        return len(orjson.loads(data).get("member") or [])
    return pl.read_csv(data, infer_schema=False).height if data.strip() else 0


def check_list_rules(
    run: RunFolder, campaign: Campaign, people: pl.DataFrame, history: pl.DataFrame
) -> dict[str, int]:
    """Listed persons who are deceased, were reached on a channel they opted out of, exceed a frequency
    cap, or belong to the randomized hold-out, counted per rule (all zero for a good list). `people`:
    patient_360 rows (person_id, deceased, consent_<channel>, with opt-outs received from outreach systems
    applied); `history`: contacts before this run (exports.contact_history)."""
    listed = pl.read_parquet((run.folder / LIST_PARQUET).read_bytes())
    joined = listed.join(people, on="person_id", how="left")
    consent = pl.coalesce(
        [
            pl.when(pl.col("channel") == c).then(pl.col(f"consent_{c}"))
            for c in ("phone", "sms", "email", "mail")
        ]
    ).fill_null(True)
    since = run.as_of - timedelta(days=campaign.campaign_days)
    recent = history.filter(
        (pl.col("campaign_id") == campaign.id)
        & (pl.col("contacted_on") > since)
        & (pl.col("contacted_on") <= run.as_of)
    )
    weekly = (
        history.filter(pl.col("contacted_on").is_between(run.as_of - timedelta(days=6), run.as_of))
        .group_by("person_id")
        .len()
        .filter(pl.col("len") >= campaign.weekly_contacts)
    )
    held_out = 0
    if campaign.holdout is not None and listed.height:
        draws = holdout_draws(campaign.holdout.key, listed["person_id"])
        held_out = int((draws < campaign.holdout.share).sum())
        held_out += listed.join(run.read_holdout(), on="person_id", how="semi").height
    return {
        "holdout_listed": held_out,
        "deceased_listed": joined.filter(pl.col("deceased").fill_null(False)).height,
        "unknown_person_listed": joined.filter(pl.col("deceased").is_null()).height,
        "opted_out_channel_listed": joined.filter(~consent).height,
        "campaign_frequency_breached": listed.join(recent, on="person_id", how="semi").height,
        "weekly_cap_breached": listed.join(weekly, on="person_id", how="semi").height,
    }
