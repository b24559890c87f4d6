"""The ground truth written next to (never inside) the landing folder.

- ``identity.csv``: source, source_patient_id, person_index for every Patient in ehr_a and ehr_b.
- ``defects.csv``: source, file, line, entry, defect, expected_reason for every injected defect.
- ``summary.json``: parameters, totals, records per landing file, unlisted files, deleted ids and
  duplicate versions.

Everything is streamed: lists that grow with the number of patients (per-bundle record counts,
deleted ids, duplicate versions) are spooled to temporary files and stitched into summary.json at the
end, so memory stays bounded at any scale.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

import orjson

TURN_HEADER = ("conversation_id", "turn", "text", "label", "kind")
RISK_HEADER = ("person_index", "ed_rate", "ip_rate", "readmit_p")
IDENTITY_HEADER = ("source", "source_patient_id", "person_index")
DEFECTS_HEADER = ("source", "file", "line", "entry", "defect", "expected_reason")


class Truth:
    """Streams the ground-truth files of one generation run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._identity_fh = open(folder / "identity.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._identity = csv.writer(self._identity_fh, lineterminator="\n")
        self._identity.writerow(IDENTITY_HEADER)
        self._defects_fh = open(folder / "defects.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._defects = csv.writer(self._defects_fh, lineterminator="\n")
        self._defects.writerow(DEFECTS_HEADER)
        self._risk_fh = open(folder / "risk.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._risk = csv.writer(self._risk_fh, lineterminator="\n")
        self._risk.writerow(RISK_HEADER)
        self._turns_fh = open(folder / "conversation_turns.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._turns = csv.writer(self._turns_fh, lineterminator="\n")
        self._turns.writerow(TURN_HEADER)
        self._spools: dict[str, IO[bytes]] = {
            name: open(folder / f".{name}.spool", "wb", buffering=1 << 16)  # noqa: SIM115
            for name in ("files", "deleted", "duplicates")
        }
        self._spooled = {name: 0 for name in self._spools}
        self.defects_by_reason: dict[str, int] = {}
        self.patients_per_source: dict[str, int] = {}

    def identity(self, source: str, patient_id: str, person_index: int) -> None:
        """One Patient of `source` and the person it belongs to."""
        self._identity.writerow((source, patient_id, person_index))
        self.patients_per_source[source] = self.patients_per_source.get(source, 0) + 1

    def risk(self, person_index: int, ed_rate: float, ip_rate: float, readmit_p: float) -> None:
        """The latent acute-care rates the person's history was drawn from (per year; the chance of a
        30-day readmission after a stay): the known signal a risk model can at best recover."""
        self._risk.writerow((person_index, f"{ed_rate:.6f}", f"{ip_rate:.6f}", f"{readmit_p:.6f}"))

    def turn_polarity(self, conversation_id: str, turn: int, text: str, polarity: str) -> None:
        """The sentiment a patient turn was written with (its text pool's mood or closing polarity). The
        file doubles as a hand-labelled file for the sentiment model (`text`, `label`, `kind`)."""
        self._turns.writerow((conversation_id, turn, text, polarity, "conversation_turn"))

    def defect(
        self, source: str, file: str, line: int | None, entry: int | None, defect: str, reason: str
    ) -> None:
        """One injected defect (`line` for line-based files, `entry` for bundles)."""
        self._defects.writerow(
            (source, file, "" if line is None else line, "" if entry is None else entry, defect, reason)
        )
        self.defects_by_reason[reason] = self.defects_by_reason.get(reason, 0) + 1

    def file_records(self, rel: str, records: int) -> None:
        """Records written to one per-patient file (a bundle, an iHealth payload)."""
        self._spool("files", b"    " + orjson.dumps(rel) + b": " + str(records).encode())

    def deleted(self, rtype: str, rid: str) -> None:
        """A resource listed in EHR A's deleted Bundles."""
        self._spool("deleted", b"    " + orjson.dumps({"type": rtype, "id": rid}))

    def duplicate(self, rtype: str, rid: str, versions: list[str]) -> None:
        """A resource exported in several versions (the newest must win)."""
        self._spool("duplicates", b"    " + orjson.dumps({"type": rtype, "id": rid, "versions": versions}))

    def _spool(self, name: str, fragment: bytes) -> None:
        fh = self._spools[name]
        if self._spooled[name]:
            fh.write(b",\n")
        fh.write(fragment)
        self._spooled[name] += 1

    def finish(self, head: dict[str, Any], files: dict[str, int], unlisted: list[str]) -> None:
        """Close the CSVs and write summary.json: `head` fields, then files (`files` before the spooled
        per-patient files), unlisted_files, deleted_ids and duplicate_versions."""
        self._identity_fh.close()
        self._defects_fh.close()
        self._risk_fh.close()
        self._turns_fh.close()
        for fh in self._spools.values():
            fh.close()
        head = {
            **head,
            "patients_per_source": dict(sorted(self.patients_per_source.items())),
            "defects_by_reason": dict(sorted(self.defects_by_reason.items())),
        }
        with open(self.folder / "summary.json", "wb") as out:
            out.write(orjson.dumps(head, option=orjson.OPT_INDENT_2)[:-2])
            out.write(b',\n  "files": {\n')
            first = True
            for rel, n in files.items():
                out.write((b"" if first else b",\n") + b"    " + orjson.dumps(rel) + b": " + str(n).encode())
                first = False
            self._append_spool(out, "files", first)
            out.write(b'\n  },\n  "unlisted_files": ' + orjson.dumps(unlisted))
            for key, name in (("deleted_ids", "deleted"), ("duplicate_versions", "duplicates")):
                if not self._spooled[name]:
                    out.write(b',\n  "' + key.encode() + b'": []')
                    continue
                out.write(b',\n  "' + key.encode() + b'": [\n')
                self._append_spool(out, name, True)
                out.write(b"\n  ]")
            out.write(b"\n}\n")
        for name in self._spools:
            (self.folder / f".{name}.spool").unlink()

    def _append_spool(self, out: IO[bytes], name: str, first: bool) -> None:
        if not self._spooled[name]:
            return
        if not first:
            out.write(b",\n")
        with open(self.folder / f".{name}.spool", "rb") as fh:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
