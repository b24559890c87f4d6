"""People and their identities in the two EHRs.

Each person (0 <= index < patients) is one real human. About 55% are known only to EHR A (the
hospital), 15% only to EHR B (the community clinics) and 30% to both, under different ids and MRNs.
EHR B's copy of a shared person carries the demographic noise a matching algorithm meets in practice:
accents dropped (B stores ASCII only), nicknames, typos, day and month swapped in the birth date,
missing phone or email, an older or newer address, a maiden instead of a married family name, a
middle initial instead of the full middle name, and occasionally a transposed SSN digit.

Identifiers that must not collide between two people (MRNs, SSNs) come from a bijective scramble of
the person index rather than from random draws, so that they are unique at any scale. SSNs are in the
900-999 area range, which the SSA never issues; phones are 555 numbers; e-mails use example domains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pipelines.generate import names, vocab
from pipelines.generate.clock import DAY, Clock, day_date
from pipelines.generate.rng import Weighted, new_uuid, rint
from pipelines.generate.vocab import Json

SHARE_A_ONLY = 0.55
SHARE_B_ONLY = 0.15
"""The rest (30%) is in both sources."""

_AGE_BANDS = Weighted(
    [
        ((0, 4), 6.0),
        ((5, 17), 15.0),
        ((18, 34), 21.0),
        ((35, 49), 19.0),
        ((50, 64), 20.0),
        ((65, 79), 14.0),
        ((80, 95), 5.0),
    ]
)
_TRADITION = Weighted([("en", 72.0), ("es", 18.0), ("zh", 6.0), ("vi", 4.0)])
_LANGUAGE_BY_TRADITION = {
    "en": Weighted([("en", 1.0)]),
    "es": Weighted([("es", 0.7), ("en", 0.3)]),
    "zh": Weighted([("zh", 0.55), ("en", 0.45)]),
    "vi": Weighted([("vi", 0.6), ("en", 0.4)]),
}
_MRN_A_MOD = 10**8
_MRN_B_MOD = 10**9
_SSN_MOD = 100 * 99 * 9999
_ASCII = str.maketrans("áéíóúÁÉÍÓÚñÑüÜ", "aeiouAEIOUnNuU")
_KEYBOARD_NEIGHBOURS = {
    "a": "sq",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "y": "tu",
    "z": "x",
}


@dataclass(slots=True)
class Address:
    """A US postal address."""

    line: list[str]
    city: str
    state: str
    postal_code: str

    def fhir(self) -> Json:
        """The FHIR Address."""
        return {
            "use": "home",
            "type": "physical",
            "line": self.line,
            "city": self.city,
            "state": self.state,
            "postalCode": self.postal_code,
            "country": "US",
        }


@dataclass(slots=True)
class Demographics:
    """What one source records about a person."""

    given: str
    middle: str | None
    family: str
    other_family: str | None
    """A maiden family name kept as a second HumanName (use "maiden")."""
    birth_date: str
    mobile: str | None
    home_phone: str | None
    email: str | None
    address: Address
    ssn: str | None


@dataclass(slots=True)
class Person:
    """One real person, with what each source knows about them."""

    index: int
    sex: str
    birth_day: int
    age: int
    tradition: str
    language: str
    true: Demographics
    guardian: Json | None
    sources: tuple[str, ...]
    ids: dict[str, str] = field(default_factory=dict)
    mrns: dict[str, str] = field(default_factory=dict)
    records: dict[str, Demographics] = field(default_factory=dict)
    pcp: dict[str, str] = field(default_factory=dict)
    clinic: dict[str, str] = field(default_factory=dict)
    death_ts: int | None = None
    death_recorded_in: tuple[str, ...] = ()

    def age_at(self, ts: int) -> float:
        """Age in years at moment `ts`."""
        return (ts / DAY - self.birth_day) / 365.25

    @property
    def birth_ts(self) -> int:
        """Midday of the birth date (UTC seconds)."""
        return self.birth_day * DAY + 16 * 3600

    @property
    def female(self) -> bool:
        """True for female sex."""
        return self.sex == "female"


def _scramble(index: int, seed: int, modulus: int, multiplier: int) -> int:
    """A bijection of [0, modulus) for a fixed seed: unique values for distinct indexes."""
    return (index * multiplier + (seed * 2_654_435_761 + 97) % modulus) % modulus


def _phone(rng: random.Random) -> str:
    return f"({rng.choice(names.AREA_CODES)}) 555-{rint(rng, 0, 10000):04d}"


def _address(rng: random.Random) -> Address:
    town, state, prefix = rng.choice(names.TOWNS)
    line = [f"{rint(rng, 1, 9900)} {rng.choice(names.STREET_WORDS)} {rng.choice(names.STREET_SUFFIXES)}"]
    if rng.random() < 0.22:
        line.append(f"{rng.choice(names.UNIT_PREFIXES)} {rint(rng, 1, 40)}{rng.choice(('', '', 'A', 'B'))}")
    return Address(line, town, state, f"{prefix}{rint(rng, 0, 100):02d}")


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rint(rng, 1, len(word) - 1)
    kind = rint(rng, 0, 4)
    if kind == 0:  # adjacent letters swapped
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # a letter dropped
        return word[:i] + word[i + 1 :]
    if kind == 2:  # a letter doubled
        return word[:i] + word[i] + word[i:]
    neighbours = _KEYBOARD_NEIGHBOURS.get(word[i].lower())
    return word[:i] + rng.choice(neighbours) + word[i + 1 :] if neighbours else word


def make_person(rng: random.Random, index: int, seed: int, clock: Clock) -> Person:
    """Draw a person's demographics, source membership and per-source records."""
    low, high = _AGE_BANDS.pick(rng)
    age_days = rint(rng, low * 365 + 1, (high + 1) * 365 - 1)
    birth_day = clock.as_of_day - age_days
    age = int(age_days / 365.25)
    female = rng.random() < (0.51 if age < 65 else 0.56)
    tradition = _TRADITION.pick(rng)
    language = _LANGUAGE_BY_TRADITION[tradition].pick(rng)
    given_pool = (names.FEMALE_GIVEN if female else names.MALE_GIVEN)[tradition]
    given = rng.choice(given_pool)
    middle = rng.choice(given_pool) if rng.random() < 0.65 else None
    if middle == given:
        middle = None
    family = rng.choice(names.FAMILY[tradition])
    if tradition == "es" and rng.random() < 0.25:
        family = f"{family} {rng.choice(names.FAMILY['es'])}"
    maiden = None
    if female and age >= 24 and rng.random() < 0.12:
        maiden, family = family, rng.choice(names.FAMILY[_TRADITION.pick(rng)])
    mobile, home, email = draw_contacts(rng, age, given, family)
    n = _scramble(index, seed, _SSN_MOD, 1_000_003)
    area, rest = divmod(n, 99 * 9999)
    group, serial = divmod(rest, 9999)
    ssn = f"{900 + area}-{group + 1:02d}-{serial + 1:04d}"
    true = Demographics(
        given,
        middle,
        family,
        maiden,
        day_date(birth_day).isoformat(),
        mobile,
        home,
        email,
        _address(rng),
        ssn,
    )
    guardian = None
    if age < 18:
        relationship = rng.choices(("MTH", "FTH", "PRN", "GRD"), (45, 25, 20, 10))[0]
        g_female = relationship == "MTH" or (relationship != "FTH" and rng.random() < 0.6)
        g_given = rng.choice((names.FEMALE_GIVEN if g_female else names.MALE_GIVEN)[tradition])
        g_family = (
            family if relationship != "GRD" or rng.random() < 0.4 else rng.choice(names.FAMILY[tradition])
        )
        guardian = {
            "relationship": vocab.CONTACT_RELATIONSHIP[relationship],
            "name": {"family": g_family, "given": [g_given]},
            "telecom": [{"system": "phone", "value": _phone(rng), "use": "mobile", "rank": 1}],
            # the child lives with them; no extra draws, so the rest of the population is unchanged
            "address": true.address.fhir(),
        }
        if index % 3:
            user = f"{_ascii(g_given).lower()}.{_ascii(g_family).split()[0].lower().replace(chr(39), '')}"
            guardian["telecom"].append(
                {
                    "system": "email",
                    "value": f"{user}@{names.EMAIL_DOMAINS[index % len(names.EMAIL_DOMAINS)]}",
                }
            )
    u = rng.random()
    sources: tuple[str, ...] = (
        ("ehr_a",)
        if u < SHARE_A_ONLY
        else ("ehr_b",)
        if u < SHARE_A_ONLY + SHARE_B_ONLY
        else ("ehr_a", "ehr_b")
    )
    person = Person(
        index, "female" if female else "male", birth_day, age, tradition, language, true, guardian, sources
    )
    for source in sources:
        person.ids[source] = new_uuid(rng)
    draw_source_records(rng, person, seed)
    return person


