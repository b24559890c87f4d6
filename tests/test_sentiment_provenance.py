"""Sentiment models of generated texts never score real texts; reversed rating scales; decision weights
chosen out of fold; weak labels that their comment contradicts (issue 27)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from upath import UPath

from models.sentiment import thresholds
from models.sentiment.labelled import describe_bands, labelled_texts, rating_bands, rating_scales
from models.sentiment.lifecycle import train_and_deploy_sentiment
from models.sentiment.models import ClassifierModel, LexiconModel
from models.sentiment.provenance import (
    GENERATED,
    GENERATOR_MARKER,
    ORGANISATION,
    UNRECORDED,
    training_provenance,
    written_by_generator,
)
from models.sentiment.registry import (
    LEXICON_VERSION,
    NAME,
    choose_scorer,
    provenance_of,
    scorer_version,
    sentiment_version,
)
from models.sentiment.train import split_held_out, train_sentiment
from models.sentiment.weak_labels import (
    IMPROVEMENT_ANSWER,
    ONE_QUESTION,
    TWO_QUESTIONS,
    improvement_answers,
    reads_negative,
)
from tests.test_sentiment import labelled
from tests.test_sentiment_cli import invoke, rows, write_csv

# sentences the lexicon reads one way and the test's labels another: a model that learnt these labels
# and VADER disagree on them, so which of the two scored is visible in the labels
CONTRARY = {
    "negative": ["What a wonderful day, thank you so much.", "Great, lovely, excellent, happy."],
    "positive": ["Awful, terrible, horrible wait.", "The worst, rude and sad visit."],
    "neutral": ["Please send the form by email.", "My number changed last week."],
}


def contrary_texts(copies: int) -> pl.DataFrame:
    """Labelled texts whose labels contradict their wording (see `CONTRARY`), with varied suffixes."""
    found = [
        (f"{text} Ref {label[:3]}{index}.", label)
        for label, texts in CONTRARY.items()
        for index in range(copies)
        for text in texts
    ]
    return pl.DataFrame(found, schema={"text": pl.String, "label": pl.String}, orient="row")


def deploy_model(registry: UPath, provenance: str, data: pl.DataFrame | None = None) -> str:
    train, held_out = split_held_out(contrary_texts(20) if data is None else data)
    return train_and_deploy_sentiment(registry, train, held_out, "test texts", provenance=provenance).version


def test_the_marker_is_the_generators_and_marks_files_below_it(tmp_path: Path) -> None:
    from pipelines.generate import MARKER

    assert GENERATOR_MARKER == MARKER
    folder = tmp_path / "ground_truth"
    (folder / "deep").mkdir(parents=True)
    (folder / GENERATOR_MARKER).write_text("generated")
    assert written_by_generator(folder) and written_by_generator(folder / "deep" / "turns.csv")
    assert not written_by_generator(tmp_path) and not written_by_generator(tmp_path / "mine.csv")
    assert training_provenance(False, True) == GENERATED and training_provenance(False) == ORGANISATION


def test_a_model_of_generated_texts_scores_only_generated_texts(tmp_path: Path) -> None:
    registry = UPath(tmp_path / "models")
    none = choose_scorer(registry, generated_texts=False)
    assert none.version == LEXICON_VERSION and isinstance(none.model, LexiconModel)
    version = deploy_model(registry, GENERATED)
    assert provenance_of(registry, version) == GENERATED
    metadata = json.loads((tmp_path / "models" / NAME / version / "metadata.json").read_text())
    card = (tmp_path / "models" / NAME / version / "model_card.md").read_text()
    assert metadata["provenance"] == GENERATED and "## Provenance" in card and "only texts known" in card
    real = choose_scorer(registry, generated_texts=False)
    assert real.version == LEXICON_VERSION and "generated" in real.reason
    assert scorer_version(registry, generated_texts=False) == LEXICON_VERSION
    demo = choose_scorer(registry, generated_texts=True)
    assert demo.version == version == scorer_version(registry, generated_texts=True)
    texts = pl.Series([f"{t} Ref x." for t in CONTRARY["negative"]])
    assert demo.model.score(texts)["sentiment_label"].to_list() == ["negative", "negative"]  # as it learnt
    assert real.model.score(texts)["sentiment_label"].to_list() == ["positive", "positive"]  # VADER


def test_a_model_of_the_organisations_texts_scores_everything(tmp_path: Path) -> None:
    registry = UPath(tmp_path / "models")
    version = deploy_model(registry, ORGANISATION)
    assert choose_scorer(registry, generated_texts=False).version == version
    card = (tmp_path / "models" / NAME / version / "model_card.md").read_text()
    assert "organisation's own texts" in card


def test_a_version_without_recorded_provenance_is_treated_as_generated(tmp_path: Path) -> None:
    registry = UPath(tmp_path / "models")
    version = deploy_model(registry, ORGANISATION)
    path = tmp_path / "models" / NAME / version / "metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["provenance"]  # as registered before provenance was kept
    path.write_text(json.dumps(metadata))
    assert provenance_of(registry, version) == UNRECORDED
    assert choose_scorer(registry, generated_texts=False).version == LEXICON_VERSION
    assert choose_scorer(registry, generated_texts=True).version == version


def test_provenance_decides_before_any_comparison(tmp_path: Path) -> None:
    registry = UPath(tmp_path / "models")
    generated = deploy_model(registry, GENERATED)
    train, held_out = split_held_out(labelled(40, seed=11))
    mine = train_and_deploy_sentiment(registry, train, held_out, "own texts", provenance=ORGANISATION)
    assert (mine.decision, mine.replaced, mine.comparison) == ("deployed", generated, None)
    assert "never scored the organisation's" in mine.detail
    train, held_out = split_held_out(contrary_texts(25))
    demo = train_and_deploy_sentiment(registry, train, held_out, "demo", provenance=GENERATED)
    assert demo.decision == "kept" and demo.deployed == mine.version
    forced = train_and_deploy_sentiment(registry, train, held_out, "demo", provenance=GENERATED, force=True)
    assert forced.decision == "forced" and forced.deployed == demo.version


def test_sentiment_score_uses_vader_on_a_file_the_generator_did_not_write(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    version = deploy_model(UPath(lake / "models"), GENERATED)
    texts = [f"{t} Ref x." for t in CONTRARY["negative"]]
    mine = tmp_path / "mine"
    demo = tmp_path / "demo"
    for folder in (mine, demo):
        folder.mkdir()
        pl.DataFrame({"comment": texts}).write_csv(folder / "in.csv")
    (demo / GENERATOR_MARKER).write_text("generated")
    labels = {}
    for folder in (mine, demo):
        code, output = invoke(
            "sentiment", "score", "--input", str(folder / "in.csv"), "--text-column", "comment",
            "--output", str(folder / "out.csv"), "--lake", str(lake),
        )  # fmt: skip
        assert code == 0, output
        labels[folder.name] = (pl.read_csv(folder / "out.csv")["sentiment_label"].to_list(), output)
    assert labels["mine"][0] == ["positive", "positive"] and "scoring with VADER" in labels["mine"][1]
    assert labels["demo"][0] == ["negative", "negative"] and version in labels["demo"][1]
    empty = tmp_path / "empty"
    code, output = invoke(
        "sentiment", "score", "--input", str(mine / "in.csv"), "--text-column", "comment",
        "--output", str(tmp_path / "o.csv"), "--lake", str(empty),
    )  # fmt: skip
    assert code == 0 and "no sentiment model is deployed" in output, output


def test_sentiment_train_records_where_its_file_came_from(tmp_path: Path) -> None:
    demo = tmp_path / "ground_truth"
    demo.mkdir()
    (demo / GENERATOR_MARKER).write_text("generated")
    for folder, expected in ((demo, GENERATED), (tmp_path, ORGANISATION)):
        source = write_csv(folder / f"labels-{expected}.csv", rows(30, seed=len(expected)))
        report = tmp_path / f"{expected}.json"
        registry = tmp_path / f"registry-{expected}"
        code, output = invoke(
            "sentiment", "train", "--input", str(source), "--text-column", "comment", "--label-column",
            "sentiment", "--registry", str(registry), "--report", str(report),
        )  # fmt: skip
        assert code == 0, output
        body = json.loads(report.read_text())
        assert body["provenance"] == expected
        assert provenance_of(UPath(registry), body["version"]) == expected
        assert ("will score only generated texts" in output) is (expected == GENERATED)


@pytest.mark.parametrize(
    ("scale", "ratings", "labels"),
    [
        ("5-1", ["1", "2", "3", "4", "5"], ["positive", "positive", "neutral", "negative", "negative"]),
        ("10-1", ["1", "4", "5", "6", "7", "10"], ["positive"] * 2 + ["neutral"] * 2 + ["negative"] * 2),
        ("10-0", ["0", "1", "2", "3", "4", "10"], ["positive"] * 2 + ["neutral"] * 2 + ["negative"] * 2),
    ],
)
def test_reversed_rating_scales_band_the_other_way(scale: str, ratings: list[str], labels: list[str]) -> None:
    frame = pl.DataFrame({"t": ["The staff were kind."] * len(ratings), "r": ratings})
    texts = labelled_texts(frame, "f.csv", "t", rating_column="r", rating_scale=scale)
    assert texts.frame["label"].to_list() == labels and texts.weak
    assert scale in rating_scales()


def test_bands_are_described_in_the_scales_own_numbers() -> None:
    assert rating_bands("5-1") == {"positive": (1, 2), "neutral": (3, 3), "negative": (4, 5)}
    assert rating_bands("1-5") == {"negative": (1, 2), "neutral": (3, 3), "positive": (4, 5)}
    assert describe_bands("5-1") == "5-1 scale (1 is best): 1-2 positive, 3 neutral, 4-5 negative"
    assert describe_bands("0-10") == "0-10 scale (10 is best): 0-6 negative, 7-8 neutral, 9-10 positive"


def train_on_ratings(source: Path, registry: Path, *extra: str) -> tuple[int, str]:
    """`sentiment train` on the file's `comment` texts and `score` ratings: exit code and output."""
    return invoke(
        "sentiment", "train", "--input", str(source), "--text-column", "comment", "--rating-column", "score",
        "--registry", str(registry), *extra,
    )  # fmt: skip


