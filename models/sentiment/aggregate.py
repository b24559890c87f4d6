"""Sentiment arithmetic for reports: conversations (overall, start → end trajectory, escalation,
resolution), weekly volumes per agent and department with confidence intervals and a minimum volume,
NPS-style survey scores, and the themes of negative feedback with example snippets.

Confidence intervals: the mean score uses the normal approximation (mean ± 1.96·sd/√n); the negative share
uses the Wilson score interval, which stays inside [0, 1] and is honest for small counts. Below
`MIN_VOLUME` scored messages a week's figures are flagged (`enough_volume` false) so that a dashboard
greys them out instead of ranking an agent on three messages.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

MIN_VOLUME = 20
Z = 1.96
LABEL_BAND = 0.2
"""A mean score above +0.2 is a positive conversation, below -0.2 a negative one."""
TRAJECTORY_CHANGE = 0.3
"""The end score must differ from the start score by this much to call a conversation improved/worsened."""
SNIPPET_CHARACTERS = 80
MAX_THEMES = 5
MIN_THEME_TEXTS = 10
THEME_TOKEN = r"\b\w\w+\b"
"""A word of the themes: two or more word characters, on lower-cased text (scikit-learn's default pattern,
named here because the dashboard splits texts the same way to count who wrote a term)."""
THEME_STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)
"""Words the themes never count."""
CONVERSATION_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "person_id": pl.String(),
    "department": pl.String(),
    "agent_id": pl.String(),
    "channel": pl.String(),
    "started_at": pl.Datetime("us", "UTC"),
    "week": pl.Date(),
    "patient_turns": pl.Int64(),
    "scored_turns": pl.Int64(),
    "mean_score": pl.Float64(),
    "label": pl.String(),
    "start_score": pl.Float64(),
    "end_score": pl.Float64(),
    "trajectory": pl.String(),  # improved | worsened | steady | single | unscored
    "escalated": pl.Boolean(),
    "resolved": pl.Boolean(),
}


def week_of(moment: pl.Expr) -> pl.Expr:
    """The Monday of the ISO week of a UTC instant."""
    return moment.dt.date().dt.truncate("1w")


def score_label(score: pl.Expr) -> pl.Expr:
    """negative / neutral / positive from a mean score (null stays null)."""
    return (
        pl.when(score > LABEL_BAND)
        .then(pl.lit("positive"))
        .when(score < -LABEL_BAND)
        .then(pl.lit("negative"))
        .when(score.is_not_null())
        .then(pl.lit("neutral"))
    )


def summarize_conversations(messages: pl.DataFrame) -> pl.DataFrame:
    """One row per conversation from its `sentiment_message` rows (kind `conversation_turn`).

    Resolved means the conversation did not end on the patient's side in anger: the last scored patient
    turn is not negative and the last turn belongs to the agent or bot (the service side closed it)."""
    turns = messages.filter(pl.col("kind") == "conversation_turn").sort("conversation_id", "at", "turn")
    if not turns.height:
        return pl.DataFrame(schema=CONVERSATION_SCHEMA)
    patient = pl.col("speaker") == "patient"
    scored = patient & pl.col("score").is_not_null()
    start = pl.col("score").filter(scored).first()
    end = pl.col("score").filter(scored).last()
    summary = turns.group_by("conversation_id").agg(
        pl.col("person_id").first(),
        pl.col("department").first(),
        pl.col("agent_id").drop_nulls().first(),
        pl.col("channel").first(),
        pl.col("conversation_started_at").first().alias("started_at"),
        patient.sum().cast(pl.Int64).alias("patient_turns"),
        scored.sum().cast(pl.Int64).alias("scored_turns"),
        pl.col("score").filter(scored).mean().alias("mean_score"),
        start.alias("start_score"),
        end.alias("end_score"),
        pl.col("escalated").first().alias("escalated"),
        (pl.col("label").filter(scored).last().fill_null("neutral") != "negative").alias("_calm_end"),
        (pl.col("speaker").last() != "patient").alias("_service_closed"),
    )
    change = pl.col("end_score") - pl.col("start_score")
    return (
        summary.with_columns(
            week_of(pl.col("started_at")).alias("week"),
            score_label(pl.col("mean_score")).alias("label"),
            pl.when(pl.col("scored_turns") == 0)
            .then(pl.lit("unscored"))
            .when(pl.col("scored_turns") == 1)
            .then(pl.lit("single"))
            .when(change >= TRAJECTORY_CHANGE)
            .then(pl.lit("improved"))
            .when(change <= -TRAJECTORY_CHANGE)
            .then(pl.lit("worsened"))
            .otherwise(pl.lit("steady"))
            .alias("trajectory"),
            (pl.col("_calm_end") & pl.col("_service_closed")).alias("resolved"),
        )
        .select([pl.col(n).cast(t) for n, t in CONVERSATION_SCHEMA.items()])
        .sort("started_at", "conversation_id")
    )


def weekly_sentiment(messages: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per week and `by` (agent_id or department): conversations, scored patient messages, mean score with
    its 95 % interval, negative share with its Wilson interval, and whether the volume is enough."""
    scored = messages.filter(
        (pl.col("kind") == "conversation_turn")
        & (pl.col("speaker") == "patient")
        & pl.col("score").is_not_null()
    ).filter(pl.col(by).is_not_null())
    if not scored.height:
        return pl.DataFrame(schema=_weekly_schema(by))
    n = pl.len()
    negative = (pl.col("label") == "negative").sum()
    grouped = (
        scored.with_columns(week_of(pl.col("at")).alias("week"))
        .group_by("week", by)
        .agg(
            pl.col("conversation_id").n_unique().cast(pl.Int64).alias("conversations"),
            n.cast(pl.Int64).alias("volume"),
            pl.col("score").mean().alias("mean_score"),
            pl.col("score").std().fill_null(0.0).alias("_sd"),
            negative.cast(pl.Int64).alias("negative"),
        )
    )
    return (
        grouped.with_columns(
            _intervals(pl.col("mean_score"), pl.col("_sd"), pl.col("negative"), pl.col("volume"))
        )
        .drop("_sd")
        .select(list(_weekly_schema(by)))
        .sort("week", by)
    )


