"""Who each campaign run assigned to which arm, read back from the export runs: `gold/campaign_assignment`.

The exports are the record of what was handed over: a run's list is the contacted arm (with the channel and
contact point used), its `holdout.csv` the randomized hold-out. Every revision of a run is read (outreach
systems answer with the run id they received); the effect uses each person's first run of a campaign
(`first_assignment`), as randomized, whatever happened later (intention to treat).
"""

from __future__ import annotations

import polars as pl
from upath import UPath

from pipelines.outreach.exports import campaign_runs, latest_runs_per_day

CAMPAIGN_ASSIGNMENT = "campaign_assignment"
CONTACTED, HOLDOUT = "contacted", "holdout"
ASSIGNMENT_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "run_day": pl.Date(),  # the run's as-of day
    "latest_revision": pl.Boolean(),  # the day's last revision (earlier ones were replaced the same day)
    "person_id": pl.String(),
    "arm": pl.String(),  # contacted | holdout
    "channel": pl.String(),  # the channel used (contacted only)
    "contact": pl.String(),  # the contact point used (contacted only)
    "gap_ids": pl.List(pl.String()),  # the campaign's open gaps at the run (`<measure>-<year>`)
    "first_assignment": pl.Boolean(),  # the person's first assignment in this campaign (latest revisions)
}


def campaign_assignments(exports: UPath, campaign_ids: list[str]) -> pl.DataFrame:
    """Every run's arms (ASSIGNMENT_SCHEMA), sorted by campaign, run and person."""
    frames = []
    for campaign_id in campaign_ids:
        runs = campaign_runs(exports, campaign_id)
        latest = {run.run_id for run in latest_runs_per_day(runs)}
        for run in runs:
            listed = run.read_list().select(
                "person_id",
                pl.lit(CONTACTED).alias("arm"),
                "channel",
                "contact",
                "gap_ids",
            )
            held = run.read_holdout().select(
                "person_id",
                pl.lit(HOLDOUT).alias("arm"),
                pl.lit(None, pl.String).alias("channel"),
                pl.lit(None, pl.String).alias("contact"),
                "gap_ids",
            )
            frames.append(
                pl.concat([listed, held]).with_columns(
                    pl.lit(campaign_id).alias("campaign_id"),
                    pl.lit(run.run_id).alias("run_id"),
                    pl.lit(run.as_of).alias("run_day"),
                    pl.lit(run.run_id in latest).alias("latest_revision"),
                )
            )
    if not frames:
        return pl.DataFrame(schema=ASSIGNMENT_SCHEMA)
    frame = pl.concat(frames, how="vertical_relaxed")
    first = (
        frame.filter(pl.col("latest_revision"))
        .sort("run_day")
        .group_by("campaign_id", "person_id", maintain_order=True)
        .agg(pl.col("run_id").first().alias("_first_run"))
    )
    return (
        frame.join(first, on=["campaign_id", "person_id"], how="left")
        .with_columns((pl.col("run_id") == pl.col("_first_run")).fill_null(False).alias("first_assignment"))
        .select([pl.col(n).cast(t) for n, t in ASSIGNMENT_SCHEMA.items()])
        .sort("campaign_id", "run_day", "run_id", "person_id")
    )