def test_sentiment_train_with_a_reversed_scale_says_how_it_banded(tmp_path: Path) -> None:
    records = rows(30, seed=12)
    reverse = {"negative": ["4", "5"], "neutral": ["3"], "positive": ["1", "2"]}
    for index, record in enumerate(records):
        choices = reverse[record["sentiment"].lower()]
        record["score"] = choices[index % len(choices)]
    source = write_csv(tmp_path / "fft.csv", records)
    report = tmp_path / "r.json"
    code, output = train_on_ratings(
        source, tmp_path / "registry", "--rating-scale", "5-1", "--report", str(report)
    )
    assert code == 0, output
    assert "How ratings were banded into labels" in output and "1 is best" in output
    body = json.loads(report.read_text())
    assert body["rating_bands"] == {"positive": [1, 2], "neutral": [3, 3], "negative": [4, 5]}
    assert "5-1 scale (1 is best): 1-2 positive, 3 neutral, 4-5 negative" in body["labels_from"]
    assert body["held_out_metrics"]["candidate"]["macro_f1"] > 0.9  # the bands follow the texts
    card = (tmp_path / "registry" / NAME / body["version"] / "model_card.md").read_text()
    assert "1-2 positive, 3 neutral, 4-5 negative" in card
    code, output = train_on_ratings(source, tmp_path / "registry", "--rating-scale", "5-0")
    assert code == 2 and "unknown rating scale '5-0'" in output and "5-1" in output


