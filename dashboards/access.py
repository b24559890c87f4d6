"""Who sees what. Two roles: `care_manager` sees identifiable data (their job needs it); `analyst` sees a
de-identified view - names, contact details, identifiers, record ids and free text removed, exact dates cut
to the month (birth dates to the year), person ids replaced by a keyed hash that stays stable within a
deployment so that drill-downs still line up, file paths reduced to what names no person (`mask_path`), and
terms derived from patients' texts limited to those that identify nobody (`shareable_terms`).

Masking is by column name and type (and, for text that holds dates, by value shape), applied to every frame
before it is shown (`dashboards/ui.py` tables, `dashboards/charts.py` charts), so a new column is masked by
its kind without a page having to remember it. Unknown id columns are dropped: an id is shown only when it
is known not to point at a person or a person's record (`_SHARED_IDS`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass

import polars as pl

from pipelines.fhir.resource_types import R4_RESOURCE_TYPES

CARE_MANAGER, ANALYST = "care_manager", "analyst"
ROLES = (CARE_MANAGER, ANALYST)
ROLE_ENV = "PATIENT_INSIGHTS_DASHBOARD_ROLE"
PSEUDONYM_KEY_ENV = "PATIENT_INSIGHTS_DASHBOARD_PSEUDONYM_KEY"
DEFAULT_LOCAL_ROLE = ANALYST  # least privilege unless configured otherwise

_IDENTIFYING = {
    "given",
    "family",
    "name",
    "recipient_name",
    "contact",
    "phone",
    "preferred_phone",
    "email",
    "address_line",
    "address_city",
    "address_postal_code",
    "identifiers",
    "source_identifiers",
    "source_records",
    "patient_id",
    "source_patient_id",
    "text",
    "snippets",
    "record",
    "evidence_record",
    "reading_ids",
    "conversation_id",
    "message_id",
    "event_id",
    "vendor_user_id",
    "device_id",
    "ssn",
    "phones",
    "postal_code",
    "suffix",  # Jr., Sr., III: part of a name
    "review_note",  # a reviewer's free text about two patients' records
    "decided_by",  # a reviewer's name
}
"""Removed for analysts (the `guardian_*` columns, anything ending in `_name` or `_phone`, and every id
column not in `_SHARED_IDS` too). A column of a record pair (`given_l`, `ssn_r`: identity's clerical review)
is judged by its name without the side (`_PAIR_SIDES`)."""
_PAIR_SIDES = ("_l", "_r")
"""Suffixes of the left and right record of a pair: `birth_date_l` is a birth date, `unique_id_r` an id."""
_SHARED_IDS = {
    "measure_id",
    "segment_id",
    "campaign_id",
    "run_id",
    "ingest_run_id",
    "previous_run",
    "gap_ids",  # measure and year (FLU-2026)
    "agent_id",  # a service-center agent, not a patient
    "pcp_practitioner_id",  # a clinician, not a patient
}
"""Id columns an analyst sees: they name a measure, segment, campaign, run or staff member, never a person
or a person's record. Any other `id` / `*_id` / `*_ids` column is removed (fail closed)."""
_PSEUDONYMIZED = {"person_id"}
_YEAR_ONLY = {"birth_date"}
_KEEP_DATES = {"week", "as_of", "period_start", "period_end", "snapshot_on", "transaction_time"}
"""Dates that describe a reporting period or an export run, not a person's event: kept for analysts."""
TEXT_DERIVED = {"terms"}
"""Lists of terms taken from patients' own words (sentiment themes): an analyst sees only the shareable
ones (`shareable_terms`), none when the page gives no vetted list."""
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\S*)?$"
"""A date or timestamp held as text (a CSV export read as strings): masked like a typed date."""
MIN_PERSONS_PER_TERM = 5
"""A term from patients' texts is shown to an analyst only when at least this many distinct persons wrote
it: a word only one or two patients use (their street, a relative's or their own name, a rare condition)
points at them, a word five persons share does not single anyone out (k-anonymity with k = 5, the usual
small-cell threshold). Terms with a digit (dates, readings, phone or record numbers) and words that are part
of a person's name are never shown, however common."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in (or configured) user of this session."""

    role: str
    name: str | None  # shown in the sidebar; never logged
    local_mode: bool  # no identity provider configured: the role comes from configuration

    @property
    def identifiable(self) -> bool:
        """May this viewer see names, contacts and exact dates?"""
        return self.role == CARE_MANAGER