def _intervals(mean: pl.Expr, sd: pl.Expr, negative: pl.Expr, n: pl.Expr) -> list[pl.Expr]:
    """Mean-score interval (normal) and negative-share interval (Wilson), and the volume flag."""
    half = Z * sd / n.sqrt()
    p = negative / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    spread = Z * ((p * (1 - p) / n + Z**2 / (4 * n**2)).sqrt()) / (1 + Z**2 / n)
    return [
        (mean - half).clip(-1, 1).alias("mean_score_low"),
        (mean + half).clip(-1, 1).alias("mean_score_high"),
        p.alias("negative_share"),
        (centre - spread).clip(0, 1).alias("negative_share_low"),
        (centre + spread).clip(0, 1).alias("negative_share_high"),
        (n >= MIN_VOLUME).alias("enough_volume"),
    ]


def _weekly_schema(by: str) -> dict[str, pl.DataType]:
    return {
        "week": pl.Date(),
        by: pl.String(),
        "conversations": pl.Int64(),
        "volume": pl.Int64(),
        "mean_score": pl.Float64(),
        "mean_score_low": pl.Float64(),
        "mean_score_high": pl.Float64(),
        "negative": pl.Int64(),
        "negative_share": pl.Float64(),
        "negative_share_low": pl.Float64(),
        "negative_share_high": pl.Float64(),
        "enough_volume": pl.Boolean(),
    }


