"""Clinical baselines the model has to beat: the Charlson Comorbidity Index per person and the LACE index
per inpatient discharge, as pure functions over Polars expressions and our own code lists.

Charlson (1987) weights each comorbidity category 1, 2, 3 or 6; a severe form supersedes its milder form.
LACE (van Walraven et al., 2010) adds points for Length of stay, Acuity of admission, Comorbidity (the
Charlson index mapped to LACE points) and ED visits in the 6 months before admission; 10 or more is high
risk of readmission or death within 30 days.
"""

from __future__ import annotations

from functools import cache

import polars as pl
import yaml

from models.risk.config import CONTRACTS

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LACE_HIGH_RISK = 10


@cache
def charlson_categories() -> dict[str, dict]:
    """Category → {weight, supersedes, snomed, icd10cm} from data_contracts/risk/charlson.yaml."""
    path = CONTRACTS / "charlson.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))["categories"]
    for name, category in data.items():
        if int(category.get("weight", 0)) not in (1, 2, 3, 6):
            raise ValueError(f"{path.name}: {name} has no Charlson weight (1, 2, 3 or 6)")
        if category.get("supersedes") and category["supersedes"] not in data:
            raise ValueError(f"{path.name}: {name} supersedes unknown category {category['supersedes']}")
    return data


def charlson_category_flags(conditions: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One row per `keys` group with a boolean column per Charlson category: any of the group's
    conditions (`code_system`, `code`) is in the category's list."""
    categories = charlson_categories()
    snomed = pl.col("code_system") == SNOMED
    icd_code = pl.col("code").str.replace_all(".", "", literal=True)
    icd = pl.col("code_system") == ICD10CM
    flags = [
        (
            (snomed & pl.col("code").is_in(c["snomed"]))
            | (icd & pl.any_horizontal([icd_code.str.starts_with(p) for p in c["icd10cm"]]))
        )
        .any()
        .alias(name)
        for name, c in categories.items()
    ]
    return conditions.group_by(keys).agg(flags)


def charlson_index(flags: pl.DataFrame) -> pl.Expr:
    """The Charlson Comorbidity Index of rows of category flags (missing categories count as absent)."""
    categories = charlson_categories()
    superseded = {c["supersedes"]: name for name, c in categories.items() if c.get("supersedes")}
    terms = []
    for name, category in categories.items():
        present = pl.col(name).fill_null(False) if name in flags.columns else pl.lit(False)
        if name in superseded and superseded[name] in flags.columns:
            present = present & ~pl.col(superseded[name]).fill_null(False)
        terms.append(present.cast(pl.Int32) * int(category["weight"]))
    return pl.sum_horizontal(terms).cast(pl.Int32).alias("charlson_index")


def lace_length_points(days: pl.Expr) -> pl.Expr:
    """L: length of stay in whole days (< 1: 0, 1: 1, 2: 2, 3: 3, 4-6: 4, 7-13: 5, 14 or more: 7)."""
    return (
        pl.when(days < 1)
        .then(0)
        .when(days <= 3)
        .then(days)
        .when(days <= 6)
        .then(4)
        .when(days <= 13)
        .then(5)
        .otherwise(7)
        .cast(pl.Int32)
    )


def lace_acuity_points(emergent: pl.Expr) -> pl.Expr:
    """A: 3 points for an emergent (unplanned, through the emergency department) admission."""
    return pl.when(emergent.fill_null(False)).then(3).otherwise(0).cast(pl.Int32)


def lace_comorbidity_points(charlson: pl.Expr) -> pl.Expr:
    """C: the Charlson index 0-3 as is, 4 or more: 5 points."""
    return pl.when(charlson >= 4).then(5).otherwise(charlson).cast(pl.Int32)


def lace_ed_points(visits: pl.Expr) -> pl.Expr:
    """E: ED visits in the 6 months before admission, capped at 4."""
    return visits.clip(upper_bound=4).cast(pl.Int32)


def lace_index(days: pl.Expr, emergent: pl.Expr, charlson: pl.Expr, ed_visits_6m: pl.Expr) -> pl.Expr:
    """The LACE index (0-19)."""
    return (
        lace_length_points(days)
        + lace_acuity_points(emergent)
        + lace_comorbidity_points(charlson)
        + lace_ed_points(ed_visits_6m)
    ).alias("lace_index")
