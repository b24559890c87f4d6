"""Train, register and deploy a sentiment model, and evaluate any registered version on labelled texts.

The candidate (the classifier or VADER, per kind of text, as training chose) is deployed only when its
macro-F1 beats the deployed model's on the same held-out texts — leaving out texts the deployed model
learnt from, which would flatter it — or when forced. The first model of a registry is deployed.
Provenance (`provenance.py`) comes first: a model of the organisation's texts replaces one of generated
texts without a comparison (that one never scored the organisation's texts: VADER did, and the training
judged the candidate against VADER), and a model of generated texts never replaces one of the
organisation's unless forced. The Dagster asset (weak labels from survey ratings) and `patient-insights
sentiment train` (an organization's own labelled file) both call `train_and_deploy_sentiment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
from upath import UPath

from models.registry import RegistryError, deploy, deployment, has_version
from models.sentiment.models import LexiconModel
from models.sentiment.provenance import GENERATED, ORGANISATION
from models.sentiment.registry import (
    NAME,
    deployed_sentiment_version,
    load_sentiment_version,
    provenance_of,
    register_sentiment,
    sentiment_version,
    trained_text_hashes,
)
from models.sentiment.text import text_hashes
from models.sentiment.train import (
    SentimentTraining,
    SentimentTrainingError,
    _usable,
    evaluate,
    fingerprint,
    split_held_out,
    train_sentiment,
)
from models.sentiment.weak_labels import ONE_QUESTION

CANDIDATE = "candidate"
LEXICON = "vader"


@dataclass(frozen=True)
class Comparison:
    """The candidate and the deployed model judged on the same held-out texts."""

    deployed_version: str
    rows: int  # held-out texts compared on
    seen_by_deployed: int  # held-out texts left out: the deployed model learnt from them
    seen_unknown: bool  # the deployed version kept no record of its training texts
    metrics: dict[str, dict[str, Any]]  # candidate / deployed / vader -> metrics on those rows


@dataclass(frozen=True)
class SentimentOutcome:
    """What one training did: the version, the decision and every figure behind it."""

    version: str
    provenance: str  # generated | organisation: what the training texts were
    status: str  # registered | reused
    decision: str  # deployed | forced | kept | already_deployed
    deployed: str | None  # the version scoring uses now
    replaced: str | None  # the version deployed before, when this one replaced it
    training: SentimentTraining
    held_out_metrics: dict[str, dict[str, Any]]  # candidate / vader / tfidf_logistic_regression
    comparison: Comparison | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report (figures only, no texts)."""
        return {
            "version": self.version,
            "provenance": self.provenance,
            "status": self.status,
            "decision": self.decision,
            "deployed": self.deployed,
            "replaced": self.replaced,
            "detail": self.detail,
            "rows": self.training.rows,
            "class_counts": self.training.class_counts,
            "chosen": self.training.chosen,
            "model_by_kind": self.training.choice_by_kind,
            "class_weights": self.training.class_weights,
            "class_weights_chosen_on": self.training.weights_chosen_on,
            "excluded_from_training": self.training.excluded,
            "form": self.training.form,
            "held_out_metrics": self.held_out_metrics,
            "comparison": None
            if self.comparison is None
            else {
                "deployed_version": self.comparison.deployed_version,
                "rows": self.comparison.rows,
                "seen_by_deployed": self.comparison.seen_by_deployed,
                "seen_unknown": self.comparison.seen_unknown,
                "metrics": self.comparison.metrics,
            },
        }


