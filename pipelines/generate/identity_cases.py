"""A harder identity test set: two EHRs' Patient resources only, with the cases real registries are full of.

`generate_identity_set` draws `people` base people exactly as the full generator draws its population (same
seed, same people: `population.make_person`), each with the sources' usual noise, then adds relatives and
changes some records, and writes which person each record belongs to and which case each person is.

Case kinds (`identity_cases.csv`), with their default shares (`CaseMix`; every share is a parameter):

- `ordinary`: nothing beyond the population's per-source noise (nicknames, typos, maiden names, moves...).
- `twin` (5 % of base people, not a woman already known under a married name): a new person with the same
  family name, birth date, address and home phone, another given name from the same pool, the other sex
  half the time, their own SSN, mobile and e-mail. 40 % of a twin's records say so
  (`multipleBirthBoolean: true` or `multipleBirthInteger` 1 / 2). Both are `twin`, each related to the other.
- `namesake` (4 % of base adults of 45 or more): a child named after them: same given and family name (the
  middle name too, 70 % of the time), same sex, address and home phone, born 25 to 35 years later, their own
  SSN, mobile and e-mail; a minor child has the parent as guardian. For men, 50 % of the child's records
  carry "Jr." (or "II", "III") and 30 % of the parent's "Sr." (or "Jr." when the child is "III"): in the
  HumanName's `suffix` mostly, sometimes typed into the given or family text ("John Jr"), as real systems
  do. A woman named after her mother carries no suffix. Both are `namesake`, each related to the other.
- `stranger_same_name` (0.5 % of base people): an unrelated person with the same given and family name,
  sex and birth year, born another day, living elsewhere, with their own phones, e-mail and SSN.
- Among base people in both EHRs, the first that applies (each drawn on its own):
  - `married_move` (5 % of women of 22 or more): one EHR knows her under a new family name, at a new
    address with a new phone and no SSN. Half of these records keep one thing that links them to the other
    EHR's: the earlier family name as a `maiden` HumanName, the same e-mail, or the earlier address as a
    second address with use `old`; the other half share nothing but given name, birth date and sex.
  - `no_ssn` (12 %): neither record has an SSN.
  - `birth_day_off` (5 %): one EHR's birth date is a day off, or has one digit wrong.
  - `initial` (4 %): one EHR has the given name as its initial only ("J").
  In these four the records otherwise carry the true given name and birth date, so that the case is the
  only difficulty a record pair has beyond the usual noise of the other fields.

Relatives and strangers are people like any other: they are in one EHR or both with the population's
shares, and their records get the usual noise. Base people have person indexes 0 .. people-1; the people
added follow, in the order of the base person they belong to.

Landing layout (the Bulk Data layout the ingest reads for any FHIR source)::

    <out>/.generated-by-patient-insights
    <out>/ehr_a/manifest.json, <out>/ehr_a/Patient.NNN.ndjson
    <out>/ehr_b/manifest.json, <out>/ehr_b/Patient.NNN.ndjson
    <truth_out>/identity.csv, identity_cases.csv, summary.json

Output goes to hidden `.partial` folders moved into place at the end, as `landing.generate_landing` does;
the same (people, seed, mix) give byte-identical files.
"""

from __future__ import annotations

import csv
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from pipelines.generate import names, vocab
from pipelines.generate.bulk_writer import ROTATE_LINES, RotatingNdjson
from pipelines.generate.clock import DAY, Clock, day_date, day_number
from pipelines.generate.landing import (
    DEFAULT_AS_OF,
    check_targets,
    staging_folder,
    swap_into_place,
)
from pipelines.generate.population import (
    Address,
    Demographics,
    Person,
    ascii_text,
    draw_address,
    draw_contacts,
    draw_email,
    draw_phone,
    draw_source_records,
    make_person,
    patient_resource,
)
from pipelines.generate.rng import patient_rng, rint
from pipelines.generate.vocab import Json

