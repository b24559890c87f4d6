"""FHIRPath lowBoundary() / highBoundary(): the range a value of limited precision stands for.

Row-wise by nature (each value's own precision decides), so this is the engine's documented row-wise
fallback; it runs on the values of one column only.
"""

from __future__ import annotations

import calendar
import re
from decimal import Decimal

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:T(\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)(Z|[+-]\d{2}:\d{2})?)?$"
)
_TIME = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$")
EARLIEST_OFFSET, LATEST_OFFSET = "+14:00", "-12:00"


def low_boundary(value: object, kind: str | None = None) -> str | None:
    """The lowest value `value` may stand for, as text (a number for decimals)."""
    return _boundary(value, kind, low=True)


def high_boundary(value: object, kind: str | None = None) -> str | None:
    """The highest value `value` may stand for, as text (a number for decimals)."""
    return _boundary(value, kind, low=False)


def _boundary(value: object, kind: str | None, low: bool) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _decimal(value, low)
    if not isinstance(value, str):
        return None
    if kind == "time":
        return _time(value, low)
    if kind == "date":
        return _date(value, low)
    if kind in ("dateTime", "instant"):
        return _date_time(value, low)
    return None


def _decimal(value: float, low: bool) -> str:
    text = repr(value)
    if "e" in text.lower():
        text = format(Decimal(text), "f")
    places = len(text.split(".")[1]) if "." in text else 0
    half = Decimal(5) * Decimal(10) ** -(places + 1)
    bound = Decimal(text) - half if low else Decimal(text) + half
    return str(bound)


def _date(value: str, low: bool) -> str | None:
    match = _DATE.match(value)
    if match is None:
        return None
    year = int(match.group(1))
    month = int(match.group(2)) if match.group(2) else (1 if low else 12)
    day = int(match.group(3)) if match.group(3) else (1 if low else calendar.monthrange(year, month)[1])
    return f"{year:04d}-{month:02d}-{day:02d}"


def _time(value: str, low: bool) -> str | None:
    match = _TIME.match(value)
    if match is None:
        return None
    hour, minute, second, fraction = match.groups()
    minute = minute or ("00" if low else "59")
    second = second or ("00" if low else "59")
    fraction = (fraction or "").ljust(3, "0" if low else "9")[:3] if fraction else ("000" if low else "999")
    return f"{hour}:{minute}:{second}.{fraction}"


def _date_time(value: str, low: bool) -> str | None:
    match = _DATETIME.match(value)
    if match is None:
        return None
    date_part, time_part, offset = match.groups()
    date = _date(date_part, low)
    time = _time(time_part, low) if time_part else ("00:00:00.000" if low else "23:59:59.999")
    if date is None or time is None:
        return None
    return f"{date}T{time}{offset or (EARLIEST_OFFSET if low else LATEST_OFFSET)}"
