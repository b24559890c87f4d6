"""A small generated lake for the dashboard's tests (AppTest and the real browser): the whole pipeline on a
few hundred synthetic people, outreach runs included, with marker words planted in some patients' own texts
so that a test can tell whether a page shows what patients wrote."""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
from google.protobuf.message import Message
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from upath import UPath

from pipelines.config import Settings
from pipelines.generate.landing import generate_landing
from pipelines.run import run_pipeline

DEMO_PEOPLE = 300
DEMO_SEED = 11
DEMO_AS_OF = date(2026, 6, 30)
DEMO_BUCKETS = 2
PERSONAL_MARKERS = ("Quillfeatherby", "Zembrowskaya", "Vorlauffen", "Prindlewick")
"""Invented names, each written by one patient only, in every text of theirs (a patient who names the same
neighbour or carer in every complaint): a term that identifies its writer."""
GROUP_MARKER = "Ostmarrowvale"
"""An invented place that GROUP_WRITERS patients (fewer than the analyst's minimum of persons) write about."""
GROUP_WRITERS = 3
TEXT_MARKERS = (*PERSONAL_MARKERS, GROUP_MARKER)


@contextmanager
def _environment(**values: str):
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo_lake(
    root: Path, people: int = DEMO_PEOPLE, dagster_home: str = "", workers: int = 1
) -> tuple[Path, Path]:
    """Generate `people` under `root/landing`, run every asset into `root/lake` and `root/exports`; return
    (lake, exports). The Dagster instance is ephemeral unless `dagster_home` names one; `workers` processes
    run the buckets of each job. Fails when the run does."""
    landing, lake, exports = root / "landing", root / "lake", root / "exports"
    generate_landing(landing, people, seed=DEMO_SEED, as_of=DEMO_AS_OF)
    plant_text_markers(landing)
    labels = root / "ground_truth" / "conversation_turns.csv"
    settings = Settings(UPath(landing), UPath(lake), UPath(exports), DEMO_BUCKETS, DEMO_AS_OF)
    with _environment(PATIENT_INSIGHTS_SENTIMENT_LABELS=str(labels), DAGSTER_HOME=dagster_home):
        run = run_pipeline(settings, workers=workers)
    if not run.success:
        raise RuntimeError(f"the demo pipeline run failed: {run.failed_checks}")
    return lake, exports


_TEXT_FILES = (
    "service_center/conversations.000.ndjson",
    "ehr_a/QuestionnaireResponse.000.ndjson",
    "ehr_a/Communication.000.ndjson",
)


def _patient_texts(record: dict) -> list[tuple[str, dict, str]]:
    """(patient reference, the dict holding a text the patient wrote, its key) of one landing record: a
    conversation's patient turns, a survey's comment, a message a patient sent."""
    if "turns" in record:
        reference = record.get("patient_reference") or ""
        return [(reference, t, "text") for t in record["turns"] if t.get("speaker") == "patient"]
    if record.get("resourceType") == "QuestionnaireResponse":
        reference = (record.get("subject") or {}).get("reference") or ""
        return [
            (reference, answer, "valueString")
            for item in record.get("item", [])
            if item.get("linkId") == "comment"
            for answer in item.get("answer", [])
            if "valueString" in answer
        ]
    if record.get("resourceType") == "Communication":
        reference = (record.get("sender") or {}).get("reference") or ""
        if not reference.startswith("Patient/"):
            return []
        return [(reference, p, "contentString") for p in record.get("payload", []) if "contentString" in p]
    return []


