"""Clinical histories and the FHIR resources that record them.

A person's latent `Profile` (conditions with onsets, how well each chronic disease is controlled,
engagement with care, utilization rates) drives a `Visit` timeline over the five-year window, which is
then written as FHIR resources to each source that knows the person.

Signals that downstream tests look for, by construction:

- Poorly controlled diabetes (HbA1c > 9), CHF and COPD raise the rates of emergency visits, inpatient
  stays and 30-day readmissions. Diabetics get HbA1c results driven by their control status;
  hypertensives get blood pressures driven by theirs.
- Screening (mammography, colorectal, cervical, diabetic eye exam) follows a per-person adherence, so
  some eligible people are up to date and others have open gaps; exclusions (bilateral mastectomy,
  total colectomy, hysterectomy, ESRD, dementia, frailty, pregnancy) occur at realistic low rates.
  Some overdue people have a booked appointment for the missing screening.
- Post-visit survey ratings depend on the setting (emergency visits rate lower), the practitioner's
  manner and the person; comments follow the rating (see `texts`).

Where a person is in both EHRs, emergency and inpatient care is recorded by EHR A (the hospital); the
ambulatory care is split between the two, and each chronic condition is usually on both problem lists.
EHR B records body weight in pounds and height in inches for about half of its measurements and uses
the older 55284-4 blood-pressure panel for its older visits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from pipelines.generate import texts, vocab
from pipelines.generate.clock import DAY, HOUR, MINUTE, YEAR, Clock, day_number
from pipelines.generate.directory import Directory
from pipelines.generate.population import Person, patient_resource
from pipelines.generate.rng import clamp, new_uuid, poisson, rint, rstep
from pipelines.generate.vocab import UCUM, Json

OBSERVATION_DELETE_RATE = 0.002
APPOINTMENT_DELETE_RATE = 0.01
SURVEY_QUESTIONNAIRE = "Questionnaire/post-visit-survey"
AMBULATORY_KINDS = frozenset({"wellness", "followup", "symptom", "procedure"})


@dataclass(slots=True)
class Profile:
    """The latent clinical state of a person."""

    conditions: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    """Condition key → (onset, abatement or None)."""
    dm_control: str | None = None
    a1c_base: float = 5.4
    a1c_trend: float = 0.0
    htn_controlled: bool = True
    sbp_base: float = 118.0
    dbp_base: float = 75.0
    chf_poor: bool = False
    copd_poor: bool = False
    poor: float = 0.0
    chronic: int = 0
    engagement: float = 0.5
    adherence: float = 0.5
    height_cm: float = 170.0
    weight_kg: float = 75.0
    weight_trend: float = 0.0
    ldl_base: float = 110.0
    egfr_base: float = 95.0
    ed_rate: float = 0.1
    ip_rate: float = 0.02
    amb_rate: float = 0.5
    readmit_p: float = 0.05
    meds: list[tuple[str, str]] = field(default_factory=list)
    """(medication key, condition key it treats)."""
    opt_outs: list[tuple[str, int]] = field(default_factory=list)
    coverage: list[tuple[str, int, int | None]] = field(default_factory=list)
    """(kind, start, end or None)."""
    history: list[tuple[str, int]] = field(default_factory=list)
    """Procedures done before the window or outside any encounter: (procedure key, moment)."""

    def has(self, key: str) -> bool:
        """True when the person has condition `key` (at any time)."""
        return key in self.conditions


@dataclass(slots=True)
class Visit:
    """One encounter on the timeline."""

    kind: str
    start: int
    end: int
    source: str = ""
    cls: str = "AMB"
    reason: Json | None = None
    procedures: list[str] = field(default_factory=list)
    vaccines: list[str] = field(default_factory=list)
    meds: list[tuple[str, str]] = field(default_factory=list)
    """(medication key, status) ordered at this visit."""
    from_ed: bool = False
    disposition: str | None = None
    appointment: bool = False
    survey: bool = False


@dataclass(slots=True)
class Booking:
    """An appointment that is not a fulfilled visit: no-show, cancelled or booked in the future."""

    status: str
    start: int
    created: int
    source: str
    reason: str | None = None


@dataclass(slots=True)
class Timeline:
    """Everything that happened to a person, in time order where it matters."""

    visits: list[Visit]
    bookings: list[Booking]
    standalone_vaccines: list[tuple[str, int, str]]
    """(vaccine key, moment, source) given outside an encounter (pharmacy, mass vaccination)."""
    overdue: list[str]
    last_activity: dict[str, int]


# --- profile -------------------------------------------------------------------------------------------
def _onset(rng: random.Random, person: Person, clock: Clock, min_age: float, recent: float) -> int:
    """An onset after `min_age`: within the window with probability `recent`, else up to 15 years back."""
    earliest = max(person.birth_ts + int(min_age * YEAR), clock.window_start - int(15 * YEAR))
    latest = clock.history_end - 30 * DAY
    if earliest >= latest:
        return latest
    if rng.random() < recent:
        earliest = max(earliest, clock.window_start)
        if earliest >= latest:
            return latest
    else:
        latest = min(latest, clock.window_start)
        if earliest >= latest:
            return earliest
    return rint(rng, earliest, latest)


def make_profile(rng: random.Random, person: Person, clock: Clock) -> Profile:
    """Draw conditions, control, engagement, body size and utilization; sets `person.death_ts`."""
    p = Profile()
    age, female = person.age, person.female
    adult = age >= 18

    def add(key: str, prob: float, min_age: float = 18, recent: float = 0.3) -> bool:
        """Give the person condition `key` with probability `prob` (never before `min_age`)."""
        if rng.random() < prob and age >= min_age:
            p.conditions[key] = (_onset(rng, person, clock, min_age, recent), None)
            return True
        return False

    band = 0 if age < 18 else 1 if age < 45 else 2 if age < 65 else 3
    obese = adult and add("obesity", (0, 0.36, 0.42, 0.38)[band], 20)
    if obese or rng.random() < 0.1:
        dm_p = (0.002, 0.05, 0.17, 0.26)[band] * (1.7 if obese else 0.7)
    else:
        dm_p = (0.002, 0.03, 0.11, 0.2)[band]
    if add("diabetes", dm_p, 25):
        u = rng.random()
        p.dm_control = "good" if u < 0.45 else "fair" if u < 0.75 else "poor"
    elif adult:
        add("prediabetes", 0.16 if obese else 0.09, 25, 0.5)
    add("hypertension", (0.0, 0.1, 0.38, 0.62)[band] * (1.3 if obese else 1.0), 25)
    p.htn_controlled = rng.random() < 0.55
    add("hyperlipidemia", (0.0, 0.08, 0.3, 0.42)[band], 30)
    add("chf", (0.0, 0.003, 0.02, 0.08)[band] * (1.6 if p.has("hypertension") else 1.0), 45)
    add("copd", (0.0, 0.01, 0.06, 0.11)[band], 40)
    ckd_p = (0.0, 0.01, 0.05, 0.15)[band] * (2.0 if p.has("diabetes") else 1.0)
    if rng.random() < ckd_p:
        stage = "ckd4" if rng.random() < 0.12 else "ckd3"
        p.conditions[stage] = (_onset(rng, person, clock, 40, 0.3), None)
    if adult and rng.random() < (0.002 + 0.004 * p.has("diabetes") + 0.01 * p.has("ckd4")):
        p.conditions["esrd"] = (_onset(rng, person, clock, 40, 0.4), None)
    add("asthma", 0.08, 3)
    if female:
        add("breast_cancer", (0, 0.002, 0.012, 0.025)[band], 35)
    add("colon_cancer", (0, 0.0005, 0.003, 0.006)[band], 40)
    add("depression", 0.09 if adult else 0.03, 12)
    add("hypermetropia", 0.1, 5, 0.2)
    if age >= 65:
        add("dementia", 0.03 if age < 75 else 0.1 if age < 85 else 0.22, 60, 0.6)
    if age >= 70:
        add("frailty", 0.05 if age < 80 else 0.16, 65, 0.7)
    if female and 16 <= age <= 46 and rng.random() < 0.2:
        start = rint(
            rng, max(clock.window_start, person.birth_ts + int(16 * YEAR)), clock.history_end - 20 * DAY
        )
        end = start + 280 * DAY
        p.conditions["pregnancy"] = (start, end if end < clock.history_end else None)
    p.chf_poor = p.has("chf") and rng.random() < 0.35
    p.copd_poor = p.has("copd") and rng.random() < 0.35
    chronic_keys = (
        "diabetes",
        "hypertension",
        "chf",
        "copd",
        "ckd3",
        "ckd4",
        "esrd",
        "asthma",
        "depression",
        "dementia",
    )
    p.chronic = sum(key in p.conditions for key in chronic_keys)
    p.poor = (
        (p.dm_control == "poor") * 1.0 + p.chf_poor * 1.3 + p.copd_poor * 1.1 + (p.dm_control == "fair") * 0.2
    )
    p.engagement = clamp(rng.betavariate(4, 2.5) + 0.04 * p.chronic - 0.15 * (p.poor > 0), 0.05, 0.98)
    p.adherence = clamp(p.engagement + rng.gauss(0, 0.15), 0.02, 0.98)

    # measurements
    if p.dm_control:
        p.a1c_base = {"good": 6.5, "fair": 7.9, "poor": 9.9}[p.dm_control] + rng.gauss(0, 0.3)
        p.a1c_trend = rng.choice((0.0, 0.0, -0.3)) if p.dm_control == "poor" else rng.choice((0.0, 0.05))
    elif p.has("prediabetes"):
        p.a1c_base = rng.uniform(5.7, 6.3)
    else:
        p.a1c_base = rng.uniform(4.8, 5.6)
    if p.has("hypertension"):
        p.sbp_base, p.dbp_base = (128.0, 79.0) if p.htn_controlled else (153.0, 93.0)
    else:
        p.sbp_base = 108.0 + 0.3 * max(0, age - 25)
        p.dbp_base = 70.0 + 0.1 * max(0, age - 25)
    p.sbp_base += rng.gauss(0, 5)
    p.dbp_base += rng.gauss(0, 3)
    if adult:
        p.height_cm = rng.gauss(176, 7) if not female else rng.gauss(162, 6.5)
        bmi = rng.uniform(30.5, 42) if obese else rng.gauss(25.5, 3.2)
        p.weight_kg = clamp(bmi, 16.5, 60) * (p.height_cm / 100) ** 2
        p.weight_trend = rng.gauss(0.2, 0.8)
    p.ldl_base = rng.gauss(150 if p.has("hyperlipidemia") else 108, 22)
    if p.has("esrd"):
        p.egfr_base = rng.uniform(6, 14)
    elif p.has("ckd4"):
        p.egfr_base = rng.uniform(16, 29)
    elif p.has("ckd3"):
        p.egfr_base = rng.uniform(31, 58)
    else:
        p.egfr_base = clamp(112 - 0.8 * max(0, age - 25) + rng.gauss(0, 8), 62, 130)

    # utilization (per year)
    p.amb_rate = 0.3 + 0.5 * p.chronic + 0.2 * (age >= 65) + 0.4 * (age < 3)
    p.ed_rate = 0.1 + 0.07 * p.chronic + 0.55 * p.poor + 0.1 * (age < 5) + 0.1 * p.has("dementia")
    p.ip_rate = 0.012 + 0.025 * p.chronic + 0.25 * p.poor + 0.05 * (age >= 75) + 0.08 * p.has("frailty")
    p.readmit_p = clamp(0.06 + 0.2 * p.poor, 0, 0.45)

    # medications
    if p.has("hypertension"):
        if rng.random() < 0.8:
            p.meds.append((rng.choice(("lisinopril10", "lisinopril10", "losartan50")), "hypertension"))
        if rng.random() < 0.4:
            p.meds.append(("amlodipine5", "hypertension"))
        if rng.random() < 0.25:
            p.meds.append(("hctz25", "hypertension"))
    if p.dm_control:
        if rng.random() < 0.85:
            p.meds.append(("metformin500er", "diabetes"))
        if rng.random() < {"good": 0.05, "fair": 0.15, "poor": 0.4}[p.dm_control]:
            p.meds.append(("insulin7030", "diabetes"))
    statin = rng.choice(("atorvastatin40", "atorvastatin40", "atorvastatin80", "simvastatin20"))
    if p.dm_control and 40 <= age <= 75 and rng.random() < 0.62:
        p.meds.append((statin, "diabetes"))
    elif p.has("hyperlipidemia") and rng.random() < 0.7:
        p.meds.append((statin, "hyperlipidemia"))
    for key in ("copd", "asthma"):
        if p.has(key):
            inhaler = "albuterol_neb" if key == "copd" and rng.random() < 0.3 else "albuterol_mdi"
            p.meds.append((inhaler, key))
            break
    if p.has("depression") and rng.random() < 0.5:
        p.meds.append(("fluoxetine20", "depression"))

    # procedures that exclude people from screening measures
    if p.has("breast_cancer") and rng.random() < 0.35:
        p.history.append(
            ("bilateral_mastectomy", p.conditions["breast_cancer"][0] + rint(rng, 30, 120) * DAY)
        )
    if p.has("colon_cancer") and rng.random() < 0.3:
        p.history.append(("total_colectomy", p.conditions["colon_cancer"][0] + rint(rng, 20, 90) * DAY))
    if female and age >= 35 and rng.random() < 0.09:
        lo = person.birth_ts + int(30 * YEAR)
        p.history.append(("hysterectomy", rint(rng, lo, max(lo + DAY, clock.history_end - 60 * DAY))))

    # death: rare, more likely when old or sick
    death_p = 0.002 if age < 40 else 0.008 if age < 65 else 0.03 if age < 80 else 0.1
    death_p *= 1 + 1.2 * p.has("chf") + 1.5 * p.has("esrd") + 1.0 * p.has("dementia") + 0.6 * p.poor
    if rng.random() < death_p * 0.85:
        lo = max(clock.window_start + 90 * DAY, person.birth_ts + 30 * DAY)
        if lo < clock.history_end - 3 * DAY:
            person.death_ts = rint(rng, lo, clock.history_end - 2 * DAY)
            person.death_recorded_in = tuple(s for s in person.sources if s == "ehr_a" or rng.random() < 0.5)
            if not person.death_recorded_in:
                person.death_recorded_in = (person.sources[0],)

    # coverage
    if rng.random() > 0.08 or age >= 65:
        kind = (
            "medicare"
            if age >= 65
            else "medicaid"
            if rng.random() < (0.35 if age < 18 else 0.17)
            else "commercial"
        )
        start = clock.window_start - rint(rng, 0, 6 * 365) * DAY
        if rng.random() < 0.25:
            switch = rint(rng, clock.window_start + 180 * DAY, clock.history_end - 30 * DAY)
            old = "commercial" if kind != "commercial" else rng.choice(("commercial", "medicaid"))
            p.coverage.append((old, start, switch - DAY))
            start = switch
        end = person.death_ts if person.death_ts else None
        p.coverage.append((kind, start, end))

    # communication opt-outs
    if rng.random() < 0.13:
        for _ in range(1 if rng.random() < 0.8 else 2):
            channel = rng.choices(("sms", "email", "phone", "mail", "all"), (35, 25, 20, 10, 10))[0]
            if all(c != channel for c, _ in p.opt_outs):
                day = rint(rng, clock.window_start // DAY, clock.as_of_day)
                p.opt_outs.append((channel, clock.at_local(day, rint(rng, 8 * 3600, 20 * 3600))))
    return p


# --- timeline ------------------------------------------------------------------------------------------
def _weekday_time(rng: random.Random, clock: Clock, day: int, start_h: int = 8, end_h: int = 16) -> int:
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
    if weekday >= 5:
        day += 7 - weekday
    return clock.at_local(day, rstep(rng, start_h * 3600, end_h * 3600, 300))


def make_timeline(rng: random.Random, person: Person, p: Profile, clock: Clock) -> Timeline:
    """The visits, other appointments and standalone vaccinations of a person over the window."""
    lo = max(clock.window_start, person.birth_ts + HOUR)
    hi = person.death_ts if person.death_ts else clock.history_end
    visits: list[Visit] = []
    years = max(0.0, (hi - lo) / YEAR)
    lo_day, hi_day = lo // DAY, hi // DAY

    def clinic_visit(kind: str, day: int, minutes: int = 30) -> Visit | None:
        """A clinic visit on the first weekday from `day`, if it falls in the window."""
        start = _weekday_time(rng, clock, day)
        if not lo <= start <= hi - minutes * MINUTE:
            return None
        visit = Visit(kind, start, start + (minutes + rint(rng, 0, 20)) * MINUTE)
        visits.append(visit)
        return visit

    # well-child visits with the immunization schedule, then yearly wellness visits
    child_adherence = clamp(p.engagement + 0.3, 0.5, 0.99)
    if person.age < 18:
        for months, vaccines in vocab.CHILD_SCHEDULE:
            day = person.birth_day + round(months * 30.44) + rint(rng, -3, 15)
            if lo_day <= day <= hi_day and rng.random() < child_adherence:
                visit = clinic_visit("wellness", day)
                if visit:
                    visit.vaccines = [v for v in vaccines if rng.random() < 0.96]
    for k in range(6):
        slot = clock.window_start // DAY + int(k * 365.25)
        if slot > hi_day:
            break
        age_then = (slot - person.birth_day) / 365.25
        if age_then < 2.5:
            continue
        chance = 0.55 + 0.35 * p.engagement if age_then < 18 else p.engagement * 0.85
        if rng.random() < chance:
            clinic_visit("wellness", slot + rint(rng, 0, 365), 40)

    for _ in range(poisson(rng, p.amb_rate * years)):
        kind = "followup" if p.chronic and rng.random() < 0.7 else "symptom"
        clinic_visit(kind, rint(rng, lo_day, hi_day + 1), 20)

    # emergency and inpatient care
    def emergency(at: int, reason: Json | None = None, admit_p: float | None = None) -> None:
        """An emergency visit at `at`, possibly followed by an admission."""
        if not lo <= at <= hi - 8 * HOUR:
            return
        end = at + rstep(rng, 2 * HOUR, 9 * HOUR, 300)
        if reason is None:
            u = rng.random()
            if p.dm_control == "poor" and u < 0.35:
                reason = vocab.HYPERGLYCEMIA if rng.random() < 0.8 else vocab.HYPOGLYCEMIA
            elif p.copd_poor and u < 0.6:
                reason = vocab.COPD_EXACERBATION
            elif p.chf_poor and u < 0.7:
                reason = vocab.CONDITIONS["chf"][0]
            else:
                reason = rng.choice(vocab.ACUTE_REASONS)
        visits.append(Visit("emergency", at, end, cls="EMER", reason=reason))
        if admit_p is None:
            admit_p = 0.1 + 0.2 * (p.poor > 0) + 0.1 * (person.age >= 75)
        if rng.random() < admit_p:
            inpatient(end, reason, from_ed=True)

    def inpatient(at: int, reason: Json | None, from_ed: bool = False) -> None:
        """An inpatient stay from `at`, possibly followed by a 30-day readmission."""
        los = 1 + min(poisson(rng, 2.2 + 1.5 * (p.poor > 0) + 1.0 * p.has("chf")), 20)
        end = at + los * DAY + rstep(rng, -6 * HOUR, 6 * HOUR, 300)
        if end > hi:
            return
        visit = Visit(
            "inpatient", at, end, cls="IMP", reason=reason or rng.choice(vocab.ACUTE_REASONS), from_ed=from_ed
        )
        visit.disposition = rng.choices(
            ("home", "alt-home", "snf", "rehab", "other-hcf", "hosp", "aadvice"), (68, 8, 10, 5, 3, 2, 4)
        )[0]
        visits.append(visit)
        # readmission within 30 days
        if rng.random() < p.readmit_p:
            back = end + rint(rng, 2 * DAY, 29 * DAY)
            emergency(back, reason, admit_p=1.0)

    for _ in range(poisson(rng, p.ed_rate * years)):
        day = rint(rng, lo_day, hi_day + 1)
        hour = rng.choices(
            range(24), (2, 1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 6, 5, 4, 3)
        )[0]
        emergency(clock.at_local(day, hour * 3600 + rstep(rng, 0, 3600, 60)))
    for _ in range(poisson(rng, p.ip_rate * years)):
        inpatient(_weekday_time(rng, clock, rint(rng, lo_day, hi_day + 1), 7, 12), None)
    if person.death_ts and rng.random() < 0.4:
        los = rint(rng, 1, 12)
        visit = Visit(
            "inpatient",
            person.death_ts - los * DAY,
            person.death_ts,
            cls="IMP",
            reason=rng.choice(vocab.ACUTE_REASONS),
            disposition="exp",
        )
        if visit.start > lo:
            visits.append(visit)

    # screenings and exclusion procedures
    excluded = {key for key, _ in p.history}
    for key, at in list(p.history):
        if lo <= at <= hi - DAY and rng.random() < 0.7:
            visit = clinic_visit("procedure", at // DAY, 120)
            if visit:
                visit.procedures.append(key)
                p.history.remove((key, at))
    last: dict[str, int] = {}

    def screening(key: str, every_days: int, eligible: Callable[[float], bool], chance: float) -> None:
        """Repeated screening `key` while eligible, each cycle done with probability `chance`."""
        due = lo - rint(rng, 0, every_days) * DAY
        while True:
            at_day = due // DAY + rint(rng, 0, 60)
            if at_day > hi_day:
                return
            if eligible(person.age_at(at_day * DAY)) and rng.random() < chance:
                visit = clinic_visit("procedure", at_day, 45)
                if visit:
                    visit.procedures.append(key)
                    last[key] = visit.start
                    due = visit.start + every_days * DAY
                    continue
            due = at_day * DAY + (365 if every_days > 365 else every_days) * DAY

    a = p.adherence
    if person.female and "bilateral_mastectomy" not in excluded:
        screening(
            "screening_mammography" if rng.random() < 0.8 else "mammography",
            730,
            lambda y: 50 <= y < 75 or (40 <= y < 50 and rng.random() < 0.3),
            a,
        )
    if "total_colectomy" not in excluded and person.age >= 45:
        if rng.random() < a * 0.75:
            if rng.random() < 0.5:
                at = lo - rint(rng, 365, 9 * 365) * DAY
                if person.age_at(at) >= 45:
                    p.history.append(("colonoscopy", at))
                    last["colonoscopy"] = at
            else:
                screening("colonoscopy", 3650, lambda y: 45 <= y < 76, 0.6)
        elif rng.random() < a:
            screening("fobt", 365, lambda y: 45 <= y < 76, a)
    if person.female and "hysterectomy" not in excluded:
        screening("cervical_cytology", 1095, lambda y: 21 <= y < 65, a)
    if p.dm_control:
        screening(rng.choice(("retinal_exam", "retinal_exam", "eye_exam")), 365, lambda y: y >= 18, a * 0.8)

    visits.sort(key=lambda v: v.start)
    _add_pneumococcal(rng, person, p, clock, visits)
    _add_medications(rng, p, visits)

    # sources
    both = len(person.sources) == 2
    for visit in visits:
        if not both:
            visit.source = person.sources[0]
        elif visit.kind in ("emergency", "inpatient"):
            visit.source = "ehr_a"
        else:
            visit.source = "ehr_a" if rng.random() < 0.55 else "ehr_b"
        if visit.kind in AMBULATORY_KINDS:
            visit.appointment = rng.random() < 0.75
        survey_p = {"emergency": 0.25, "inpatient": 0.3}.get(visit.kind, 0.14)
        visit.survey = visit.end < clock.history_end - DAY and rng.random() < survey_p

    standalone = _standalone_vaccines(rng, person, p, clock, visits, lo, hi)
    bookings = _bookings(rng, person, p, clock, lo, hi)
    overdue = _overdue(person, p, clock, last, excluded)
    primary = person.sources[0]
    if person.death_ts is None:
        for key in overdue:
            if key in ("mammography", "colonoscopy") and rng.random() < 0.3 * (0.5 + p.engagement):
                start = _weekday_time(rng, clock, clock.as_of_day + rint(rng, 3, 88))
                created = clock.now - rint(rng, 1, 40) * DAY
                bookings.append(Booking("booked", start, created, primary, key))
    last_activity = {s: clock.window_start + rint(rng, 0, 300) * DAY for s in person.sources}
    for visit in visits:
        last_activity[visit.source] = max(last_activity[visit.source], visit.end)
    return Timeline(visits, bookings, standalone, overdue, last_activity)


def _add_pneumococcal(
    rng: random.Random, person: Person, p: Profile, clock: Clock, visits: list[Visit]
) -> None:
    """Pneumococcal vaccination at a wellness visit for people 65 and over."""
    if person.age >= 65 and rng.random() < 0.45 + 0.3 * p.engagement:
        for visit in visits:
            if visit.kind == "wellness" and person.age_at(visit.start) >= 65:
                visit.vaccines.append("pcv20" if visit.start > clock.window_start + 2 * YEAR else "ppsv23")
                break


def _standalone_vaccines(
    rng: random.Random, person: Person, p: Profile, clock: Clock, visits: list[Visit], lo: int, hi: int
) -> list[tuple[str, int, str]]:
    """Seasonal influenza and COVID-19 doses: at an autumn visit when there is one, else at a pharmacy."""
    out: list[tuple[str, int, str]] = []
    flu_p = 0.25 + 0.35 * p.engagement + 0.25 * (person.age >= 65) + 0.1 * (p.chronic > 0)
    covid_p = 0.12 + 0.2 * (person.age >= 65) + 0.1 * p.engagement
    first_year = clock.as_of.year - 5
    for year in range(first_year, clock.as_of.year + 1):
        season_start = clock.at_local(_day_of(year, 9, 1), 10 * 3600)
        season_end = clock.at_local(_day_of(year, 12, 15), 10 * 3600)
        if season_end < lo or season_start > hi:
            continue
        for key, chance, min_age in (("flu", flu_p, 0.5), ("covid", covid_p, 5)):
            if person.age_at(season_start) < min_age or rng.random() >= chance:
                continue
            if key == "flu":
                vaccine = (
                    "flu_hd" if person.age_at(season_start) >= 65 else rng.choice(("flu", "flu", "flu_mdv"))
                )
            else:
                vaccine = rng.choice(("covid_pfizer", "covid_moderna", "covid_unspecified"))
            autumn = [v for v in visits if season_start <= v.start <= season_end and v.cls == "AMB"]
            if autumn and rng.random() < 0.6:
                rng.choice(autumn).vaccines.append(vaccine)
            else:
                first, last = max(season_start, lo) // DAY, min(season_end, hi) // DAY
                at = clock.at_local(rint(rng, first, max(first + 1, last)), rint(rng, 9 * 3600, 19 * 3600))
                if lo <= at <= hi:
                    out.append(
                        (
                            vaccine,
                            at,
                            person.sources[0] if len(person.sources) == 1 else rng.choice(person.sources),
                        )
                    )
    return out


def _day_of(year: int, month: int, day: int) -> int:
    return day_number(date(year, month, day))


def _add_medications(rng: random.Random, p: Profile, visits: list[Visit]) -> None:
    """Order each chronic medication at the first ambulatory visit after its condition's onset, renewed
    about yearly; the last order is active (or stopped), earlier ones completed."""
    ambulatory = [v for v in visits if v.kind in ("wellness", "followup", "symptom")]
    if not ambulatory:
        return
    for med, condition in p.meds:
        onset = p.conditions[condition][0]
        last_order = None
        orders: list[Visit] = []
        for visit in ambulatory:
            if visit.start < onset:
                continue
            if last_order is None or visit.start - last_order >= 330 * DAY:
                orders.append(visit)
                last_order = visit.start
        stopped = rng.random() < 0.1
        for i, visit in enumerate(orders):
            status = "completed" if i < len(orders) - 1 else ("stopped" if stopped else "active")
            visit.meds.append((med, status))


def _bookings(
    rng: random.Random, person: Person, p: Profile, clock: Clock, lo: int, hi: int
) -> list[Booking]:
    out: list[Booking] = []
    years = max(0.0, (hi - lo) / YEAR)
    lo_day, hi_day = lo // DAY, hi // DAY
    if hi_day <= lo_day + 2:
        return out
    for status, rate in (("noshow", (1 - p.engagement) * 0.45), ("cancelled", 0.25)):
        for _ in range(poisson(rng, rate * years)):
            start = _weekday_time(rng, clock, rint(rng, lo_day, hi_day))
            if start <= hi:
                src = rng.choice(person.sources)
                out.append(Booking(status, start, start - rint(rng, 3, 60) * DAY, src))
    if person.death_ts is None:
        n = (rng.random() < 0.3 + 0.3 * (p.chronic > 0)) + (rng.random() < 0.12)
        for _ in range(n):
            start = _weekday_time(rng, clock, clock.as_of_day + rint(rng, 1, 88))
            out.append(
                Booking("booked", start, clock.now - rint(rng, 1, 60) * DAY, rng.choice(person.sources))
            )
    return out


def _overdue(person: Person, p: Profile, clock: Clock, last: dict[str, int], excluded: set[str]) -> list[str]:
    """Screenings the person is eligible for and has not had recently enough (at `as_of`)."""
    if person.death_ts is not None or p.has("dementia") or p.has("frailty") or p.has("esrd"):
        return []
    now, age = clock.history_end, person.age
    overdue = []
    mammo = max(last.get("screening_mammography", 0), last.get("mammography", 0))
    if (
        person.female
        and 52 <= age < 75
        and "bilateral_mastectomy" not in excluded
        and now - mammo > 27 * 30 * DAY
    ):
        overdue.append("mammography")
    colo_ok = (
        now - last.get("colonoscopy", -(10**12)) < 3650 * DAY or now - last.get("fobt", -(10**12)) < 365 * DAY
    )
    if 45 <= age < 76 and not colo_ok and "total_colectomy" not in excluded and not p.has("colon_cancer"):
        overdue.append("colonoscopy")
    if (
        person.female
        and 21 <= age < 65
        and "hysterectomy" not in excluded
        and (now - last.get("cervical_cytology", -(10**12)) > 3 * 365 * DAY)
    ):
        overdue.append("cervical_cytology")
    eye = max(last.get("retinal_exam", 0), last.get("eye_exam", 0))
    if p.dm_control and 18 <= age < 76 and now - eye > 365 * DAY:
        overdue.append("retinal_exam")
    return overdue


# --- FHIR resources ------------------------------------------------------------------------------------
class Src:
    """Where and how one source records resources: reference style, directory and sinks."""

    __slots__ = ("delete", "directory", "emit", "name", "patient_id", "pref", "urn")

    def __init__(
        self,
        name: str,
        directory: Directory,
        emit: Callable[[Json], None],
        delete: Callable[[str, str], None] | None,
    ) -> None:
        self.name = name
        self.urn = name == "ehr_b"
        self.directory = directory
        self.emit = emit
        self.delete = delete
        self.patient_id = ""
        self.pref: Json = {}

    def ref(self, rtype: str, rid: str) -> Json:
        """A reference to another resource of the same patient record."""
        return {"reference": f"urn:uuid:{rid}" if self.urn else f"{rtype}/{rid}"}


def _q(value: float, unit: str, code: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


class ResourceWriter:
    """Turns a person's profile and timeline into FHIR resources for one source at a time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cap = clock.now - 6 * HOUR
        """Latest lastUpdated of a genuine resource, leaving room for newer versions before `now`."""

    def meta(self, ts: int) -> Json:
        """meta with versionId 1 and lastUpdated at `ts` (capped)."""
        return {"versionId": "1", "lastUpdated": self.clock.instant(ts if ts < self.cap else self.cap)}

    def write_person(self, rng: random.Random, person: Person, p: Profile, t: Timeline, src: Src) -> None:
        """Every resource `src` holds about `person`, in a natural order (Patient first)."""
        clock = self.clock
        d = src.directory
        src.patient_id = pid = person.ids[src.name]
        src.pref = src.ref("Patient", pid)
        src.emit(
            patient_resource(person, src.name, clock, min(t.last_activity[src.name] + 2 * DAY, self.cap))
        )
        self._coverage(rng, person, p, src)
        consents = self._consents(rng, p, src)
        self._conditions(rng, person, p, src)
        for key, at in p.history:
            self._procedure(rng, key, at, None, src)
        pcp = person.pcp[src.name]
        for visit in t.visits:
            if visit.source == src.name:
                self._visit(rng, person, p, visit, src, pcp)
        for vaccine, at, source in t.standalone_vaccines:
            if source == src.name:
                self._immunization(rng, vaccine, at, None, src, primary=False)
        denied = {c for c, _ in consents}
        for booking in t.bookings:
            if booking.source == src.name:
                aid = self._appointment(
                    rng,
                    booking.status,
                    booking.start,
                    booking.start + 30 * MINUTE,
                    booking.created,
                    pcp,
                    src,
                    booking.reason,
                )
                if booking.status in ("booked", "noshow") and rng.random() < 0.6:
                    self._reminder(rng, booking.start, aid, pcp, denied, src)
        if src.name == person.sources[0]:
            for key in t.overdue:
                if rng.random() < 0.5 and key in texts.SCREENING_REMINDERS:
                    sent = clock.at_local(clock.as_of_day - rint(rng, 7, 330), rint(rng, 9 * 3600, 17 * 3600))
                    self._communication(
                        rng,
                        sent,
                        texts.SCREENING_REMINDERS[key],
                        "reminder",
                        denied,
                        ("mail", "email", "sms"),
                        src,
                        d.root,
                    )
            hi = person.death_ts or clock.history_end
            for _ in range(poisson(rng, 0.25 * p.engagement * 5)):
                sent = rint(rng, clock.window_start, hi)
                text = rng.choice(texts.PATIENT_MESSAGES).format(med=rng.choice(texts.MEDS_FOR_TEXT))
                self._patient_message(rng, sent, text, pcp, src)

    # --- administrative -----------------------------------------------------------------------------
    def _coverage(self, rng: random.Random, person: Person, p: Profile, src: Src) -> None:
        d = src.directory
        for i, (kind, start, end) in enumerate(p.coverage):
            if src.name == "ehr_b" and i < len(p.coverage) - 1 and rng.random() < 0.6:
                continue
            resource: Json = {
                "resourceType": "Coverage",
                "id": new_uuid(rng),
                "meta": self.meta(max(start, self.clock.window_start) + rint(rng, 0, 30) * DAY),
                "status": "active" if end is None or rng.random() < 0.7 else "cancelled",
                "type": vocab.COVERAGE_TYPE[kind],
                "subscriberId": f"{kind[:2].upper()}{rint(rng, 0, 10**9):09d}",
                "beneficiary": src.pref,
                "relationship": vocab.SUBSCRIBER_RELATIONSHIP[
                    "child"
                    if person.age < 18 and kind != "medicare"
                    else "spouse"
                    if kind == "commercial" and rng.random() < 0.15
                    else "self"
                ],
                "period": {"start": self.clock.date(start)}
                if end is None
                else {"start": self.clock.date(start), "end": self.clock.date(end)},
                "payor": [d.ref("Organization", rng.choice(d.payers[kind]))],
            }
            src.emit(resource)

    def _consents(self, rng: random.Random, p: Profile, src: Src) -> list[tuple[str, int]]:
        recorded = []
        for channel, at in p.opt_outs:
            if src.name == "ehr_b" and rng.random() < 0.4:
                continue
            recorded.append((channel, at))
            src.emit(
                {
                    "resourceType": "Consent",
                    "id": new_uuid(rng),
                    "meta": self.meta(at + rint(rng, 60, 3 * DAY)),
                    "status": "active",
                    "scope": vocab.CONSENT_SCOPE,
                    "category": vocab.CONSENT_CATEGORY,
                    "patient": src.pref,
                    "dateTime": self.clock.dt(at),
                    "policyRule": vocab.CONSENT_POLICY_RULE,
                    "provision": {
                        "type": "deny",
                        "period": {"start": self.clock.dt(at)},
                        "code": [vocab.CONTACT_CHANNELS[channel]],
                    },
                }
            )
        return recorded

    def _conditions(self, rng: random.Random, person: Person, p: Profile, src: Src) -> None:
        both = len(person.sources) == 2
        variant = 0 if src.name == "ehr_a" else 1
        for key, (onset, abatement) in p.conditions.items():
            if both and rng.random() > (0.9 if src.name == "ehr_a" else 0.75):
                continue
            codes = vocab.CONDITIONS[key]
            code = codes[variant % len(codes)] if rng.random() < 0.85 else rng.choice(codes)
            if abatement is not None:
                status = "resolved"
            elif key == "depression" and rng.random() < 0.2:
                status = "remission"
            else:
                status = "active"
            resource: Json = {
                "resourceType": "Condition",
                "id": new_uuid(rng),
                "meta": self.meta(max(onset, self.clock.window_start) + rint(rng, HOUR, 20 * DAY)),
                "clinicalStatus": vocab.CLINICAL_STATUS[status],
                "verificationStatus": vocab.VERIFICATION_CONFIRMED,
                "category": vocab.CONDITION_CATEGORY["problem"],
                "code": code,
                "subject": src.pref,
                "onsetDateTime": self.clock.dt(onset),
            }
            if abatement is not None:
                resource["abatementDateTime"] = self.clock.dt(abatement)
            resource["recordedDate"] = self.clock.dt(onset + rint(rng, 0, 14) * DAY)
            src.emit(resource)

    # --- encounters and what happens during them ----------------------------------------------------
    def _visit(self, rng: random.Random, person: Person, p: Profile, v: Visit, src: Src, pcp: str) -> None:
        clock = self.clock
        d = src.directory
        kind = v.kind
        if kind == "emergency":
            practitioner, org = rng.choice(d.emergency), d.emergency_dept
            etype = vocab.ENCOUNTER_TYPE["emergency"]
        elif kind == "inpatient":
            practitioner, org = rng.choice(d.hospitalists), d.inpatient_dept
            etype = vocab.ENCOUNTER_TYPE["inpatient_from_ed" if v.from_ed else "inpatient"]
        elif kind == "procedure":
            practitioner, org = rng.choice(d.specialists), d.imaging_dept
            etype = vocab.ENCOUNTER_TYPE["procedure"]
        else:
            practitioner = pcp if rng.random() < 0.8 else rng.choice(d.pcps)
            org = d.clinics[hash_index(practitioner, len(d.clinics))]
            if kind == "wellness":
                etype = vocab.ENCOUNTER_TYPE[
                    "wellness_child" if person.age_at(v.start) < 18 else "wellness_adult"
                ]
            else:
                etype = vocab.ENCOUNTER_TYPE[kind]
        eid = new_uuid(rng)
        eref = src.ref("Encounter", eid)
        aid = None
        if v.appointment:
            aid = self._appointment(
                rng,
                "fulfilled",
                v.start - rint(rng, 0, 15) * MINUTE,
                v.end,
                v.start - rint(rng, 3, 60) * DAY,
                practitioner,
                src,
                v.procedures[0] if v.procedures else None,
                v.end,
            )
        enc: Json = {
            "resourceType": "Encounter",
            "id": eid,
            "meta": self.meta(v.end + rint(rng, 10 * MINUTE, 2 * DAY)),
            "status": "finished",
            "class": vocab.ENCOUNTER_CLASS[v.cls],
            "type": [etype],
            "subject": src.pref,
            "participant": [
                {"type": vocab.PARTICIPANT_ATTENDER, "individual": d.ref("Practitioner", practitioner)}
            ],
            "period": {"start": clock.dt(v.start), "end": clock.dt(v.end)},
        }
        if aid:
            enc["appointment"] = [src.ref("Appointment", aid)]
        if v.reason is not None:
            enc["reasonCode"] = [v.reason]
        if kind == "inpatient":
            enc["hospitalization"] = {
                "admitSource": vocab.ADMIT_SOURCE["emd" if v.from_ed else rng.choice(("gp", "outp"))],
                "dischargeDisposition": vocab.DISCHARGE[v.disposition or "home"],
            }
        enc["serviceProvider"] = d.ref("Organization", org)
        src.emit(enc)

        self._observations(rng, person, p, v, src, eref)
        for key in v.procedures:
            self._procedure(rng, key, v.start + 10 * MINUTE, eref, src)
        for vaccine in v.vaccines:
            self._immunization(rng, vaccine, v.start + 25 * MINUTE, eref, src)
        for med, status in v.meds:
            self._medication(rng, med, status, v.start + 20 * MINUTE, eref, practitioner, src)
        if v.survey:
            self._survey(rng, p, v, eref, practitioner, src)

    def _observations(
        self, rng: random.Random, person: Person, p: Profile, v: Visit, src: Src, eref: Json
    ) -> None:
        clock = self.clock
        age = person.age_at(v.start)
        years_back = (clock.now - v.start) / YEAR
        kind = v.kind
        at = v.start + 5 * MINUTE
        if kind == "procedure":
            return
        if kind == "inpatient":
            days = min(int((v.end - v.start) / DAY) + 1, 5)
            for day in range(days):
                moment = v.start + day * DAY + rint(rng, 30 * MINUTE, 3 * HOUR)
                if moment < v.end:
                    self._bp(rng, p, age, moment, src, eref, acute=day == 0)
                    self._vital(
                        rng, vocab.HEART_RATE, round(rng.gauss(84, 11)), "/min", "/min", moment, src, eref
                    )
            self._lab(rng, vocab.GLUCOSE, _glucose(rng, p, years_back), "mg/dL", "mg/dL", at, src, eref)
            self._lab(
                rng, vocab.EGFR_CKD_EPI, _egfr(rng, p), "mL/min/{1.73_m2}", "mL/min/{1.73_m2}", at, src, eref
            )
            if p.dm_control and rng.random() < 0.5:
                self._a1c(rng, p, years_back, at, src, eref)
            return
        if age >= 3:
            self._bp(rng, p, age, at, src, eref, acute=kind == "emergency")
        self._vital(
            rng,
            vocab.HEART_RATE,
            round(rng.gauss(78 if age >= 12 else 100, 10)),
            "/min",
            "/min",
            at,
            src,
            eref,
        )
        if kind == "emergency":
            if p.dm_control or rng.random() < 0.35:
                self._lab(rng, vocab.GLUCOSE, _glucose(rng, p, years_back), "mg/dL", "mg/dL", at, src, eref)
            return
        height, weight = _body(person, p, age, years_back)
        self._weight(rng, weight, at, src, eref)
        if kind == "wellness" or age < 18:
            self._height(rng, height, at, src, eref)
        if age >= 2:
            bmi = round(weight / (height / 100) ** 2, 1)
            self._vital(rng, vocab.BMI, bmi, "kg/m2", "kg/m2", at, src, eref)
        lab_at = at + 20 * MINUTE
        if (p.dm_control and ((kind == "followup" and rng.random() < 0.75) or kind == "wellness")) or (
            p.has("prediabetes") and kind == "wellness" and rng.random() < 0.6
        ):
            self._a1c(rng, p, years_back, lab_at, src, eref)
        if age >= 20 and (
            (kind == "wellness" and (age >= 40 or rng.random() < 0.3))
            or (p.has("hyperlipidemia") and rng.random() < 0.25)
        ):
            ldl = round(
                clamp(
                    p.ldl_base
                    - 40 * any(m.startswith(("atorva", "simva")) for m, _ in p.meds)
                    + rng.gauss(0, 12),
                    35,
                    260,
                )
            )
            self._lab(
                rng,
                vocab.LDL_DIRECT if rng.random() < 0.3 else vocab.LDL_CALC,
                ldl,
                "mg/dL",
                "mg/dL",
                lab_at,
                src,
                eref,
            )
        if (
            p.dm_control
            or p.has("hypertension")
            or "ckd3" in p.conditions
            or "ckd4" in p.conditions
            or "esrd" in p.conditions
        ) and rng.random() < 0.45:
            code = vocab.EGFR_MDRD if src.urn or years_back > 3 else vocab.EGFR_CKD_EPI
            self._lab(rng, code, _egfr(rng, p), "mL/min/{1.73_m2}", "mL/min/{1.73_m2}", lab_at, src, eref)
        if kind == "wellness" and age >= 18 and rng.random() < 0.4:
            self._lab(rng, vocab.GLUCOSE, _glucose(rng, p, years_back), "mg/dL", "mg/dL", lab_at, src, eref)

    def _observation(
        self,
        rng: random.Random,
        category: list[Json],
        code: Json,
        at: int,
        src: Src,
        eref: Json,
        issued: int | None = None,
    ) -> Json:
        oid = new_uuid(rng)
        if src.delete is not None and rng.random() < OBSERVATION_DELETE_RATE:
            src.delete("Observation", oid)
        obs: Json = {
            "resourceType": "Observation",
            "id": oid,
            "meta": self.meta((issued or at) + rint(rng, 60, 2 * HOUR)),
            "status": "final",
            "category": category,
            "code": code,
            "subject": src.pref,
            "encounter": eref,
            "effectiveDateTime": self.clock.dt(at),
        }
        if issued is not None:
            obs["issued"] = self.clock.dt(issued)
        return obs

    def _vital(
        self,
        rng: random.Random,
        code: Json,
        value: float,
        unit: str,
        ucum: str,
        at: int,
        src: Src,
        eref: Json,
    ) -> None:
        obs = self._observation(rng, vocab.VITAL_SIGNS, code, at, src, eref)
        obs["valueQuantity"] = _q(value, unit, ucum)
        src.emit(obs)

    def _weight(self, rng: random.Random, kg: float, at: int, src: Src, eref: Json) -> None:
        if src.urn and rng.random() < 0.5:
            self._vital(rng, vocab.BODY_WEIGHT, round(kg * 2.20462, 1), "lb", "[lb_av]", at, src, eref)
        else:
            self._vital(rng, vocab.BODY_WEIGHT, round(kg, 1), "kg", "kg", at, src, eref)

    def _height(self, rng: random.Random, cm: float, at: int, src: Src, eref: Json) -> None:
        if src.urn and rng.random() < 0.5:
            self._vital(rng, vocab.BODY_HEIGHT, round(cm / 2.54, 1), "in", "[in_i]", at, src, eref)
        else:
            self._vital(rng, vocab.BODY_HEIGHT, round(cm, 1), "cm", "cm", at, src, eref)

    def _bp(
        self, rng: random.Random, p: Profile, age: float, at: int, src: Src, eref: Json, acute: bool
    ) -> None:
        if age < 18:
            sbp, dbp = rng.gauss(100 + age, 8), rng.gauss(62 + age / 2, 6)
        else:
            sbp, dbp = rng.gauss(p.sbp_base + 8 * acute, 9), rng.gauss(p.dbp_base + 4 * acute, 6)
        sbp, dbp = round(clamp(sbp, 75, 230)), round(clamp(dbp, 40, 135))
        if dbp >= sbp - 15:
            dbp = sbp - 20
        old = (src.urn and (self.clock.now - at) > 3 * YEAR) or rng.random() < (0.15 if src.urn else 0.03)
        obs = self._observation(
            rng, vocab.VITAL_SIGNS, vocab.BP_PANEL_OLD if old else vocab.BP_PANEL, at, src, eref
        )
        obs["component"] = [
            {"code": vocab.SYSTOLIC, "valueQuantity": _q(sbp, "mmHg", "mm[Hg]")},
            {"code": vocab.DIASTOLIC, "valueQuantity": _q(dbp, "mmHg", "mm[Hg]")},
        ]
        src.emit(obs)

    def _lab(
        self,
        rng: random.Random,
        code: Json,
        value: float,
        unit: str,
        ucum: str,
        at: int,
        src: Src,
        eref: Json,
        interpretation: str | None = None,
    ) -> None:
        obs = self._observation(
            rng, vocab.LABORATORY, code, at, src, eref, issued=at + rstep(rng, 2 * HOUR, 30 * HOUR, 60)
        )
        obs["valueQuantity"] = _q(value, unit, ucum)
        if interpretation:
            obs["interpretation"] = vocab.INTERPRETATION[interpretation]
        src.emit(obs)

    def _a1c(self, rng: random.Random, p: Profile, years_back: float, at: int, src: Src, eref: Json) -> None:
        value = round(clamp(p.a1c_base - p.a1c_trend * years_back + rng.gauss(0, 0.35), 4.2, 15.5), 1)
        self._lab(rng, vocab.HBA1C, value, "%", "%", at, src, eref, "H" if value >= 6.5 else "N")

    def _procedure(self, rng: random.Random, key: str, at: int, eref: Json | None, src: Src) -> None:
        resource: Json = {
            "resourceType": "Procedure",
            "id": new_uuid(rng),
            "meta": self.meta(max(at, self.clock.window_start) + rint(rng, HOUR, 3 * DAY)),
            "status": "completed",
            "code": vocab.PROCEDURES[key],
            "subject": src.pref,
        }
        if eref is not None:
            resource["encounter"] = eref
        resource["performedDateTime"] = self.clock.dt(at)
        src.emit(resource)

    def _immunization(
        self, rng: random.Random, vaccine: str, at: int, eref: Json | None, src: Src, primary: bool = True
    ) -> None:
        resource: Json = {
            "resourceType": "Immunization",
            "id": new_uuid(rng),
            "meta": self.meta(at + rint(rng, HOUR, 5 * DAY)),
            "status": "completed",
            "vaccineCode": vocab.VACCINES[vaccine],
            "patient": src.pref,
        }
        if eref is not None:
            resource["encounter"] = eref
        resource["occurrenceDateTime"] = self.clock.dt(at)
        resource["primarySource"] = primary
        resource["lotNumber"] = f"{chr(65 + rint(rng, 0, 26))}{rint(rng, 10000, 99999)}"
        src.emit(resource)

    def _medication(
        self, rng: random.Random, med: str, status: str, at: int, eref: Json, practitioner: str, src: Src
    ) -> None:
        src.emit(
            {
                "resourceType": "MedicationRequest",
                "id": new_uuid(rng),
                "meta": self.meta(at + rint(rng, MINUTE, 2 * DAY)),
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": vocab.MEDICATIONS[med],
                "subject": src.pref,
                "encounter": eref,
                "authoredOn": self.clock.dt(at),
                "requester": src.directory.ref("Practitioner", practitioner),
                "dosageInstruction": [{"text": vocab.DOSAGE_TEXT[med]}],
            }
        )

    def _survey(
        self,
        rng: random.Random,
        p: Profile,
        v: Visit,
        eref: Json,
        practitioner: str,
        src: Src,
    ) -> None:
        d = src.directory
        base = 8.3 - 1.6 * (v.kind == "emergency") - 0.5 * (v.kind == "inpatient") - 0.4 * (p.poor > 0)
        score = base + d.manner.get(practitioner, 0.0) + rng.gauss(0, 1.7)
        rating = int(clamp(round(score), 0, 10))
        authored = v.end + rint(rng, HOUR, 7 * DAY)
        items: list[Json] = [{"linkId": "rating", "answer": [{"valueInteger": rating}]}]
        if rng.random() < 0.7:
            comment = texts.survey_comment(rng, rating, d.display.get(practitioner, "the doctor"))
            items.append({"linkId": "comment", "answer": [{"valueString": comment}]})
        src.emit(
            {
                "resourceType": "QuestionnaireResponse",
                "id": new_uuid(rng),
                "meta": self.meta(authored + rint(rng, MINUTE, HOUR)),
                "questionnaire": SURVEY_QUESTIONNAIRE,
                "status": "completed",
                "subject": src.pref,
                "encounter": eref,
                "authored": self.clock.dt(min(authored, self.cap)),
                "item": items,
            }
        )

    # --- scheduling and messages --------------------------------------------------------------------
    def _appointment(
        self,
        rng: random.Random,
        status: str,
        start: int,
        end: int,
        created: int,
        practitioner: str,
        src: Src,
        reason: str | None,
        updated: int | None = None,
    ) -> str:
        aid = new_uuid(rng)
        if src.delete is not None and rng.random() < APPOINTMENT_DELETE_RATE * (
            5 if status == "cancelled" else 1
        ):
            src.delete("Appointment", aid)
        last = updated if updated is not None else start if status in ("noshow", "cancelled") else created
        if status == "cancelled":
            last = start - rint(rng, HOUR, 5 * DAY)
        resource: Json = {
            "resourceType": "Appointment",
            "id": aid,
            "meta": self.meta(max(last, created) + rint(rng, MINUTE, HOUR)),
            "status": status,
        }
        if status == "cancelled":
            resource["cancelationReason"] = vocab.CANCELLATION_REASON[
                "pat" if rng.random() < 0.75 else "prov"
            ]
        screening = reason in ("mammography", "screening_mammography", "colonoscopy")
        resource["appointmentType"] = vocab.APPOINTMENT_TYPE[
            "ROUTINE" if screening else rng.choice(("ROUTINE", "FOLLOWUP", "CHECKUP"))
        ]
        if reason is not None:
            resource["reasonCode"] = [vocab.PROCEDURES[reason]]
            resource["description"] = vocab.PROCEDURES[reason]["coding"][0]["display"].removesuffix(
                " (procedure)"
            )
        resource["start"] = self.clock.dt(start)
        resource["end"] = self.clock.dt(max(end, start + 15 * MINUTE))
        resource["created"] = self.clock.dt(min(created, self.cap))
        resource["participant"] = [
            {"actor": src.pref, "required": "required", "status": "accepted"},
            {
                "actor": src.directory.ref("Practitioner", practitioner),
                "required": "required",
                "status": "accepted",
            },
        ]
        src.emit(resource)
        return aid

    def _reminder(
        self, rng: random.Random, start: int, aid: str, practitioner: str, denied: set[str], src: Src
    ) -> None:
        sent = start - 2 * DAY - rint(rng, 0, 4 * HOUR)
        if sent > self.cap:
            return
        text = texts.REMINDER.format(
            doc=src.directory.display.get(practitioner, "your provider"),
            date=self.clock.date(start),
            time=self.clock.dt(start)[11:16],
        )
        self._communication(
            rng,
            sent,
            text,
            "reminder",
            denied,
            ("sms", "email", "phone"),
            src,
            src.directory.root,
            about=src.ref("Appointment", aid),
        )

    def _communication(
        self,
        rng: random.Random,
        sent: int,
        text: str,
        category: str,
        denied: set[str],
        channels: tuple[str, ...],
        src: Src,
        sender_org: str,
        about: Json | None = None,
    ) -> None:
        if "all" in denied:
            return
        allowed = [c for c in channels if c not in denied]
        if not allowed:
            return
        resource: Json = {
            "resourceType": "Communication",
            "id": new_uuid(rng),
            "meta": self.meta(sent + rint(rng, MINUTE, HOUR)),
            "status": "completed",
            "category": vocab.COMMUNICATION_CATEGORY[category],
            "medium": vocab.COMMUNICATION_MEDIUM[allowed[0] if rng.random() < 0.8 else rng.choice(allowed)],
            "subject": src.pref,
        }
        if about is not None:
            resource["about"] = [about]
        resource["sent"] = self.clock.dt(sent)
        resource["recipient"] = [src.pref]
        resource["sender"] = src.directory.ref("Organization", sender_org)
        resource["payload"] = [{"contentString": text}]
        src.emit(resource)

    def _patient_message(self, rng: random.Random, sent: int, text: str, practitioner: str, src: Src) -> None:
        src.emit(
            {
                "resourceType": "Communication",
                "id": new_uuid(rng),
                "meta": self.meta(sent + rint(rng, MINUTE, HOUR)),
                "status": "completed",
                "category": vocab.COMMUNICATION_CATEGORY["notification"],
                "subject": src.pref,
                "sent": self.clock.dt(sent),
                "recipient": [src.directory.ref("Practitioner", practitioner)],
                "sender": src.pref,
                "payload": [{"contentString": text}],
            }
        )