def draw_source_records(rng: random.Random, person: Person, seed: int) -> None:
    """Set the MRN and draw the record each of the person's sources keeps from `person.true`, with the
    sources' usual noise (`make_person` does this; a generator that changes `true` afterwards, as the
    identity test set does for relatives, draws them again)."""
    person.records.clear()
    if "ehr_a" in person.sources:
        person.mrns["ehr_a"] = f"{_scramble(person.index, seed, _MRN_A_MOD, 7_654_321):08d}"
        person.records["ehr_a"] = _record_a(rng, person.true)
    if "ehr_b" in person.sources:
        person.mrns["ehr_b"] = f"CB{_scramble(person.index, seed, _MRN_B_MOD, 123_456_791):09d}"
        person.records["ehr_b"] = _record_b(rng, person.true, shared="ehr_a" in person.sources)


def draw_phone(rng: random.Random) -> str:
    """A new 555 phone number."""
    return _phone(rng)


def draw_address(rng: random.Random) -> Address:
    """A new postal address in one of the generator's towns."""
    return _address(rng)


def draw_contacts(
    rng: random.Random, age: int, given: str, family: str
) -> tuple[str | None, str | None, str | None]:
    """(mobile, home phone, e-mail) of a person of this age and name; each may be missing, more often for
    children (no mobile, no e-mail under 13) and the old (fewer mobiles and e-mails, more home phones)."""
    mobile = _phone(rng) if rng.random() < (0.9 if 13 <= age < 75 else 0.55 if age >= 75 else 0.0) else None
    home = _phone(rng) if rng.random() < (0.25 + 0.5 * (age >= 60)) else None
    email = None
    if age >= 13 and rng.random() < (0.85 if age < 70 else 0.5):
        email = draw_email(rng, given, family)
    return mobile, home, email


