"""Campaign definitions (`data_contracts/campaigns/*.yaml`), checked when loaded: a file that does not
parse, names an unknown segment or channel, or has impossible dates or caps fails with its file and line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines.measures.definitions import DefinitionError
from pipelines.yaml_lines import line, load_with_lines

CAMPAIGNS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "campaigns"
CHANNELS = ("sms", "email", "phone", "mail")
_KEYS = {
    "id",
    "title",
    "segments",
    "measures",
    "closing_appointments",
    "channels",
    "template",
    "languages",
    "default_language",
    "frequency",
    "start",
    "end",
    "max_list_size",
    "priority",
    "holdout",
}


@dataclass(frozen=True)
class Holdout:
    """A randomized hold-out: a `share` of the persons a run would list is not contacted, assigned by a
    keyed hash of person and campaign (`key`; stable across runs and list orders), and the effect counts
    gaps closed within `follow_up_days` of the run."""

    share: float
    follow_up_days: int
    key: str


@dataclass(frozen=True)
class Campaign:
    """One outreach campaign."""

    id: str
    title: str
    segments: tuple[str, ...]
    channels: tuple[str, ...]  # preference order
    template: str
    languages: tuple[str, ...]
    default_language: str
    campaign_days: int  # not contacted by this campaign within this many days
    weekly_contacts: int  # contacts per person per 7 days across campaigns
    start: date
    end: date
    max_list_size: int
    priority: int
    source: str
    measures: tuple[str, ...] = ()  # the care gaps the message is about (gap ids, due dates); () = all
    closing_types: tuple[str, ...] = ("CHECKUP", "ROUTINE")  # appointment types that can close the gap
    closing_within_days: int = 60  # ... when booked to start within this many days
    holdout: Holdout | None = None  # a randomized group that is not contacted, to measure the effect

    def active_on(self, day: date) -> bool:
        """True when `day` is within the campaign's dates."""
        return self.start <= day <= self.end


def load_campaigns(
    segment_ids: set[str], folder: Path = CAMPAIGNS_DIR, measure_ids: set[str] | None = None
) -> list[Campaign]:
    """Every campaign file, checked against the known segment (and measure) ids, in priority then id
    order."""
    campaigns = [_campaign(path, segment_ids, measure_ids) for path in sorted(folder.glob("*.yaml"))]
    first: dict[str, Campaign] = {}
    for campaign in campaigns:
        if campaign.id in first:
            node, _ = load_with_lines(folder / campaign.source)
            raise DefinitionError(
                f"{campaign.source}:{line(node, 'id')}: campaign id {campaign.id!r} is already used by "
                f"{first[campaign.id].source}"
            )
        first[campaign.id] = campaign
    return sorted(campaigns, key=lambda c: (c.priority, c.id))


def _campaign(path: Path, segment_ids: set[str], measure_ids: set[str] | None) -> Campaign:
    node, data = load_with_lines(path)

    def fail(key: str | None, message: str) -> DefinitionError:
        return DefinitionError(f"{path.name}:{line(node, key) if key else 1}: {message}")

    if not isinstance(data, dict):
        raise fail(None, "a campaign must be a mapping")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r}")
    missing = sorted({"id", "segments", "channels", "template", "start", "end"} - set(data))
    if missing:
        raise fail(None, f"missing key(s) {missing}")
    segments = _names(data["segments"], lambda: fail("segments", "segments must be a list of segment ids"))
    for name in segments:
        if name not in segment_ids:
            raise fail("segments", f"unknown segment {name!r}")
    measures = (
        _names(data["measures"], lambda: fail("measures", "measures must be a list of measure ids"))
        if "measures" in data
        else ()
    )
    for name in measures:
        if measure_ids is not None and name not in measure_ids:
            raise fail("measures", f"unknown measure {name!r}")
    channels = _names(data["channels"], lambda: fail("channels", "channels must be a list"))
    for name in channels:
        if name not in CHANNELS:
            raise fail("channels", f"unknown channel {name!r} (known: {', '.join(CHANNELS)})")
    start, end = data["start"], data["end"]
    # a datetime is a date too, but cannot be compared with one
    if not all(isinstance(d, date) and not isinstance(d, datetime) for d in (start, end)):
        raise fail("start", "start and end must be dates (YYYY-MM-DD)")
    if end < start:
        raise fail("end", "end is before start")
    closing = data.get("closing_appointments") or {}
    if not isinstance(closing, dict) or set(closing) - {"types", "within_days"}:
        raise fail("closing_appointments", "closing_appointments takes `types` and `within_days`")
    closing_types = _names(
        closing.get("types", ["CHECKUP", "ROUTINE"]),
        lambda: fail("closing_appointments", "closing_appointments.types must be a list of codes"),
    )
    frequency = data.get("frequency") or {}
    if not isinstance(frequency, dict) or set(frequency) - {"campaign_days", "weekly_contacts"}:
        raise fail("frequency", "frequency takes `campaign_days` and `weekly_contacts`")
    numbers = {
        "campaign_days": frequency.get("campaign_days", 30),
        "weekly_contacts": frequency.get("weekly_contacts", 2),
        "max_list_size": data.get("max_list_size", 1000),
        "priority": data.get("priority", 100),
        "within_days": closing.get("within_days", 60),
    }
    for key, value in numbers.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            where = "frequency" if key in frequency else "closing_appointments" if key in closing else key
            raise fail(where, f"{key} must be a whole number >= 0")
    holdout = _holdout(data.get("holdout"), str(data["id"]), lambda message: fail("holdout", message))
    languages = _names(data.get("languages", ["en"]), lambda: fail("languages", "languages must be a list"))
    default_language = str(data.get("default_language", languages[0] if languages else "en"))
    return Campaign(
        id=str(data["id"]),
        title=str(data.get("title", data["id"])),
        segments=segments,
        channels=channels,
        template=str(data["template"]),
        languages=languages,
        default_language=default_language,
        campaign_days=numbers["campaign_days"],
        weekly_contacts=numbers["weekly_contacts"],
        start=start,
        end=end,
        max_list_size=numbers["max_list_size"],
        priority=numbers["priority"],
        source=path.name,
        measures=measures,
        closing_types=closing_types,
        closing_within_days=numbers["within_days"],
        holdout=holdout,
    )


def _holdout(value: Any, campaign_id: str, fail: Any) -> Holdout | None:
    """`holdout: {share, follow_up_days, key}`: share in (0, 0.5], follow-up 1-730 days, key default the
    campaign id (change it to draw a new hold-out)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"share", "follow_up_days", "key"} or "share" not in value:
        raise fail("holdout takes `share` (required), `follow_up_days` and `key`")
    share, days = value["share"], value.get("follow_up_days", 90)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 0.5:
        raise fail("holdout.share must be a number above 0 and at most 0.5")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 730:
        raise fail("holdout.follow_up_days must be a whole number from 1 to 730")
    key = value.get("key", campaign_id)
    if not isinstance(key, str) or not key.strip():
        raise fail("holdout.key must be a non-empty string")
    return Holdout(float(share), days, key)


def _names(value: Any, error: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise error()
    return tuple(value)