SOURCES = ("ehr_a", "ehr_b")
CASE_KINDS = (
    "ordinary",
    "twin",
    "namesake",
    "stranger_same_name",
    "married_move",
    "no_ssn",
    "birth_day_off",
    "initial",
)
RELATED_KINDS = ("twin", "namesake", "stranger_same_name")
"""Kinds that pair two persons (`related_person_index`): any link between them is a false one."""
IDENTITY_HEADER = ("source", "source_patient_id", "person_index")
CASES_HEADER = ("person_index", "case_kind", "related_person_index")
FORMAT_VERSION = 1
_REQUEST = {
    "ehr_a": "https://ehr-a.example.org/fhir/$export",
    "ehr_b": "https://clinic-b.example.org/fhir/$export",
}
_NL = orjson.OPT_APPEND_NEWLINE


@dataclass(frozen=True)
class CaseMix:
    """How often each case is drawn (see the module docstring for who is eligible)."""

    twin: float = 0.05
    namesake: float = 0.04
    stranger_same_name: float = 0.005
    married_move: float = 0.05
    married_move_keeps_link: float = 0.5
    no_ssn: float = 0.12
    birth_day_off: float = 0.05
    initial: float = 0.04
    multiple_birth_recorded: float = 0.4
    """Share of a twin's records that carry multipleBirth."""
    child_suffix: float = 0.5
    """Share of a namesake son's records that carry Jr. / II / III."""
    parent_suffix: float = 0.3
    """Share of a namesake father's records that carry Sr."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1")


ORDINARY_ONLY = CaseMix(
    twin=0, namesake=0, stranger_same_name=0, married_move=0, no_ssn=0, birth_day_off=0, initial=0
)
"""No case at all: the same base people with only the population's usual noise (the easy set)."""


@dataclass(frozen=True)
class IdentitySetSummary:
    """What one `generate_identity_set` run wrote."""

    out: Path
    truth_out: Path
    people: int
    """Base people drawn like the population."""
    persons: int
    """All persons: base people and the relatives and strangers added."""
    patient_resources: dict[str, int] = field(default_factory=dict)
    """Patient resources per EHR."""
    persons_by_kind: dict[str, int] = field(default_factory=dict)
    true_pairs: int = 0
    """Pairs of records of one person."""
    elapsed_seconds: float = 0.0

    @property
    def records(self) -> int:
        """All Patient resources written."""
        return sum(self.patient_resources.values())


@dataclass
class _Entry:
    """One person of the set with the case they are and what their resources carry beyond the records."""

    person: Person
    kind: str = "ordinary"
    related: int | None = None
    birth_order: int | None = None
    """Twins: 1 or 2."""
    suffix: str | None = None
    """Namesakes: the suffix some of their records carry."""
    suffix_share: float = 0.0
    old_address: dict[str, Address] = field(default_factory=dict)
    """married_move: a source that keeps the earlier address as an `old` address."""
    rng: random.Random | None = None
    """A person added: the stream that drew them, continued for their resources."""


def generate_identity_set(
    out: Path,
    people: int,
    seed: int,
    truth_out: Path | None = None,
    mix: CaseMix = CaseMix(),
    as_of: date = DEFAULT_AS_OF,
) -> IdentitySetSummary:
    """Write the two EHRs' Patient resources of `people` base people and the relatives and strangers added
    to them (landing layout in the module docstring), and the ground truth: `identity.csv` (source,
    source_patient_id, person_index) and `identity_cases.csv` (person_index, case_kind,
    related_person_index). `out` and `truth_out` (default: ``out.parent / "ground_truth"``) must be missing,
    empty or earlier generator output."""
    if isinstance(people, bool) or not isinstance(people, int) or people < 1:
        raise ValueError("people must be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed must be an integer")
    out = Path(out)
    truth_out = Path(truth_out) if truth_out is not None else out.parent / "ground_truth"
    check_targets(out, truth_out)
    started = time.perf_counter()
    landing, truth_dir = staging_folder(out), staging_folder(truth_out)
    try:
        written = _write(landing, truth_dir, people, seed, mix, Clock(as_of))
        swap_into_place(landing, out)
        swap_into_place(truth_dir, truth_out)
    except BaseException:
        shutil.rmtree(landing, ignore_errors=True)
        shutil.rmtree(truth_dir, ignore_errors=True)
        raise
    return replace(written, out=out, truth_out=truth_out, elapsed_seconds=time.perf_counter() - started)


