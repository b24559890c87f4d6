"""`patient-insights sentiment train / evaluate`: an organization's own labelled file (ratings or labels),
the stratified held-out split, deploy-only-if-better and --force, and bad input with clear errors that
quote no text from the file."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner
from upath import UPath

from models.sentiment.labelled import LabelledFileError, labelled_texts, read_labelled_file
from models.sentiment.registry import trained_text_hashes
from models.sentiment.text import text_hashes
from models.sentiment.train import split_held_out
from pipelines.cli import app
from tests.test_sentiment import NEGATIVE, NEUTRAL, POSITIVE

PLANTED = "Zebediah Quartermaine"
"""A name planted in texts: no message may quote it."""
BANDS = {"negative": (0, 6), "neutral": (7, 8), "positive": (9, 10)}


def rows(per_label: int, seed: int, noise: float = 0.0) -> list[dict[str, str]]:
    """Survey-like rows: a comment and its 0-10 rating (a share `noise` of them with a random rating)."""
    rng = random.Random(seed)
    found = []
    for label, texts in (("negative", NEGATIVE), ("neutral", NEUTRAL), ("positive", POSITIVE)):
        for index in range(per_label):
            text = f"{rng.choice(texts)} {rng.choice(['', 'Today.', 'Again.'])} Visit {seed}-{index}.".strip()
            low, high = BANDS[rng.choice(list(BANDS)) if rng.random() < noise else label]
            found.append({"comment": text, "score": str(rng.randint(low, high)), "sentiment": label.upper()})
    rng.shuffle(found)
    return found


def write_csv(path: Path, records: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    path.write_bytes(pl.DataFrame(records).write_csv().encode(encoding))
    return path


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output, with line breaks and runs of spaces as single spaces: the console's width is
    fixed when it is first made (by whichever test imports it first), so a sentence may wrap anywhere."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, " ".join(result.output.split())


def train(source: Path, registry: Path, *extra: str) -> tuple[int, str]:
    return invoke(
        "sentiment",
        "train",
        "--input",
        str(source),
        "--text-column",
        "comment",
        "--registry",
        str(registry),
        *extra,
    )


def evaluate(source: Path, out: Path, *extra: str) -> tuple[int, str]:
    return invoke(
        "sentiment", "evaluate", "--input", str(source), "--text-column", "comment", "--label-column",
        "sentiment", "--output", str(out), *extra,
    )  # fmt: skip


def deployed(registry: Path) -> dict:
    return json.loads((registry / "sentiment" / "deployed.json").read_text())


def test_training_on_ratings_excludes_undefined_ratings_and_counts_them(tmp_path: Path) -> None:
    records = rows(30, seed=1)
    odd = ["99", "DK", "", "7.5", "-1", "11", "n/a"]  # "don't know" codes, blanks, halves, off the scale
    for record, rating in zip(records, odd, strict=False):
        record["score"] = rating
    source = write_csv(tmp_path / "survey.csv", records)
    report = tmp_path / "report.json"
    code, output = train(
        source,
        tmp_path / "registry",
        "--rating-column",
        "score",
        "--rating-scale",
        "0-10",
        "--report",
        str(report),
    )
    assert code == 0, output
    assert "90 rows read, 83 usable" in output and "is deployed" in output
    body = json.loads(report.read_text())
    assert body["excluded"] == {
        "rating_missing": 1,
        "rating_not_a_number": 2,
        "rating_not_whole": 1,
        "rating_outside_scale": 3,
    }
    assert body["decision"] == "deployed" and body["comparison"] is None  # the registry's first model
    assert sum(body["class_counts"]["train"].values()) + sum(body["class_counts"]["held_out"].values()) == 83
    held = body["held_out_metrics"]
    assert {"candidate", "vader", "tfidf_logistic_regression"} == set(held)
    assert held["candidate"]["macro_f1"] > 0.9 and held["candidate"]["n"] == held["vader"]["n"]
    folder = tmp_path / "registry" / "sentiment" / body["version"]
    assert {p.name for p in folder.iterdir()} == {
        "model.joblib",
        "model_card.md",
        "metadata.json",
        "trained_texts.parquet",
    }
    assert "survey.csv" in json.loads((folder / "metadata.json").read_text())["data"]


def test_training_on_labels_of_any_case(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "labelled.csv", rows(30, seed=2))
    code, output = train(source, tmp_path / "registry", "--label-column", "sentiment")
    assert code == 0, output
    assert "90 rows read, 90 usable (label column sentiment)" in output and "is deployed" in output
    metadata = json.loads(
        (
            tmp_path / "registry" / "sentiment" / deployed(tmp_path / "registry")["version"] / "metadata.json"
        ).read_text()
    )
    # texts that stand for every kind: the classifier (when it wins) scores every kind the pipeline scores
    if metadata["kind"] == "tfidf_logistic_regression":
        assert set(metadata["model_by_kind"].values()) == {"tfidf_logistic_regression"}


def test_a_model_is_deployed_only_when_it_beats_the_deployed_one_or_with_force(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    noisy = write_csv(tmp_path / "noisy.csv", rows(40, seed=3, noise=0.7))
    clean = write_csv(tmp_path / "clean.csv", rows(40, seed=4))
    fresh = write_csv(tmp_path / "fresh.csv", rows(40, seed=5))

    code, output = train(noisy, registry, "--rating-column", "score")
    assert code == 0 and "is deployed" in output, output
    weak = deployed(registry)["version"]

    report = tmp_path / "clean.json"
    code, output = train(clean, registry, "--label-column", "sentiment", "--report", str(report))
    assert code == 0, output
    body = json.loads(report.read_text())
    compared = body["comparison"]
    assert compared["deployed_version"] == weak and compared["rows"] > 0
    assert compared["metrics"]["candidate"]["macro_f1"] > compared["metrics"]["deployed"]["macro_f1"]
    assert body["decision"] == "deployed" and deployed(registry)["version"] == body["version"]
    assert deployed(registry)["replaces"] == weak
    strong = body["version"]

    # a new model that cannot beat a deployed one judged perfect on the same texts is registered, not deployed
    report = tmp_path / "fresh.json"
    code, output = train(fresh, registry, "--label-column", "sentiment", "--report", str(report))
    assert code == 0, output
    body = json.loads(report.read_text())
    assert (
        body["comparison"]["metrics"]["deployed"]["macro_f1"]
        >= body["comparison"]["metrics"]["candidate"]["macro_f1"]
    )
    assert body["decision"] == "kept" and "not deployed" in output and "--force" in output
    assert deployed(registry)["version"] == strong
    assert (registry / "sentiment" / body["version"] / "metadata.json").exists()  # registered all the same

    code, output = train(fresh, registry, "--label-column", "sentiment", "--force")
    assert code == 0 and "deployed with --force" in output, output
    assert deployed(registry)["version"] == body["version"] and deployed(registry)["replaces"] == strong

    code, output = train(
        fresh, registry, "--label-column", "sentiment"
    )  # the same file again: nothing changes
    assert code == 0 and "already deployed" in output, output


def test_the_comparison_leaves_out_texts_the_deployed_model_learnt_from(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    first = rows(40, seed=6)
    code, output = train(write_csv(tmp_path / "a.csv", first), registry, "--label-column", "sentiment")
    assert code == 0, output
    seen = trained_text_hashes(UPath(registry), deployed(registry)["version"])
    assert seen is not None and seen.len() > 80
    # the second file holds the first file's texts plus new ones: the first file's training texts that land
    # in the second file's held-out set must not judge the deployed model
    report = tmp_path / "b.json"
    code, output = train(
        write_csv(tmp_path / "b.csv", first + rows(40, seed=7)),
        registry,
        "--label-column",
        "sentiment",
        "--report",
        str(report),
    )
    assert code == 0, output
    compared = json.loads(report.read_text())["comparison"]
    assert compared["seen_by_deployed"] > 0
    assert (
        compared["rows"] + compared["seen_by_deployed"] == json.loads(report.read_text())["rows"]["held_out"]
    )


def test_evaluate_prints_and_writes_metrics_and_confusion_matrices(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    code, output = train(
        write_csv(tmp_path / "train.csv", rows(30, seed=8)), registry, "--label-column", "sentiment"
    )
    assert code == 0, output
    version = deployed(registry)["version"]
    test = write_csv(tmp_path / "test.csv", rows(10, seed=9))
    out = tmp_path / "evaluation.json"
    code, output = evaluate(test, str(out), "--registry", str(registry))
    assert code == 0, output
    assert "Confusion matrix" in output and version in output
    body = json.loads(out.read_text())
    assert body["version"] == version and body["rows"] == 30 and body["seen_in_training"] == 0
    for name in ("model", "vader"):
        metrics = body["metrics"][name]
        assert {"macro_f1", "accuracy", "f1_negative", "f1_neutral", "f1_positive", "confusion"} <= set(
            metrics
        )
        assert sum(sum(row.values()) for row in metrics["confusion"].values()) == 30
    assert body["metrics"]["model"]["macro_f1"] > body["metrics"]["vader"]["macro_f1"]
    # a named version; an unknown one; an empty registry
    code, output = evaluate(test, str(out), "--registry", str(registry), "--model", version)
    assert code == 0, output
    for extra, message in (
        (["--registry", str(registry), "--model", "sentiment-000000000000"], "not in the registry"),
        (["--registry", str(tmp_path / "empty")], "no sentiment model is deployed"),
    ):
        code, output = invoke(
            "sentiment",
            "evaluate",
            "--input",
            str(test),
            "--text-column",
            "comment",
            "--label-column",
            "sentiment",
            "--output",
            str(out),
            *extra,
        )
        assert code == 1 and message in output, output


def test_evaluate_counts_texts_the_model_learnt_from(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    source = write_csv(tmp_path / "train.csv", rows(30, seed=10))
    assert train(source, registry, "--label-column", "sentiment")[0] == 0
    out = tmp_path / "e.json"
    code, output = evaluate(source, str(out), "--registry", str(registry))
    assert code == 0 and "flatter it" in output
    assert json.loads(out.read_text())["seen_in_training"] == 72  # the training four fifths of 90 texts


def test_the_held_out_fifth_is_stratified_keeps_copies_together_and_ignores_row_order() -> None:
    frame = pl.DataFrame(rows(50, seed=11)).select(
        pl.col("comment").alias("text"), pl.col("sentiment").str.to_lowercase().alias("label")
    )
    frame = pl.concat([frame, frame.head(20)])  # copies
    train_part, held = split_held_out(frame)
    assert train_part.height + held.height == frame.height
    assert not set(train_part["text"]) & set(held["text"])  # every copy on one side
    distinct = held.unique("text")
    assert dict(distinct.group_by("label").len().iter_rows()) == {
        "negative": 10,
        "neutral": 10,
        "positive": 10,
    }
    _, again = split_held_out(frame.sample(fraction=1.0, shuffle=True, seed=3))
    assert set(again["text"]) == set(held["text"])


@pytest.mark.parametrize(
    ("scale", "ratings", "labels"),
    [
        (
            "0-10",
            ["0", "6", "7", "8", "9", "10"],
            ["negative", "negative", "neutral", "neutral", "positive", "positive"],
        ),
        (
            "1-5",
            ["1", "2", "3", "4", "5", " 5 "],
            ["negative", "negative", "neutral", "positive", "positive", "positive"],
        ),
        (
            "1-10",
            ["1", "4", "5", "6", "7", "10"],
            ["negative", "negative", "neutral", "neutral", "positive", "positive"],
        ),
    ],
)
def test_rating_scales_have_their_bands(scale: str, ratings: list[str], labels: list[str]) -> None:
    frame = pl.DataFrame({"t": ["Thank you, the staff were kind."] * len(ratings), "r": ratings})
    texts = labelled_texts(frame, "f.csv", "t", rating_column="r", rating_scale=scale)
    assert texts.frame["label"].to_list() == labels and texts.excluded == {}


def test_ratings_outside_the_scale_are_excluded_and_every_row_is_accounted_for() -> None:
    frame = pl.DataFrame(
        {
            "t": ["Kind staff, thank you."] * 7 + ["", "12345 ###"],
            "r": ["0", "6", "1", "3", "5", "4.0", "DK", "5", "5"],
        }
    )
    texts = labelled_texts(frame, "f.csv", "t", rating_column="r", rating_scale="1-5")
    assert texts.excluded == {
        "rating_not_a_number": 1,
        "rating_outside_scale": 2,
        "text_empty": 1,
        "text_not_text": 1,
    }
    assert texts.frame.height + sum(texts.excluded.values()) == texts.rows_read == 9
    assert texts.frame["label"].to_list() == ["negative", "neutral", "positive", "positive"]  # 4.0 is whole


def test_html_references_and_wrapping_quotes_are_decoded(tmp_path: Path) -> None:
    source = tmp_path / "reviews.tsv"
    source.write_text('id\treview\trating\n1\t"""It didn&#039;t help &amp; I&rsquo;m upset"""\tnegative\n')
    texts = read_labelled_file(source, "review", label_column="rating")
    assert texts.frame["text"].to_list() == ["It didn't help & I\u2019m upset"]