def test_out_of_fold_probabilities_never_score_a_text_the_classifier_learnt() -> None:
    data = labelled(30, seed=13)
    fitted: list[set[str]] = []

    def fit(part: pl.DataFrame):
        fitted.append(set(part["text"].to_list()))
        return fitted_pipeline(part)

    distinct, probabilities = thresholds.out_of_fold_probabilities(data, fit, seed=7)
    assert len(fitted) == thresholds.FOLDS and distinct.height == data["text"].n_unique()
    assert probabilities.shape == (distinct.height, 3) and np.allclose(probabilities.sum(axis=1), 1)
    # each text is scored once, by the one classifier that did not learn it
    for text in distinct["text"].to_list():
        assert sum(text not in seen for seen in fitted) == 1


def fitted_pipeline(part: pl.DataFrame):
    from models.sentiment.models import text_classifier
    from models.sentiment.train import fit_weighted

    return fit_weighted(text_classifier(7), part)


def test_the_decision_weights_are_chosen_on_training_texts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    train, held_out = split_held_out(labelled(40, seed=14))
    seen: list[pl.DataFrame] = []
    choose = thresholds.choose_class_weights

    def spy(distinct: pl.DataFrame, probabilities: np.ndarray, folds: int) -> thresholds.ChosenWeights:
        seen.append(distinct)
        return choose(distinct, probabilities, folds)

    monkeypatch.setattr("models.sentiment.train.choose_class_weights", spy)
    training = train_sentiment(train, held_out)
    assert len(seen) == 1
    assert set(seen[0]["text"]) == set(train["text"]) and not set(seen[0]["text"]) & set(held_out["text"])
    classifier = training.models["tfidf_logistic_regression"]
    assert isinstance(classifier, ClassifierModel) and classifier.class_weights == training.class_weights
    assert training.weights_chosen_on is not None and training.weights_chosen_on["folds"] == thresholds.FOLDS