def _case_rng(seed: int, index: int) -> random.Random:
    """The stream of a base person's case draws: separate from the person's own, so that base people are
    the population's whatever the mix."""
    return random.Random(f"patient-insights/identity-set/case/{seed}/{index}")


def _relative_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"patient-insights/identity-set/person/{seed}/{index}")


def _write(
    landing: Path, truth_dir: Path, people: int, seed: int, mix: CaseMix, clock: Clock
) -> IdentitySetSummary:
    writers = {source: RotatingNdjson(landing, source, "Patient") for source in SOURCES}
    added: list[_Entry] = []
    kinds: dict[str, int] = {}
    pairs = 0
    with (
        open(truth_dir / "identity.csv", "w", encoding="utf-8", newline="") as identity_fh,
        open(truth_dir / "identity_cases.csv", "w", encoding="utf-8", newline="") as cases_fh,
    ):
        identity = csv.writer(identity_fh, lineterminator="\n")
        cases = csv.writer(cases_fh, lineterminator="\n")
        identity.writerow(IDENTITY_HEADER)
        cases.writerow(CASES_HEADER)

        def emit(entry: _Entry, rng: random.Random) -> None:
            nonlocal pairs
            person = entry.person
            for source in person.sources:
                resource = _resource(entry, source, rng, clock, mix)
                writers[source].write(orjson.dumps(resource, option=_NL))
                identity.writerow((source, person.ids[source], person.index))
            pairs += len(person.sources) * (len(person.sources) - 1) // 2
            cases.writerow((person.index, entry.kind, "" if entry.related is None else entry.related))
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1

        for index in range(people):
            base = _Entry(make_person(patient_rng(seed, index), index, seed, clock))
            rng = _case_rng(seed, index)
            relative = _relation(base, people + len(added), seed, clock, mix, rng)
            if relative is not None:
                added.append(relative)
            else:
                _source_case(base, mix, rng, clock)
            emit(base, rng)
        for entry in added:
            assert entry.rng is not None
            emit(entry, entry.rng)

    patient_resources: dict[str, int] = {}
    for source, writer in writers.items():
        files = writer.close()
        patient_resources[source] = sum(lines for _, lines in files)
        manifest = {
            "transactionTime": clock.instant(clock.now),
            "request": _REQUEST[source],
            "requiresAccessToken": False,
            "output": [
                {"type": "Patient", "url": rel.removeprefix(f"{source}/"), "count": lines}
                for rel, lines in files
            ],
            "error": [],
        }
        (landing / source / "manifest.json").write_bytes(
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | _NL)
        )
    persons = people + len(added)
    summary = {
        "generator": "patient-insights identity test set",
        "format_version": FORMAT_VERSION,
        "parameters": {
            "people": people,
            "seed": seed,
            "as_of": clock.as_of.isoformat(),
            "mix": asdict(mix),
            "rotate_lines": ROTATE_LINES,
        },
        "persons": persons,
        "persons_by_kind": {k: kinds.get(k, 0) for k in CASE_KINDS},
        "patient_resources": patient_resources,
        "true_pairs": pairs,
    }
    (truth_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | _NL))
    return IdentitySetSummary(
        out=landing,
        truth_out=truth_dir,
        people=people,
        persons=persons,
        patient_resources=patient_resources,
        persons_by_kind=summary["persons_by_kind"],
        true_pairs=pairs,
    )