def test_encodings_with_a_byte_order_mark_are_read_and_others_need_encoding(tmp_path: Path) -> None:
    records = rows(30, seed=12)
    records[0]["comment"] = "Très bien, the café staff were kind and helpful."
    for encoding in ("utf-8-sig", "utf-16"):
        source = write_csv(tmp_path / f"{encoding}.csv", records, encoding)
        texts = read_labelled_file(source, "comment", label_column="sentiment")
        assert texts.frame.height == 90 and "café" in " ".join(texts.frame["text"].to_list())
    latin = write_csv(tmp_path / "cp1252.csv", records, "cp1252")
    code, output = train(latin, tmp_path / "registry", "--label-column", "sentiment")
    assert code == 2 and "not valid utf-8" in output and "--encoding" in output and "line 2" in output
    code, output = train(latin, tmp_path / "registry", "--label-column", "sentiment", "--encoding", "cp1252")
    assert code == 0, output
    no_mark = tmp_path / "utf16le.csv"
    no_mark.write_bytes(pl.DataFrame(records).write_csv().encode("utf-16-le"))
    with pytest.raises(LabelledFileError, match="UTF-16 without a byte-order mark"):
        read_labelled_file(no_mark, "comment", label_column="sentiment")
    with pytest.raises(LabelledFileError, match="unknown encoding"):
        read_labelled_file(latin, "comment", label_column="sentiment", encoding="klingon")


