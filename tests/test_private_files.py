"""Patient data on local disk is owner-only: every folder and file the pipeline makes in the lake and the
exports (a shared machine's other accounts read nothing)."""

from __future__ import annotations

import stat
from pathlib import Path

from upath import UPath

from pipelines.lake import make_dirs, write_bytes_atomic, write_parquet_atomic


def _open_to_others(root: Path) -> list[str]:
    """Paths under `root` (root included) that the group or others may read, write or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(stat.S_IMODE(path.stat().st_mode))}")
    return found


def test_lake_writes_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    import os

    import polars as pl

    before = os.umask(0o002)  # a permissive umask must not open the lake
    try:
        lake = tmp_path / "lake"
        write_parquet_atomic(
            pl.DataFrame({"a": [1]}), UPath(lake / "silver" / "t" / "bucket=00" / "data.parquet")
        )
        write_bytes_atomic(b"{}", UPath(lake / "meta" / "state.json"))
        make_dirs(UPath(lake / "gold" / "x"))
    finally:
        os.umask(before)
    assert _open_to_others(lake) == []


def test_the_pipelines_lake_and_exports_are_owner_only(dashboard_lake: tuple[Path, Path]) -> None:
    lake, exports = dashboard_lake
    assert _open_to_others(lake) == []
    assert _open_to_others(exports) == []
