"""What an outreach system and the following weeks of care do after our campaign exports, with a known
true effect: `simulate_outreach` reads the campaign runs under `<exports>` and writes, into the landing
folder, the vendor's outcome events and the FHIR resources of the gaps that closed, and, beside the landing
folder, the ground truth those were drawn from.

Written (every file is the simulation's own; a re-run removes its previous outputs first and rewrites
them, byte-identical for the same seed and inputs)::

    <landing>/outreach_vendor/source.yaml                   format: outreach_events
    <landing>/outreach_vendor/events_<campaign>_<run>.csv   sms, phone and mail events of one run
    <landing>/outreach_vendor/events_<campaign>_<run>.ndjson  e-mail events of one run
    <landing>/<bulk source>/manifest.<day>.json             the source's next `_since` Bulk export ...
    <landing>/<bulk source>/<day>/<Type>.000.ndjson         ... of the closing resources (increment.py layout)
    <landing>/<bundle source>/sim-outreach/<day>.json       closing resources of persons with no Patient in a
                                                            Bulk source: one transaction Bundle (PUT entries)
    <truth>/outreach_effect.json                            per campaign and measure: rates, arms, closures
    <truth>/outreach_closures.csv                           every closing resource: person, arm, run, date
    <truth>/outreach_opt_outs.csv                           every STOP reply / opted-out event written
    <truth>/outreach_defects.csv                            each defective event row and its expected reason

`<day>` is the evaluation day: the latest run day + its campaign's follow-up days (90 without a hold-out);
the export's transactionTime is that day at 23:00:00Z. A pipeline run as of that day sees every closure.

Outreach events, per contacted (listed) person of each run (the last revision of each run day), on the
person's channel, after the run day: `sent`; `bounced` (sms 3 %, e-mail 8 %, mail 4 %; e-mail bounces carry
an SMTP code in `detail`) or `delivered`; phone: `called-no-answer` 30 %, else `delivered`; e-mail `opened`
(45 % of delivered) and `clicked` (15 % of opened), `opted-out` (1 % of delivered), a few other replies;
sms `clicked` (10 % of delivered), a STOP reply (3 % of delivered: "STOP", "stop", "STOP ", "Unsubscribe"),
a few other replies ("Thanks", "Who is this?"); `booked` for 70 % of the contacted persons whose gap closes,
a few days before the closure. Held-out persons never get an event. The person is named by `person_id`
(80 %) or by one of the list row's `source_identifiers` (20 %; `person_id` empty then).

Gap closures: the true chance that an assigned person's open gap closes within the follow-up window is a
constant per campaign and arm (`CLOSURE_RATES`). Each person is drawn once per campaign, in the arm and run
of their first assignment (intention to treat, as `pipelines.outreach.effect` measures it), when a gap of the
campaign's measure (`<MEASURE>-<year of the run>`) was open at that run. A closing person gets one resource
dated on a day in [run day + 1, run day + follow-up - 1] (days on which the evidence would not count for the
measure at the evaluation day are left out: a 12-month FIT window that does not reach back across a new
year). The resource is coded from the value set of the measure's numerator modality with the shortest
window: LOINC → a final laboratory Observation, SNOMED CT → a completed Procedure, CVX → an Immunization
(COL: FIT Observation; BCS: screening mammography Procedure). Its subject is the person's Patient in a
source with a Bulk manifest when there is one (person_link), else in another FHIR source of the landing.

Randomness comes from string-keyed streams per (seed, campaign, run, person): a person's outcome does not
depend on the other persons or the order of the list.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import yaml
from upath import UPath

from pipelines.bronze.outreach_reader import FIELDS
from pipelines.generate.clock import DAY, HOUR, MINUTE, Clock, day_number
from pipelines.generate.rng import rint
from pipelines.generate.vocab import CVX, LABORATORY, LOINC, SNOMED, Json
from pipelines.lake import read_table
from pipelines.measures.definitions import MEASURES_DIR, Measure, load_measures
from pipelines.measures.engine import months_before
from pipelines.outreach.campaigns import Campaign
from pipelines.outreach.exports import RunFolder, campaign_runs, latest_runs_per_day

GENERATOR = "patient-insights simulate-outreach"
VENDOR_SOURCE = "outreach_vendor"
BUNDLE_FOLDER = "sim-outreach"
ID_PREFIX = "sim-"
CONTACTED, HOLDOUT = "contacted", "holdout"

CLOSURE_RATES: dict[str, dict[str, float]] = {
    "colorectal_screening_outreach": {HOLDOUT: 0.10, CONTACTED: 0.30},  # true effect +0.20
    "breast_screening_reminder": {HOLDOUT: 0.15, CONTACTED: 0.15},  # true effect 0
}
"""The true chance that an assigned person's open gap closes within the follow-up window, per arm."""
DEFAULT_CLOSURE_RATES = {HOLDOUT: 0.10, CONTACTED: 0.20}
"""Any other campaign (without a hold-out only the contacted rate is used)."""
DEFAULT_FOLLOW_UP_DAYS = 90
"""The window of a campaign without a hold-out (as `pipelines.outreach.effect` counts it)."""