# --- relatives and strangers -------------------------------------------------------------------------
def _relation(
    base: _Entry, index: int, seed: int, clock: Clock, mix: CaseMix, rng: random.Random
) -> _Entry | None:
    """Maybe add a twin, a namesake child or a stranger with the same name to `base` (one at most)."""
    person = base.person
    own = _relative_rng(seed, index)
    if rng.random() < mix.twin and person.true.other_family is None:
        relative = _twin(person, index, seed, clock, own)
        base.birth_order = 1 + (rng.random() < 0.5)
        kind, extra = "twin", {"birth_order": 3 - base.birth_order}
    elif person.age >= 45 and rng.random() < mix.namesake:
        relative = _namesake_child(person, index, seed, clock, own)
        if person.female:
            base.suffix, child_suffix = None, None
        else:
            child_suffix = rng.choices(("Jr.", "II", "III"), (75, 15, 10))[0]
            base.suffix, base.suffix_share = ("Jr." if child_suffix == "III" else "Sr."), mix.parent_suffix
        kind, extra = "namesake", {"suffix": child_suffix, "suffix_share": mix.child_suffix}
    elif rng.random() < mix.stranger_same_name:
        relative = _stranger(person, index, seed, clock, own)
        kind, extra = "stranger_same_name", {}
    else:
        return None
    base.kind, base.related = kind, index
    return _Entry(relative, kind, person.index, rng=own, **extra)


def _set_birth(person: Person, birth_day: int, clock: Clock) -> None:
    person.birth_day = birth_day
    person.age = int((clock.as_of_day - birth_day) / 365.25)


def _own_email(
    rng: random.Random, email: str | None, given: str, family: str, taken: str | None
) -> str | None:
    """`email`, drawn again while it is the other person's (two people of one name may both draw a bare
    given.family address; a mailbox belongs to one of them)."""
    while email is not None and email == taken:
        email = draw_email(rng, given, family)
    return email


def _middle(rng: random.Random, person: Person) -> str | None:
    """A middle name from the pool of the person's sex and tradition, or none (as often as the population)."""
    pool = (names.FEMALE_GIVEN if person.female else names.MALE_GIVEN)[person.tradition]
    return rng.choice(pool) if rng.random() < 0.65 else None


def _name_family(given: str) -> set[str]:
    """The folded given names the identity index treats as forms of `given` (its nickname table)."""
    from pipelines.identity.records import nicknames

    folded = given.lower()
    forms = nicknames().filter(pl.col("given") == folded)["forms"].to_list()
    return {folded, *(forms[0] if forms else [])}


def _twin(sibling: Person, index: int, seed: int, clock: Clock, rng: random.Random) -> Person:
    twin = make_person(rng, index, seed, clock)  # own SSN, MRNs, ids and sources; the rest is replaced
    twin.sex = sibling.sex if rng.random() < 0.5 else ("male" if sibling.female else "female")
    twin.tradition, twin.language = sibling.tradition, sibling.language
    _set_birth(twin, sibling.birth_day, clock)
    pool = (names.FEMALE_GIVEN if twin.female else names.MALE_GIVEN)[twin.tradition]
    # parents do not name twins Lawrence and Larry: no name of the sibling's name family (the name, its short
    # forms, a name it is short for, or a name sharing a short form with it)
    # (the generator's own table, and the identity index's: Gerald and Jerry)
    own = {sibling.true.given, *names.NICKNAMES.get(sibling.true.given, ())}
    family = _name_family(sibling.true.given)
    given = rng.choice(
        [
            g
            for g in pool
            if g not in own and not own & {g, *names.NICKNAMES.get(g, ())} and g.lower() not in family
        ]
    )
    middle = _middle(rng, twin)
    family = sibling.true.family
    mobile, _, email = draw_contacts(rng, twin.age, given, family)
    twin.true = Demographics(
        given,
        None if middle == given else middle,
        family,
        None,
        sibling.true.birth_date,
        mobile,
        sibling.true.home_phone,
        email,
        sibling.true.address,
        twin.true.ssn,
    )
    twin.guardian = sibling.guardian  # the same parent
    draw_source_records(rng, twin, seed)
    return twin


