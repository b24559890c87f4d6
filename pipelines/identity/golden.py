"""The golden record of each person: per field, the most recent non-empty value from the most trusted
source that has one (source ranking in data_contracts/identity/matching.yaml), with that source kept
beside the value (`<field>_source`)."""

from __future__ import annotations

import polars as pl
from upath import UPath

from pipelines.lake import parquet_files, scan_table, table_path
from pipelines.silver.build import SILVER

GOLDEN_FIELDS = (
    "given",
    "family",
    "birth_date",
    "gender",
    "deceased",
    "language",
    "marital_status",
    "address_line",
    "address_city",
    "address_state",
    "address_postal_code",
    "phone",
    "email",
)


def golden_records(lake: UPath, person_link: pl.DataFrame, source_rank: tuple[str, ...]) -> pl.DataFrame:
    """One row per person: `person_id`, `source_records`, and each golden field with its source."""
    if not parquet_files(table_path(lake, SILVER, "patient")):
        return _empty()
    patients = scan_table(lake, SILVER, "patient").collect()
    telecom = (
        scan_table(lake, SILVER, "patient_telecom").collect()
        if parquet_files(table_path(lake, SILVER, "patient_telecom"))
        else pl.DataFrame(
            schema={
                "source": pl.String,
                "patient_id": pl.String,
                "system": pl.String,
                "value": pl.String,
                "use": pl.String,
                "rank": pl.Int64,
            }
        )
    )
    return choose_fields(patients, telecom, person_link, source_rank)


def choose_fields(
    patients: pl.DataFrame, telecom: pl.DataFrame, person_link: pl.DataFrame, source_rank: tuple[str, ...]
) -> pl.DataFrame:
    """The survivorship rule over silver `patient` / `patient_telecom` rows of linked records."""
    key = ["source", "patient_id"]
    contact = (
        # system and value break ties of rank and use: the same records give the same golden contact
        # whatever order their buckets were read in
        telecom.sort(["rank", "use", "system", "value"], nulls_last=True)
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("value").filter(pl.col("system").is_in(["phone", "sms"])).first().alias("phone"),
            pl.col("value").filter(pl.col("system") == "email").first().alias("email"),
        )
    )
    values = patients.select(
        "source",
        pl.col("id").alias("patient_id"),
        pl.col("last_updated").cast(pl.String),
        pl.col("given").cast(pl.String),
        pl.col("family").cast(pl.String),
        pl.col("birth_date").cast(pl.String),
        pl.col("gender").cast(pl.String),
        pl.coalesce(
            pl.col("deceased_date_time").cast(pl.String), pl.col("deceased_boolean").cast(pl.String)
        ).alias("deceased"),
        pl.col("language").cast(pl.String),
        pl.col("marital_status").cast(pl.String),
        pl.col("address_line").cast(pl.String),
        pl.col("address_city").cast(pl.String),
        pl.col("address_state").cast(pl.String),
        pl.col("address_postal_code").cast(pl.String),
    ).join(contact, on=key, how="left")
    ranks = pl.DataFrame({"source": list(source_rank), "_rank": list(range(len(source_rank)))})
    linked = (
        person_link.select("person_id", "source", pl.col("source_patient_id").alias("patient_id"))
        .join(values, on=key, how="left")
        .join(ranks, on="source", how="left")
        .with_columns(pl.col("_rank").fill_null(len(source_rank)))
    )
    long = linked.unpivot(
        index=["person_id", "source", "patient_id", "last_updated", "_rank"],
        on=list(GOLDEN_FIELDS),
        variable_name="field",
        value_name="value",
    ).filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
    chosen = (
        long.sort(
            ["person_id", "field", "_rank", "last_updated", "patient_id"],
            descending=[False, False, False, True, False],
            nulls_last=True,
        )
        .group_by("person_id", "field", maintain_order=True)
        .agg(pl.col("value").first(), pl.col("source").first())
    )
    wide_values = chosen.pivot(on="field", index="person_id", values="value")
    wide_sources = chosen.pivot(on="field", index="person_id", values="source")
    wide_sources = wide_sources.rename({c: f"{c}_source" for c in wide_sources.columns if c != "person_id"})
    records = person_link.group_by("person_id").agg(
        pl.format("{}|{}", "source", "source_patient_id").sort().alias("source_records")
    )
    out = records.join(wide_values, on="person_id", how="left").join(wide_sources, on="person_id", how="left")
    columns = [pl.col("person_id"), pl.col("source_records")]
    for name in GOLDEN_FIELDS:
        for column in (name, f"{name}_source"):
            columns.append(pl.col(column) if column in out.columns else pl.lit(None, pl.String).alias(column))
    return out.select(columns).sort("person_id")


def _empty() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {"person_id": pl.String(), "source_records": pl.List(pl.String())}
    for name in GOLDEN_FIELDS:
        schema[name] = pl.String()
        schema[f"{name}_source"] = pl.String()
    return pl.DataFrame(schema=schema)
