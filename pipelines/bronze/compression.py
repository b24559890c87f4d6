"""Compressed landing files (`*.ndjson.gz`, `*.json.gz`, `*.csv.gz`): bounded, streaming gzip decompression.

A `.gz` file is read like the file it holds; its ingest key stays the SHA-256 of the bytes as delivered.
Decompression streams in chunks and stops as soon as the output passes a limit, so a decompression bomb
(a few kilobytes that inflate to terabytes) costs at most one chunk beyond the limit, never the memory it
asks for. The limits come from the environment:

- `PATIENT_INSIGHTS_MAX_DECOMPRESSED_BYTES` (default 4 GiB): the most one file may inflate to;
- `PATIENT_INSIGHTS_MAX_DECOMPRESSION_RATIO` (default 200): the most output per delivered byte, checked only
  once the output passes `PATIENT_INSIGHTS_DECOMPRESSION_RATIO_FLOOR` bytes (default 64 MiB), since small,
  repetitive files legitimately compress very well.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO

GZIP_SUFFIX = ".gz"
CHUNK_BYTES = 1 << 20
DEFAULT_MAX_BYTES = 4 << 30
DEFAULT_MAX_RATIO = 200
DEFAULT_RATIO_FLOOR = 64 << 20

LIMIT_EXCEEDED = "decompression_limit"
INVALID_COMPRESSION = "invalid_compression"


@dataclass(frozen=True)
class DecompressionLimits:
    """How far one compressed file may inflate (see the module docstring)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO
    ratio_floor: int = DEFAULT_RATIO_FLOOR

    @classmethod
    def from_env(cls) -> DecompressionLimits:
        """The limits set by `PATIENT_INSIGHTS_*` variables, else the defaults."""
        return cls(
            max_bytes=int(_positive("PATIENT_INSIGHTS_MAX_DECOMPRESSED_BYTES", DEFAULT_MAX_BYTES, int)),
            max_ratio=_positive("PATIENT_INSIGHTS_MAX_DECOMPRESSION_RATIO", DEFAULT_MAX_RATIO, float),
            ratio_floor=int(
                _positive("PATIENT_INSIGHTS_DECOMPRESSION_RATIO_FLOOR", DEFAULT_RATIO_FLOOR, int)
            ),
        )


def _positive(name: str, default: float, kind: type[int] | type[float]) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a positive number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {text!r}")
    return value


class DecompressionRefused(ValueError):
    """A compressed file that is not read: corrupt, truncated, or inflating past the limits.

    `code` is the quarantine reason code; the message names sizes and limits, never content.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def compression_of(name: str) -> str | None:
    """'gzip' for a file name ending in .gz, else None."""
    return "gzip" if name.lower().endswith(GZIP_SUFFIX) else None


def content_name(name: str) -> str:
    """The name of the file a compressed file holds (`Patient.000.ndjson.gz` → `Patient.000.ndjson`)."""
    return name[: -len(GZIP_SUFFIX)] if compression_of(name) else name


def gunzip(data: bytes, limits: DecompressionLimits | None = None) -> bytes:
    """The decompressed content of gzip `data` (one or more members), within `limits`.

    Raises `DecompressionRefused` with code `decompression_limit` when the output passes the limits and
    `invalid_compression` when the stream is not gzip, is corrupt or ends early.
    """
    limits = limits or DecompressionLimits.from_env()
    chunks: list[bytes] = []
    total = 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                total += len(chunk)
                check_inflation(total, len(data), limits)
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DecompressionRefused(
            INVALID_COMPRESSION, f"the file is not a complete gzip stream ({type(err).__name__})"
        ) from None
    return b"".join(chunks)


def check_inflation(total: int, delivered: int, limits: DecompressionLimits) -> None:
    """Raise `DecompressionRefused` (`decompression_limit`) when `total` bytes inflated from `delivered`
    bytes pass the limits (gzip files here; the export member of an Apple Health zip)."""
    if total > limits.max_bytes:
        raise DecompressionRefused(
            LIMIT_EXCEEDED,
            f"the file inflates past the limit of {limits.max_bytes} bytes "
            f"({delivered} bytes delivered; PATIENT_INSIGHTS_MAX_DECOMPRESSED_BYTES)",
        )
    if total > limits.ratio_floor and total > limits.max_ratio * max(delivered, 1):
        raise DecompressionRefused(
            LIMIT_EXCEEDED,
            f"the file inflates more than {limits.max_ratio:g} times its {delivered} delivered bytes "
            "(PATIENT_INSIGHTS_MAX_DECOMPRESSION_RATIO)",
        )


def read_head(handle: BinaryIO, name: str, size: int) -> bytes:
    """The first `size` bytes of a file's content (decompressed for .gz; b"" when that fails)."""
    if compression_of(name) is None:
        return handle.read(size)
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            return stream.read(size)  # bounded: a bomb costs at most `size` bytes here
    except (OSError, EOFError, zlib.error):
        return b""  # a corrupt file is refused when it is read, with its reason
