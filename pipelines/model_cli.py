"""`patient-insights sentiment …` and `patient-insights risk …`: score, train and evaluate the models on an
organization's own data. A thin layer: reading, training, judging and deploying live in `models/`, and the
Dagster assets call the same functions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer
from rich.table import Table

from pipelines.cli_output import console
from pipelines.cli_output import frame_table as _table

if TYPE_CHECKING:
    # imported where used: `patient-insights --help` and `views run` load this module and need no fsspec
    from upath import UPath

sentiment_app = typer.Typer(help="Patient sentiment: score texts, train and evaluate the model.")
risk_app = typer.Typer(help="Risk models: train on the lake's own data and evaluate a version.")
SCORE_BATCH = 10_000
EXIT_BAD_INPUT = 2
EXIT_NOT_POSSIBLE = 1
_LEFT_OUT = {
    "improvement_answer_under_good_rating": 'under a good rating, they answer "what could we improve"'
}
METRIC_COLUMNS = ("macro_f1", "accuracy", "f1_negative", "f1_neutral", "f1_positive", "n")

InputFile = Annotated[Path, typer.Option("--input", help="CSV or TSV file (UTF-8 unless --encoding).")]
TextColumn = Annotated[str, typer.Option(help="The column holding the text.")]
LabelColumn = Annotated[
    str | None, typer.Option(help="The column holding labels: negative / neutral / positive (any case).")
]
RatingColumn = Annotated[
    str | None, typer.Option(help="The column holding a rating; labels follow --rating-scale's bands.")
]
RatingScale = Annotated[
    str,
    typer.Option(
        help="0-10: 0-6 negative, 7-8 neutral, 9-10 positive (NPS); 1-5: 1-2 / 3 / 4-5; 1-10: 1-4 / 5-6 / "
        "7-10. Written the other way round (5-1, 10-1, 10-0) when the lowest number is the best, e.g. the "
        "NHS Friends and Family Test's 1 = very good: 5-1 bands 1-2 positive, 3 neutral, 4-5 negative. "
        "Other ratings (e.g. 'don't know' codes) are excluded and counted."
    ),
]
Kind = Annotated[
    str,
    typer.Option(
        help="What the texts are: any (they stand for every kind), survey_comment, conversation_turn or "
        "patient_message; the trained model scores only the kinds it learnt from."
    ),
]
Form = Annotated[
    str,
    typer.Option(
        help="What the rated comments answer (with --rating-column). one-question: one question such as "
        "'any comments?' or 'why did you give this rating?'; every comment trains. two-questions: both "
        "'what was good' and 'what could we improve' under one rating (e.g. a Friends and Family Test form "
        "that asks what could be done better): comments under a good rating that read like an answer to "
        "the second question are left out of the training texts, counted (never of the held-out texts).",
    ),
]
Encoding = Annotated[
    str | None, typer.Option(help="The file's encoding (default: its byte-order mark, else UTF-8).")
]
Separator = Annotated[
    str | None, typer.Option(help="Field separator (default: tab for .tsv, else guessed from the header).")
]
Registry = Annotated[
    str | None,
    typer.Option(
        help="Model registry folder (default: <lake>/models of PATIENT_INSIGHTS_LAKE, the pipeline's)."
    ),
]


@sentiment_app.command("score")
def sentiment_score(
    input_file: InputFile,
    text_column: Annotated[str, typer.Option(help="The column holding the text to score.")],
    output: Annotated[Path, typer.Option(help="CSV file to write (the input plus sentiment columns).")],
    lake: Annotated[
        str | None, typer.Option(help="Lake with the deployed model (default: the configured lake).")
    ] = None,
    encoding: Encoding = None,
    separator: Separator = None,
) -> None:
    """Add `sentiment_label` (negative/neutral/positive), `sentiment_score` ([-1, 1]) and
    `sentiment_text_status` (ok, empty, not_text, not_english: only `ok` texts are scored) to a CSV.
    The deployed model scores when it learnt from the organisation's own texts; a model of the demo's
    generated texts scores only the generator's own files, and VADER scores everything else (and
    everything when no model is deployed)."""
    from rich.progress import Progress
    from upath import UPath

    from models.registry import RegistryError, registry_of
    from models.sentiment.labelled import LabelledFileError, clean_texts, read_table_file
    from models.sentiment.provenance import written_by_generator
    from models.sentiment.registry import LEXICON_VERSION, choose_scorer
    from pipelines.config import Settings
    from pipelines.csv_cells import csv_bytes
    from pipelines.lake import write_bytes_atomic

    try:
        frame, _ = read_table_file(input_file, encoding, separator)
    except LabelledFileError as error:
        console.print(f"[red]error[/red]: {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if text_column not in frame.columns:
        raise typer.BadParameter(
            f"no column {text_column!r} in {input_file.name} ({len(frame.columns)} columns)"
        )
    try:
        registry = registry_of(UPath(lake) if lake else Settings.from_env().lake)
        scorer = choose_scorer(registry, generated_texts=written_by_generator(input_file))
    except RegistryError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(EXIT_NOT_POSSIBLE) from None
    version, model = scorer.version, scorer.model
    if version == LEXICON_VERSION:
        console.print(f"[yellow]scoring with VADER[/yellow]: {scorer.reason}")
    parts = []
    texts = clean_texts(frame[text_column])  # as `sentiment train` and `evaluate` read them (`&#039;` → ')
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("scoring", total=frame.height)
        for start in range(0, frame.height, SCORE_BATCH):
            parts.append(model.score(texts.slice(start, SCORE_BATCH)))
            progress.advance(task, min(SCORE_BATCH, frame.height - start))
    scored = pl.concat(parts) if parts else model.score(texts)
    result = frame.with_columns(
        scored["sentiment_label"],
        scored["sentiment_score"],
        scored["text_status"].alias("sentiment_text_status"),
    )
    write_bytes_atomic(csv_bytes(result), UPath(output))  # formula-leading text neutralized
    counts = dict(scored.group_by("text_status").len().iter_rows())
    console.print(f"{frame.height:,} rows scored with {version} → {output}; by text status: {counts}")


@sentiment_app.command("train")
def sentiment_train(
    input_file: InputFile,
    text_column: TextColumn,
    label_column: LabelColumn = None,
    rating_column: RatingColumn = None,
    rating_scale: RatingScale = "0-10",
    kind: Kind = "any",
    form: Form = "one-question",
    registry: Registry = None,
    force: Annotated[
        bool, typer.Option("--force", help="Deploy even if it does not beat the deployed model.")
    ] = False,
    encoding: Encoding = None,
    separator: Separator = None,
    report: Annotated[Path | None, typer.Option(help="Also write the figures as JSON to this file.")] = None,
) -> None:
    """Train the sentiment classifier on a labelled file: a stratified fifth of the distinct texts is held
    out to judge it and the lexicon baseline (VADER); the version is registered with its metrics and model
    card, and deployed only when it beats the deployed model on the same held-out texts (or --force)."""
    from models.registry import RegistryError
    from models.sentiment.lifecycle import train_on_labelled_texts
    from models.sentiment.provenance import ORGANISATION, training_provenance, written_by_generator
    from models.sentiment.train import SentimentTrainingError
    from models.sentiment.weak_labels import FORMS, ONE_QUESTION

    if form not in FORMS:
        raise typer.BadParameter(f"give one of {', '.join(FORMS)}", param_hint="--form")
    if form != ONE_QUESTION and rating_column is None:
        raise typer.BadParameter("applies to ratings (--rating-column), not to labels", param_hint="--form")
    texts = _labelled(
        input_file, text_column, label_column, rating_column, rating_scale, kind, encoding, separator
    )
    provenance = training_provenance(written_by_generator(input_file))
    if provenance != ORGANISATION:
        console.print(
            f"[yellow]{input_file.name} lies in a folder written by `patient-insights generate`[/yellow]: "
            "the model will score only generated texts"
        )
    where = _registry(registry)
    try:
        with console.status("training"):
            outcome = train_on_labelled_texts(
                where,
                texts.frame,
                texts.describe(),
                provenance=provenance,
                weak=texts.weak,
                form=form,
                force=force,
            )
    except SentimentTrainingError as error:
        console.print(f"[red]cannot train[/red]: {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except RegistryError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(EXIT_NOT_POSSIBLE) from None
    training = outcome.training
    label_rows = [
        (label, training.class_counts["train"].get(label, 0), training.class_counts["held_out"].get(label, 0))
        for label in ("negative", "neutral", "positive")
    ]
    console.print(
        _table(
            "Labelled texts per set", pl.DataFrame(label_rows, ["label", "train", "held out"], orient="row")
        )
    )
    names = {"candidate": f"new model ({outcome.version})", "vader": "lexicon baseline (vader)"}
    names["tfidf_logistic_regression"] = "tf-idf classifier alone"
    console.print(
        _metrics_table(f"Held-out texts ({training.rows['held_out']})", outcome.held_out_metrics, names)
    )
    if outcome.comparison is not None and outcome.comparison.metrics:
        compared = outcome.comparison
        title = f"Against the deployed model on the same {compared.rows} held-out texts"
        if compared.seen_by_deployed:
            title += f" ({compared.seen_by_deployed} it learnt from left out)"
        deployed_names = {**names, "deployed": f"deployed ({compared.deployed_version})"}
        console.print(_metrics_table(title, compared.metrics, deployed_names))
        if compared.seen_unknown:
            console.print("[yellow]the deployed version kept no record of its training texts[/yellow]")
    for role, found in training.excluded.items():
        for reason, count in found.items():
            console.print(
                f"{count:,} {role.replace('_', '-')} comments left out: {_LEFT_OUT.get(reason, reason)}"
            )
    if training.class_weights is not None:
        weights = ", ".join(f"{label} x{weight:.2f}" for label, weight in training.class_weights.items())
        console.print(f"class weights chosen on out-of-fold predictions of the training texts: {weights}")
    _print_decision(outcome.decision, outcome.version, outcome.detail, "sentiment")
    if report is not None:
        _write_json(
            report,
            {
                "input": texts.source,
                "excluded": texts.excluded,
                "labels_from": texts.labels_from,
                "rating_bands": texts.rating_bands,
                **outcome.as_dict(),
            },
        )


@sentiment_app.command("evaluate")
def sentiment_evaluate(
    input_file: InputFile,
    text_column: TextColumn,
    label_column: LabelColumn = None,
    rating_column: RatingColumn = None,
    rating_scale: RatingScale = "0-10",
    model: Annotated[
        str | None, typer.Option(help="A registered version (default: the deployed one).")
    ] = None,
    registry: Registry = None,
    encoding: Encoding = None,
    separator: Separator = None,
    output: Annotated[
        Path | None, typer.Option(help="JSON file to write (default: sentiment-evaluation-<version>.json).")
    ] = None,
) -> None:
    """Judge the deployed (or named) sentiment model and the lexicon baseline on a labelled file:
    macro-F1, accuracy, per-class F1 and a confusion matrix each, printed and written as JSON."""
    from models.registry import RegistryError
    from models.sentiment.lifecycle import evaluate_sentiment
    from models.sentiment.train import SentimentTrainingError

    texts = _labelled(
        input_file, text_column, label_column, rating_column, rating_scale, "any", encoding, separator
    )
    try:
        result = evaluate_sentiment(_registry(registry), texts.frame, model)
    except SentimentTrainingError as error:
        console.print(f"[red]cannot evaluate[/red]: {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except RegistryError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(EXIT_NOT_POSSIBLE) from None
    names = {"model": f"model ({result.version})", "vader": "lexicon baseline (vader)"}
    console.print(_metrics_table(f"{texts.source}: {result.rows} labelled texts", result.metrics, names))
    for name, metrics in result.metrics.items():
        console.print(_confusion_table(f"Confusion matrix: {names[name]}", metrics["confusion"]))
    if result.seen_in_training:
        seen = result.seen_in_training
        console.print(
            f"[yellow]{seen} of these texts {'was' if seen == 1 else 'were'} in the model's training "
            "data[/yellow]: its figures flatter it"
        )
    path = output or Path(f"sentiment-evaluation-{result.version}.json")
    _write_json(path, {"input": texts.source, "excluded": texts.excluded, **result.as_dict()})


@risk_app.command("train")
def risk_train(
    lake: Annotated[str, typer.Option(help="Lake folder (local path or s3:// / gs:// url).")],
    as_of: Annotated[
        str | None, typer.Option(help="Train on data up to this day (YYYY-MM-DD; default: the lake's as-of).")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="person_180d or discharge_30d (repeat; default: both).")
    ] = None,
    buckets: Annotated[int | None, typer.Option(help="Patient buckets (default: the lake's).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Deploy even if it does not beat the deployed version.")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="Also write the figures as JSON to this file.")] = None,
) -> None:
    """Train the risk models on the lake's own data with a temporal split (train on the earliest as-of
    days, calibrate on the next, test on the latest), compare with the clinical baseline (Charlson for the
    person model, LACE for the discharge model) and the deployed version on the same test rows, register
    each version with its model card, and deploy a version that beats both (or --force)."""
    from models.risk.config import risk_config
    from models.risk.lifecycle import MODEL_NAMES, train_and_deploy

    names = _risk_models(model, MODEL_NAMES)
    root, day, count = _risk_lake(lake, as_of, buckets)
    with console.status(f"training {', '.join(names)} on data up to {day}"):
        outcomes = train_and_deploy(root, count, day, risk_config(), names=names, force=force)
    rows = []
    for outcome in outcomes:
        metrics = outcome.metrics
        baseline = next((k for k in metrics if k.endswith("_index")), None)
        rows.append(
            (
                outcome.name,
                outcome.status,
                outcome.version or "-",
                _figure(metrics.get("model", {}).get("auroc")),
                f"{baseline}: {_figure(metrics[baseline]['auroc'])}" if baseline else "-",
                _figure(outcome.compared_metrics.get("auroc")),
                _figure(metrics.get("model", {}).get("brier"), 4),
                _figure(metrics.get("prevalence_only", {}).get("brier"), 4),
                outcome.decision or "-",
            )
        )
    columns = [
        "model",
        "status",
        "version",
        "test AUROC",
        "baseline AUROC",
        "deployed AUROC",
        "Brier",
        "prevalence Brier",
        "decision",
    ]
    console.print(
        _table(f"Risk models trained on data up to {day}", pl.DataFrame(rows, columns, orient="row"))
    )
    for outcome in outcomes:
        colour = {"deployed": "green", "forced": "yellow", "already_deployed": "green"}.get(
            outcome.decision, "red"
        )
        uses = outcome.deployed or "none"
        console.print(f"[{colour}]{outcome.name}[/{colour}]: {outcome.detail}; scoring uses {uses}")
    if report is not None:
        _write_json(report, {"as_of": day.isoformat(), "models": [_outcome_dict(o) for o in outcomes]})
    if all(o.status == "skipped" for o in outcomes):
        raise typer.Exit(EXIT_BAD_INPUT)


@risk_app.command("evaluate")
def risk_evaluate(
    lake: Annotated[str, typer.Option(help="Lake folder (local path or s3:// / gs:// url).")],
    model: Annotated[str, typer.Option(help="A registered version, e.g. person_180d-0123456789ab.")],
    as_of: Annotated[
        str | None, typer.Option(help="Judge on data up to this day (YYYY-MM-DD; default: the lake's as-of).")
    ] = None,
    rows: Annotated[
        str, typer.Option(help="Which rows of the time split: test, validation or train.")
    ] = "test",
    buckets: Annotated[int | None, typer.Option(help="Patient buckets (default: the lake's).")] = None,
    output: Annotated[
        Path | None, typer.Option(help="JSON file to write (default: risk-evaluation-<version>.json).")
    ] = None,
) -> None:
    """Judge a registered risk model on the lake's data: AUROC, AUPRC and Brier score against the clinical
    baseline and a prevalence-only model on the latest time window, a calibration table and the same by
    sex and age band; printed and written as JSON."""
    from models.registry import RegistryError
    from models.risk.config import risk_config
    from models.risk.lifecycle import evaluate_version
    from models.risk.train import TrainingError

    if rows not in ("test", "validation", "train"):
        raise typer.BadParameter("--rows must be test, validation or train")
    root, day, count = _risk_lake(lake, as_of, buckets)
    try:
        with console.status(f"evaluating {model} on data up to {day}"):
            result = evaluate_version(root, count, day, risk_config(), model, rows)
    except RegistryError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(EXIT_NOT_POSSIBLE) from None
    except TrainingError as error:
        console.print(f"[red]cannot evaluate[/red]: {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    window = ", ".join(result.as_of_days.get(rows, []))
    metric_rows = [
        (
            name,
            _figure(m.get("auroc")),
            _figure(m.get("auprc")),
            _figure(m.get("brier"), 4),
            _figure(m.get("mean_predicted"), 4),
            _figure(m.get("observed_rate"), 4),
            m.get("n", 0),
        )
        for name, m in result.metrics.items()
    ]
    columns = ["score", "AUROC", "AUPRC", "Brier", "mean predicted", "observed rate", "rows"]
    console.print(
        _table(f"{model} on the {rows} rows ({window})", pl.DataFrame(metric_rows, columns, orient="row"))
    )
    calibration = result.calibration.select(
        "bin", "n", pl.col("mean_predicted").round(4), pl.col("observed_rate").round(4)
    )
    console.print(_table("Calibration (equal-count bins of the predicted risk)", calibration))
    if result.fairness.height:
        fairness = result.fairness.select(
            "slice",
            "group",
            "n",
            pl.col("auroc").round(3),
            pl.col("brier").round(4),
            pl.col("observed_rate").round(4),
        )
        console.print(_table("By sex and age band", fairness))
    registered = result.registered_metrics.get("model", {})
    auroc, brier = _figure(registered.get("auroc")), _figure(registered.get("brier"), 4)
    console.print(f"{model} when registered: test AUROC {auroc}, Brier {brier}")
    _write_json(
        output or Path(f"risk-evaluation-{model}.json"), {"as_of": day.isoformat(), **result.as_dict()}
    )


def _labelled(
    path: Path,
    text_column: str,
    label_column: str | None,
    rating_column: str | None,
    rating_scale: str,
    kind: str,
    encoding: str | None,
    separator: str | None,
) -> Any:
    """The file's usable labelled texts, with what was excluded printed; bad input exits with code 2."""
    from models.sentiment.labelled import EXCLUSION_REASONS, LabelledFileError, read_labelled_file

    if (label_column is None) == (rating_column is None):
        raise typer.BadParameter("give either --label-column or --rating-column")
    try:
        texts = read_labelled_file(
            path,
            text_column,
            label_column=label_column,
            rating_column=rating_column,
            rating_scale=rating_scale,
            kind=kind,
            encoding=encoding,
            separator=separator,
        )
    except LabelledFileError as error:
        console.print(f"[red]error[/red]: {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console.print(
        f"{path.name}: {texts.rows_read:,} rows read, {texts.frame.height:,} usable ({texts.labels_from})"
    )
    if texts.rating_bands is not None:
        bands = pl.DataFrame(
            [
                (
                    label,
                    f"{low}" if low == high else f"{low}-{high}",
                    int((texts.frame["label"] == label).sum()),
                )
                for label, (low, high) in texts.rating_bands.items()
            ],
            ["label", f"ratings ({rating_scale} scale)", "texts"],
            orient="row",
        )
        console.print(_table("How ratings were banded into labels", bands))
    if texts.excluded:
        excluded = pl.DataFrame(
            [(EXCLUSION_REASONS[r], n) for r, n in texts.excluded.items()],
            ["excluded because", "rows"],
            orient="row",
        )
        console.print(_table("Rows excluded", excluded))
    return texts