def plant_text_markers(landing: Path) -> dict[str, list[str]]:
    """Write the TEXT_MARKERS into the generated texts of the patients who wrote the most: each personal
    marker signs every text of one patient, the group marker is named in every text of GROUP_WRITERS others.
    Returns marker -> the patient references that wrote it. Deterministic for a given landing."""
    files = {
        name: (landing / name).read_bytes().splitlines() for name in _TEXT_FILES if (landing / name).exists()
    }
    records = {name: [orjson.loads(line) for line in lines if line.strip()] for name, lines in files.items()}
    written = Counter(ref for rows in records.values() for r in rows for ref, _, _ in _patient_texts(r))
    writers = [ref for ref, _ in sorted(written.items(), key=lambda item: (-item[1], item[0])) if ref]
    chosen = {ref: marker for ref, marker in zip(writers, PERSONAL_MARKERS, strict=False)}
    group = writers[len(PERSONAL_MARKERS) : len(PERSONAL_MARKERS) + GROUP_WRITERS]
    chosen |= {ref: GROUP_MARKER for ref in group}
    for name, rows in records.items():
        for record in rows:
            for ref, holder, key in _patient_texts(record):
                marker = chosen.get(ref)
                if marker == GROUP_MARKER:
                    holder[key] = f"{holder[key]} Nobody in {marker} ever gets a call back."
                elif marker:
                    holder[key] = f"{holder[key]} {marker} was rude to me again."
        (landing / name).write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    planted: dict[str, list[str]] = {}
    for ref, marker in sorted(chosen.items()):
        planted.setdefault(marker, []).append(ref)
    return planted


# What a page sends to the browser, for the masking tests: every string and every table, chart dataset and
# download of the page's element tree, read from the protobuf messages Streamlit would send (so a new kind
# of element is covered without the test knowing it).


def _arrow_text(payload: bytes) -> str | None:
    try:
        table = pa.ipc.open_stream(payload).read_all()
    except (pa.ArrowInvalid, OSError):
        return None
    return orjson.dumps(table.to_pylist(), default=str).decode()


def _bytes_text(payload: bytes) -> str:
    if payload[:4] == b"PAR1":  # a Parquet download
        return orjson.dumps(pl.read_parquet(io.BytesIO(payload)).to_dicts(), default=str).decode()
    arrow = _arrow_text(payload)
    return arrow if arrow is not None else payload.decode("utf-8", errors="replace")


def _proto_texts(message: Message, out: list[str]) -> None:
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            values = [*value.keys(), *value.values()]  # a map field
        for item in values:
            if isinstance(item, Message):
                _proto_texts(item, out)
            elif isinstance(item, bytes):
                out.append(_bytes_text(item))
            elif isinstance(item, str):
                out.append(item)


@contextmanager
def captured_downloads() -> Iterator[list[bytes]]:
    """Every payload handed to Streamlit's media storage while the block runs (the data of download
    buttons, images): AppTest keeps only their URLs in the page."""
    payloads: list[bytes] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self: MemoryMediaFileStorage, path_or_data: str | bytes, *args: object, **kwargs: object) -> str:
        payloads.append(path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes())
        return original(self, path_or_data, *args, **kwargs)

    MemoryMediaFileStorage.load_and_get_id = keep  # type: ignore[method-assign]
    try:
        yield payloads
    finally:
        MemoryMediaFileStorage.load_and_get_id = original  # type: ignore[method-assign]


def page_output(app: AppTest, downloads: list[bytes] = ()) -> str:
    """Everything the page as rendered shows or sends: the strings of every element and container (text,
    labels, help, options, JSON), every table's and chart dataset's cells, and the `downloads` data."""
    out: list[str] = []
    pending: list[object] = [app._tree]
    while pending:
        node = pending.pop()
        proto = getattr(node, "proto", None)
        if isinstance(proto, Message):
            _proto_texts(proto, out)
        pending.extend(getattr(node, "children", {}).values())
    out.extend(_bytes_text(p) for p in downloads)
    return "\n".join(out)


# The identifying values of the test lake (the needles a de-identified page must not show), by kind.
MIN_NEEDLE_CHARS = 4
"""Shorter values (initials, two- or three-letter names, state codes) are words of every page."""
_NEEDLE_COLUMNS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "person id": (
        ("identity", "person", ("person_id",)),
        ("identity", "person_link", ("person_id", "source_patient_id")),
        ("silver", "patient", ("id",)),
    ),
    "identifier": (("silver", "patient_identifier", ("value",)),),
    "name": (
        ("identity", "person", ("given", "family")),
        ("silver", "patient_name", ("given", "family", "text")),
        ("silver", "patient_contact", ("given", "family")),
    ),
    "contact": (
        ("identity", "person", ("phone", "email", "address_line")),
        ("silver", "patient", ("address_line",)),
        ("silver", "patient_telecom", ("value",)),
        ("silver", "patient_contact", ("phone", "email", "address_line")),
    ),
    "birth date": (("identity", "person", ("birth_date",)), ("silver", "patient", ("birth_date",))),
    "vendor user id": (
        ("silver", "device_reading", ("vendor_user_id",)),
        ("bronze", "device_records", ("patient_key",)),
    ),
    "device id": (("silver", "device_reading", ("device_id",)),),
    "record id": (
        ("gold", "sentiment_conversation", ("conversation_id",)),
        ("gold", "discharge_risk", ("encounter_id",)),
    ),
}  # fmt: skip