BOUNCE_RATES = {"sms": 0.03, "email": 0.08, "mail": 0.04}
NO_ANSWER_RATE = 0.30  # phone
EMAIL_OPEN_RATE, EMAIL_CLICK_RATE = 0.45, 0.15  # of delivered; of opened
SMS_CLICK_RATE = 0.10  # of delivered
SMS_STOP_RATE, EMAIL_OPT_OUT_RATE = 0.03, 0.01  # of delivered
OTHER_REPLY_RATES = {"sms": 0.02, "email": 0.005}  # of delivered
BOOKED_SHARE = 0.70  # of the contacted persons whose gap closes
PERSON_ID_SHARE = 0.80  # else the person is named by a source identifier
STOP_TEXTS = ("STOP", "stop", "STOP ", "Unsubscribe")
OTHER_REPLIES = ("Thanks", "Who is this?", "Thank you, I will call the clinic", "ok")
BOUNCE_DETAILS = {
    "email": ("550 mailbox unavailable", "552 mailbox full", "553 mailbox name not allowed"),
    "sms": ("30003 unreachable destination handset", "30006 landline or unreachable carrier"),
    "mail": ("returned to sender: addressee unknown", "returned to sender: insufficient address"),
}
NDJSON_CHANNELS = ("email",)
"""Channels whose events the vendor delivers as NDJSON; the others as CSV."""
EVENT_COLUMNS = (*FIELDS, "detail")
"""The landing contract's fields (`pipelines/bronze/outreach_reader.py`) and a bounce `detail`."""
DEFECT_REASONS = ("unknown_campaign", "unknown_person", "invalid_timestamp", "unknown_event")
"""What a defective event row breaks; the reason the pipeline must quarantine it with."""
UNKNOWN_CAMPAIGN = "retired_campaign_unknown"
UNKNOWN_EVENT = "forwarded"

RESOURCE_BY_SYSTEM = {LOINC: "Observation", SNOMED: "Procedure", CVX: "Immunization"}
PREFERRED_SYSTEM = {"COL": LOINC, "BCS": SNOMED}
"""COL closes with a stool test result (Observation), BCS with a mammography (Procedure)."""
SYSTEM_ORDER = (LOINC, SNOMED, CVX)

_EFFECT, _CLOSURES, _OPT_OUTS, _DEFECTS = (
    "outreach_effect.json",
    "outreach_closures.csv",
    "outreach_opt_outs.csv",
    "outreach_defects.csv",
)
_EVENT_SCHEMA = {name: pl.String for name in EVENT_COLUMNS}


@dataclass(frozen=True)
class ClosureCode:
    """How a closing resource of one measure is coded: from which value set, as which resource type."""

    measure_id: str
    value_set: str
    resource_type: str
    system: str
    code: str
    display: str
    window_months: int
    end_offset_months: int


@dataclass(frozen=True)
class OutreachSimulation:
    """What one `simulate_outreach` run wrote (counts only: no person data)."""

    landing: Path
    truth_out: Path
    transaction_time: str | None  # of the `_since` export (None: no run to simulate)
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(campaign_id, arm, what) -> count; `what` is an event name, `<MEASURE> open gap` (persons assigned
    with the gap open at their first run) or `<MEASURE> closed` (closing resources written)."""
    defects: dict[str, int] = field(default_factory=dict)  # expected reason -> defective rows
    opt_outs: int = 0
    files: tuple[Path, ...] = ()  # every file written, landing and ground truth

    def table(self) -> pl.DataFrame:
        """The counts as a frame: campaign_id, arm, what, count."""
        rows = [(c, a, w, n) for (c, a, w), n in sorted(self.counts.items())]
        return pl.DataFrame(
            rows,
            schema={"campaign_id": pl.String, "arm": pl.String, "what": pl.String, "count": pl.Int64},
            orient="row",
        )


def simulate_outreach(
    landing: Path,
    lake: UPath | Path,
    exports: UPath | Path,
    *,
    seed: int = 0,
    defects: float = 0.0,
    truth_out: Path | None = None,
) -> OutreachSimulation:
    """Simulate every campaign run's outcome (see the module docstring) and return what was written."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed must be an integer")
    if not 0.0 <= float(defects) <= 1.0:
        raise ValueError("defects must be a rate between 0 and 1")
    landing = Path(landing)
    truth_out = Path(truth_out) if truth_out is not None else landing.parent / "ground_truth"
    a, b = landing.resolve(), truth_out.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ValueError("the ground truth folder must be outside the landing folder (and vice versa)")
    if not landing.is_dir():
        raise ValueError(f"{landing} is not a landing folder")
    campaigns = _campaigns()
    runs = {c.id: latest_runs_per_day(campaign_runs(UPath(exports), c.id)) for c in campaigns}
    campaigns = [c for c in campaigns if runs[c.id]]
    patients = _patients(landing, UPath(lake))
    eval_day = max(
        (run.as_of + timedelta(days=_follow_up(c)) for c in campaigns for run in runs[c.id]), default=None
    )
    bulk_sources = sorted(set(patients.filter(pl.col("bulk"))["source"]))
    # the closures are delivered the evaluation day, or after the sources' last export when the campaigns ran
    # inside the generated history (the demo): a `_since` export must follow the exports before it
    delivery_day = (
        None
        if eval_day is None
        else max([eval_day, *(_day_after_exports(landing / s) for s in bulk_sources)])
    )
    if delivery_day is not None:  # refuse before anything is removed or written
        for source in bulk_sources:
            _check_since_export(landing / source, delivery_day)
    _remove_previous_outputs(landing)
    written: list[Path] = []
    counts: dict[tuple[str, str, str], int] = {}
    opt_outs: list[tuple[str, str, str, str, str]] = []
    defect_rows: list[tuple[str, int, str, str]] = []
    effect: list[dict[str, Any]] = []
    closures: list[dict[str, Any]] = []
    transaction_time = None
    if eval_day is not None:
        transaction_time = f"{delivery_day.isoformat()}T23:00:00Z"
        clock = Clock(eval_day)
        codes = _closure_codes({m for c in campaigns for m in c.measures})
        written.append(_write_source_yaml(landing))
        for campaign in campaigns:
            sim = _CampaignSimulation(campaign, codes, patients, clock, eval_day, seed, float(defects))
            for run in runs[campaign.id]:
                sim.run(run, landing)
            written.extend(sim.files)
            opt_outs.extend(sim.opt_outs)
            defect_rows.extend(sim.defect_rows)
            closures.extend(sim.closures)
            effect.extend(sim.effect())
            for key, n in sim.counts.items():
                counts[(campaign.id, *key)] = n
        written.extend(_write_closures(landing, closures, clock, delivery_day, transaction_time))
    written.extend(
        _write_truth(
            truth_out, seed, float(defects), transaction_time, effect, closures, opt_outs, defect_rows
        )
    )
    by_reason: dict[str, int] = {}
    for _, _, _, reason in defect_rows:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return OutreachSimulation(
        landing=landing,
        truth_out=truth_out,
        transaction_time=transaction_time,
        counts=dict(sorted(counts.items())),
        defects=dict(sorted(by_reason.items())),
        opt_outs=len(opt_outs),
        files=tuple(written),
    )