def _namesake_child(parent: Person, index: int, seed: int, clock: Clock, rng: random.Random) -> Person:
    child = make_person(rng, index, seed, clock)
    child.sex, child.tradition, child.language = parent.sex, parent.tradition, parent.language
    born = day_date(parent.birth_day)
    year = born.year + rint(rng, 25, 36)
    birth = date(year, 1, 1) + timedelta(days=rint(rng, 0, 365))
    if birth.year != year:  # 31 December of a leap year drawn on a common year
        birth -= timedelta(days=1)
    _set_birth(child, day_number(birth), clock)
    true = parent.true
    middle = true.middle if rng.random() < 0.7 else _middle(rng, child)
    mobile, _, email = draw_contacts(rng, child.age, true.given, true.family)
    email = _own_email(rng, email, true.given, true.family, true.email)
    child.true = Demographics(
        true.given,
        None if middle == true.given else middle,
        true.family,
        None,
        birth.isoformat(),
        mobile,
        true.home_phone,
        email,
        true.address,
        child.true.ssn,
    )
    child.guardian = None
    if child.age < 18:
        child.guardian = {
            "relationship": vocab.CONTACT_RELATIONSHIP["MTH" if parent.female else "FTH"],
            "name": {"family": true.family, "given": [true.given]},
            "address": true.address.fhir(),
        }
        if phone := true.mobile or true.home_phone:
            child.guardian["telecom"] = [{"system": "phone", "value": phone, "use": "mobile", "rank": 1}]
    draw_source_records(rng, child, seed)
    return child


def _stranger(namesake: Person, index: int, seed: int, clock: Clock, rng: random.Random) -> Person:
    stranger = make_person(rng, index, seed, clock)
    stranger.sex, stranger.tradition, stranger.language = namesake.sex, namesake.tradition, namesake.language
    year = day_date(namesake.birth_day).year
    first, last = day_number(date(year, 1, 1)), min(day_number(date(year, 12, 31)), clock.as_of_day - 1)
    birth_day = namesake.birth_day
    while birth_day == namesake.birth_day and last > first:
        birth_day = rint(rng, first, last + 1)
    _set_birth(stranger, birth_day, clock)
    given, family = namesake.true.given, namesake.true.family
    mobile, home, email = draw_contacts(rng, stranger.age, given, family)
    email = _own_email(rng, email, given, family, namesake.true.email)
    stranger.true = Demographics(
        given,
        _middle(rng, stranger),
        family,
        None,
        day_date(birth_day).isoformat(),
        mobile,
        home,
        email,
        stranger.true.address,
        stranger.true.ssn,
    )
    if stranger.guardian is not None:
        stranger.guardian["name"]["family"] = family
    if stranger.age >= 18:
        stranger.guardian = None
    draw_source_records(rng, stranger, seed)
    return stranger


# --- cases of one person's two records -----------------------------------------------------------------
def _source_case(entry: _Entry, mix: CaseMix, rng: random.Random, clock: Clock) -> None:
    """Give a base person in both EHRs one of the two-record cases (or none: `ordinary`)."""
    person = entry.person
    if len(person.sources) < 2:
        return
    draws = [rng.random() for _ in range(4)]  # always four draws: one case's share never moves another's
    changed = rng.choice(SOURCES)
    a, b = person.records["ehr_a"], person.records["ehr_b"]
    true_given = {"ehr_a": person.true.given, "ehr_b": ascii_text(person.true.given)}
    if person.female and person.age >= 22 and draws[0] < mix.married_move:
        entry.kind = "married_move"
        _married_move(entry, changed, mix, rng)
    elif draws[1] < mix.no_ssn:
        entry.kind = "no_ssn"
        person.records["ehr_a"], person.records["ehr_b"] = replace(a, ssn=None), replace(b, ssn=None)
    elif draws[2] < mix.birth_day_off:
        entry.kind = "birth_day_off"
        for source in SOURCES:
            person.records[source] = replace(person.records[source], birth_date=person.true.birth_date)
        wrong = _wrong_birth_date(person.true.birth_date, rng, clock)
        person.records[changed] = replace(person.records[changed], birth_date=wrong)
    elif draws[3] < mix.initial:
        entry.kind = "initial"
        other = "ehr_b" if changed == "ehr_a" else "ehr_a"
        person.records[other] = replace(person.records[other], given=true_given[other])
        person.records[changed] = replace(person.records[changed], given=true_given[changed][0])