SURVEY_SCHEMA: dict[str, pl.DataType] = {
    "week": pl.Date(),
    "responses": pl.Int64(),
    "promoters": pl.Int64(),
    "passives": pl.Int64(),
    "detractors": pl.Int64(),
    "nps": pl.Float64(),  # % promoters - % detractors, -100..100
    "mean_rating": pl.Float64(),
    "enough_volume": pl.Boolean(),
}


def survey_scores(ratings: pl.DataFrame) -> pl.DataFrame:
    """NPS-style weekly scores from 0-10 ratings (`rating`, `at`): promoters 9-10, detractors 0-6."""
    valid = ratings.filter(pl.col("rating").is_between(0, 10))
    if not valid.height:
        return pl.DataFrame(schema=SURVEY_SCHEMA)
    grouped = (
        valid.with_columns(week_of(pl.col("at")).alias("week"))
        .group_by("week")
        .agg(
            pl.len().cast(pl.Int64).alias("responses"),
            (pl.col("rating") >= 9).sum().cast(pl.Int64).alias("promoters"),
            pl.col("rating").is_between(7, 8).sum().cast(pl.Int64).alias("passives"),
            (pl.col("rating") <= 6).sum().cast(pl.Int64).alias("detractors"),
            pl.col("rating").cast(pl.Float64).mean().alias("mean_rating"),
        )
    )
    return (
        grouped.with_columns(
            (100 * (pl.col("promoters") - pl.col("detractors")) / pl.col("responses")).alias("nps"),
            (pl.col("responses") >= MIN_VOLUME).alias("enough_volume"),
        )
        .select(list(SURVEY_SCHEMA))
        .sort("week")
    )


THEME_SCHEMA: dict[str, pl.DataType] = {
    "theme": pl.Int64(),
    "terms": pl.List(pl.String()),  # the words that define it, strongest first
    "messages": pl.Int64(),  # negative messages whose strongest theme it is
    "snippets": pl.List(pl.String()),  # up to 3 short examples (first 80 characters)
}


def negative_themes(texts: list[str], seed: int = 7) -> pl.DataFrame:
    """Themes of negative feedback: NMF over word TF-IDF (1-2 grams, English stop words removed), at most
    MAX_THEMES and about one per MIN_THEME_TEXTS texts; each with its top terms, size and snippets."""
    texts = [t for t in texts if t and t.strip()]
    if len(texts) < MIN_THEME_TEXTS:
        return pl.DataFrame(schema=THEME_SCHEMA)
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        token_pattern=THEME_TOKEN,
        stop_words=sorted(THEME_STOP_WORDS),
        min_df=2,
        max_df=0.9,
        sublinear_tf=True,
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # every word is a stop word or too rare: no themes to tell
        return pl.DataFrame(schema=THEME_SCHEMA)
    themes = max(1, min(MAX_THEMES, len(texts) // MIN_THEME_TEXTS, matrix.shape[1] - 1))
    model = NMF(n_components=themes, init="nndsvda", random_state=seed, max_iter=500)
    weights = model.fit_transform(matrix)
    vocabulary = np.asarray(vectorizer.get_feature_names_out())
    strongest = weights.argmax(axis=1)
    rows = []
    for theme in range(themes):
        members = np.flatnonzero((strongest == theme) & (weights.max(axis=1) > 0))
        if not members.size:
            continue
        ranked = members[np.argsort(-weights[members, theme], kind="stable")]
        examples = list(dict.fromkeys(_snippet(texts[i]) for i in ranked))[:3]  # distinct, strongest first
        rows.append(
            {
                "theme": theme + 1,
                "terms": vocabulary[np.argsort(-model.components_[theme], kind="stable")[:6]].tolist(),
                "messages": int(members.size),
                "snippets": examples,
            }
        )
    return pl.DataFrame(rows, schema=THEME_SCHEMA).sort("messages", "theme", descending=[True, False])


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARACTERS else flat[: SNIPPET_CHARACTERS - 1].rstrip() + "…"
