"""The de-identification rules (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)) and the per-table column policy.

The policy is a declarative contract, `data_contracts/deid/policy.yaml`: one rule per column of every
exported table. It is loaded and checked here; applying it is `pipelines.deid.transform`, checking its
result `pipelines.deid.scanner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import yaml

POLICY_FILE = Path(__file__).resolve().parents[2] / "data_contracts" / "deid" / "policy.yaml"
SALT_ENV = "PATIENT_INSIGHTS_DEID_SALT"
MIN_SALT_CHARS = 32
"""A short salt makes the pseudonyms of guessable ids (person ids, MRNs) open to a dictionary attack."""
OLDEST_AGE = 89
"""Safe Harbor: ages over 89 are aggregated into one category ("90+"), and so are their birth years."""
OLDEST_AGE_GROUP = "90+"
RESTRICTED_ZIP3 = frozenset(
    # 3-digit ZIP areas with 20,000 people or fewer (2000 Census, as listed by HHS): reported as "000"
    ("036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884",
     "890", "893")
)  # fmt: skip
RESTRICTED_ZIP3_VALUE = "000"
PSEUDONYM_HEX_DIGITS = 32
"""128 bits of HMAC-SHA-256: no collisions at any realistic number of ids."""
PERSON_ID = "person_id"
LINK_COLUMNS = ("patient_source", "patient_id")
"""A table with `link_persons` is keyed by these; identity/person_link maps them to `person_id`."""


class DeidError(RuntimeError):
    """The export cannot run or must not be published (the message names tables, columns and counts,
    never a value or the salt)."""


class PolicyError(DeidError):
    """The policy does not cover a table's columns, or the policy file itself is wrong."""


class Rule(StrEnum):
    """What happens to one column in the export."""

    KEEP = "keep"  # the value as it is
    CODE = "code"  # kept; a code or enumerated value (the scanner skips its numeric patterns)
    YEAR = "year"  # a date or timestamp → its year
    BIRTH_YEAR = "birth_year"  # a birth date → its year, none for persons of 90 and over
    HASH = "hash"  # an id or record number → keyed pseudonym
    ZIP3 = "zip3"  # a ZIP code → first 3 digits, "000" for restricted areas
    AGE_GROUP = "age_group"  # an age → whole years, "90+" above 89
    DROP = "drop"  # not exported


@dataclass(frozen=True)
class TablePolicy:
    """The rule of every column of one exported table, and where the table comes from."""

    table: str  # the name in the export: <lake>/deidentified/<table>/
    layer: str  # where it is read: <lake>/<layer>/<source_table>/
    source_table: str
    columns: dict[str, Rule]
    link_persons: bool = False

    def rule(self, column: str) -> Rule:
        """The rule of `column`; a column the policy does not name stops the export."""
        if column not in self.columns:
            raise PolicyError(f"{self.table}: column {column!r} has no de-identification rule")
        return self.columns[column]

    def exported(self) -> list[str]:
        """The columns that appear in the export, in policy order."""
        return [c for c, r in self.columns.items() if r is not Rule.DROP]

    def with_rule(self, column: str, rule: Rule) -> TablePolicy:
        """A copy with one column's rule changed (tests, and a reviewer trying a policy change)."""
        return TablePolicy(
            self.table, self.layer, self.source_table, {**self.columns, column: rule}, self.link_persons
        )


def check_columns(columns: list[str], policy: TablePolicy) -> None:
    """Refuse a table with any column the policy does not name (so a new column never leaks by default)."""
    unknown = [c for c in columns if c not in policy.columns]
    if unknown:
        raise PolicyError(
            f"{policy.table}: {len(unknown)} column(s) without a de-identification rule: "
            f"{', '.join(unknown)}; add each to {POLICY_FILE.relative_to(POLICY_FILE.parents[2])}"
        )


@cache
def load_policy(path: Path = POLICY_FILE) -> dict[str, TablePolicy]:
    """Every exported table's policy from the contract file, checked: known rules only, and tables linked
    to persons name the link columns and `person_id`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise PolicyError(f"{path.name}:{mark.line + 1 if mark else 1}: not valid YAML") from None
    tables = data.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise PolicyError(f"{path.name}: no `tables` mapping")
    return {name: _table_policy(path.name, name, spec) for name, spec in tables.items()}


def _table_policy(file: str, name: str, spec: Any) -> TablePolicy:
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
        raise PolicyError(f"{file}: table {name!r} needs `from` and a `columns` mapping")
    layer, _, source = str(spec.get("from", "")).partition("/")
    if not layer or not source:
        raise PolicyError(f"{file}: table {name!r}: `from` must be <layer>/<table>")
    columns: dict[str, Rule] = {}
    for column, rule in spec["columns"].items():
        try:
            columns[str(column)] = Rule(str(rule))
        except ValueError:
            allowed = ", ".join(r.value for r in Rule)
            raise PolicyError(f"{file}: {name}.{column}: unknown rule {rule!r} (one of {allowed})") from None
    unknown_keys = set(spec) - {"from", "columns", "link_persons"}
    if unknown_keys:
        raise PolicyError(f"{file}: table {name!r}: unknown keys {', '.join(sorted(unknown_keys))}")
    link = bool(spec.get("link_persons", False))
    if link and not {PERSON_ID, *LINK_COLUMNS} <= set(columns):
        raise PolicyError(
            f"{file}: table {name!r} links persons: name {PERSON_ID} and {', '.join(LINK_COLUMNS)}"
        )
    return TablePolicy(name, layer, source, columns, link)
