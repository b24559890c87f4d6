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
    """Category → {words, weight, supersedes, snomed, icd10cm} from data_contracts/risk/charlson.yaml."""
    path = CONTRACTS / "charlson.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))["categories"]
    for name, category in data.items():
        if int(category.get("weight", 0)) not in (1, 2, 3, 6):
            raise ValueError(f"{path.name}: {name} has no Charlson weight (1, 2, 3 or 6)")
        if not str(category.get("words") or "").strip():
            raise ValueError(f"{path.name}: {name} has no words to say it to a care manager")
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


def _counted(flags: pl.DataFrame) -> dict[str, pl.Expr]:
    """Per category, whether it counts in rows of category flags: present (missing categories count as
    absent) and not superseded by its severe form."""
    categories = charlson_categories()
    superseded = {c["supersedes"]: name for name, c in categories.items() if c.get("supersedes")}
    counted = {}
    for name in categories:
        present = pl.col(name).fill_null(False) if name in flags.columns else pl.lit(False)
        if name in superseded and superseded[name] in flags.columns:
            present = present & ~pl.col(superseded[name]).fill_null(False)
        counted[name] = present
    return counted


def charlson_index(flags: pl.DataFrame) -> pl.Expr:
    """The Charlson Comorbidity Index of rows of category flags (missing categories count as absent)."""
    categories = charlson_categories()
    terms = [
        present.cast(pl.Int32) * int(categories[name]["weight"]) for name, present in _counted(flags).items()
    ]
    return pl.sum_horizontal(terms).cast(pl.Int32).alias("charlson_index")


def charlson_reasons(flags: pl.DataFrame, keys: list[str], top: int) -> pl.DataFrame:
    """`keys` and `reasons`: per row of category flags, its `top` counted categories in words, heaviest
    first, e.g. 'raises risk: heart failure (Charlson 1 point)' (against a person with no condition of the
    index, every counted category raises the score by its weight); rows with none are left out."""
    categories = charlson_categories()
    counted = flags.select(*keys, **_counted(flags))
    table = pl.DataFrame(
        {
            "_category": list(categories),
            "_order": list(range(len(categories))),
            "_weight": [int(c["weight"]) for c in categories.values()],
            "_words": [str(c["words"]) for c in categories.values()],
        }
    )
    return (
        counted.unpivot(index=keys, variable_name="_category", value_name="_counts")
        .filter(pl.col("_counts"))
        .join(table, on="_category")
        .sort([*keys, "_weight", "_order"], descending=[*[False] * len(keys), True, False])
        .group_by(keys, maintain_order=True)
        .agg(
            pl.format(
                "raises risk: {} (Charlson {} point{})", "_words", "_weight", _plural(pl.col("_weight"))
            )
            .head(top)
            .alias("reasons")
        )
    )


def baseline_tier(points: pl.Expr, cut_offs: tuple[int, int]) -> pl.Expr:
    """`high` from the second cut-off's points up, `medium` from the first's, else `low`."""
    medium, high = cut_offs
    return (
        pl.when(points >= high)
        .then(pl.lit("high"))
        .when(points >= medium)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
        .alias("tier")
    )


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


def lace_reasons(stays: pl.DataFrame, top: int) -> pl.Series:
    """Per discharge (`length_of_stay_days`, `emergent_admission`, `charlson_index`, `ed_visits_before_6m`),
    its `top` LACE components with points, most points first, e.g. 'raises risk: admitted through the
    emergency department (LACE 3 points)' (against a planned stay of under a day with no comorbidity and no
    ED visit, every point raises the score)."""
    days, ed = pl.col("length_of_stay_days"), pl.col("ed_visits_before_6m")
    parts = [
        (lace_length_points(days), pl.format("a {}-day hospital stay", days.floor().cast(pl.Int64))),
        (
            lace_acuity_points(pl.col("emergent_admission")),
            pl.lit("admitted through the emergency department"),
        ),
        (
            lace_comorbidity_points(pl.col("charlson_index")),
            pl.format("Charlson comorbidity index {}", pl.col("charlson_index")),
        ),
        (
            lace_ed_points(ed),
            pl.format("{} ED visit{} in the 6 months before admission", ed.cast(pl.Int64), _plural(ed)),
        ),
    ]
    indexed = stays.with_row_index("_stay")
    long = pl.concat(
        [
            indexed.select("_stay", pl.lit(k).alias("_order"), points.alias("_points"), words.alias("_words"))
            for k, (points, words) in enumerate(parts)
        ]
    )
    said = (
        long.filter(pl.col("_points") > 0)
        .sort("_stay", "_points", "_order", descending=[False, True, False])
        .group_by("_stay", maintain_order=True)
        .agg(
            pl.format("raises risk: {} (LACE {} point{})", "_words", "_points", _plural(pl.col("_points")))
            .head(top)
            .alias("reasons")
        )
    )
    reasons = indexed.select("_stay").join(said, on="_stay", how="left", maintain_order="left")["reasons"]
    return reasons.fill_null(pl.lit([], dtype=pl.List(pl.String)))


def _plural(count: pl.Expr) -> pl.Expr:
    """The plural ending of a count's noun: empty for 1."""
    return pl.when(count == 1).then(pl.lit("")).otherwise(pl.lit("s"))