def draw_email(rng: random.Random, given: str, family: str) -> str:
    """An e-mail address made of the given and (first word of the) family name, on an example domain."""
    user = f"{_ascii(given).lower()}.{_ascii(family).split()[0].lower().replace(chr(39), '')}"
    return f"{user}{rint(rng, 1, 999) if rng.random() < 0.6 else ''}@{rng.choice(names.EMAIL_DOMAINS)}"


def ascii_text(text: str | None) -> str:
    """`text` as EHR B stores it: accents dropped (empty for None)."""
    return _ascii(text)


def _record_a(rng: random.Random, true: Demographics) -> Demographics:
    return Demographics(
        true.given,
        true.middle,
        true.family,
        true.other_family,
        true.birth_date,
        true.mobile,
        true.home_phone,
        true.email,
        true.address,
        true.ssn if rng.random() < 0.5 else None,
    )


def _record_b(rng: random.Random, true: Demographics, shared: bool) -> Demographics:
    """EHR B's record. Noise is applied only to people also in A, where it matters for matching."""
    given, family = _ascii(true.given), _ascii(true.family)
    middle = _ascii(true.middle)[0] if true.middle and rng.random() < 0.7 else None
    other_family = None
    birth = true.birth_date
    mobile, home, email, address = true.mobile, true.home_phone, true.email, true.address
    ssn = true.ssn if rng.random() < 0.5 else None
    if shared:
        if true.given in names.NICKNAMES and rng.random() < 0.35:
            given = _ascii(rng.choice(names.NICKNAMES[true.given]))
        if rng.random() < 0.05:
            given = _typo(rng, given)
        if " " in family and rng.random() < 0.6:
            family = family.split()[0]
        if rng.random() < 0.07:
            family = _typo(rng, family)
        if true.other_family and rng.random() < 0.5:
            family = _ascii(true.other_family)
        y, m, d = birth.split("-")
        if int(d) <= 12 and d != m and rng.random() < 0.03:
            birth = f"{y}-{d}-{m}"
        elif rng.random() < 0.005:
            birth = f"{int(y) + rng.choice((-1, 1)):04d}-{m}-{d}"
        if rng.random() < 0.25:
            mobile = None
        if rng.random() < 0.3:
            home = None
        if rng.random() < 0.45:
            email = None
        if rng.random() < 0.15:
            address = _address(rng)
        if ssn and rng.random() < 0.02:
            i = rng.choice((1, 4, 7, 8, 9))
            ssn = ssn[:i] + ssn[i + 1] + ssn[i] + ssn[i + 2 :]
    elif true.other_family:
        other_family = _ascii(true.other_family)
    return Demographics(given, middle, family, other_family, birth, mobile, home, email, address, ssn)


