"""The records the gold person tables are built from, for one person bucket.

Gold is partitioned by *person* bucket (CRC-32 of the person id), while silver is partitioned by
*source-patient* bucket: a person's records from several sources can sit in several silver buckets. A
person bucket therefore reads, from each silver table, only the silver buckets that hold its records, with
the patient-id predicate pushed into the Parquet scan (Polars decodes the key column first and the rest
only for matching rows), then joins exactly on (source, patient id). Every table is read once per bucket
and shared by all the gold builders (`table` caches it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from upath import UPath

from pipelines.buckets import bucket_of, patient_bucket_of
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.lake import parquet_files, read_table, scan_table, table_path
from pipelines.silver.build import SILVER

PERSON_BUCKET_SOURCE = "person"
"""The 'source' part of the key hashed for a person's bucket (keeps person and patient hashes apart)."""


def person_bucket_of(person_id: str, buckets: int) -> str:
    """The gold bucket of one person: stable for as long as the person id is."""
    return bucket_of(PERSON_BUCKET_SOURCE, person_id, buckets)


def with_person_buckets(frame: pl.DataFrame, buckets: int, column: str = "person_id") -> pl.DataFrame:
    """`frame` with a `bucket` column: the person bucket of `column` (CRC-32 on the unique ids only)."""
    ids = frame.select(pl.col(column).unique().drop_nulls())
    lookup = ids.with_columns(
        pl.Series("bucket", [person_bucket_of(p, buckets) for p in ids[column].to_list()], dtype=pl.String)
    )
    return frame.join(lookup, on=column, how="left", maintain_order="left")


READ_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    (SILVER, "device_reading"): ("reading_id", "source", "metric", "value", "effective_start", "plausible"),
}
"""Tables of which the person builders read only some columns (besides the keys that link a row to its
person): a device reading's provenance, original value and unit are most of its bytes, and a 100,000-person
bucket's readings held 0.45 GiB more in every worker with them. A builder that needs another column adds it
here (reading one that is not listed fails loudly: the column is absent)."""


@dataclass
class PersonRecords:
    """The persons of one gold bucket (or of everyone) and their source records, read on demand."""

    lake: UPath
    persons: pl.DataFrame  # identity/person rows
    links: pl.DataFrame  # person_id, source, patient_id
    bucket: str | None = None  # None: every person
    buckets: int = 1
    _tables: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, lake: UPath, bucket: str | None = None, buckets: int = 1) -> PersonRecords:
        """The persons of `bucket` (of `buckets` person buckets), or every person when `bucket` is None."""
        persons = read_table(lake, IDENTITY, PERSON)
        links = read_table(lake, IDENTITY, PERSON_LINK).select(
            "person_id", "source", pl.col("source_patient_id").alias("patient_id")
        )
        if bucket is not None:
            mine = with_person_buckets(persons.select("person_id"), buckets).filter(
                pl.col("bucket") == bucket
            )
            persons = persons.join(mine.select("person_id"), on="person_id", how="semi")
            links = links.join(mine.select("person_id"), on="person_id", how="semi")
        return cls(lake, persons.sort("person_id"), links, bucket, buckets)

    def table(self, name: str, layer: str = SILVER) -> pl.DataFrame:
        """Rows of a per-patient table that belong to these persons, with `person_id` added (an empty
        frame with only `person_id` when the table does not exist yet)."""
        key = (layer, name)
        if key not in self._tables:
            self._tables[key] = self._read(layer, name)
        return self._tables[key]

    def _patient_buckets(self) -> list[str]:
        """The silver buckets that hold these persons' source records."""
        pairs = self.links.select("source", "patient_id").unique()
        return sorted(
            {
                patient_bucket_of(s, p, self.buckets)
                for s, p in zip(pairs["source"], pairs["patient_id"], strict=True)
            }
        )

    def _read(self, layer: str, name: str) -> pl.DataFrame:
        files = parquet_files(table_path(self.lake, layer, name))
        if not files:
            return pl.DataFrame(schema={"person_id": pl.String})
        scan = scan_table(self.lake, layer, name)
        names = scan.collect_schema().names()
        id_column = "patient_id" if "patient_id" in names else "id"  # silver `patient` is keyed by its id
        source_column = "patient_source" if "patient_source" in names else "source"
        if self.bucket is not None:
            if "bucket" in names and "patient_bucket" not in names:  # hive bucket = source-patient bucket
                scan = scan.filter(pl.col("bucket").is_in(self._patient_buckets()))
            scan = scan.filter(pl.col(id_column).is_in(self.links["patient_id"].unique().implode()))
        wanted = READ_COLUMNS.get((layer, name))
        if wanted is not None:
            columns = dict.fromkeys(c for c in (source_column, id_column, *wanted) if c in names)
            scan = scan.select(list(columns))
        frame = scan.collect()
        if "bucket" in frame.columns:
            frame = frame.drop("bucket")
        if id_column == "id":
            frame = frame.rename({"id": "patient_id"})
        links = self.links if source_column == "source" else self.links.rename({"source": source_column})
        return frame.join(links, on=[source_column, "patient_id"], how="inner")
