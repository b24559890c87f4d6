"""Who sees what. Two roles: `care_manager` sees identifiable data (their job needs it); `analyst` sees a
de-identified view - names, contact details and identifiers removed, exact dates cut to the month (birth
dates to the year), person ids replaced by a keyed hash that stays stable within a deployment so that
drill-downs still line up.

Masking is by column name and type, applied to every frame before it is shown (`dashboards/ui.py`), so a
new column is masked by its kind without a page having to remember it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

import polars as pl

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
}
"""Removed for analysts (the `guardian_*` columns and anything ending in `_name` too)."""
_PSEUDONYMIZED = {"person_id"}
_YEAR_ONLY = {"birth_date"}
_KEEP_DATES = {"week", "as_of", "period_start", "period_end", "snapshot_on"}
"""Dates that describe a reporting period, not a person's event: kept for analysts."""


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


def mask(frame: pl.DataFrame, viewer: Viewer) -> pl.DataFrame:
    """`frame` as `viewer` may see it."""
    if viewer.identifiable or not frame.columns:
        return frame
    drop = [c for c in frame.columns if _identifying(c)]
    out = frame.drop(drop)
    changes = []
    for name, dtype in out.schema.items():
        if name in _PSEUDONYMIZED or name.endswith("person_id"):
            changes.append(pseudonym(pl.col(name)).alias(name))
        elif name in _YEAR_ONLY:
            changes.append(pl.col(name).cast(pl.String).str.slice(0, 4).alias(name))
        elif name in _KEEP_DATES:
            continue
        elif dtype == pl.Date or isinstance(dtype, pl.Datetime):
            changes.append(pl.col(name).dt.strftime("%Y-%m").alias(name))
        elif dtype == pl.List(pl.Date):
            changes.append(pl.col(name).list.eval(pl.element().dt.strftime("%Y-%m")).alias(name))
    return out.with_columns(changes) if changes else out


def _identifying(column: str) -> bool:
    return column in _IDENTIFYING or column.startswith("guardian_") or column.endswith(("_name", "_phone"))