def test_weights_favour_a_class_the_most_probable_choice_misses() -> None:
    # out-of-fold probabilities where neutral is the truth but never quite the most probable
    truth = ["neutral"] * 10 + ["negative"] * 10 + ["positive"] * 10
    probabilities = np.asarray([[0.4, 0.35, 0.25]] * 10 + [[0.8, 0.1, 0.1]] * 10 + [[0.1, 0.1, 0.8]] * 10)
    chosen = thresholds.choose_class_weights(pl.DataFrame({"label": truth}), probabilities, folds=5)
    assert chosen.macro_f1_unweighted < 0.7 and chosen.macro_f1_weighted == pytest.approx(1.0)
    assert chosen.weights["neutral"] > 1.14 and chosen.weights["negative"] == 1.0
    # when the most probable class is already right, no weighting is chosen
    right = np.asarray([[0.2, 0.6, 0.2]] * 10 + [[0.8, 0.1, 0.1]] * 10 + [[0.1, 0.1, 0.8]] * 10)
    same = thresholds.choose_class_weights(pl.DataFrame({"label": truth}), right, folds=5)
    assert same.weights == {"negative": 1.0, "neutral": 1.0, "positive": 1.0}


def test_weighted_classifier_labels_follow_the_weights() -> None:
    pipeline = fitted_pipeline(labelled(20, seed=15))
    texts = pl.Series(["I have a question about my lab results, thank you."])
    plain = ClassifierModel(pipeline).score(texts)["sentiment_label"][0]
    assert ClassifierModel(pipeline, class_weights={"neutral": 1000.0}).score(texts)["sentiment_label"][
        0
    ] == ("neutral")
    assert (
        ClassifierModel(pipeline, class_weights={"negative": 1.0}).score(texts)["sentiment_label"][0] == plain
    )


@pytest.mark.parametrize(
    ("text", "label", "left_out"),
    [
        ("More staff at weekends please.", "positive", True),
        ("The wait was too long.", "positive", True),
        ("It would be nice to get results faster.", "positive", True),
        ("Rude receptionist, awful parking.", "positive", True),  # negative wording under a good rating
        ("Everything was fine. The food was terrible.", "positive", True),  # negative on average
        ("The doctor was kind. But the ward was dirty and noisy.", "positive", True),
        # the lexicon reads each sentence on its own: a negation does not flip the next sentence's praise
        ("Never had better care. Excellent!", "positive", False),
        ("The appointment started on time, which never happens elsewhere. Excellent!", "positive", False),
        ("Nothing, everything was great.", "positive", False),
        ("Nothing to improve, keep up the good work.", "positive", False),
        ("Friendly staff and a short wait.", "positive", False),
        ("The wait was too long.", "negative", False),  # the rating agrees: nothing to correct
        ("More staff at weekends please.", "neutral", False),
    ],
)
def test_improvement_answers_under_a_good_rating_are_found(text: str, label: str, left_out: bool) -> None:
    assert improvement_answers(pl.Series([text]), pl.Series([label])).to_list() == [left_out]


