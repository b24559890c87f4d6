"""Which landing files a run need not read again: the quick check of size and modification time.

A file's ingest key is the SHA-256 of its content, so telling whether a landing file is new means reading
and hashing it; on a landing folder of 100,000 people (7.4 GB) that alone cost an incremental run of a
1 % delivery 33 s. Like rsync's quick check, a file whose size and modification time (nanoseconds) are
those recorded when it was last read, under the same path, is taken to hold the same content and is not
read again, provided bronze still holds its ingest key (a batch that `repair_bronze` took out, or a lake
rebuilt from scratch, sends its files back to the readers). A file changed in place keeps neither its
modification time nor, almost always, its size; one rewritten with both forged to their old values would
be missed, which is why the index records only what a reader saw and never replaces the content hash.

The index lives in `<lake>/bronze/_landing_index.parquet`: one row per landing file seen by the last ingest
(read, or skipped because its content was already in bronze), rewritten whole and atomically at the end
of each ingest, after bronze's last batch is committed. It sits with bronze, not with the run records in
`meta/`: file paths name vendor user folders (device identifiers), which only the data layers may hold,
as the ingest log already does; the leading underscore keeps it out of bronze's tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import polars as pl
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.lake import read_parquet, write_parquet_atomic

INDEX_FILE = ("bronze", "_landing_index.parquet")
INDEX_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "file": pl.String(),  # POSIX path relative to the landing root
    "file_bytes": pl.Int64(),
    "modified_ns": pl.Int64(),
    "ingest_key": pl.String(),
}


@dataclass(frozen=True)
class Seen:
    """What a landing file looked like when it was read: size, modification time, ingest key."""

    file_bytes: int
    modified_ns: int
    ingest_key: str


def look(landing_file: d.LandingFile) -> tuple[int, int]:
    """The size and modification time (ns) of a landing file, taken before it is read: a file rewritten
    while a reader has it then differs from what is recorded, and is read again next time."""
    stat = os.stat(str(landing_file.path))
    return stat.st_size, stat.st_mtime_ns


@dataclass
class LandingIndex:
    """The files the last ingest saw, and those this ingest sees (written at its end)."""

    lake: UPath
    previous: dict[tuple[str, str], Seen] = field(default_factory=dict)
    current: dict[tuple[str, str], Seen] = field(default_factory=dict)

    @classmethod
    def load(cls, lake: UPath) -> LandingIndex:
        """The index of `lake` (empty when there is none or it cannot be read: every file is read)."""
        path = lake.joinpath(*INDEX_FILE)
        if not path.exists():
            return cls(lake)
        try:
            frame = read_parquet(path, columns=list(INDEX_SCHEMA))
        except Exception:  # a damaged index only costs reading the files again
            return cls(lake)
        previous = {
            (source, file): Seen(size, modified, key)
            for source, file, size, modified, key in frame.iter_rows()
            if None not in (source, file, size, modified, key)
        }
        return cls(lake, previous)

    def unchanged(
        self, landing_file: d.LandingFile, looked: tuple[int, int], ingested: set[str] | frozenset[str]
    ) -> bool:
        """Whether the file is the one read before (same path, size and modification time) and its
        content is still in bronze (`ingested`: the ingest log's keys); if so it is seen again as it was."""
        seen = self.previous.get((landing_file.source, landing_file.relative))
        if seen is None or (seen.file_bytes, seen.modified_ns) != looked or seen.ingest_key not in ingested:
            return False
        self.current[(landing_file.source, landing_file.relative)] = seen
        return True

    def saw(self, landing_file: d.LandingFile, looked: tuple[int, int], ingest_key: str) -> None:
        """Record a file read by this ingest, as it looked before it was read."""
        self.current[(landing_file.source, landing_file.relative)] = Seen(*looked, ingest_key)

    def write(self) -> None:
        """Replace the lake's index with the files this ingest saw (call once bronze is committed)."""
        rows = [
            (source, file, seen.file_bytes, seen.modified_ns, seen.ingest_key)
            for (source, file), seen in self.current.items()
        ]
        frame = pl.DataFrame(rows, schema=INDEX_SCHEMA, orient="row").sort("source", "file")
        write_parquet_atomic(frame, self.lake.joinpath(*INDEX_FILE))