# --- one campaign ----------------------------------------------------------------------------------------
class _CampaignSimulation:
    """The runs of one campaign, oldest first: events per run, one closure draw per person."""

    def __init__(
        self,
        campaign: Campaign,
        codes: dict[str, ClosureCode | None],
        patients: pl.DataFrame,
        clock: Clock,
        eval_day: date,
        seed: int,
        defects: float,
    ) -> None:
        self.campaign = campaign
        self.codes = {m: codes.get(m) for m in campaign.measures}
        self.patients = {
            p: (s, pid) for p, s, pid in patients.select("person_id", "source", "patient_id").iter_rows()
        }
        self.clock = clock
        self.eval_day = eval_day
        self.seed = seed
        self.defect_rate = defects
        self.follow_up = _follow_up(campaign)
        rates = CLOSURE_RATES.get(campaign.id, DEFAULT_CLOSURE_RATES)
        self.rates = rates if campaign.holdout is not None else {CONTACTED: rates[CONTACTED]}
        self.assigned: set[str] = set()  # persons already assigned in an earlier run (first assignment)
        self.run_ids: list[str] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.measure_counts: dict[tuple[str, str, str], int] = {}  # (measure, arm, what)
        self.files: list[Path] = []
        self.opt_outs: list[tuple[str, str, str, str, str]] = []
        self.defect_rows: list[tuple[str, int, str, str]] = []
        self.closures: list[dict[str, Any]] = []

    def run(self, run: RunFolder, landing: Path) -> None:
        """Draw the closures of the persons first assigned in `run` and write the run's event files."""
        self.run_ids.append(run.run_id)
        listed = run.read_list().select("person_id", "channel", "source_identifiers", "gap_ids")
        held = _read_holdout(run)
        listed = listed.join(held.select("person_id"), on="person_id", how="anti").sort("person_id")
        closing = self._draw_closures(run, listed, held)
        rows: list[dict[str, str | None]] = []
        for person, channel, identifiers in listed.select(
            "person_id", "channel", "source_identifiers"
        ).iter_rows():
            rows.extend(self._person_events(run, person, channel, identifiers or [], closing.get(person)))
        events = pl.DataFrame(rows, schema=_EVENT_SCHEMA, orient="row") if rows else _empty_events()
        for event, n in events.group_by("event").len().iter_rows():
            self.counts[(CONTACTED, event)] = self.counts.get((CONTACTED, event), 0) + n
        events = events.sort("occurred_at", "event_id")
        csv_events = events.filter(~pl.col("channel").is_in(NDJSON_CHANNELS))
        json_events = events.filter(pl.col("channel").is_in(NDJSON_CHANNELS))
        stem = f"events_{self.campaign.id}_{run.run_id}"
        for frame, suffix in ((csv_events, "csv"), (json_events, "ndjson")):
            if frame.is_empty():
                continue
            rel = f"{VENDOR_SOURCE}/{stem}.{suffix}"
            frame = self._with_defects(frame, run, rel, header=suffix == "csv")
            data = _csv_bytes(frame) if suffix == "csv" else _ndjson_bytes(frame)
            _write_atomic(landing / rel, data)
            self.files.append(landing / rel)

    # closures --------------------------------------------------------------------------------------------
    def _draw_closures(self, run: RunFolder, listed: pl.DataFrame, held: pl.DataFrame) -> dict[str, int]:
        """Draw the closure of every person first assigned in this run; the earliest closure time per
        contacted person (for the `booked` event)."""
        arms = pl.concat(
            [
                listed.select(
                    "person_id", pl.lit(CONTACTED).alias("arm"), "gap_ids", pl.lit(False).alias("_all")
                ),
                held.select("person_id", pl.lit(HOLDOUT).alias("arm"), "gap_ids", "_all"),
            ]
        ).filter(~pl.col("person_id").is_in(pl.Series(sorted(self.assigned), dtype=pl.String).implode()))
        self.assigned.update(arms["person_id"].to_list())
        earliest: dict[str, int] = {}
        for measure, code in self.codes.items():
            gap = f"{measure}-{run.as_of.year}"
            open_gap = arms.filter(pl.col("_all") | pl.col("gap_ids").list.contains(gap)).sort("person_id")
            days = self._closure_days(run.as_of, code)
            for person, arm in open_gap.select("person_id", "arm").iter_rows():
                self._add(measure, arm, "open gap")
                rate = self.rates.get(arm)
                rng = random.Random(
                    f"patient-insights/outreach-closure/{self.seed}/{self.campaign.id}/{measure}/{person}"
                )
                if rate is None or rng.random() >= rate:
                    continue
                self._add(measure, arm, "closure drawn")
                patient = self.patients.get(person)
                if code is None:
                    self._add(measure, arm, "not written: no_closing_code")
                    continue
                if patient is None:
                    self._add(measure, arm, "not written: no_patient")
                    continue
                if not days:
                    self._add(measure, arm, "not written: outside_measure_window")
                    continue
                day = days[rint(rng, 0, len(days))]
                at = self.clock.at_local(day_number(day), rint(rng, 8 * 60, 16 * 60) * MINUTE)
                self._add(measure, arm, "closed")
                self.closures.append(
                    {
                        "campaign_id": self.campaign.id,
                        "measure_id": measure,
                        "run_id": run.run_id,
                        "person_id": person,
                        "arm": arm,
                        "source": patient[0],
                        "patient_id": patient[1],
                        "at": at,
                        "day": day.isoformat(),
                        "updated": at + rint(rng, HOUR, 20 * HOUR),
                        "code": code,
                        "id": _sim_id(self.campaign.id, run.run_id, person, measure, "closure"),
                    }
                )
                if arm == CONTACTED:
                    earliest[person] = min(at, earliest.get(person, at))
        return earliest

    def _closure_days(self, run_day: date, code: ClosureCode | None) -> list[date]:
        """Days in [run day + 1, run day + follow-up - 1] on which the evidence still counts for the measure
        when evaluated on the evaluation day."""
        if code is None:
            return []
        period_end = date(self.eval_day.year, 12, 31)
        after = months_before(period_end, code.window_months)
        until = min(months_before(period_end, code.end_offset_months), self.eval_day)
        first, last = run_day + timedelta(days=1), run_day + timedelta(days=self.follow_up - 1)
        return [
            first + timedelta(days=i)
            for i in range((last - first).days + 1)
            if after < first + timedelta(days=i) <= until
        ]

    def _add(self, measure: str, arm: str, what: str) -> None:
        key = (measure, arm, what)
        self.measure_counts[key] = self.measure_counts.get(key, 0) + 1
        if what in ("open gap", "closure drawn", "closed"):
            self.counts[(arm, f"{measure} {what}")] = self.counts.get((arm, f"{measure} {what}"), 0) + 1

    # events ----------------------------------------------------------------------------------------------
    def _person_events(
        self, run: RunFolder, person: str, channel: str, identifiers: list[str], closure_at: int | None
    ) -> list[dict[str, str | None]]:
        campaign_id = self.campaign.id
        rng = random.Random(
            f"patient-insights/outreach-events/{self.seed}/{campaign_id}/{run.run_id}/{person}"
        )
        by_identifier = identifiers and rng.random() >= PERSON_ID_SHARE
        person_ref = None if by_identifier else person
        identifier = identifiers[rint(rng, 0, len(identifiers))] if by_identifier else None
        start = (day_number(run.as_of) + 1) * DAY + 13 * HOUR  # the next morning (13:00Z)
        rows = []
        for seq, (event, at, reply, detail) in enumerate(_funnel(rng, channel, start, closure_at)):
            occurred = self.clock.instant(at)
            rows.append(
                {
                    "event_id": _sim_id(campaign_id, run.run_id, person, event, str(seq)),
                    "campaign_id": campaign_id,
                    "run_id": run.run_id,
                    "person_id": person_ref,
                    "source_identifier": identifier,
                    "channel": channel,
                    "event": event,
                    "occurred_at": occurred,
                    "reply_text": reply,
                    "detail": detail,
                }
            )
            if event == "opted-out" or (event == "replied" and reply in STOP_TEXTS):
                self.opt_outs.append((person, channel, occurred, event, rows[-1]["event_id"]))  # type: ignore[arg-type]
        return rows

    def _with_defects(self, frame: pl.DataFrame, run: RunFolder, rel: str, header: bool) -> pl.DataFrame:
        """`frame` with a defective companion after a `defect_rate` share of its rows (recorded by line)."""
        if not self.defect_rate:
            return frame
        rng = random.Random(f"patient-insights/outreach-defects/{self.seed}/{rel}")
        out: list[dict[str, Any]] = []
        for row in frame.iter_rows(named=True):
            out.append(row)
            if rng.random() >= self.defect_rate:
                continue
            reason = DEFECT_REASONS[rint(rng, 0, len(DEFECT_REASONS))]
            bad = dict(row)
            bad["event_id"] = _sim_id(rel, str(len(out)), reason, "defect")
            if reason == "unknown_campaign":
                bad["campaign_id"] = UNKNOWN_CAMPAIGN
            elif reason == "unknown_person":
                bad["person_id"] = _sim_id(rel, str(len(out)), "unknown-person")
                bad["source_identifier"] = None
            elif reason == "invalid_timestamp":
                bad["occurred_at"] = row["occurred_at"].removesuffix("Z")  # a local time: ambiguous
            else:
                bad["event"] = UNKNOWN_EVENT
            out.append(bad)
            self.defect_rows.append((rel, len(out) + int(header), bad["event_id"], reason))
        return pl.DataFrame(out, schema=_EVENT_SCHEMA, orient="row")

    def effect(self) -> list[dict[str, Any]]:
        """The ground truth of each measure of the campaign."""
        entries = []
        for measure, code in self.codes.items():
            arms = [CONTACTED, HOLDOUT] if self.campaign.holdout is not None else [CONTACTED]

            def count(arm: str, what: str, measure: str = measure) -> int:
                return self.measure_counts.get((measure, arm, what), 0)

            p_contacted = self.rates[CONTACTED]
            p_holdout = self.rates.get(HOLDOUT)
            entries.append(
                {
                    "campaign_id": self.campaign.id,
                    "measure_id": measure,
                    "p_holdout": p_holdout,
                    "p_contacted": p_contacted,
                    "true_effect": round(p_contacted - p_holdout, 10) if p_holdout is not None else None,
                    "follow_up_days": self.follow_up,
                    "holdout_share": self.campaign.holdout.share if self.campaign.holdout else None,
                    "run_ids": list(self.run_ids),
                    "assigned_with_open_gap": {arm: count(arm, "open gap") for arm in arms},
                    "closures_drawn": {arm: count(arm, "closure drawn") for arm in arms},
                    "closures_written": {arm: count(arm, "closed") for arm in arms},
                    "closures_not_written": {
                        arm: {
                            why: count(arm, f"not written: {why}")
                            for why in ("no_closing_code", "no_patient", "outside_measure_window")
                            if count(arm, f"not written: {why}")
                        }
                        for arm in arms
                    },
                    "closing_resource": None
                    if code is None
                    else {
                        "resourceType": code.resource_type,
                        "system": code.system,
                        "code": code.code,
                        "display": code.display,
                        "value_set": code.value_set,
                    },
                }
            )
        return entries


