"""Identity records: one row per source Patient with the normalized attributes matching compares.

Names are folded to lower-case ASCII (accents removed: one EHR may store only ASCII), given names
mapped to a canonical form through data_contracts/identity/nicknames.csv, phones reduced to their last
ten digits, e-mails lower-cased, postal codes to five digits. Every name a record carries (official,
maiden, old, ...) is kept as `family_names` so that a maiden name in one source meets the married name
in the other.

A generational suffix (Jr., Sr., II, III ...) is taken from HumanName.suffix or, where a system writes it
into the name itself ("John Jr"), from the last word of the given or family name, and removed from the
name: a father and his namesake son then differ in `suffix`, not in their names. Multiple-birth markers
(`multipleBirthBoolean` / `multipleBirthInteger`) are kept to tell twins apart.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl
from upath import UPath

from pipelines.fhir.birth_dates import unusable_birth_date
from pipelines.lake import parquet_files, scan_table, table_path
from pipelines.silver.build import SILVER

NICKNAMES_FILE = Path(__file__).resolve().parents[2] / "data_contracts" / "identity" / "nicknames.csv"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"

RECORD_SCHEMA: dict[str, pl.DataType] = {
    "unique_id": pl.String(),  # '<source>|<patient id>'
    "source": pl.String(),
    "patient_id": pl.String(),
    "given": pl.String(),  # first given name, folded
    "given_canonical": pl.String(),  # nickname → formal name (the first, for blocking: "sam" → samantha)
    # the name, every formal name it can stand for and, for a formal name, its short forms: sam → sam,
    # samantha, samuel; samuel → sam, sammy, samuel (so Samuel meets Sam, never Samantha)
    "given_forms": pl.List(pl.String()),
    "middle_initial": pl.String(),
    "family": pl.String(),  # official family name, folded (first word of a compound name kept separately)
    "family_first_word": pl.String(),
    "family_names": pl.List(pl.String()),  # every family name of every name of the record
    "birth_date": pl.String(),
    "birth_days": pl.Int32(),  # days since 1970 (null when not a valid date): cheap arithmetic
    "gender": pl.String(),
    "postal_code": pl.String(),
    "address_line": pl.String(),
    "phones": pl.List(pl.String()),
    "email": pl.String(),
    "ssn": pl.String(),
    "suffix": pl.String(),  # generational: sr | jr | iii | iv (II is written jr: the second of the name)
    "multiple_birth": pl.Boolean(),  # part of a multiple birth, when a source says so
    "birth_order": pl.Int64(),  # multipleBirthInteger
    "last_updated": pl.String(),
}
GENERATIONAL_SUFFIXES = {
    "sr": "sr",
    "senior": "sr",
    "jr": "jr",
    "junior": "jr",
    "ii": "jr",
    "2nd": "jr",
    "iii": "iii",
    "3rd": "iii",
    "iv": "iv",
    "4th": "iv",
}
"""Folded suffix word → generation. "II" names the second of a name, as "Jr." does; "I" is left out: it is
also a middle initial."""


def fold(text: pl.Expr) -> pl.Expr:
    """Lower-case ASCII letters, digits and single spaces (accents and punctuation removed)."""
    return (
        text.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_lowercase()
        .str.replace_all(r"[^a-z0-9 ]", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .replace("", None)
    )


@cache
def nicknames() -> pl.DataFrame:
    """A given name → `canonical` (the first formal name a short form stands for, itself for a formal name)
    and `forms`: the formal names it stands for ("Sam": Samantha and Samuel) and, for a formal name, its short
    forms ("Samuel": Sam, Sammy)."""
    table = pl.read_csv(NICKNAMES_FILE, comment_prefix="#").select("name", "variant")
    as_variant = table.group_by("variant", maintain_order=True).agg(
        pl.col("name").first().alias("canonical"), pl.col("name").alias("forms")
    )
    as_formal = table.group_by("name", maintain_order=True).agg(pl.col("variant").alias("forms"))
    return (
        pl.concat(
            [
                as_variant.rename({"variant": "given"}),
                as_formal.select(pl.col("name").alias("given"), pl.col("name").alias("canonical"), "forms"),
            ]
        )
        .group_by("given", maintain_order=True)
        .agg(
            pl.col("canonical").first(),
            pl.col("forms").list.explode(keep_nulls=False, empty_as_null=False).unique().sort(),
        )
        .sort("given")
    )


def identity_records(lake: UPath) -> pl.DataFrame:
    """One identity record per current source Patient in silver (all buckets)."""
    if not parquet_files(table_path(lake, SILVER, "patient")):
        return pl.DataFrame(schema=RECORD_SCHEMA)
    patients = scan_table(lake, SILVER, "patient").collect()
    names = _table(
        lake,
        "patient_name",
        {"source": pl.String, "patient_id": pl.String, "family": pl.String, "suffix": pl.String},
    )
    identifiers = _table(
        lake,
        "patient_identifier",
        {"source": pl.String, "patient_id": pl.String, "system": pl.String, "value": pl.String},
    )
    telecom = _table(
        lake,
        "patient_telecom",
        {"source": pl.String, "patient_id": pl.String, "system": pl.String, "value": pl.String},
    )
    return build_records(patients, names, identifiers, telecom)


def _generation(word: pl.Expr) -> pl.Expr:
    """The generation a folded word names (GENERATIONAL_SUFFIXES), else null."""
    return word.replace_strict(GENERATIONAL_SUFFIXES, default=None, return_dtype=pl.String)


def _split_suffix(words: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(the words without a trailing generational suffix, that suffix): "john jr" → ("john", "jr")."""
    last = words.list.get(-1, null_on_oob=True)
    suffix = pl.when(words.list.len() > 1).then(_generation(last))
    return pl.when(suffix.is_not_null()).then(words.list.head(words.list.len() - 1)).otherwise(words), suffix


