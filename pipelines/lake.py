"""The Parquet lake: table locations, atomic writes and reads.

Layout (a contract, see ARCHITECTURE.md): `<lake>/<layer>/<table>/`, hive-partitioned by `bucket=` for
per-patient tables. Every file is written to a hidden temporary name first and renamed into place, so a
killed run never leaves a half-written Parquet file where a reader would pick it up. On object stores a
single PUT is already atomic, so the object is written directly. On local disk the lake holds patient
data, so its folders are created owner-only (0700) and its files written owner-only (0600).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.config import conf as fsspec_conf
from upath import UPath

PARQUET_GLOB = "**/*.parquet"
FILE_MODE, DIR_MODE = 0o600, 0o700

# s3fs and gcsfs keep every directory listing for the life of the process, and a recursive glob (as in
# `parquet_files`) leaves incomplete listings in that cache (fsspec/s3fs#879, #988): `exists()` then says
# False for stored files and a folder lists without some of its subfolders. Lake readers must see what
# is stored now, also when another process wrote it, so object stores list afresh (explicit fsspec
# configuration, e.g. FSSPEC_S3_USE_LISTINGS_CACHE, still wins).
for _protocol in ("s3", "gs"):
    fsspec_conf.setdefault(_protocol, {}).setdefault("use_listings_cache", False)


def make_dirs(folder: UPath) -> None:
    """Create `folder` and its missing parents; on local disk owner-only (folders that exist keep their
    mode: the lake's root may be shared on purpose)."""
    if not is_local(folder):
        folder.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    current = Path(folder.path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask


def table_path(lake: UPath, layer: str, table: str) -> UPath:
    """The folder of one lake table."""
    return lake / layer / table


def is_local(path: UPath) -> bool:
    """True for plain filesystem paths, where rename gives atomicity."""
    return path.protocol in ("", "file", "local")


def write_parquet_atomic(
    frame: pl.DataFrame | pa.Table, path: UPath, row_group_size: int | None = None
) -> None:
    """Write one Parquet file so that readers see either the old file, the new one, or none."""
    table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    make_dirs(path.parent)
    if is_local(path):
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, str(tmp), compression="zstd", row_group_size=row_group_size)
        os.chmod(str(tmp), FILE_MODE)
        os.replace(str(tmp), str(path))
        return
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=row_group_size)
    path.write_bytes(buffer.getvalue())


def write_bytes_atomic(data: bytes, path: UPath) -> None:
    """Write a small file (JSON, a model, a report) so that readers see the old content or the new."""
    make_dirs(path.parent)
    if is_local(path):
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        with os.fdopen(os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb") as handle:
            handle.write(data)
        os.replace(str(tmp), str(path))
        return
    path.write_bytes(data)  # object stores make a single PUT visible at once


def parquet_files(folder: UPath) -> list[UPath]:
    """Visible Parquet files under a table folder, sorted for deterministic reads."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.glob(PARQUET_GLOB) if not p.name.startswith((".", "_")))


def scan_table(lake: UPath, layer: str, table: str, schema: pa.Schema | None = None) -> pl.LazyFrame:
    """Lazily scan a lake table; an absent table scans as empty with `schema` (when given)."""
    files = parquet_files(table_path(lake, layer, table))
    if not files:
        if schema is None:
            return pl.LazyFrame()
        return pl.from_arrow(schema.empty_table()).lazy()  # type: ignore[union-attr]
    partitioned = any("bucket=" in f.parent.name for f in files)
    return scan_parquet(
        files,
        hive_partitioning=partitioned,
        hive_schema={"bucket": pl.String} if partitioned else None,
        missing_columns="insert",
    )


def scan_parquet(files: list[UPath], **options: Any) -> pl.LazyFrame:
    """`pl.scan_parquet` over lake files (not empty) with their paths' storage options."""
    return pl.scan_parquet([str(f) for f in files], storage_options=_storage_options(files[0]), **options)


def read_parquet(path: UPath, columns: list[str] | None = None) -> pl.DataFrame:
    """One Parquet file of the lake, read with its path's storage options as `scan_table` reads (a bare
    `pl.read_parquet(str(path))` ignores options configured on the path, such as an endpoint)."""
    return pl.read_parquet(str(path), columns=columns, storage_options=_storage_options(path))


def read_table(lake: UPath, layer: str, table: str, schema: pa.Schema | None = None) -> pl.DataFrame:
    """Read a whole lake table (small tables and tests; use `scan_table` for large ones)."""
    return scan_table(lake, layer, table, schema).collect()


def remove_files(paths: Iterable[UPath]) -> None:
    """Delete files (used when a partition is rebuilt); missing files are fine."""
    for p in paths:
        if p.exists():
            p.unlink()


def _storage_options(path: UPath) -> dict[str, str] | None:
    options = dict(getattr(path, "storage_options", {}) or {})
    return options or None


class AtomicParquetWriter:
    """Append row groups to a Parquet file that appears only when complete (`commit`).

    Local lakes write a hidden temporary file beside the target and rename it; object stores get the
    finished file in one upload. Memory holds one row group at a time, not the whole table.
    """

    def __init__(self, path: UPath, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        make_dirs(path.parent)
        if is_local(path):
            self._temp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
        else:
            import tempfile

            handle, self._temp = tempfile.mkstemp(suffix=".parquet")
            os.close(handle)
        self._writer = pq.ParquetWriter(self._temp, schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        """Append one batch (cast to the file's schema)."""
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema))

    def commit(self) -> None:
        """Close the file and put it in place."""
        self._writer.close()
        if is_local(self.path):
            os.chmod(self._temp, FILE_MODE)
            os.replace(self._temp, str(self.path))
        else:
            try:  # streamed (multipart for large files): the finished file need not fit in memory
                self.path.fs.put_file(self._temp, self.path.path)
            finally:
                os.unlink(self._temp)

    def abort(self) -> None:
        """Drop the partial file."""
        self._writer.close()
        if os.path.exists(self._temp):
            os.unlink(self._temp)