def _funnel(
    rng: random.Random, channel: str, start: int, closure_at: int | None
) -> list[tuple[str, int, str | None, str | None]]:
    """One contacted person's events: (event, UTC seconds, reply_text, detail)."""
    sent = start + rint(rng, 0, 6 * HOUR)
    events: list[tuple[str, int, str | None, str | None]] = [("sent", sent, None, None)]
    delivered: int | None = None
    if channel == "phone":
        if rng.random() < NO_ANSWER_RATE:
            events.append(("called-no-answer", sent + rint(rng, 20, 60), None, None))
        else:
            delivered = sent + rint(rng, 5, 40)
    elif rng.random() < BOUNCE_RATES.get(channel, 0.0):
        details = BOUNCE_DETAILS.get(channel, ("undeliverable",))
        delay = rint(rng, 2 * DAY, 8 * DAY) if channel == "mail" else rint(rng, 5, 15 * MINUTE)
        events.append(("bounced", sent + delay, None, details[rint(rng, 0, len(details))]))
    else:
        delay = {"sms": (2, 90), "email": (5, 15 * MINUTE), "mail": (2 * DAY, 6 * DAY)}.get(channel, (5, 60))
        delivered = sent + rint(rng, *delay)
    if delivered is not None:
        events.append(("delivered", delivered, None, None))
        if channel == "email":
            if rng.random() < EMAIL_OPEN_RATE:
                opened = delivered + rint(rng, 5 * MINUTE, 48 * HOUR)
                events.append(("opened", opened, None, None))
                if rng.random() < EMAIL_CLICK_RATE:
                    events.append(("clicked", opened + rint(rng, 10, 10 * MINUTE), None, None))
            u = rng.random()
            if u < EMAIL_OPT_OUT_RATE:
                events.append(("opted-out", delivered + rint(rng, 10 * MINUTE, 72 * HOUR), None, None))
            elif u < EMAIL_OPT_OUT_RATE + OTHER_REPLY_RATES["email"]:
                reply = OTHER_REPLIES[rint(rng, 0, len(OTHER_REPLIES))]
                events.append(("replied", delivered + rint(rng, 10 * MINUTE, 24 * HOUR), reply, None))
        elif channel == "sms":
            if rng.random() < SMS_CLICK_RATE:
                events.append(("clicked", delivered + rint(rng, MINUTE, 24 * HOUR), None, None))
            u = rng.random()
            if u < SMS_STOP_RATE:
                text = STOP_TEXTS[rint(rng, 0, len(STOP_TEXTS))]
                events.append(("replied", delivered + rint(rng, MINUTE, 6 * HOUR), text, None))
            elif u < SMS_STOP_RATE + OTHER_REPLY_RATES["sms"]:
                reply = OTHER_REPLIES[rint(rng, 0, len(OTHER_REPLIES))]
                events.append(("replied", delivered + rint(rng, MINUTE, 6 * HOUR), reply, None))
    if closure_at is not None and rng.random() < BOOKED_SHARE:
        booked = max(sent + rint(rng, 10 * MINUTE, 2 * HOUR), closure_at - rint(rng, 2 * DAY, 7 * DAY))
        events.append(("booked", booked, None, None))
    return events