def planted_improvement_answers() -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Labelled texts with 20 answers to "what could we improve" under a good rating, split, and how many
    of them each set holds."""
    data = labelled(40, seed=16)
    answers = pl.DataFrame(
        {
            "text": [f"More staff at weekends please, visit {i}." for i in range(20)],
            "label": ["positive"] * 20,
        }
    )
    train, held_out = split_held_out(pl.concat([data, answers]))
    planted = {
        role: int(frame["text"].str.starts_with("More staff").sum())
        for role, frame in (("train", train), ("held_out", held_out))
    }
    assert planted["train"] and planted["held_out"]
    return train, held_out, planted


def test_the_two_questions_form_leaves_improvement_answers_out_of_training_only_and_counts_them() -> None:
    train, held_out, planted = planted_improvement_answers()
    weak = train_sentiment(train, held_out, weak=True, form=TWO_QUESTIONS)
    assert weak.excluded == {"train": {IMPROVEMENT_ANSWER: planted["train"]}} and weak.form == TWO_QUESTIONS
    assert weak.rows == {"train": train.height - planted["train"], "held_out": held_out.height}
    human = train_sentiment(train, held_out, form=TWO_QUESTIONS)  # human labels are kept as given
    assert human.excluded == {} and human.rows["train"] == train.height
    marked = train.with_columns(pl.col("text").str.starts_with("More staff").alias("weak"))
    only_marked = train_sentiment(marked, held_out, form=TWO_QUESTIONS)  # only rows marked weak
    assert only_marked.excluded == {"train": {IMPROVEMENT_ANSWER: planted["train"]}}


def test_the_one_question_form_the_default_leaves_nothing_out() -> None:
    train, held_out, _ = planted_improvement_answers()
    for training in (
        train_sentiment(train, held_out, weak=True),
        train_sentiment(train, held_out, weak=True, form=ONE_QUESTION),
        train_sentiment(train.with_columns(pl.lit(True).alias("weak")), held_out),
    ):
        assert training.excluded == {} and training.form == ONE_QUESTION
        assert training.rows == {"train": train.height, "held_out": held_out.height}
    with pytest.raises(ValueError, match="form must be one of"):
        train_sentiment(train, held_out, weak=True, form="three-questions")


def test_the_form_never_changes_how_the_held_out_texts_are_judged() -> None:
    """The held-out texts stand for what the deployed model will score: every improvement answer among
    them is judged, whatever the form, so VADER (which learns nothing) gets the same figures both ways."""
    train, held_out, planted = planted_improvement_answers()
    one = train_sentiment(train, held_out, weak=True)
    two = train_sentiment(train, held_out, weak=True, form=TWO_QUESTIONS)
    assert two.held_out.equals(one.held_out) and two.held_out.height == held_out.height
    assert int(two.held_out["text"].str.starts_with("More staff").sum()) == planted["held_out"]
    assert two.metrics["vader"] == one.metrics["vader"]
    assert all(metrics["n"] == held_out.height for metrics in two.metrics.values())
    assert sentiment_version(two, "texts", ORGANISATION) != sentiment_version(one, "texts", ORGANISATION)


def test_reads_negative_reads_each_sentence_and_keeps_every_row() -> None:
    texts = pl.Series(
        ["Never had better care. Excellent!", "Awful wait.  Rude staff!", None, "", "Fine. Terrible. Bad?"]
    )
    assert reads_negative(texts).to_list() == [False, True, False, False, True]


def test_sentiment_train_form_option_leaves_improvement_answers_out_only_when_asked(tmp_path: Path) -> None:
    records = rows(25, seed=21)
    records += [
        {"comment": f"More staff at weekends please, visit {i}.", "score": "10", "sentiment": "POSITIVE"}
        for i in range(20)
    ]
    source = write_csv(tmp_path / "fft.csv", records)
    found = {}
    for form in ("one-question", "two-questions"):
        report = tmp_path / f"{form}.json"
        code, output = train_on_ratings(source, tmp_path / form, "--form", form, "--report", str(report))
        assert code == 0, output
        found[form] = (output, json.loads(report.read_text()))
    output, body = found["one-question"]
    assert body["form"] == "one-question" and body["excluded_from_training"] == {}
    assert "left out" not in output
    output, body = found["two-questions"]
    left_out = body["excluded_from_training"]["train"][IMPROVEMENT_ANSWER]
    assert body["form"] == "two-questions" and 0 < left_out < 20
    said = f'{left_out} train comments left out: under a good rating, they answer "what could we improve"'
    assert said in output
    held_out = {form: sum(body["class_counts"]["held_out"].values()) for form, (_, body) in found.items()}
    assert held_out["one-question"] == held_out["two-questions"]  # the held-out texts are never filtered
    card = (tmp_path / "two-questions" / NAME / body["version"] / "model_card.md").read_text()
    assert "--form two-questions" in card
    code, output = invoke(
        "sentiment", "train", "--input", str(source), "--text-column", "comment", "--label-column",
        "sentiment", "--form", "two-questions", "--registry", str(tmp_path / "labels"),
    )  # fmt: skip
    assert code == 2 and "--form" in output and "--rating-column" in output
    code, output = train_on_ratings(source, tmp_path / "odd", "--form", "three-questions")
    assert code == 2 and "one-question" in output and "two-questions" in output
