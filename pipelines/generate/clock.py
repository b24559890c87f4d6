"""Time for the generator: a fixed "now" derived from `as_of`, the history window, and fast formatting.

Every moment is an integer count of seconds since 1970-01-01T00:00:00Z (UTC). The hospital and its
patients live in US Eastern time, so FHIR dateTimes carry the offset in force at that moment
(``-05:00`` in winter, ``-04:00`` under daylight saving time, with the US rules of each year). Nothing
reads the wall clock: the same `as_of` always gives the same strings.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, timedelta

DAY = 86_400
HOUR = 3_600
MINUTE = 60
YEAR = 365.25 * DAY
EST = -5 * HOUR
EDT = -4 * HOUR
HISTORY_YEARS = 5
FUTURE_DAYS = 90
TRANSACTION_HOUR_UTC = 23
"""The Bulk export's transactionTime is `as_of` at 23:00Z; nothing is last updated after it."""

_EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - _EPOCH).days


def day_date(n: int) -> date:
    """The date `n` days after 1970-01-01."""
    return _EPOCH + timedelta(days=n)


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    first_sunday = first + timedelta(days=(6 - first.weekday()) % 7)
    return first_sunday + timedelta(days=7 * (n - 1))


def _last_sunday(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def _dst_bounds(year: int) -> tuple[int, int]:
    """UTC seconds at which US Eastern daylight saving time starts and ends in `year`."""
    if year >= 2007:
        start, end = _nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1)
    elif year >= 1987:
        start, end = _nth_sunday(year, 4, 1), _last_sunday(year, 10)
    else:
        start, end = _last_sunday(year, 4), _last_sunday(year, 10)
    # 02:00 local standard time = 07:00Z; 02:00 local daylight time = 06:00Z
    return day_number(start) * DAY + 7 * HOUR, day_number(end) * DAY + 6 * HOUR


class Clock:
    """The generator's calendar: `now`, the history window and Eastern-time string formatting."""

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of
        self.as_of_day = day_number(as_of)
        self.now = self.as_of_day * DAY + TRANSACTION_HOUR_UTC * HOUR
        """The export's transactionTime; every lastUpdated is at or before it."""
        self.window_start = (self.as_of_day - round(HISTORY_YEARS * 365.25)) * DAY
        """Start of the clinical history window (about five years back)."""
        self.history_end = self.as_of_day * DAY + 21 * HOUR
        """Last moment a past event can happen (as_of, 17:00 Eastern daylight time)."""
        self.future_end = (self.as_of_day + FUTURE_DAYS) * DAY
        edges: list[int] = []
        for year in range(1900, as_of.year + 3):
            edges.extend(_dst_bounds(year))
        self._edges = edges
        self._days: dict[int, str] = {}
        self._hm = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
        self._ss = [f"{s:02d}" for s in range(60)]

    def offset(self, ts: int) -> int:
        """The Eastern-time UTC offset, in seconds, in force at `ts`."""
        return EDT if bisect_right(self._edges, ts) & 1 else EST

    def local_day(self, ts: int) -> int:
        """The local (Eastern) day number of `ts`."""
        return (ts + self.offset(ts)) // DAY

    def at_local(self, day: int, seconds: int) -> int:
        """The UTC moment of local wall-clock time `seconds` after midnight of local `day`."""
        guess = day * DAY + seconds - EST
        return day * DAY + seconds - self.offset(guess)

    def _day(self, n: int) -> str:
        s = self._days.get(n)
        if s is None:
            s = self._days[n] = day_date(n).isoformat()
        return s

    def dt(self, ts: int) -> str:
        """A FHIR dateTime in Eastern time with its offset, e.g. ``2025-03-04T10:15:00-05:00``."""
        dst = bisect_right(self._edges, ts) & 1
        day, sec = divmod(ts + (EDT if dst else EST), DAY)
        d = self._days.get(day) or self._day(day)
        return f"{d}T{self._hm[sec // 60]}:{self._ss[sec % 60]}{'-04:00' if dst else '-05:00'}"

    def instant(self, ts: int) -> str:
        """A UTC instant, e.g. ``2025-03-04T15:15:00Z`` (meta.lastUpdated, OMH creation times)."""
        day, sec = divmod(ts, DAY)
        d = self._days.get(day) or self._day(day)
        return f"{d}T{self._hm[sec // 60]}:{self._ss[sec % 60]}Z"

    def date(self, ts: int) -> str:
        """The local (Eastern) calendar date of `ts`, e.g. ``2025-03-04``."""
        return self._day((ts + self.offset(ts)) // DAY)

    def date_of_day(self, day: int) -> str:
        """The ISO string of day number `day`."""
        return self._day(day)

    def tz_compact(self, ts: int) -> str:
        """The offset at `ts` as iHealth writes it (``-0500`` or ``-0400``)."""
        return "-0400" if self.offset(ts) == EDT else "-0500"