# --- inputs ----------------------------------------------------------------------------------------------
def _campaigns() -> list[Campaign]:
    from pipelines.outreach.run import shipped_campaigns

    return shipped_campaigns()


def _follow_up(campaign: Campaign) -> int:
    return campaign.holdout.follow_up_days if campaign.holdout is not None else DEFAULT_FOLLOW_UP_DAYS


def _read_holdout(run: RunFolder) -> pl.DataFrame:
    """person_id, gap_ids, `_all` (True: the run's hold-out names no gaps, so every gap of the campaign's
    measures counts as open: the hold-out comes from the same segment as the list)."""
    try:
        held = run.read_holdout()
    except (pl.exceptions.PolarsError, ValueError):  # an older hold-out file without gap_ids
        path = run.folder / "holdout.csv"
        held = pl.read_csv(path.read_bytes(), infer_schema=False) if path.exists() else pl.DataFrame()
    if "person_id" not in held.columns:
        return pl.DataFrame(
            schema={"person_id": pl.String, "gap_ids": pl.List(pl.String), "_all": pl.Boolean}
        )
    if "gap_ids" not in held.columns or held.schema["gap_ids"] != pl.List(pl.String):
        return held.select(
            pl.col("person_id").cast(pl.String),
            pl.lit([], pl.List(pl.String)).alias("gap_ids"),
            pl.lit(True).alias("_all"),
        )
    return held.select(pl.col("person_id").cast(pl.String), "gap_ids", pl.lit(False).alias("_all"))


