"""Hard rules over the model's pairs: where a probability is the wrong tool.

The Fellegi-Sunter model adds up independent evidence, and relatives share most of it: twins share a
family name, a birth date, an address and a phone; a father and his namesake son share a full name, an
address and a phone. Agreement on four fields outweighs a different given name, sex or birth year, and the
model links them: an overlay, the most harmful error an identity index can make (a care manager calls one
person about another's results). These rules look at the pattern, not the sum:

- **different people** (never linked, not reviewed): birth dates more than a year apart with no shared
  identifier; different birth orders of a multiple birth; the same birth date and household but clearly
  different given names and a different sex or a multiple-birth marker (twins);
- **clerical review, never an automatic link**: the same birth date and household but different given names
  (possibly twins); different generational suffixes (Jr. / Sr.); different sex; birth dates that do not
  agree at all with no shared identifier;
- **clerical review rather than a silent miss**: the same given name, birth date and sex under another
  family name (a marriage or a name change, often with a move).

Every pair gets a `verdict` (link | review | reject) and, when not a plain link, a `review_reason` in words a
reviewer reads. All of it is vectorized over the pairs.
"""

from __future__ import annotations

import polars as pl

from pipelines.identity.matching import MAX_BIRTH_DAYS_APART

LINK, REVIEW, REJECT = "link", "review", "reject"

# Splink's comparison levels, counted from the least similar (0) up; -1 is a missing value
# (`matching._comparisons`, whose order these follow)
_GIVEN_SAME = 2  # exact, nickname, initial, or a typo (Jaro-Winkler >= 0.92)
_GIVEN_FORMALLY_SAME = 4  # exact or nickname
_BIRTH_EXACT = 6
_BIRTH_NEAR = 3  # exact, day and month swapped, one day or one digit, year off by one
_FAMILY_DIFFERENT = 0
_ADDRESS_SAME = 1  # exact or Jaro-Winkler >= 0.90
_SSN_SAME = 2
_SSN_TYPO = 1

TWINS = "same birth date and home but different given names: possibly twins"
TWINS_DIFFERENT = "same birth date and home, different given names and {what}: twins"
GENERATIONS = "different generational suffixes (Jr. / Sr.): possibly a parent and a namesake child"
YEARS_APART = "birth dates more than a year apart"
BIRTH_ORDER = "different birth orders of a multiple birth"
SEX = "different sex"
BIRTH_DISAGREES = "birth dates disagree and no identifier is shared"
NAME_CHANGE = (
    "same given name, birth date and sex under another family name: possibly a marriage or name change"
)


def judge(pairs: pl.DataFrame, records: pl.DataFrame, auto_link: float, review: float) -> pl.DataFrame:
    """`pairs` (probabilistic, with `gamma_<field>` and `match_probability`) with `verdict` and
    `review_reason`; `records` are the identity records (`records.RECORD_SCHEMA`)."""
    if pairs.is_empty():
        return pairs.with_columns(
            pl.lit(None, pl.String).alias("verdict"), pl.lit(None, pl.String).alias("review_reason")
        )
    facts = records.select("unique_id", "birth_date", "suffix", "multiple_birth", "birth_order")
    frame = pairs.join(facts.rename(lambda c: f"{c}_l"), on="unique_id_l", how="left").join(
        facts.rename(lambda c: f"{c}_r"), on="unique_id_r", how="left"
    )
    gamma = {
        name: pl.col(f"gamma_{name}") if f"gamma_{name}" in frame.columns else pl.lit(-1)
        for name in ("given", "family", "birth_date", "gender", "address_line", "phones", "ssn")
    }
    days_apart = (
        (pl.col("birth_date_l").str.to_date(strict=False) - pl.col("birth_date_r").str.to_date(strict=False))
        .dt.total_days()
        .abs()
    )
    identifier = gamma["ssn"] >= _SSN_TYPO
    given_differs = gamma["given"].is_between(0, _GIVEN_SAME - 1)
    given_clearly_differs = gamma["given"] == 0
    household = (gamma["address_line"] >= _ADDRESS_SAME) | (gamma["phones"] == 1)
    twin_pattern = given_differs & (gamma["birth_date"] == _BIRTH_EXACT) & household
    sex_differs = gamma["gender"] == 0
    multiple = pl.col("multiple_birth_l").fill_null(False) | pl.col("multiple_birth_r").fill_null(False)
    orders_differ = (pl.col("birth_order_l") != pl.col("birth_order_r")).fill_null(False)
    suffixes_differ = (pl.col("suffix_l") != pl.col("suffix_r")).fill_null(False)
    name_change = (
        (gamma["given"] >= _GIVEN_FORMALLY_SAME)
        & (gamma["birth_date"] == _BIRTH_EXACT)
        & (gamma["gender"] == 1)
        & (gamma["family"] == _FAMILY_DIFFERENT)
    )
    probability = pl.col("match_probability")
    reject_reason = (
        pl.when((days_apart > MAX_BIRTH_DAYS_APART).fill_null(False) & ~identifier)
        .then(pl.lit(YEARS_APART))
        .when(orders_differ)
        .then(pl.lit(BIRTH_ORDER))
        .when(twin_pattern & given_clearly_differs & sex_differs)
        .then(pl.lit(TWINS_DIFFERENT.format(what="sex")))
        .when(twin_pattern & given_clearly_differs & multiple)
        .then(pl.lit(TWINS_DIFFERENT.format(what="a multiple birth recorded")))
    )
    review_reason = (
        pl.when(twin_pattern)
        .then(pl.lit(TWINS))
        .when(suffixes_differ)
        .then(pl.lit(GENERATIONS))
        .when(sex_differs)
        .then(pl.lit(SEX))
        .when(gamma["birth_date"].is_between(0, _BIRTH_NEAR - 1) & ~identifier)
        .then(pl.lit(BIRTH_DISAGREES))
    )
    judged = frame.with_columns(reject_reason.alias("_reject"), review_reason.alias("_review")).with_columns(
        pl.when(pl.col("_reject").is_not_null())
        .then(pl.lit(REJECT))
        .when((probability >= auto_link) & pl.col("_review").is_null())
        .then(pl.lit(LINK))
        .when((probability >= review) | name_change)
        .then(pl.lit(REVIEW))
        .otherwise(pl.lit(REJECT))
        .alias("verdict"),
        pl.coalesce(
            "_reject",
            "_review",
            pl.when(name_change & (probability < review)).then(pl.lit(NAME_CHANGE)),
        ).alias("review_reason"),
    )
    return judged.select(*pairs.columns, "verdict", "review_reason")
