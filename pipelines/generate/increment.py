"""A next day's delivery for a generated landing folder: EHR A's incremental Bulk export.

Written beside the first export in the same source folder, as an EHR's `_since` export lands::

    <landing>/ehr_a/manifest.<day>.json          transactionTime <day>T23:00:00Z
    <landing>/ehr_a/<day>/<Type>.000.ndjson      changed and new resources
    <landing>/ehr_a/<day>/deleted/Bundle.000.ndjson

A `share` of the first export's patient resources is drawn (a fixed seed: the same folder and seed give the
same increment); each drawn resource is changed (a new version: versionId + 1, lastUpdated on <day>, an
Observation's value moved), copied into a new resource of <day> (a new id; an Observation measured on
<day>), or deleted. Patients are only changed, never copied or deleted; practitioners and organizations
are left alone unless `include_shared`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import orjson

SOURCE = "ehr_a"
SHARED_TYPES = ("Practitioner", "Organization")
CHANGED, NEW, DELETED = "changed", "new", "deleted"


@dataclass
class IncrementSummary:
    """What the increment holds, per action (resource counts)."""

    manifest: Path
    transaction_time: str
    actions: dict[str, int] = field(default_factory=lambda: {CHANGED: 0, NEW: 0, DELETED: 0})

    @property
    def resources(self) -> int:
        """Every resource the increment changes, adds or deletes."""
        return sum(self.actions.values())


def write_increment(
    landing: Path,
    day: date,
    share: float = 0.01,
    seed: int = 0,
    limit: int | None = None,
    include_shared: bool = False,
) -> IncrementSummary:
    """Write EHR A's export of `day` into `landing` (see the module docstring) and return its counts;
    `limit` caps the number of resources drawn (a small, local change)."""
    source = landing / SOURCE
    base = orjson.loads((source / "manifest.json").read_bytes())
    if base["transactionTime"][:10] >= day.isoformat():
        raise ValueError(
            f"the increment's day must follow the first export's ({base['transactionTime'][:10]})"
        )
    rng = random.Random(f"{seed}:{day.isoformat()}")
    folder = source / day.isoformat()
    stamp = f"{day.isoformat()}T12:00:00Z"
    summary = IncrementSummary(source / f"manifest.{day.isoformat()}.json", f"{day.isoformat()}T23:00:00Z")
    outputs: dict[str, list[bytes]] = {}
    deletes: list[bytes] = []
    drawn = 0
    for item in base["output"]:
        kind = item["type"]
        if kind in SHARED_TYPES and not include_shared:
            continue
        with (source / item["url"]).open("rb") as lines:
            for line in lines:
                if rng.random() >= share or (limit is not None and drawn >= limit):
                    continue
                try:
                    resource = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # one of the first export's deliberate defects: no resource to change
                if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
                    continue
                drawn += 1
                action = (
                    CHANGED if kind == "Patient" else rng.choices((CHANGED, NEW, DELETED), (50, 35, 15))[0]
                )
                summary.actions[action] += 1
                if action == DELETED:
                    deletes.append(_delete_bundle(kind, resource["id"], stamp, rng))
                    continue
                changed = _changed(resource, stamp) if action == CHANGED else _new(resource, day, stamp)
                outputs.setdefault(kind, []).append(orjson.dumps(changed))
    manifest = {
        "transactionTime": summary.transaction_time,
        "request": f"{base['request']}?_since={base['transactionTime']}",
        "requiresAccessToken": False,
        "output": [],
        "deleted": [],
        "error": [],
    }
    for kind, rows in sorted(outputs.items()):
        url = f"{day.isoformat()}/{kind}.000.ndjson"
        _write(source / url, rows)
        manifest["output"].append({"type": kind, "url": url, "count": len(rows)})
    if deletes:
        url = f"{day.isoformat()}/deleted/Bundle.000.ndjson"
        _write(source / url, deletes)
        manifest["deleted"].append({"type": "Bundle", "url": url, "count": len(deletes)})
    folder.mkdir(parents=True, exist_ok=True)
    _write(
        summary.manifest, [orjson.dumps(manifest, option=orjson.OPT_INDENT_2)]
    )  # last: the export is whole
    return summary


def _changed(resource: dict, stamp: str) -> dict:
    """A new version of `resource`, last updated at `stamp`."""
    meta = resource.get("meta") or {}
    version = str(meta.get("versionId", "1"))
    resource["meta"] = {
        **meta,
        "versionId": str(int(version) + 1) if version.isdigit() else "2",
        "lastUpdated": stamp,
    }
    quantity = resource.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        quantity["value"] = round(quantity["value"] * 1.05 + 1, 2)
    return resource


def _new(resource: dict, day: date, stamp: str) -> dict:
    """A new resource of `day` made from `resource`: its own id, version 1, an Observation taken that day."""
    resource["id"] = f"{resource['id']}-{day:%Y%m%d}"
    resource["meta"] = {**(resource.get("meta") or {}), "versionId": "1", "lastUpdated": stamp}
    if "effectiveDateTime" in resource:
        resource["effectiveDateTime"] = f"{day.isoformat()}T09:00:00-04:00"
    return resource


def _delete_bundle(kind: str, resource_id: str, stamp: str, rng: random.Random) -> bytes:
    bundle = {
        "resourceType": "Bundle",
        "id": f"{rng.getrandbits(128):032x}",
        "meta": {"versionId": "1", "lastUpdated": stamp},
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"{kind}/{resource_id}"}}],
    }
    return orjson.dumps(bundle)


def _write(path: Path, lines: list[bytes]) -> None:
    """Write through a temporary name and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(b"".join(line + b"\n" for line in lines))
    os.replace(partial, path)