def _patients(landing: Path, lake: UPath) -> pl.DataFrame:
    """Per person the Patient its closures are written for: person_id, source, patient_id, bulk (a source
    with a Bulk manifest is preferred, then the source and patient id in name order)."""
    links = read_table(lake, "identity", "person_link")
    if not {"person_id", "source", "source_patient_id"} <= set(links.columns):
        raise ValueError("the lake has no identity/person_link table: run the pipeline first")
    sources = {}
    for folder in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        config = folder / "source.yaml"
        declared = (
            (yaml.safe_load(config.read_text("utf-8")) or {}).get("format") if config.is_file() else None
        )
        if declared in (None, "fhir"):
            sources[folder.name] = (folder / "manifest.json").is_file()
    known = pl.DataFrame(
        {"source": list(sources), "bulk": list(sources.values())},
        schema={"source": pl.String, "bulk": pl.Boolean},
    )
    return (
        links.select("person_id", "source", pl.col("source_patient_id").alias("patient_id"))
        .join(known, on="source")
        .sort(["person_id", "bulk", "source", "patient_id"], descending=[False, True, False, False])
        .unique(subset="person_id", keep="first", maintain_order=True)
    )


def _closure_codes(measure_ids: set[str]) -> dict[str, ClosureCode | None]:
    """The closing code of each measure (None when its numerator is not a single coded event)."""
    measures = {m.id: m for m in load_measures()}
    return {m: _closure_code(measures[m]) if m in measures else None for m in sorted(measure_ids)}