def hash_index(key: str, n: int) -> int:
    """A stable small integer from a uuid-like string (not Python's randomized hash)."""
    return int(key[:8], 16) % n


def _glucose(rng: random.Random, p: Profile, years_back: float) -> int:
    if p.dm_control:
        a1c = p.a1c_base - p.a1c_trend * years_back
        return round(clamp(28.7 * a1c - 46.7 + rng.gauss(0, 25), 55, 520))
    return round(clamp(rng.gauss(96 if not p.has("prediabetes") else 108, 10), 65, 160))


def _egfr(rng: random.Random, p: Profile) -> int:
    return round(clamp(p.egfr_base + rng.gauss(0, 4), 4, 140))


def _body(person: Person, p: Profile, age: float, years_back: float) -> tuple[float, float]:
    """(height cm, weight kg) at `age` (growth for children, slow drift for adults)."""
    if age >= 18:
        return p.height_cm, clamp(p.weight_kg - p.weight_trend * years_back, 35, 250)
    female = person.female
    if age < 1:
        height = 50 + 25 * age
        weight = 3.4 + 6.6 * age
    elif age < 2:
        height, weight = 75 + 12 * (age - 1), 10 + 2.2 * (age - 1)
    elif age < 13:
        height = 87 + 6.2 * (age - 2)
        weight = (15.8 + 0.25 * (age - 2)) * (height / 100) ** 2
    else:
        height = 155 + (4.5 if not female else 1.5) * (age - 13)
        weight = (18.5 + 0.5 * (age - 13)) * (height / 100) ** 2
    return round(height, 1), round(weight, 1)
