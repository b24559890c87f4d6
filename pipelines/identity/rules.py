"""Hard rules over the model's pairs: where a probability is the wrong tool.

The Fellegi-Sunter model adds up independent evidence, and relatives share most of it: twins share a
family name, a birth date, an address and a phone; a father and his namesake son share a full name, an
address and a phone. Agreement on four fields outweighs a different given name, sex or birth year, and the
model links them: an overlay, the most harmful error an identity index can make (a care manager calls one
person about another's results). These rules look at the pattern, not the sum:

- **different people** (never linked, not reviewed): birth dates more than a year apart with no shared
  identifier (unless one digit apart: a typo is reviewed); different birth orders of a multiple birth; the
  same birth date and household with given names that are neither the same, a short form nor a typo of
  one another, and no shared identifier or personal e-mail (twins);
- **clerical review, never an automatic link**: the same birth date and household but given names only
  alike ("Jon" and "Joan"), or one letter apart ("Qing" and "Ling") with a multiple birth recorded or
  different e-mails or SSNs, or wholly different with a personal e-mail in common; different generational
  suffixes (Jr. / Sr.); different SSNs; different sex; birth dates that do not agree at all with no shared
  identifier;
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
ALIKE = (
    "same birth date and home, given names only spelled alike and nothing personal shared: a typo, or twins"
)
TWINS_DIFFERENT = "same birth date and home, different given names and {what}: twins"
GENERATIONS = "different generational suffixes (Jr. / Sr.): possibly a parent and a namesake child"
YEARS_APART = "birth dates more than a year apart"
BIRTH_ORDER = "different birth orders of a multiple birth"
SEX = "different sex"
ONE_DIGIT = "birth years one digit apart: a typo, or a parent and child born on the same day"
IDENTIFIERS = "different social security numbers"
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
    facts = records.select(
        "unique_id",
        "given",
        "given_forms",
        "birth_date",
        "birth_days",
        "suffix",
        "multiple_birth",
        "birth_order",
    )
    frame = pairs.join(facts.rename(lambda c: f"{c}_l"), on="unique_id_l", how="left").join(
        facts.rename(lambda c: f"{c}_r"), on="unique_id_r", how="left"
    )
    frame = frame.with_columns(_typo_of_a_form(frame).alias("_given_typo"))
    gamma = {
        name: pl.col(f"gamma_{name}") if f"gamma_{name}" in frame.columns else pl.lit(-1)
        for name in ("given", "family", "birth_date", "gender", "address_line", "phones", "email", "ssn")
    }
    days_apart = (pl.col("birth_days_l") - pl.col("birth_days_r")).abs()  # `records.birth_days`
    identifier = gamma["ssn"] >= _SSN_TYPO
    identifiers_differ = gamma["ssn"] == 0  # both recorded, more than a typo apart
    # one digit of the date written wrong (1985 for 1955): a typo, or a parent and child born on the same day
    one_digit = (
        pl.sum_horizontal(
            (pl.col("birth_date_l").str.slice(i, 1) != pl.col("birth_date_r").str.slice(i, 1)).cast(pl.Int8)
            for i in range(10)
        )
        == 1
    ).fill_null(False)
    given_differs = gamma["given"].is_between(0, _GIVEN_SAME - 1) & ~pl.col("_given_typo")
    given_clearly_differs = (gamma["given"] == 0) & ~pl.col("_given_typo")
    household = (gamma["address_line"] >= _ADDRESS_SAME) | (gamma["phones"] == 1)
    twin_pattern = given_differs & (gamma["birth_date"] == _BIRTH_EXACT) & household & ~identifier
    multiple = pl.col("multiple_birth_l").fill_null(False) | pl.col("multiple_birth_r").fill_null(False)
    # "Qing" and "Ling", "Lan" and "Loan": one letter apart, the same day, the same home. A typo, unless a
    # multiple birth is recorded or personal details (e-mail, SSN: a home phone is the household's) differ
    near_twins = (
        (gamma["given"] < _GIVEN_FORMALLY_SAME)
        & ~given_differs
        & (gamma["birth_date"] == _BIRTH_EXACT)
        & household
        & ~identifier
        & (multiple | (gamma["email"] == 0) | identifiers_differ)
    )
    sex_differs = gamma["gender"] == 0
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
        pl.when((days_apart > MAX_BIRTH_DAYS_APART).fill_null(False) & ~identifier & ~one_digit)
        .then(pl.lit(YEARS_APART))
        .when(orders_differ)
        .then(pl.lit(BIRTH_ORDER))
        .when(twin_pattern & given_clearly_differs & sex_differs)
        .then(pl.lit(TWINS_DIFFERENT.format(what="sex")))
        .when(twin_pattern & given_clearly_differs & multiple)
        .then(pl.lit(TWINS_DIFFERENT.format(what="a multiple birth recorded")))
        .when(twin_pattern & identifiers_differ)
        .then(pl.lit(TWINS_DIFFERENT.format(what="different social security numbers")))
        # a wholly different given name, not a short form or a typo of it, on the same day in the same
        # home is how twins look; only a shared personal e-mail speaks for one person and sends it to review
        .when(twin_pattern & given_clearly_differs & (gamma["email"] != 1))
        .then(pl.lit(TWINS_DIFFERENT.format(what="nothing personal shared")))
    )
    review_reason = (
        pl.when(twin_pattern)
        .then(pl.lit(TWINS))
        .when(near_twins)
        .then(pl.lit(ALIKE))
        .when((days_apart > MAX_BIRTH_DAYS_APART).fill_null(False) & ~identifier)
        .then(pl.lit(ONE_DIGIT))
        .when(identifiers_differ)
        .then(pl.lit(IDENTIFIERS))
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


def _typo_of_a_form(frame: pl.DataFrame) -> pl.Series:
    """Per pair: one given name is one edit (a letter swapped, missing, doubled or wrong) from the other or
    from one of its short and formal forms ("Biill" and William, through Bill). Names of four letters or
    more. Damerau-Levenshtein is DuckDB's; it runs here on the model's pairs only, not on the million random
    pairs the model is estimated from (where it cost a third of identity's time)."""
    import duckdb

    names = frame.select(
        pl.col("given_l").fill_null(""),
        pl.col("given_r").fill_null(""),
        pl.col("given_forms_l").fill_null([]),
        pl.col("given_forms_r").fill_null([]),
    ).to_arrow()

    def one_edit(name: str, forms: str) -> str:  # `forms` holds the other record's own name too
        return (
            f"(length({name}) >= 4 AND len(list_filter({forms}, "
            f"lambda f: length(f) >= 4 AND damerau_levenshtein(f, {name}) = 1)) > 0)"
        )

    with duckdb.connect() as connection:
        connection.register("names", names)
        typo = connection.sql(
            f"SELECT {one_edit('given_l', 'given_forms_r')} OR {one_edit('given_r', 'given_forms_l')} "
            "FROM names"
        ).to_arrow_table()
    return pl.Series("_given_typo", typo.column(0)).fill_null(False)