def _closure_code(measure: Measure) -> ClosureCode | None:
    """From the value set of the numerator modality with the shortest window: the measure's preferred code
    system (else LOINC, SNOMED CT, CVX), a screening code when the value set has one, else its first code."""
    if measure.numerator_type != "any_event":
        return None
    modalities = [m for m in measure.modalities if m.min_age is None] or list(measure.modalities)
    if not modalities:
        return None
    modality = min(modalities, key=lambda m: m.window.months)
    path = MEASURES_DIR / "value_sets" / f"{modality.value_set}.yaml"
    codes = (yaml.safe_load(path.read_text("utf-8")) or {}).get("codes") or []
    preferred = PREFERRED_SYSTEM.get(measure.id)
    for system in ([preferred] if preferred else []) + [s for s in SYSTEM_ORDER if s != preferred]:
        found = [c for c in codes if c.get("system") == system]
        if not found:
            continue
        screening = [c for c in found if "screening" in str(c.get("display", "")).lower()]
        chosen = (screening or found)[0]
        return ClosureCode(
            measure.id,
            modality.value_set,
            RESOURCE_BY_SYSTEM[system],
            system,
            str(chosen["code"]),
            str(chosen.get("display", "")),
            modality.window.months,
            modality.window.end_offset_months,
        )
    return None


# --- closing resources ------------------------------------------------------------------------------------
def _closure_resource(closure: dict[str, Any], clock: Clock) -> Json:
    code: ClosureCode = closure["code"]
    concept = {"coding": [{"system": code.system, "code": code.code, "display": code.display}]}
    meta = {"versionId": "1", "lastUpdated": clock.instant(closure["updated"])}
    patient = {"reference": f"Patient/{closure['patient_id']}"}
    when = clock.dt(closure["at"])
    if code.resource_type == "Observation":
        return {
            "resourceType": "Observation",
            "id": closure["id"],
            "meta": meta,
            "status": "final",
            "category": LABORATORY,
            "code": concept,
            "subject": patient,
            "effectiveDateTime": when,
            "issued": clock.instant(closure["updated"]),
            "valueString": "Negative",
        }
    if code.resource_type == "Procedure":
        return {
            "resourceType": "Procedure",
            "id": closure["id"],
            "meta": meta,
            "status": "completed",
            "code": concept,
            "subject": patient,
            "performedDateTime": when,
        }
    return {
        "resourceType": "Immunization",
        "id": closure["id"],
        "meta": meta,
        "status": "completed",
        "vaccineCode": concept,
        "patient": patient,
        "occurrenceDateTime": when,
        "primarySource": True,
    }


def _write_closures(
    landing: Path, closures: list[dict[str, Any]], clock: Clock, day: date, transaction_time: str
) -> list[Path]:
    """Each source's closing resources: a `_since` Bulk export where the source has a manifest, else one
    transaction Bundle."""
    written: list[Path] = []
    by_source: dict[str, list[Json]] = {}
    for closure in closures:
        by_source.setdefault(closure["source"], []).append(_closure_resource(closure, clock))
    for source, resources in sorted(by_source.items()):
        resources.sort(key=lambda r: (r["resourceType"], r["id"]))
        folder = landing / source
        if (folder / "manifest.json").is_file():
            written.extend(_write_since_export(folder, day, transaction_time, resources))
        else:
            written.append(_write_bundle(folder, day, transaction_time, resources))
    return written


