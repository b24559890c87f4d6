"""Per-record diagnosis of the few records the vectorized path rejects.

Only lines that pyarrow refused reach this module, so a per-record Python loop is fine here. Messages
name JSON paths and problems, never values: a record's content may be PHI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import pyarrow as pa
from pydantic import ValidationError

from pipelines.bronze.lines import DUPLICATE_MEMBER, NESTED_TOO_DEEPLY
from pipelines.fhir.resource_types import R4_RESOURCE_TYPES

MAX_REASON_CHARS = 500
_QUOTED = re.compile(r"``.*?``|`[^`]*`|'[^']*'|\"[^\"]*\"")  # fhir.resources quotes ``like this``


@dataclass(frozen=True)
class Verdict:
    """Either `fields` (the record is usable) or a quarantine `reason_code` with its `reason`."""

    fields: dict[str, Any] | None = None
    reason_code: str = ""
    reason: str = ""


def quarantine(code: str, reason: str) -> Verdict:
    """A verdict that sends the record to quarantine."""
    return Verdict(reason_code=code, reason=scrub(reason))


def scrub(message: str) -> str:
    """Drop quoted fragments (which may echo record values), fold white space (multi-line library
    messages) and cap the length of a reason."""
    return _QUOTED.sub("'…'", " ".join(message.split()))[:MAX_REASON_CHARS]


def load_object(raw: str | bytes, arrow_error: str) -> tuple[dict[str, Any] | None, Verdict | None]:
    """Parse one rejected line; a quarantine verdict when it is not a single JSON object."""
    if arrow_error == NESTED_TOO_DEEPLY:  # set aside before pyarrow; orjson may well read it, but no more
        return None, quarantine("nested_too_deeply", NESTED_TOO_DEEPLY)
    if arrow_error == DUPLICATE_MEMBER:  # found before pyarrow (`duplicate_members`); orjson would accept it
        return None, quarantine("invalid_json", DUPLICATE_MEMBER)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return None, quarantine("invalid_json", f"invalid JSON: {err}")
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        return None, quarantine("not_an_object", f"the record is {kind}, not a JSON object")
    if "specified twice" in arrow_error:
        member = arrow_error.split("(", 1)[-1].split(")", 1)[0]
        return None, Verdict(
            reason_code="invalid_json", reason=f"duplicate member {member}"[:MAX_REASON_CHARS]
        )
    return value, None


def lenient_fields(value: Any, dtype: pa.DataType) -> Any:
    """Pick the values that fit an Arrow type out of a parsed JSON value; misfits become null."""
    if pa.types.is_struct(dtype):
        if not isinstance(value, dict):
            return None
        return {f.name: lenient_fields(value.get(f.name), f.type) for f in dtype}
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        if not isinstance(value, list):
            return None
        return [lenient_fields(v, dtype.value_type) for v in value]
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return value if isinstance(value, str) else None
    if pa.types.is_boolean(dtype):
        return value if isinstance(value, bool) else None
    if pa.types.is_integer(dtype):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if pa.types.is_floating(dtype):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return None


def wrong_types(value: dict[str, Any], string_paths: tuple[tuple[str, ...], ...]) -> str | None:
    """The first path that is present but not a string (key fields must be strings), else None."""
    for path in string_paths:
        node: Any = value
        for i, step in enumerate(path):
            if node is None:
                break
            if not isinstance(node, dict):
                return f"{'.'.join(path[:i])} must be an object"
            node = node.get(step)
        if node is not None and not isinstance(node, str):
            return f"{'.'.join(path)} must be a string"
    return None


FHIR_STRING_PATHS = (("resourceType",), ("id",), ("meta", "versionId"), ("meta", "lastUpdated"))


def diagnose_fhir(raw: str | bytes, arrow_error: str, key_schema: pa.Schema) -> Verdict:
    """Decide about one FHIR record the fast path rejected: quarantine it, or accept it leniently.

    A record that only failed because an element has a legal shape the fast schema does not expect
    (e.g. `Account.subject` is a list) passes fhir.resources validation and is accepted.
    """
    value, verdict = load_object(raw, arrow_error)
    if verdict is not None:
        return verdict
    assert value is not None
    problem = wrong_types(value, FHIR_STRING_PATHS)
    if problem:
        return quarantine("invalid_field_type", problem)
    resource_type = value.get("resourceType")
    if resource_type is None:
        return quarantine("missing_resource_type", "the record has no resourceType")
    if resource_type not in R4_RESOURCE_TYPES:
        return quarantine("unknown_resource_type", "resourceType is not a FHIR R4 resource type")
    problem = fhir_validation_problem(value)
    if problem:
        return quarantine("invalid_field_type", problem)
    return Verdict(fields={f.name: lenient_fields(value.get(f.name), f.type) for f in key_schema})


def fhir_validation_problem(value: dict[str, Any]) -> str | None:
    """fhir.resources (R4B models) validation of one resource: the error locations and messages."""
    model = _fhir_model(value["resourceType"])
    if model is None:
        return None
    try:
        model.model_validate(value)
    except ValidationError as err:
        details = [
            f"{_location(e)}: {e['msg']}"
            for e in err.errors(include_input=False, include_url=False, include_context=False)[:3]
        ]
        return scrub("FHIR validation failed: " + "; ".join(details))  # messages can quote input
    except Exception as err:  # fhir.resources fails on some shapes (KeyError: 'R4.<type>Type'), quoting them
        return f"FHIR validation failed: {type(err).__name__}"
    return None


def _location(error: Any) -> str:
    """The element path of a validation error. A member FHIR does not define is named by the record, not
    by the model, so its name (which can be anything, a patient's name too) is not repeated."""
    parts = [str(p) for p in error["loc"]]
    if error.get("type") == "extra_forbidden" and parts:
        parts[-1] = "(an element FHIR does not define)"
    return ".".join(parts) or "(resource)"


@cache
def _fhir_model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class  # heavy import, only when a record needs it

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, ImportError):
        return None  # an R4 type without an R4B model: the fast checks are all we can do
