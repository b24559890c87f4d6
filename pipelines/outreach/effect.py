"""Did outreach close care gaps? The randomized comparison of contacted and held-out persons
(`gold/campaign_effect`) and the funnel from sent to gap closed (`gold/campaign_funnel`).

Each person counts once per campaign, in the arm of their first run (intention to treat: a contacted person
whose message bounced is still contacted). The population of a measure is the persons whose gap of that
measure was open at the run (the run's `gap_ids`) and whose follow-up window has ended by the as-of day; the
others are counted as pending. A gap counts as closed when `gold/care_gaps` shows it closed (or closed and
expiring: `prospective-gap`) with its evidence dated after the run day and within `follow_up_days`.

The effect is the difference of the closure rates (contacted minus hold-out) with Newcombe's hybrid score
95 % interval (method 10 of Newcombe 1998, built from the two Wilson intervals: good coverage with small
arms and rates near 0 or 1, where the textbook Wald interval is too narrow), and the number needed to
contact for one more closed gap (1 / difference) with the interval's reciprocals when the interval excludes
zero.
"""

from __future__ import annotations

import math
from datetime import date

import polars as pl

from pipelines.outreach.assignment import CONTACTED, HOLDOUT
from pipelines.outreach.campaigns import Campaign

CAMPAIGN_EFFECT = "campaign_effect"
CAMPAIGN_FUNNEL = "campaign_funnel"
CONFIDENCE = 0.95
CLOSED_STATUSES = ("closed-gap", "prospective-gap")
MIN_ARM = 10
"""Below this many persons in an arm the interval is reported but flagged as too small to read."""
FUNNEL_EVENTS = (
    "sent",
    "delivered",
    "bounced",
    "called-no-answer",
    "opened",
    "clicked",
    "replied",
    "opted-out",
    "booked",
)
EFFECT_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "measure_id": pl.String(),
    "as_of": pl.Date(),
    "follow_up_days": pl.Int64(),
    "first_run_day": pl.Date(),
    "last_run_day": pl.Date(),  # the last run whose follow-up has ended
    "contacted": pl.Int64(),
    "contacted_closed": pl.Int64(),
    "contacted_rate": pl.Float64(),
    "holdout": pl.Int64(),
    "holdout_closed": pl.Int64(),
    "holdout_rate": pl.Float64(),
    "difference": pl.Float64(),  # contacted_rate - holdout_rate
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "number_needed_to_contact": pl.Float64(),  # null when the difference is not above zero
    "nnc_ci_low": pl.Float64(),  # null unless the interval excludes zero
    "nnc_ci_high": pl.Float64(),
    "excludes_zero": pl.Boolean(),
    "enough_persons": pl.Boolean(),  # both arms have at least MIN_ARM persons
    "pending_follow_up": pl.Int64(),  # assigned persons whose window has not ended yet
    "holdout_contacted": pl.Int64(),  # outreach events received for held-out persons (contamination)
}
FUNNEL_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "arm": pl.String(),
    "channel": pl.String(),  # the channel of the list ("all" for every channel, null for the hold-out)
    "assigned": pl.Int64(),  # persons the run (its latest revision of the day) assigned
    **{event.replace("-", "_"): pl.Int64() for event in FUNNEL_EVENTS},
    "gap_closed": pl.Int64(),  # a gap of the campaign's measures closed within the follow-up window
    "delivery_rate": pl.Float64(),  # delivered / sent
    "bounce_rate": pl.Float64(),  # bounced / sent
}


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval of a proportion (0, 1 for n = 0)."""
    # scipy.stats takes a large share of a second to import: loaded on first use, so that reading the
    # effect table (`patient-insights summary` imports this module for its name) does not pay for it
    from scipy.stats import norm

    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p_a - p_b (method 10)."""
    p_a = successes_a / n_a if n_a else 0.0
    p_b = successes_b / n_b if n_b else 0.0
    low_a, high_a = wilson_interval(successes_a, n_a, confidence)
    low_b, high_b = wilson_interval(successes_b, n_b, confidence)
    difference = p_a - p_b
    low = difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return low, high


def closures(assignments: pl.DataFrame, care_gaps: pl.DataFrame, campaigns: list[Campaign]) -> pl.DataFrame:
    """Per latest-revision assignment and measure of the campaign whose gap was open at the run:
    campaign_id, run_id, run_day, person_id, arm, channel, measure_id, first_assignment, window_end,
    closed (evidence after the run day and within the window)."""
    rows = []
    for campaign in campaigns:
        days = campaign.holdout.follow_up_days if campaign.holdout else 90
        for measure in campaign.measures:
            rows.append((campaign.id, measure, days))
    if not rows:
        return pl.DataFrame()
    measures = pl.DataFrame(rows, schema=["campaign_id", "measure_id", "follow_up_days"], orient="row")
    expanded = assignments.filter(pl.col("latest_revision")).join(measures, on="campaign_id")
    expanded = expanded.filter(
        pl.col("gap_ids")
        .list.eval(pl.element().str.split("-").list.first())
        .list.contains(pl.col("measure_id"))
    ).with_columns((pl.col("run_day") + pl.duration(days=pl.col("follow_up_days"))).alias("window_end"))
    evidence = care_gaps.filter(pl.col("status").is_in(CLOSED_STATUSES)).select(
        "person_id", "measure_id", "evidence_date"
    )
    return expanded.join(evidence, on=["person_id", "measure_id"], how="left").with_columns(
        ((pl.col("evidence_date") > pl.col("run_day")) & (pl.col("evidence_date") <= pl.col("window_end")))
        .fill_null(False)
        .alias("closed")
    )