def build_records(
    patients: pl.DataFrame, names: pl.DataFrame, identifiers: pl.DataFrame, telecom: pl.DataFrame
) -> pl.DataFrame:
    """The identity records from silver `patient`, `patient_name`, `patient_identifier`, `patient_telecom`."""
    key = ["source", "patient_id"]
    # lakes built before a column existed in the view read it as unknown
    patients = patients.with_columns(
        pl.lit(None, dtype).alias(column)
        for column, dtype in (("multiple_birth_boolean", pl.Boolean), ("multiple_birth_integer", pl.Int64))
        if column not in patients.columns
    )
    if "suffix" not in names.columns:
        names = names.with_columns(pl.lit(None, pl.String).alias("suffix"))
    given_words, given_suffix = _split_suffix(fold(pl.col("given")).str.split(" "))
    family_words, family_suffix = _split_suffix(fold(pl.col("family")).str.split(" "))
    base = patients.select(
        "source",
        pl.col("id").alias("patient_id"),
        given_words.list.get(0, null_on_oob=True).alias("given"),
        given_words.list.get(1, null_on_oob=True).str.slice(0, 1).alias("middle_initial"),
        family_words.list.join(" ").replace("", None).alias("family"),
        pl.coalesce(given_suffix, family_suffix).alias("_name_suffix"),
        # a placeholder (1900-01-01), a date before 1900 or a partial date is no evidence of identity: two
        # strangers given the same placeholder must not agree on it
        pl.when(~unusable_birth_date(pl.col("birth_date").str.slice(0, 10)))
        .then(pl.col("birth_date").str.slice(0, 10))
        .alias("birth_date"),
        pl.col("gender").str.to_lowercase().alias("gender"),
        pl.col("address_postal_code")
        .str.replace_all(r"[^0-9]", "")
        .str.slice(0, 5)
        .replace("", None)
        .alias("postal_code"),
        fold(pl.col("address_line")).alias("address_line"),
        (
            pl.col("multiple_birth_boolean").fill_null(False)
            | (pl.col("multiple_birth_integer").cast(pl.Int64, strict=False) > 0).fill_null(False)
        ).alias("multiple_birth"),
        pl.col("multiple_birth_integer").cast(pl.Int64, strict=False).alias("birth_order"),
        pl.col("last_updated").cast(pl.String),
    ).with_columns(
        pl.col("birth_date").str.to_date("%Y-%m-%d", strict=False).cast(pl.Int32).alias("birth_days")
    )
    folded_names = names.select(
        *key,
        _split_suffix(fold(pl.col("family")).str.split(" "))[0]
        .list.join(" ")
        .replace("", None)
        .alias("name"),
        fold(pl.col("suffix"))
        .str.split(" ")
        .list.eval(_generation(pl.element()))
        .list.drop_nulls()
        .alias("_g"),
    )
    family_names = (
        folded_names.drop_nulls("name")
        .group_by(key)
        .agg(pl.col("name").unique().sort().alias("family_names"))
    )
    suffixes = (
        folded_names.select(*key, pl.col("_g").list.first().alias("_suffix"))
        .drop_nulls("_suffix")
        .group_by(key)
        .agg(pl.col("_suffix").sort().first())
    )
    phones = (
        telecom.filter(pl.col("system").is_in(["phone", "sms"]))
        .select(*key, pl.col("value").str.replace_all(r"[^0-9]", "").str.slice(-10).alias("phone"))
        .filter(pl.col("phone").str.len_chars() >= 7)
        .group_by(key)
        .agg(pl.col("phone").unique().sort().alias("phones"))
    )
    emails = (
        telecom.filter(pl.col("system") == "email")
        .select(*key, pl.col("value").str.strip_chars().str.to_lowercase().alias("email"))
        .group_by(key)
        .agg(pl.col("email").sort().first())
    )
    ssns = (
        identifiers.filter(pl.col("system") == SSN_SYSTEM)
        .select(*key, pl.col("value").str.replace_all(r"[^0-9]", "").alias("ssn"))
        .filter(pl.col("ssn").str.len_chars() == 9)
        .group_by(key)
        .agg(pl.col("ssn").sort().first())
    )
    records = (
        base.join(family_names, on=key, how="left")
        .join(suffixes, on=key, how="left")
        .join(phones, on=key, how="left")
        .join(emails, on=key, how="left")
        .join(ssns, on=key, how="left")
        .join(nicknames(), on="given", how="left")
        .with_columns(
            pl.format("{}|{}", "source", "patient_id").alias("unique_id"),
            pl.coalesce("canonical", "given").alias("given_canonical"),
            pl.concat_list(pl.col("given"), pl.col("forms").fill_null([]))
            .list.drop_nulls()
            .list.unique()
            .list.sort()
            .alias("given_forms"),
            pl.col("family").str.split(" ").list.first().alias("family_first_word"),
            pl.concat_list(pl.col("family_names").fill_null([]), pl.col("family").fill_null(pl.lit(None)))
            .list.drop_nulls()
            .list.unique()
            .list.sort()
            .alias("family_names"),
            pl.col("phones").fill_null([]),
            pl.coalesce("_suffix", "_name_suffix").alias("suffix"),
        )
    )
    return records.select([pl.col(n).cast(t) for n, t in RECORD_SCHEMA.items()]).sort("unique_id")


def _table(lake: UPath, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not parquet_files(table_path(lake, SILVER, table)):
        return pl.DataFrame(schema=schema)
    return scan_table(lake, SILVER, table).collect()