def _married_move(entry: _Entry, changed: str, mix: CaseMix, rng: random.Random) -> None:
    """One EHR's record under a new family name at a new address, with a new phone and no SSN."""
    person = entry.person
    kept = "ehr_b" if changed == "ehr_a" else "ehr_a"
    for source in SOURCES:  # the true given name and birth date in both: the move is the case
        given = person.true.given if source == "ehr_a" else ascii_text(person.true.given)
        person.records[source] = replace(
            person.records[source], given=given, birth_date=person.true.birth_date
        )
    before = person.records[kept]
    tradition = rng.choice(("en", "en", "en", "es", "zh", "vi"))
    family = before.family
    while family in (before.family, before.other_family):
        family = rng.choice(names.FAMILY[tradition])
    if changed == "ehr_b":
        family = ascii_text(family)
    new = replace(
        person.records[changed],
        family=family,
        other_family=None,
        address=draw_address(rng),
        mobile=draw_phone(rng),
        home_phone=draw_phone(rng) if rng.random() < 0.3 else None,
        email=draw_email(rng, person.true.given, family) if rng.random() < 0.5 else None,
        ssn=None,
    )
    if rng.random() < mix.married_move_keeps_link:
        link = rng.choice(("maiden", "email", "old_address"))
        if link == "maiden":
            maiden = before.family
            new = replace(new, other_family=ascii_text(maiden) if changed == "ehr_b" else maiden)
        elif link == "email":
            email = before.email or draw_email(rng, person.true.given, before.family)
            person.records[kept] = replace(before, email=email)
            new = replace(new, email=email)
        else:
            entry.old_address[changed] = before.address
    person.records[changed] = new


def _wrong_birth_date(birth: str, rng: random.Random, clock: Clock) -> str:
    """`birth` a day off (60 %) or with one digit of the year's last two, the month or the day changed: a
    valid date that differs from `birth` and is not after the as-of day."""
    true = date.fromisoformat(birth)
    if rng.random() < 0.4:
        for _ in range(50):
            digits = list(birth)
            position = rng.choice((2, 3, 5, 6, 8, 9))
            digits[position] = str(rint(rng, 0, 10))
            text = "".join(digits)
            try:
                wrong = date.fromisoformat(text)
            except ValueError:
                continue
            if wrong != true and day_number(wrong) < clock.as_of_day:
                return text
    step = rng.choice((-1, 1)) if day_number(true) + 1 < clock.as_of_day else -1
    return (true + timedelta(days=step)).isoformat()


# --- resources ---------------------------------------------------------------------------------------
def _resource(entry: _Entry, source: str, rng: random.Random, clock: Clock, mix: CaseMix) -> Json:
    """The Patient resource `source` holds, with what this set adds: multipleBirth for twins, name suffixes
    for namesakes, an old address after a move."""
    updated = clock.now - 6 * 3600 - rint(rng, 0, 730) * DAY
    resource = patient_resource(entry.person, source, clock, updated)
    if entry.kind == "twin" and rng.random() < mix.multiple_birth_recorded:
        multiple: tuple[str, Any] = (
            ("multipleBirthBoolean", True)
            if rng.random() < 0.5
            else ("multipleBirthInteger", entry.birth_order)
        )
        resource = _insert_after(resource, "address", *multiple)
    if entry.suffix and rng.random() < entry.suffix_share:
        _add_suffix(resource["name"][0], entry.suffix, rng)
    if source in entry.old_address:
        resource["address"].append({**entry.old_address[source].fhir(), "use": "old"})
    return resource


def _add_suffix(name: Json, suffix: str, rng: random.Random) -> None:
    """The suffix where systems put it: the HumanName's `suffix` (70 %), else typed after the first given
    name or after the family name, its full stop dropped half the time ("John Jr", "Smith Jr.")."""
    u = rng.random()
    typed = suffix.rstrip(".") if rng.random() < 0.5 else suffix
    if u < 0.7:
        name["suffix"] = [suffix]
    elif u < 0.85:
        name["given"] = [f"{name['given'][0]} {typed}", *name["given"][1:]]
    else:
        name["family"] = f"{name['family']} {typed}"


def _insert_after(resource: Json, after: str, key: str, value: object) -> Json:
    """`resource` with `key` placed right after `after`, where FHIR's element order has it."""
    out: Json = {}
    for k, v in resource.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out