def _registry(registry: str | None) -> UPath:
    """The registry folder given, else the configured lake's."""
    from upath import UPath

    from models.registry import registry_of
    from pipelines.config import Settings

    return UPath(registry) if registry else registry_of(Settings.from_env().lake)


def _risk_models(given: list[str] | None, known: tuple[str, ...]) -> list[str]:
    names = list(dict.fromkeys(given or known))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {unknown}: use {' or '.join(known)}")
    return names


def _risk_lake(lake: str, as_of: str | None, buckets: int | None) -> tuple[UPath, date, int]:
    """The lake, the as-of day and its bucket count, checked against what the lake's last run recorded."""
    from upath import UPath

    from pipelines.config import Settings, validate_bucket_count
    from pipelines.gold.as_of import resolve_as_of
    from pipelines.identity.build import IDENTITY, PERSON
    from pipelines.incremental import read_state
    from pipelines.lake import parquet_files, table_path

    root = UPath(lake)
    if not parquet_files(table_path(root, IDENTITY, PERSON)):
        console.print(f"[red]{lake} has no identity/person table[/red]: run the pipeline on it first")
        raise typer.Exit(EXIT_BAD_INPUT)
    state = read_state(root)
    try:
        count = (
            validate_bucket_count(buckets)
            if buckets
            else state.buckets
            if state
            else Settings.from_env().buckets
        )
        if state and count != state.buckets:
            raise ValueError(f"the lake was built with {state.buckets} buckets, not {count}")
        day = date.fromisoformat(as_of) if as_of else resolve_as_of(Settings.from_env().as_of, root)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return root, day, count


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    return {
        "model": outcome.name,
        "status": outcome.status,
        "version": outcome.version,
        "decision": outcome.decision,
        "deployed": outcome.deployed,
        "detail": outcome.detail,
        "test_metrics": outcome.metrics,
        "compared_with": outcome.compared_with,
        "compared_metrics": outcome.compared_metrics,
    }