def _write_since_export(folder: Path, day: date, transaction_time: str, resources: list[Json]) -> list[Path]:
    """`manifest.<day>.json` beside the first manifest and `<day>/<Type>.000.ndjson` (increment.py's layout),
    the manifest last."""
    manifest_path = folder / f"manifest.{day.isoformat()}.json"
    _check_since_export(folder, day)
    base = orjson.loads((folder / "manifest.json").read_bytes())
    since = max(
        (
            t
            for t in (_transaction_time(p) for p in folder.glob("manifest*.json"))
            if t and t < transaction_time
        ),
        default=base["transactionTime"],
    )
    by_type: dict[str, list[bytes]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    manifest: dict[str, Any] = {
        "transactionTime": transaction_time,
        "request": f"{str(base.get('request', '')).split('?')[0]}?_since={since}",
        "requiresAccessToken": False,
        "output": [],
        "deleted": [],
        "error": [],
        "extension": {"generatedBy": GENERATOR},
    }
    written = []
    for kind, lines in sorted(by_type.items()):
        url = f"{day.isoformat()}/{kind}.000.ndjson"
        _write_atomic(folder / url, b"".join(line + b"\n" for line in lines))
        manifest["output"].append({"type": kind, "url": url, "count": len(lines)})
        written.append(folder / url)
    _write_atomic(manifest_path, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")  # last: whole
    return [*written, manifest_path]


def _check_since_export(folder: Path, day: date) -> None:
    """Refuse a `_since` export of `day` that would not follow the source's first export, or whose manifest
    name another writer (e.g. `increment.py`) already used."""
    manifest_path = folder / f"manifest.{day.isoformat()}.json"
    if manifest_path.exists() and not _ours(manifest_path):
        raise ValueError(
            f"{manifest_path.name} already exists in {folder.name} and was not written by {GENERATOR}"
        )
    first = str(_transaction_time(folder / "manifest.json") or "")[:10]
    if first >= day.isoformat():
        raise ValueError(
            f"the evaluation day {day.isoformat()} must follow {folder.name}'s first export ({first})"
        )


def _ours(manifest: Path) -> bool:
    """True for a `_since` manifest this simulation wrote (`extension.generatedBy`)."""
    try:
        body = orjson.loads(manifest.read_bytes())
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and (body.get("extension") or {}).get("generatedBy") == GENERATOR


def _write_bundle(folder: Path, day: date, transaction_time: str, resources: list[Json]) -> Path:
    """One transaction Bundle of PUT entries (the ids are ours) in `<source>/sim-outreach/<day>.json`."""
    digest = hashlib.sha256(f"{folder.name}/{day.isoformat()}".encode()).hexdigest()
    bundle = {
        "resourceType": "Bundle",
        "id": f"{ID_PREFIX}{digest[:32]}",
        "meta": {"versionId": "1", "lastUpdated": transaction_time},
        "type": "transaction",
        "timestamp": transaction_time,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{_uuid_of(r['id'])}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }
    path = folder / BUNDLE_FOLDER / f"{day.isoformat()}.json"
    _write_atomic(path, orjson.dumps(bundle) + b"\n")
    return path


def _day_after_exports(folder: Path) -> date:
    """The day after the latest export of a Bulk source that this simulation did not write."""
    times = [
        t[:10]
        for path in folder.glob("manifest*.json")
        if not _ours(path) and (t := _transaction_time(path)) and len(t) >= 10
    ]
    return date.fromisoformat(max(times)) + timedelta(days=1) if times else date.min


def _transaction_time(path: Path) -> str | None:
    try:
        value = orjson.loads(path.read_bytes()).get("transactionTime")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


# --- previous outputs, vendor files and ground truth --------------------------------------------------
def _remove_previous_outputs(landing: Path) -> None:
    """Remove what an earlier simulation wrote into `landing` (and nothing else): its `_since` manifests
    (marked with `extension.generatedBy`) and the files they list, its Bundles and its event files."""
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        for manifest in sorted(folder.glob("manifest.*.json")):
            if not _ours(manifest):
                continue
            body = orjson.loads(manifest.read_bytes())
            manifest.unlink()
            for entry in body.get("output") or []:
                listed = folder / str(entry.get("url", ""))
                if listed.is_file() and listed.resolve().is_relative_to(folder.resolve()):
                    listed.unlink()
                    if listed.parent != folder and not any(listed.parent.iterdir()):
                        listed.parent.rmdir()
        if (folder / BUNDLE_FOLDER).is_dir():
            shutil.rmtree(folder / BUNDLE_FOLDER)
    vendor = landing / VENDOR_SOURCE
    if vendor.is_dir():
        for path in sorted(vendor.glob("events_*")):
            if path.suffix in (".csv", ".ndjson"):
                path.unlink()


def _write_source_yaml(landing: Path) -> Path:
    path = landing / VENDOR_SOURCE / "source.yaml"
    _write_atomic(
        path,
        b"# Outcome events of our outreach campaign runs, delivered by the outreach vendor (simulated).\n"
        b"format: outreach_events\n",
    )
    return path


def _write_truth(
    folder: Path,
    seed: int,
    defects: float,
    transaction_time: str | None,
    effect: list[dict[str, Any]],
    closures: list[dict[str, Any]],
    opt_outs: list[tuple[str, str, str, str, str]],
    defect_rows: list[tuple[str, int, str, str]],
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    head = {
        "generator": GENERATOR,
        "seed": seed,
        "defects": defects,
        "evaluation_transaction_time": transaction_time,
        "closure_rates": CLOSURE_RATES,
        "default_closure_rates": DEFAULT_CLOSURE_RATES,
        "campaigns": effect,
    }
    closure_rows = sorted(
        (
            c["campaign_id"],
            c["measure_id"],
            c["run_id"],
            c["person_id"],
            c["arm"],
            f"{c['code'].resource_type}/{c['id']}",
            c["source"],
            c["day"],
        )
        for c in closures
    )
    files = {
        _EFFECT: orjson.dumps(head, option=orjson.OPT_INDENT_2) + b"\n",
        _CLOSURES: _csv_rows(
            ("campaign_id", "measure_id", "run_id", "person_id", "arm", "resource", "source", "date"),
            closure_rows,
        ),
        _OPT_OUTS: _csv_rows(("person_id", "channel", "occurred_at", "event", "event_id"), sorted(opt_outs)),
        _DEFECTS: _csv_rows(("file", "line", "event_id", "expected_reason"), sorted(defect_rows)),
    }
    for name, data in files.items():
        _write_atomic(folder / name, data)
    return [folder / name for name in files]


# --- small helpers ------------------------------------------------------------------------------------
def _sim_id(*parts: str) -> str:
    """A stable id of `parts`: `sim-` and 32 hex digits of their SHA-256 (a valid FHIR id)."""
    return ID_PREFIX + hashlib.sha256("/".join(parts).encode("utf-8")).hexdigest()[:32]


def _uuid_of(text: str) -> str:
    h = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=_EVENT_SCHEMA)


def _csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.select(EVENT_COLUMNS).write_csv(line_terminator="\n").encode("utf-8")


def _ndjson_bytes(frame: pl.DataFrame) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in frame.select(EVENT_COLUMNS).iter_rows(named=True))


def _csv_rows(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary name and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