def local_role() -> str:
    """The role of local mode (`PATIENT_INSIGHTS_DASHBOARD_ROLE`), refused when unknown."""
    role = os.environ.get(ROLE_ENV, DEFAULT_LOCAL_ROLE).strip() or DEFAULT_LOCAL_ROLE
    if role not in ROLES:
        raise ValueError(f"{ROLE_ENV} must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def role_for(email: str | None, mapping: dict[str, str], default: str = ANALYST) -> str:
    """The role of a signed-in user from the `[roles]` mapping of secrets.toml (e-mail → role; a
    `*@domain` entry covers a domain); unknown users get the least-privileged role."""
    if not email:
        return default
    email = email.lower()
    role = mapping.get(email) or mapping.get("*@" + email.rsplit("@", 1)[-1]) or default
    return role if role in ROLES else default


_process_key = secrets.token_bytes(32)


def _pseudonym_key() -> bytes:
    configured = os.environ.get(PSEUDONYM_KEY_ENV, "")
    return configured.encode() if configured else _process_key


def pseudonym(values: pl.Expr) -> pl.Expr:
    """A keyed hash of each value (HMAC-SHA-256, 12 hex digits): stable within a deployment, not
    reversible without the key."""
    key = _pseudonym_key()
    return values.map_elements(
        lambda v: "anon-" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:12],
        return_dtype=pl.String,
    )


def pseudonym_of(value: str) -> str:
    """The pseudonym of one id (for an analyst's drill-down)."""
    return "anon-" + hmac.new(_pseudonym_key(), value.encode(), hashlib.sha256).hexdigest()[:12]


def mask(frame: pl.DataFrame, viewer: Viewer, shareable: Collection[str] = ()) -> pl.DataFrame:
    """`frame` as `viewer` may see it. `shareable` holds the text-derived terms an analyst may see (from
    `shareable_terms`); terms outside it are removed from the `TEXT_DERIVED` columns."""
    if viewer.identifiable or not frame.columns:
        return frame
    out = frame.drop([c for c in frame.columns if _identifying(_unpaired(c))])
    changes = []
    for column in out.columns:
        change = _masked_column(out[column], _unpaired(column), shareable)
        if change is not None:
            changes.append(change.alias(column))
    return out.with_columns(changes) if changes else out


def _unpaired(column: str) -> str:
    """A column's name without the side of a record pair (`given_l` → `given`)."""
    return column[:-2] if column.endswith(_PAIR_SIDES) and len(column) > 2 else column


def _masked_column(values: pl.Series, kind: str, shareable: Collection[str]) -> pl.Expr | pl.Series | None:
    """The analyst's form of a kept column whose name (without a pair's side) is `kind`; None: as it is."""
    name, dtype = values.name, values.dtype
    if kind in _PSEUDONYMIZED or kind.endswith("person_id"):
        return pseudonym(pl.col(name))
    if _is_path(kind) and dtype == pl.String:
        return _masked_paths(values)
    if kind in TEXT_DERIVED:
        return _vetted_terms(name, dtype, shareable)
    if kind in _YEAR_ONLY:
        return pl.col(name).cast(pl.String).str.slice(0, 4)
    if kind in _KEEP_DATES or kind in _SHARED_IDS:  # a run id may be its day: not a person's date
        return None
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return pl.col(name).dt.strftime("%Y-%m")
    if dtype == pl.List(pl.Date):
        return pl.col(name).list.eval(pl.element().dt.strftime("%Y-%m"))
    if dtype == pl.String and _holds_dates(values):
        return pl.col(name).str.slice(0, 7)
    return None


def _identifying(column: str) -> bool:
    if column in _IDENTIFYING or column.startswith("guardian_") or column.endswith(("_name", "_phone")):
        return True
    is_id = column == "id" or column.endswith(("_id", "_ids"))
    return is_id and column not in _SHARED_IDS and not column.endswith("person_id")


def _holds_dates(values: pl.Series) -> bool:
    present = values.drop_nulls()
    return present.len() > 0 and bool(present.str.contains(_ISO_DATE).all())


def _vetted_terms(name: str, dtype: pl.DataType, shareable: Collection[str]) -> pl.Expr:
    allowed = sorted(shareable)
    if isinstance(dtype, pl.List):
        return pl.col(name).list.eval(pl.element().filter(pl.element().is_in(allowed))).alias(name)
    return pl.when(pl.col(name).is_in(allowed)).then(pl.col(name)).alias(name)