def campaign_effect(
    assignments: pl.DataFrame,
    care_gaps: pl.DataFrame,
    rejected: pl.DataFrame,
    campaigns: list[Campaign],
    as_of: date,
) -> pl.DataFrame:
    """One row per campaign with a hold-out and measure of it (EFFECT_SCHEMA); `rejected` is
    gold/outreach_events_quarantine (events for held-out persons are counted as contamination)."""
    with_holdout = [c for c in campaigns if c.holdout is not None and c.measures]
    closed = closures(assignments, care_gaps, with_holdout)
    rows = []
    for campaign in with_holdout:
        contaminated = rejected.filter(
            (pl.col("campaign_id") == campaign.id) & (pl.col("reason_code") == "holdout_person")
        ).height
        for measure in campaign.measures:
            mine = (
                closed.filter(
                    (pl.col("campaign_id") == campaign.id)
                    & (pl.col("measure_id") == measure)
                    & pl.col("first_assignment")
                )
                if closed.height
                else closed
            )
            ended = mine.filter(pl.col("window_end") <= as_of) if mine.height else mine
            rows.append(
                _effect_row(campaign, measure, as_of, ended, mine.height - ended.height, contaminated)
            )
    return (
        pl.DataFrame(rows, schema=EFFECT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=EFFECT_SCHEMA)
    )


def _effect_row(
    campaign: Campaign, measure: str, as_of: date, ended: pl.DataFrame, pending: int, contaminated: int
) -> tuple:
    counts = {CONTACTED: (0, 0), HOLDOUT: (0, 0)}
    if ended.height:
        for arm, n, k in ended.group_by("arm").agg(pl.len(), pl.col("closed").sum()).iter_rows():
            counts[arm] = (int(n), int(k))
    (n_c, k_c), (n_h, k_h) = counts[CONTACTED], counts[HOLDOUT]
    rate_c = k_c / n_c if n_c else None
    rate_h = k_h / n_h if n_h else None
    difference = low = high = nnc = nnc_low = nnc_high = None
    excludes = False
    if n_c and n_h:
        difference = rate_c - rate_h  # type: ignore[operator]
        low, high = newcombe_interval(k_c, n_c, k_h, n_h)
        excludes = low > 0 or high < 0
        nnc = 1 / difference if difference > 0 else None
        if low > 0:
            nnc_low, nnc_high = 1 / high, 1 / low
    days = campaign.holdout.follow_up_days  # type: ignore[union-attr]
    run_days = ended["run_day"] if ended.height else pl.Series([], dtype=pl.Date)
    return (
        campaign.id,
        measure,
        as_of,
        days,
        run_days.min(),
        run_days.max(),
        n_c,
        k_c,
        rate_c,
        n_h,
        k_h,
        rate_h,
        difference,
        low,
        high,
        nnc,
        nnc_low,
        nnc_high,
        excludes,
        min(n_c, n_h) >= MIN_ARM,
        pending,
        contaminated,
    )


def campaign_funnel(
    assignments: pl.DataFrame, events: pl.DataFrame, care_gaps: pl.DataFrame, campaigns: list[Campaign]
) -> pl.DataFrame:
    """Per campaign run (the day's latest revision), arm and channel: persons assigned, reaching each
    event, and closing a gap (FUNNEL_SCHEMA); a row `all` per run adds the contacted channels up."""
    assigned = assignments.filter(pl.col("latest_revision")).select(
        "campaign_id", "run_id", "person_id", "arm", "channel"
    )
    keys = ["campaign_id", "run_id", "person_id"]
    reached = (
        events.select(*keys, "event")
        .unique()
        .with_columns(pl.lit(1).alias("_hit"))
        .pivot("event", index=keys, values="_hit", aggregate_function="max")
        if events.height
        else pl.DataFrame(schema={k: pl.String for k in keys})
    )
    closed = closures(assignments, care_gaps, [c for c in campaigns if c.measures])
    closed_runs = (
        closed.filter(pl.col("closed")).select(keys).unique()
        if closed.height
        else pl.DataFrame(schema={k: pl.String for k in keys})
    ).with_columns(pl.lit(1).alias("gap_closed"))
    frame = assigned.join(reached, on=keys, how="left").join(closed_runs, on=keys, how="left")
    stages = list(FUNNEL_EVENTS)
    frame = frame.with_columns(
        *[pl.col(e).fill_null(0) if e in frame.columns else pl.lit(0).alias(e) for e in stages],
        pl.col("gap_closed").fill_null(0),
    )
    sums = [pl.len().alias("assigned"), *[pl.col(e).sum().alias(e.replace("-", "_")) for e in stages]]
    sums.append(pl.col("gap_closed").sum())
    by_channel = frame.group_by("campaign_id", "run_id", "arm", "channel").agg(sums)
    overall = (
        frame.filter(pl.col("arm") == CONTACTED)
        .group_by("campaign_id", "run_id", "arm")
        .agg(sums)
        .with_columns(pl.lit("all").alias("channel"))
    )
    funnel = pl.concat([by_channel, overall.select(by_channel.columns)])
    sent = pl.col("sent")
    return (
        funnel.with_columns(
            pl.when(sent > 0).then(pl.col("delivered") / sent).alias("delivery_rate"),
            pl.when(sent > 0).then(pl.col("bounced") / sent).alias("bounce_rate"),
        )
        .select([pl.col(n).cast(t) for n, t in FUNNEL_SCHEMA.items()])
        .sort("campaign_id", "run_id", "arm", "channel", nulls_last=True)
    )
