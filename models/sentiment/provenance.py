"""Where a sentiment model's training texts came from, and which texts it may score.

A classifier learns the texts it is shown. One trained on the generator's sentences (the demo) scores
the demo's texts well and real patients' words badly — worse than VADER, which learnt from no one's
texts. So every registered model records its provenance:

- `generated`: at least one training text came from `patient-insights generate`;
- `organisation`: every training text came from the organisation's own data (its surveys' ratings, its
  labelled files).

The rule for scoring (`choose_scorer` in `registry.py`): a model of the organisation's texts scores
everything; a model of generated texts scores only texts known to be generated, and VADER scores the
rest; with no model deployed, VADER scores everything. A version registered before provenance was kept
is treated like a generated one: nothing says its texts were the organisation's.

Texts are known to be generated when they come from a folder the generator wrote: it writes the marker
file `.generated-by-patient-insights` at the top of every folder it writes (the landing folder and the
ground truth) and refuses to write into a folder without it, so nobody's own files sit under it. A
lake's texts are generated when its landing folder carries the marker; a file's texts when its folder
or a folder above it does.
"""

from __future__ import annotations

from pathlib import Path

from upath import UPath

GENERATED = "generated"
ORGANISATION = "organisation"
UNRECORDED = "unrecorded"
"""Versions registered before provenance was kept."""
PROVENANCES = (GENERATED, ORGANISATION)
GENERATOR_MARKER = ".generated-by-patient-insights"
"""The generator's marker file (`pipelines.generate.landing.MARKER`; not imported from there: the
generator's modules are large and `sentiment score` must start fast)."""


def written_by_generator(path: str | Path | UPath) -> bool:
    """True when `path` (a file or a folder, present or not) lies in a folder the generator wrote: the
    folder itself or a folder above it holds the generator's marker."""
    location = UPath(path)
    if location.protocol in ("", "file", "local"):
        location = UPath(Path(str(path)).expanduser().resolve())
    return any((folder / GENERATOR_MARKER).is_file() for folder in (location, *location.parents))


def training_provenance(*generated: bool) -> str:
    """`generated` when any part of the training texts is generated, else `organisation`."""
    return GENERATED if any(generated) else ORGANISATION


def may_score(provenance: str, generated_texts: bool) -> bool:
    """Whether a model of `provenance` may score texts that are (or are not) known to be generated."""
    return provenance == ORGANISATION or generated_texts


def describe_provenance(provenance: str) -> str:
    """One sentence for a model card or a message: what the model learnt from and what it scores."""
    if provenance == ORGANISATION:
        return "Trained on the organisation's own texts (its labels or ratings): it scores every text."
    learnt = (
        "Trained on texts written by `patient-insights generate` (the demo's synthetic data)"
        if provenance == GENERATED
        else "Registered before models recorded what they learnt from"
    )
    return (
        f"{learnt}: it scores only texts known to be generated (a lake whose landing folder, or a file "
        f"whose folder, carries the generator's {GENERATOR_MARKER} marker); VADER scores every other text "
        "until a model is trained on the organisation's own labels or ratings."
    )