def shareable_terms(persons_per_term: dict[str, int], name_words: Collection[str]) -> frozenset[str]:
    """The terms (words or word pairs from patients' texts) an analyst may see: written by at least
    MIN_PERSONS_PER_TERM distinct persons, without a digit, and with no word that is part of a person's
    name (`name_words`, lower case)."""
    names = set(name_words)
    return frozenset(
        term
        for term, persons in persons_per_term.items()
        if persons >= MIN_PERSONS_PER_TERM
        and not any(c.isdigit() for c in term)
        and not any(word in names for word in term.lower().split())
    )


# File paths. The landing layout is `<source>/<...>/<file>`: the source folder is named by the operators
# (source.yaml), but the folders and files below it are named by whoever delivers them, and they often name
# a person: a vendor user's folder (`devices_ihealth/<vendor user id>/bp.json`), a per-patient Bundle
# (`<bundle or patient id>.json`, Synthea's `<Given>_<Family>_<uuid>.json`), a manifest named after a job
# or a patient. So an analyst sees the source folder and only those names below it made entirely of the
# platform's own vocabulary (FHIR resource types, Bulk Data folders, the device payload names, chunk numbers
# of up to four digits in a file name); every other folder or file name is replaced by its keyed pseudonym
# (the file keeps its extension), so rows stay apart and line up across pages without naming anyone.
_PATH_COLUMNS = {"file", "path"}
_PLATFORM_WORDS = frozenset(
    {t.lower() for t in R4_RESOURCE_TYPES}
    | {
        # FHIR Bulk Data export and the landing's own files
        "manifest", "directory", "deleted", "error", "export", "retry", "scratch", "bundle", "bundles",
        "datapoints", "conversations", "transcripts", "enrolment", "enrollment", "events", "outcomes",
        # device payloads (iHealth, Withings, Fitbit, Open mHealth) and CSV exports
        "bp", "weight", "glucose", "spo2", "activity", "activities", "sleep", "heart", "rate", "steps",
        "measures", "meas", "series", "readings", "data",
        # outreach exports
        "list", "suppressed", "added", "removed", "changed", "group",
    }
)  # fmt: skip
_EXTENSIONS = frozenset(
    {"ndjson", "json", "jsonl", "csv", "tsv", "txt", "xml", "parquet", "gz", "zip", "bz2"}
)
_NAME_TOKENS = re.compile(r"[._\-\s]+")


def _is_path(column: str) -> bool:
    return column in _PATH_COLUMNS or column.endswith(("_file", "_path"))


def mask_path(path: str) -> str:
    """`path` (relative to the landing, `/`-separated) as an analyst may see it: the first folder (the
    source) as it is, then each folder or file name as it is only when made of the platform's vocabulary,
    else its keyed pseudonym (a file keeps its extension)."""
    parts = path.split("/")
    shown = [parts[0]]
    for index, part in enumerate(parts[1:], start=2):
        is_file = index == len(parts)
        shown.append(part if _platform_name(part, is_file) else _pseudonymous_name(part, is_file))
    return "/".join(shown)


def _split_extension(name: str) -> tuple[list[str], list[str]]:
    tokens = [t for t in _NAME_TOKENS.split(name.lower()) if t]
    stem = list(tokens)
    extension: list[str] = []
    while len(stem) > 1 and stem[-1] in _EXTENSIONS:
        extension.insert(0, stem.pop())
    return stem, extension


def _platform_name(part: str, is_file: bool) -> bool:
    if not is_file:
        return part.lower() in _PLATFORM_WORDS
    stem, _ = _split_extension(part)
    words = [t for t in stem if not t.isdigit()]
    numbers = [t for t in stem if t.isdigit()]
    return bool(words) and all(w in _PLATFORM_WORDS for w in words) and all(len(n) <= 4 for n in numbers)


def _pseudonymous_name(part: str, is_file: bool) -> str:
    _, extension = _split_extension(part) if is_file else ([], [])
    return ".".join([pseudonym_of(part), *extension])


def _masked_paths(values: pl.Series) -> pl.Series:
    # one mapping per distinct path: a log has one row per file, and files repeat across runs
    distinct = values.drop_nulls().unique()
    return values.replace_strict(
        distinct, [mask_path(p) for p in distinct.to_list()], default=None, return_dtype=pl.String
    )