def _ascii(text: str | None) -> str:
    return (text or "").translate(_ASCII)


def patient_resource(person: Person, source: str, clock: Clock, last_updated: int) -> Json:
    """The Patient resource `source` holds for `person`."""
    rec = person.records[source]
    identifier: list[Json] = [
        {
            "use": "usual",
            "type": vocab.MRN_TYPE,
            "system": vocab.MRN_A if source == "ehr_a" else vocab.MRN_B,
            "value": person.mrns[source],
        }
    ]
    if rec.ssn:
        identifier.append({"use": "official", "type": vocab.SSN_TYPE, "system": vocab.SSN, "value": rec.ssn})
    given = [rec.given, rec.middle] if rec.middle else [rec.given]
    name: list[Json] = [{"use": "official", "family": rec.family, "given": given}]
    if rec.other_family:
        name.append({"use": "maiden", "family": rec.other_family, "given": [rec.given]})
    telecom: list[Json] = []
    if rec.mobile:
        telecom.append({"system": "phone", "value": rec.mobile, "use": "mobile", "rank": 1})
    if rec.home_phone:
        telecom.append(
            {"system": "phone", "value": rec.home_phone, "use": "home", "rank": 2 if rec.mobile else 1}
        )
    if rec.email:
        telecom.append({"system": "email", "value": rec.email, "use": "home"})
    resource: Json = {
        "resourceType": "Patient",
        "id": person.ids[source],
        "meta": {"versionId": "1", "lastUpdated": clock.instant(last_updated)},
        "identifier": identifier,
        "active": True,
        "name": name,
    }
    if telecom:
        resource["telecom"] = telecom
    resource["gender"] = person.sex
    resource["birthDate"] = rec.birth_date
    if person.death_ts is not None and source in person.death_recorded_in:
        resource["deceasedDateTime"] = clock.dt(person.death_ts)
    resource["address"] = [rec.address.fhir()]
    if person.guardian:
        resource["contact"] = [person.guardian]
    resource["communication"] = [{"language": vocab.LANGUAGES[person.language], "preferred": True}]
    if source in person.pcp:  # a set of Patients alone (the identity test set) has no care team
        resource["generalPractitioner"] = [{"reference": f"Practitioner/{person.pcp[source]}"}]
        resource["managingOrganization"] = {"reference": f"Organization/{person.clinic[source]}"}
    return resource