def train_and_deploy_sentiment(
    registry: UPath,
    train: pl.DataFrame,
    held_out: pl.DataFrame,
    data: str,
    *,
    provenance: str,
    weak: bool = False,
    form: str = ONE_QUESTION,
    force: bool = False,
    seed: int = 7,
) -> SentimentOutcome:
    """Train on `train`, judge on `held_out` (`text`, `label`, `kind`), register the version with its
    `provenance` (generated / organisation), and deploy it when it beats the deployed model on the same
    texts (or `force`), within the provenance rules of the module's docstring. `weak`: the labels come
    from ratings; `form`: what the rated comments answer (`weak_labels.FORMS`)."""
    training = train_sentiment(train, held_out, seed, weak=weak, form=form)
    data_print = fingerprint(train, held_out)
    registered_before = has_version(registry, NAME, sentiment_version(training, data_print, provenance))
    version = register_sentiment(registry, training, data_print, data, train["text"], provenance)
    candidate = training.deployed()
    held = training.held_out
    held_out_metrics = {CANDIDATE: evaluate(candidate, held), **training.metrics}
    current = (deployment(registry, NAME) or {}).get("version")
    comparison = None
    notes = [f"held-out macro-F1 {held_out_metrics[CANDIDATE]['macro_f1']:.3f} (n={held.height})"]
    if current == version:
        decision, replaced = "already_deployed", None
        notes.append("already deployed")
    else:
        better = True
        current_provenance = provenance_of(registry, current) if current is not None else None
        if current is not None and provenance == ORGANISATION and current_provenance != ORGANISATION:
            notes.append(
                f"deployed {current} learnt from {current_provenance} texts and never scored the "
                "organisation's: replaced without a comparison"
            )
        elif current is not None and provenance == GENERATED and current_provenance == ORGANISATION:
            better = False
            notes.append(
                f"a model of generated texts does not replace {current}, trained on the organisation's"
            )
        elif current is not None:
            comparison = _compare(registry, current, candidate, held)
            if comparison is None:
                notes.append(f"deployed {current} cannot be loaded by this code: not compared")
            elif not comparison.rows:
                notes.append(f"deployed {current} learnt from every held-out text: not compared")
            else:
                mine = comparison.metrics[CANDIDATE]["macro_f1"]
                theirs = comparison.metrics["deployed"]["macro_f1"]
                better = mine > theirs
                notes.append(
                    f"{mine:.3f} vs deployed {current} {theirs:.3f} on the same {comparison.rows} texts"
                    + (
                        f" ({comparison.seen_by_deployed} it learnt from left out)"
                        if comparison.seen_by_deployed
                        else ""
                    )
                )
        decision = "deployed" if better else "forced" if force else "kept"
        replaced = current if decision != "kept" else None
        if decision != "kept":
            deploy(registry, NAME, version, reason="; ".join(notes) + f": {decision}")
        notes.append(
            {"forced": "deployed (forced)", "deployed": "deployed", "kept": "not deployed"}[decision]
        )
    return SentimentOutcome(
        version=version,
        provenance=provenance,
        status="reused" if registered_before else "registered",
        decision=decision,
        deployed=deployed_sentiment_version(registry),
        replaced=replaced,
        training=training,
        held_out_metrics=held_out_metrics,
        comparison=comparison,
        detail="; ".join(notes),
    )


def train_on_labelled_texts(
    registry: UPath,
    labelled: pl.DataFrame,
    data: str,
    *,
    provenance: str,
    weak: bool = False,
    form: str = ONE_QUESTION,
    force: bool = False,
    seed: int = 7,
) -> SentimentOutcome:
    """Split labelled texts into a stratified training set and held-out fifth, then train and deploy."""
    train, held_out = split_held_out(labelled)
    return train_and_deploy_sentiment(
        registry, train, held_out, data, provenance=provenance, weak=weak, form=form, force=force, seed=seed
    )


@dataclass(frozen=True)
class SentimentEvaluation:
    """A registered version and the lexicon judged on the same labelled texts."""

    version: str
    rows: int
    seen_in_training: int | None  # texts the version learnt from (None: not recorded)
    metrics: dict[str, dict[str, Any]]  # model / vader -> metrics

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report (figures only)."""
        return {
            "version": self.version,
            "rows": self.rows,
            "seen_in_training": self.seen_in_training,
            "metrics": self.metrics,
        }


def evaluate_sentiment(
    registry: UPath, labelled: pl.DataFrame, version: str | None = None
) -> SentimentEvaluation:
    """Judge `version` (default: the deployed or pinned one) and VADER on labelled texts (`text`, `label`,
    optional `kind`): macro-F1, accuracy, per-class F1 and confusion matrices."""
    version = version or deployed_sentiment_version(registry)
    if version is None:
        raise RegistryError(f"no sentiment model is deployed in {registry}: name one with --model")
    model = load_sentiment_version(registry, version)
    usable = _usable(labelled)
    if not usable.height:
        raise SentimentTrainingError("no usable labelled text to evaluate on")
    seen = trained_text_hashes(registry, version)
    overlap = None if seen is None else int(text_hashes(usable["text"]).is_in(seen.implode()).sum())
    return SentimentEvaluation(
        version=version,
        rows=usable.height,
        seen_in_training=overlap,
        metrics={"model": evaluate(model, usable), LEXICON: evaluate(LexiconModel(), usable)},
    )


def _compare(registry: UPath, current: str, candidate: Any, held: pl.DataFrame) -> Comparison | None:
    """The candidate, the deployed version and VADER on the held-out texts the deployed one never saw."""
    try:
        deployed_model = load_sentiment_version(registry, current)
    except (RegistryError, OSError, AttributeError, ModuleNotFoundError):
        return None  # saved by other code: it cannot score, so it cannot be compared
    seen = trained_text_hashes(registry, current)
    rows = held
    if seen is not None:
        rows = held.filter(~text_hashes(held["text"]).is_in(seen.implode()))
    metrics = (
        {
            CANDIDATE: evaluate(candidate, rows),
            "deployed": evaluate(deployed_model, rows),
            LEXICON: evaluate(LexiconModel(), rows),
        }
        if rows.height
        else {}
    )
    return Comparison(current, rows.height, held.height - rows.height, seen is None, metrics)
