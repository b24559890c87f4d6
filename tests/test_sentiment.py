"""Sentiment: text checks, weak labels, the classifier against VADER, the registry, and the CLI."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner
from upath import UPath

from models.registry import RegistryError
from models.sentiment.labelled import rating_label
from models.sentiment.lifecycle import train_and_deploy_sentiment
from models.sentiment.models import ClassifierModel, LexiconModel, RoutedModel, text_classifier
from models.sentiment.provenance import ORGANISATION
from models.sentiment.registry import load_sentiment_model
from models.sentiment.text import text_status
from models.sentiment.train import (
    SentimentTrainingError,
    fit_weighted,
    split_held_out,
    survey_weak_labels,
    train_sentiment,
)

NEGATIVE = [
    "The nurse was rude and I waited three hours.",
    "Nobody called me back, this is unacceptable.",
    "Terrible service, the bill is wrong again.",
    "I am very upset, my prescription was never sent.",
    "Awful experience, the front desk was dismissive.",
    "The wait was far too long and nobody explained anything.",
]
NEUTRAL = [
    "I need to reschedule my appointment to next week.",
    "Can you send the form to my email address?",
    "I have a question about my lab results.",
    "Please update my phone number on file.",
    "What time does the clinic open on Saturday?",
    "I called about the referral I was given last month.",
]
POSITIVE = [
    "Thank you, the doctor was kind and explained everything.",
    "Great care, the staff were friendly and quick.",
    "Excellent visit, I felt listened to.",
    "The pharmacist was wonderful and very helpful.",
    "Wonderful team, thank you so much for your help.",
    "Very pleased with how fast my refill was handled.",
]


def labelled(copies: int, seed: int) -> pl.DataFrame:
    """Small labelled texts with light variation (a name or a time added), shuffled."""
    rng = random.Random(seed)
    rows = []
    for label, texts in (("negative", NEGATIVE), ("neutral", NEUTRAL), ("positive", POSITIVE)):
        for _ in range(copies):
            text = rng.choice(texts)
            rows.append(
                (
                    f"{text} {rng.choice(['', 'Today.', 'Again.'])} Ref {rng.randrange(10**6)}.".strip(),
                    label,
                )
            )
    rng.shuffle(rows)
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (None, "empty"),
        ("", "empty"),
        ("   \n\t", "empty"),
        ("12345 ### 678", "not_text"),
        (":) :) !!!", "not_text"),
        ("Muy mal servicio, nunca más vuelvo a esta clínica", "not_english"),
        ("Sehr schlechter Service, ich bin enttäuscht", "not_english"),
        ("Terrible wait times, rude staff.", "ok"),
        ("ok", "ok"),
        ("The doctor was great.", "ok"),
    ],
)
def test_text_status_marks_what_cannot_be_scored(text: str | None, status: str) -> None:
    assert text_status(pl.Series([text], dtype=pl.String)).to_list() == [status]


def test_weak_labels_follow_the_rating_bands() -> None:
    ratings = pl.DataFrame({"r": [0, 6, 7, 8, 9, 10, None]})
    assert ratings.select(rating_label(pl.col("r"))).to_series().to_list() == [
        "negative",
        "negative",
        "neutral",
        "neutral",
        "positive",
        "positive",
        None,
    ]
    answers = pl.DataFrame(
        {
            "source": ["s"] * 5,
            "questionnaire_response_id": ["1", "1", "2", "2", "3"],
            "item_link_id": ["rating", "comment", "rating", "comment", "comment"],
            "answer_value_integer": [3, None, 10, None, None],
            "answer_value_string": [None, "Bad", None, "Good", "no rating given"],
            "authored": ["2026-01-01", "2026-01-01", "2026-01-02", "2026-01-02", "2026-01-03"],
        }
    )
    weak = survey_weak_labels(answers)
    assert weak.select("text", "label").rows() == [("Bad", "negative"), ("Good", "positive")]


def test_the_classifier_learns_and_scores_in_range_and_marks_odd_text() -> None:
    data = labelled(80, seed=1)
    train, held_out = split_held_out(data)
    training = train_sentiment(train, held_out)
    assert training.metrics["tfidf_logistic_regression"]["macro_f1"] > 0.9
    model = training.models["tfidf_logistic_regression"]
    scored = model.score(
        pl.Series(
            [
                "The nurse was rude and nobody called back.",
                "",
                "Gracias por nada amigo mio",
                "Thank you, great care.",
            ]
        )
    )
    assert scored["text_status"].to_list() == ["ok", "empty", "not_english", "ok"]
    assert scored["sentiment_label"].to_list() == ["negative", None, None, "positive"]
    scores = scored["sentiment_score"].drop_nulls()
    assert scores.is_between(-1, 1).all() and scores[0] < 0 < scores[1]


def test_vader_scores_in_range() -> None:
    scored = LexiconModel().score(
        pl.Series(["I love this clinic!", "This is horrible.", "The appointment is on Monday."])
    )
    assert scored["sentiment_label"].to_list() == ["positive", "negative", "neutral"]


def test_training_refuses_too_few_labels() -> None:
    few = labelled(2, seed=2)
    with pytest.raises(SentimentTrainingError, match="at least") as refused:
        train_sentiment(few, few)
    assert "2 negative" in str(refused.value) and "{" not in str(refused.value)
    nothing = few.clear()  # a lake without rated comments: said in words, not as an empty mapping
    with pytest.raises(SentimentTrainingError, match="no rated survey comments or labelled texts"):
        train_sentiment(nothing, nothing)


def test_the_registry_deploys_the_better_model_and_the_cli_scores_a_csv(tmp_path: Path) -> None:
    from pipelines.cli import app

    lake = UPath(tmp_path / "lake")
    with pytest.raises(RegistryError, match="no sentiment model"):
        load_sentiment_model(lake)
    data = labelled(80, seed=3)
    train, held_out = split_held_out(data)
    training = train_sentiment(train, held_out)
    outcome = train_and_deploy_sentiment(
        lake / "models", train, held_out, "test texts", provenance=ORGANISATION
    )
    assert (outcome.status, outcome.decision) == ("registered", "deployed")  # the registry's first model
    version = outcome.version
    again = train_and_deploy_sentiment(
        lake / "models", train, held_out, "test texts", provenance=ORGANISATION
    )  # a re-run
    assert (again.version, again.status, again.decision) == (version, "reused", "already_deployed")
    loaded_version, model = load_sentiment_model(lake)
    assert loaded_version == version and isinstance(model, RoutedModel)  # the per-kind choices, as judged
    assert isinstance(model.models[model.default], ClassifierModel) is (training.chosen != "vader")
    card = (tmp_path / "lake" / "models" / "sentiment" / version / "model_card.md").read_text()
    assert "macro-F1" in card and training.chosen in card
    source = tmp_path / "in.csv"
    pl.DataFrame(
        {
            "id": ["1", "2", "3", "-4"],
            "comment": ["Awful, nobody called me back.", "", "Thank you so much!", '=HYPERLINK("http://x")'],
        }
    ).write_csv(source)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        [
            "sentiment",
            "score",
            "--input",
            str(source),
            "--text-column",
            "comment",
            "--output",
            str(out),
            "--lake",
            str(lake),
        ],
    )
    assert result.exit_code == 0, result.output
    written = pl.read_csv(out)
    assert written.columns == ["id", "comment", "sentiment_label", "sentiment_score", "sentiment_text_status"]
    assert written["sentiment_text_status"].to_list()[:3] == ["ok", "empty", "ok"]
    assert written["sentiment_label"][0] == "negative" and written["sentiment_label"][1] is None
    # a text column a spreadsheet would run is neutralized (pipelines/csv_cells.py); the scores stay numbers
    assert written["comment"][3] == '\'=HYPERLINK("http://x")' and written["id"][3] == "'-4"
    assert written["sentiment_score"].dtype == pl.Float64
    missing = CliRunner().invoke(
        app,
        [
            "sentiment",
            "score",
            "--input",
            str(source),
            "--text-column",
            "nope",
            "--output",
            str(out),
            "--lake",
            str(lake),
        ],
    )
    assert missing.exit_code != 0 and "no column 'nope'" in missing.output


def test_a_text_classifier_pipeline_is_deterministic() -> None:
    data = labelled(20, seed=4)
    a = text_classifier(7).fit(data["text"].to_list(), data["label"].to_list())
    b = text_classifier(7).fit(data["text"].to_list(), data["label"].to_list())
    texts = ["nobody called", "thank you"]
    assert (a.predict_proba(texts) == b.predict_proba(texts)).all()


class _Constant:
    """A stand-in model that labels everything the same."""

    def __init__(self, label: str) -> None:
        self.label = label

    def score(self, texts: pl.Series, kinds: pl.Series | None = None) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "text_status": ["ok"] * len(texts),
                "sentiment_label": [self.label] * len(texts),
                "sentiment_score": [0.0] * len(texts),
            }
        )


def test_the_routed_model_scores_each_kind_with_its_model_and_keeps_the_order() -> None:
    routed = RoutedModel(
        {"a": _Constant("positive"), "b": _Constant("negative")}, "a", {"conversation_turn": "b"}
    )
    texts = pl.Series(["x", "y", "z", "w"])
    kinds = pl.Series(["survey_comment", "conversation_turn", None, "conversation_turn"])
    assert routed.score(texts, kinds)["sentiment_label"].to_list() == [
        "positive",
        "negative",
        "positive",
        "negative",
    ]
    assert routed.score(texts)["sentiment_label"].to_list() == ["positive"] * 4


def test_training_chooses_per_kind_only_with_enough_held_out_labels() -> None:
    data = labelled(80, seed=5).with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.lit("survey_comment"))
        .otherwise(pl.lit("tiny"))
        .alias("kind")
    )
    train, held_out = split_held_out(data)
    held_out = pl.concat(
        [
            held_out.filter(pl.col("kind") == "survey_comment"),
            held_out.filter(pl.col("kind") == "tiny").head(4),
        ]
    )
    training = train_sentiment(train, held_out)
    assert set(training.by_kind) == {"survey_comment", "tiny"}
    assert "tiny" not in training.choice_by_kind  # too few held-out texts per label: no choice of its own
    deployed = training.deployed()
    assert deployed.model_for("tiny") == training.chosen
    assert deployed.model_for("survey_comment") in training.models
    # kinds the classifier never learnt from, with no evidence of their own, are left to the lexicon
    assert deployed.model_for("conversation_turn") == deployed.model_for("patient_message") == "vader"


def test_scores_are_computed_once_per_distinct_text_and_equal_scoring_each_text() -> None:
    texts = pl.Series(["Great care, thank you", None, "Terrible wait", "Great care, thank you", "", None])
    model = LexiconModel()
    together = model.score(texts)
    one_by_one = pl.concat([model.score(texts.slice(i, 1)) for i in range(len(texts))])
    assert together.equals(one_by_one)


def test_the_classifier_learns_each_distinct_text_once_weighted_by_its_copies() -> None:
    base = pl.DataFrame(
        {
            "text": ["the nurse was kind", "kind and caring staff", "rude staff again", "the wait was rude"]
            + ["zebra quokka"] * 5,
            "label": ["positive", "positive", "negative", "negative"] + ["neutral"] * 5,
        }
    )
    fitted = fit_weighted(text_classifier(7), base)
    words = fitted[0].transformer_list[0][1].vocabulary_
    assert "kind" in words and "zebra" not in words  # five copies of one sentence are one document
    # the weighted loss over distinct texts is the class-balanced loss over every copy
    rows = pl.concat([base, base.slice(0, 1)])  # "the nurse was kind" twice, with the same label
    fitted = fit_weighted(text_classifier(7), rows)
    every_copy = LogisticRegression(C=2.0, class_weight="balanced", solver="newton-cg", max_iter=3000)
    every_copy.fit(fitted[0].transform(rows["text"].to_list()), rows["label"].to_list())
    assert np.allclose(fitted[-1].coef_, every_copy.coef_, atol=1e-4)