def identifying_values(lake: Path, landing: Path) -> dict[str, set[str]]:
    """Every identifying value of the lake and its landing, by kind: person ids and source patient ids,
    identifiers (MRN, SSN, … and their system|value), names, phones, e-mails and address lines, full birth
    dates, vendor user ids (device folders of the landing, the device readings' user ids and patient keys),
    device ids, conversation and message ids, and the TEXT_MARKERS planted in patients' texts (checked to be
    in the lake, so that the free-text needles cannot silently be missing)."""
    found: dict[str, set[str]] = {}
    for kind, tables in _NEEDLE_COLUMNS.items():
        values: set[str] = set()
        for layer, table, columns in tables:
            frame = pl.read_parquet(lake / layer / table / "**" / "*.parquet", columns=list(columns))
            for column in columns:
                values |= set(frame[column].drop_nulls().cast(pl.String).to_list())
        found[kind] = values
    identifiers = pl.read_parquet(lake / "silver" / "patient_identifier" / "**" / "*.parquet")
    found["identifier"] |= set(
        identifiers.drop_nulls(["system", "value"]).select(pl.format("{}|{}", "system", "value"))[:, 0]
    )
    messages = pl.read_parquet(lake / "gold" / "sentiment_message" / "**" / "*.parquet")
    found["record id"] |= {m.split("/")[1] for m in messages["message_id"].drop_nulls().to_list()}
    for source in landing.iterdir():
        if source.is_dir() and source.name.startswith("devices_"):  # <source>/<vendor user>/<file>
            found["vendor user id"] |= {p.name for p in source.iterdir() if p.is_dir()}
    text = "\n".join(messages["text"].drop_nulls().to_list())
    missing = [m for m in TEXT_MARKERS if m not in text]
    if missing:
        raise AssertionError(f"planted markers missing from the lake's texts: {missing}")
    found["free text"] = set(TEXT_MARKERS)
    found["birth date"] -= _reporting_days(lake)
    return {kind: {v for v in values if len(v) >= MIN_NEEDLE_CHARS} for kind, values in found.items()}


_REPORTING_DAYS = (
    ("gold", "sentiment_department_weekly", "week"),
    ("gold", "sentiment_agent_weekly", "week"),
    ("gold", "survey_scores", "week"),
    ("gold", "care_gap_rates", "period_start"),
    ("gold", "care_gap_rates", "period_end"),
    ("gold", "patient_360", "as_of"),
)


def _reporting_days(lake: Path) -> set[str]:
    """The days the pages show as reporting weeks or periods (kept for analysts): a birth date that happens
    to be one of them cannot be told apart from it on a page, so it is no needle."""
    days: set[str] = set()
    for layer, table, column in _REPORTING_DAYS:
        frame = pl.read_parquet(lake / layer / table / "**" / "*.parquet", columns=[column])
        days |= set(frame[column].drop_nulls().cast(pl.String).to_list())
    return days


_TOKEN = re.compile(r"[\w@.+-]+")


def shown_values(output: str, needles: dict[str, set[str]]) -> dict[str, set[str]]:
    """The needles `output` contains, by kind, in any case (a name lower-cased into a theme term counts): a
    needle made of one token (an id, an e-mail, a word) must appear as a whole token, a longer one (a phone
    with spaces, an address line, system|value) as a substring."""
    text = output.lower()
    tokens = {t.strip(".+-") for t in _TOKEN.findall(text)}
    hits: dict[str, set[str]] = {}
    for kind, values in needles.items():
        for value in values:
            needle = value.lower()
            parts = [t.strip(".+-") for t in _TOKEN.findall(needle)]
            if len(parts) == 1 and parts[0] == needle:
                hit = needle in tokens
            else:  # every token present first (cheap), then the whole value
                hit = all(p in tokens for p in parts if p) and needle in text
            if hit:
                hits.setdefault(kind, set()).add(value)
    return hits
