"""The randomized hold-out of a campaign run: who would be listed but is not contacted, so that the effect
of the outreach can be measured against them (`pipelines/outreach/effect.py`).

A person is held out when `HMAC-SHA256(campaign key, person_id)`, read as a number in [0, 1), is below the
campaign's share. The draw depends on the person and the campaign only: the same person is in the same arm
in every run and whatever the order of the list, and an outreach system cannot steer who is held out
without the key. The hold-out is drawn from the persons the run would list (after every suppression and the
list cap), so both arms come from the same people.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

from pipelines.outreach.campaigns import Campaign

HOLDOUT_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "person_id": pl.String(),
    "draw": pl.Float64(),  # the keyed hash as a number in [0, 1): held out when below the share
    "gap_ids": pl.List(pl.String()),  # the campaign's open gaps at the run (`<measure>-<year>`), as listed
}
_SCALE = float(2**64)


def holdout_draws(key: str, person_ids: pl.Series) -> pl.Series:
    """The keyed draw in [0, 1) of each person (HMAC-SHA256, first 8 bytes)."""
    secret = key.encode("utf-8")
    unique = person_ids.unique().drop_nulls()
    draws = [
        int.from_bytes(hmac.new(secret, person.encode("utf-8"), hashlib.sha256).digest()[:8]) / _SCALE
        for person in unique.to_list()
    ]
    lookup = pl.DataFrame({"person_id": unique, "draw": pl.Series(draws, dtype=pl.Float64)})
    frame = pl.DataFrame({"person_id": person_ids})
    return frame.join(lookup, on="person_id", how="left", maintain_order="left")["draw"]


def split_holdout(campaign: Campaign, listed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The contacted list (ranks renumbered 1..n in the same order) and the hold-out (HOLDOUT_SCHEMA)."""
    if campaign.holdout is None or listed.is_empty():
        return listed, pl.DataFrame(schema=HOLDOUT_SCHEMA)
    drawn = listed.with_columns(holdout_draws(campaign.holdout.key, listed["person_id"]).alias("_draw"))
    held = pl.col("_draw") < campaign.holdout.share
    contacted = (
        drawn.filter(~held)
        .sort("rank")
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("rank"))
        .drop("_draw")
    )
    holdout = (
        drawn.filter(held)
        .select("campaign_id", "person_id", pl.col("_draw").alias("draw"), "gap_ids")
        .sort("person_id")
        .cast(HOLDOUT_SCHEMA)  # type: ignore[arg-type]
    )
    return contacted, holdout