def _print_decision(decision: str, version: str, detail: str, name: str) -> None:
    if decision in ("deployed", "already_deployed"):
        console.print(f"[green]{version} is deployed[/green] ({detail})")
    elif decision == "forced":
        console.print(f"[yellow]{version} deployed with --force[/yellow] ({detail})")
    else:
        console.print(
            f"[yellow]{version} registered, not deployed[/yellow] ({detail}); "
            f"deploy it anyway with `patient-insights {name} train … --force`"
        )


def _metrics_table(title: str, metrics: dict[str, dict[str, Any]], names: dict[str, str]) -> Table:
    rows = [(names.get(name, name), *(_cell(m[c]) for c in METRIC_COLUMNS)) for name, m in metrics.items()]
    columns = ["model", "macro-F1", "accuracy", "F1 negative", "F1 neutral", "F1 positive", "texts"]
    return _table(title, pl.DataFrame(rows, columns, orient="row"))


def _confusion_table(title: str, confusion: dict[str, dict[str, int]]) -> Table:
    table = Table(title=title)
    table.add_column("true \\ predicted")
    for label in confusion:
        table.add_column(label, justify="right")
    for truth, row in confusion.items():
        table.add_row(truth, *(f"{row[label]:,}" for label in confusion))
    return table


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"


def _figure(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _write_json(path: Path, body: dict[str, Any]) -> None:
    from upath import UPath

    from pipelines.lake import write_bytes_atomic

    write_bytes_atomic(json.dumps(body, indent=2, sort_keys=True, default=str).encode(), UPath(path))
    console.print(f"figures written to {path}")