def _bad_inputs(tmp_path: Path) -> list[tuple[str, list[str], str]]:
    good = rows(30, seed=13)
    unknown = [dict(r) for r in good]
    for record in unknown[:4]:
        record["sentiment"] = "meh"
    unknown[5]["comment"] = f"{PLANTED} was rude"
    unknown[5]["sentiment"] = f"{PLANTED}"
    numeric = [dict(r, sentiment=r["score"]) for r in good]
    empty = [dict(r, comment="  ") for r in good]
    few = good[:12]
    workbook = tmp_path / "book.xlsx"
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(f'comment,sentiment\n"{PLANTED} was kind",positive,extra,fields\n"unclosed,negative\n')
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    return [
        (
            "missing text column",
            [
                "--input",
                str(write_csv(tmp_path / "a.csv", good)),
                "--text-column",
                "Comments",
                "--label-column",
                "sentiment",
            ],
            "no text column 'Comments'",
        ),
        (
            "a near miss is suggested",
            [
                "--input",
                str(write_csv(tmp_path / "b.csv", good)),
                "--text-column",
                "Comment",
                "--label-column",
                "sentiment",
            ],
            "did you mean 'comment'",
        ),
        (
            "missing label column",
            [
                "--input",
                str(write_csv(tmp_path / "c.csv", good)),
                "--text-column",
                "comment",
                "--label-column",
                "label",
            ],
            "no label column 'label'",
        ),
        (
            "missing rating column",
            [
                "--input",
                str(write_csv(tmp_path / "d.csv", good)),
                "--text-column",
                "comment",
                "--rating-column",
                "stars",
            ],
            "no rating column 'stars'",
        ),
        (
            "labels and ratings both",
            [
                "--input",
                str(write_csv(tmp_path / "e.csv", good)),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
                "--rating-column",
                "score",
            ],
            "either --label-column or --rating-column",
        ),
        (
            "neither labels nor ratings",
            ["--input", str(write_csv(tmp_path / "f.csv", good)), "--text-column", "comment"],
            "either --label-column or --rating-column",
        ),
        (
            "unknown labels",
            [
                "--input",
                str(write_csv(tmp_path / "g.csv", unknown)),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
            ],
            "5 rows of column 'sentiment' hold 2 label value(s)",
        ),
        (
            "numbers as labels",
            [
                "--input",
                str(write_csv(tmp_path / "h.csv", numeric)),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
            ],
            "look like ratings: pass --rating-column",
        ),
        (
            "every text empty",
            [
                "--input",
                str(write_csv(tmp_path / "i.csv", empty)),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
            ],
            "no usable labelled text (90 rows: the text is empty)",
        ),
        (
            "too few per label",
            [
                "--input",
                str(write_csv(tmp_path / "j.csv", few)),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
            ],
            "at least 5 of each label are needed",
        ),
        (
            "an Excel workbook",
            ["--input", str(workbook), "--text-column", "comment", "--label-column", "sentiment"],
            "an Excel workbook?",
        ),
        (
            "ragged rows",
            ["--input", str(ragged), "--text-column", "comment", "--label-column", "sentiment"],
            "cannot be read as a table separated by comma",
        ),
        (
            "an empty file",
            ["--input", str(blank), "--text-column", "comment", "--label-column", "sentiment"],
            "is empty",
        ),
        (
            "no such file",
            [
                "--input",
                str(tmp_path / "nope.csv"),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
            ],
            "input file not found",
        ),
        (
            "unknown kind",
            [
                "--input",
                str(write_csv(tmp_path / "k.csv", good)),
                "--text-column",
                "comment",
                "--label-column",
                "sentiment",
                "--kind",
                "tweets",
            ],
            "unknown kind 'tweets'",
        ),
        (
            "unknown scale",
            [
                "--input",
                str(write_csv(tmp_path / "l.csv", good)),
                "--text-column",
                "comment",
                "--rating-column",
                "score",
                "--rating-scale",
                "1-7",
            ],
            "unknown rating scale '1-7'",
        ),
    ]


def test_bad_input_gives_a_clear_error_and_quotes_nothing_from_the_file(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    for case, args, message in _bad_inputs(tmp_path):
        code, output = invoke("sentiment", "train", *args, "--registry", str(registry))
        assert code == 2, (case, output)
        assert message in " ".join(output.split()), (case, output)
        assert PLANTED not in output, case
    assert not (registry / "sentiment").exists()  # nothing registered from bad input


def test_some_empty_texts_are_excluded_counted_and_the_rest_trains(tmp_path: Path) -> None:
    records = rows(30, seed=14)
    for record in records[:6]:
        record["comment"] = ""
    report = tmp_path / "r.json"
    code, output = train(
        write_csv(tmp_path / "s.csv", records),
        tmp_path / "registry",
        "--label-column",
        "sentiment",
        "--report",
        str(report),
    )
    assert code == 0, output
    assert "the text is empty" in output and json.loads(report.read_text())["excluded"] == {"text_empty": 6}


def test_text_hashes_are_stable() -> None:
    hashes = text_hashes(pl.Series(["a", "b", "a", None]))
    assert hashes[0] == hashes[2] != hashes[1] and hashes[3] is None
    assert hashes[0] == 4681665781835383343  # BLAKE2b-64 of "a": must not change between versions
