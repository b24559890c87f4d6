"""Training sets: point-in-time features and outcomes at several historical as-of days (person model) or
at every inpatient discharge (discharge model), split in time: train on the earliest, validate on the
next, test on the latest.

Training cost follows a budget, not the population. Each model learns from a sample of persons taken in
the order of a keyed hash of their person id, as many as fit in its `max_train_rows` (config.py says why);
their validation and test rows come along, so every split is the same random sample of persons and the
metrics stay honest (the model card and metadata give their row counts). The sample is chosen from the
identity table and, for discharges, the encounter table alone, before any feature is built: only the
sampled persons' records are read, a chunk of persons at a time so memory stays bounded. The hash, not
the bucket or the file order, decides who is in it, so the same data gives the same sample, rows and model
version whatever the bucket layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl
from upath import UPath

from models.risk.config import RiskConfig
from models.risk.features import (
    DISCHARGE_FEATURES,
    PERSON_FEATURES,
    POINT,
    POINT_SCHEMA,
    CareGapInputs,
    Feature,
    discharge_features,
    end_of_day,
    open_care_gaps,
    person_points,
    point_in_time_features,
    with_open_care_gaps,
)
from models.risk.outcomes import discharge_points, inpatient_stays, person_outcomes
from pipelines.gold.records import PersonRecords
from pipelines.gold.utilization import ENCOUNTER_COLUMNS, encounter_times_of
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.lake import read_table, scan_table
from pipelines.silver.build import SILVER

ROLES = ("train", "validation", "test")
PERSON_MODEL, DISCHARGE_MODEL = "person_180d", "discharge_30d"
SAMPLE_KEY = b"patient-insights/risk-sample"
"""Key of the sample hash: a person's place in the sample order is unrelated to their bucket's CRC-32."""
CHUNK_PERSONS = 5_000
"""Persons whose records are held in memory at once while their features are built (about what one
bucket of a 10,000-person lake holds)."""
_CHUNK_LABEL = "risk-sample"
"""`PersonRecords.bucket` of a chunk: any value but None makes it read only its persons' records."""


@dataclass(frozen=True)
class TrainingSet:
    """Rows of features, `outcome`, the baseline score column and `role` (train/validation/test)."""

    name: str  # person_180d | discharge_30d
    frame: pl.DataFrame
    features: tuple[Feature, ...]
    baseline: str  # the clinical score compared against: charlson_index or lace_index
    as_of_days: dict[str, list[str]]  # role -> the as-of days (or the discharge date range)
    sample: dict[str, int] = field(default_factory=dict)  # persons and train rows in the lake, sampled, cap

    def part(self, role: str) -> pl.DataFrame:
        """The rows of one role."""
        return self.frame.filter(pl.col("role") == role)


def person_days(as_of: date, config: RiskConfig) -> dict[str, list[date]]:
    """Test, validation and train as-of days: the test day is the last whose outcome window ends by
    `as_of`; each earlier day is `spacing_days` before the next."""
    test = as_of - timedelta(days=config.person_horizon_days)
    validation = test - timedelta(days=config.spacing_days)
    train = [validation - timedelta(days=config.spacing_days * k) for k in range(config.train_points, 0, -1)]
    return {"train": train, "validation": [validation], "test": [test]}


def sample_order(person_ids: pl.Series) -> pl.DataFrame:
    """`person_id` and `rank`: the order in which training samples take persons. A keyed BLAKE2b hash of
    the id makes it random with respect to age, sex, source and bucket, yet the same on every run and
    every layout (Polars' own hash may change between versions, and a bucket's CRC-32 would correlate)."""
    ids = person_ids.drop_nulls().unique().sort()
    # one hash per person id (not per record), like the bucket hash; hashlib has no vectorised form
    keys = [hashlib.blake2b(p.encode(), digest_size=8, key=SAMPLE_KEY).digest() for p in ids.to_list()]
    return (
        pl.DataFrame({"person_id": ids, "_key": pl.Series(keys, dtype=pl.Binary)})
        .sort("_key", "person_id")
        .with_row_index("rank")
        .select("person_id", "rank")
    )


def first_within(order: pl.DataFrame, train_rows: pl.DataFrame, cap: int) -> pl.DataFrame:
    """The persons of `train_rows` (`person_id` and `rows`, their number of train rows, 0 for a person with
    validation or test rows only), first in `order` onwards, while their train rows add up to at most
    `cap`: `person_id`, `rank`."""
    counted = order.join(train_rows, on="person_id").sort("rank")
    return counted.filter(pl.col("rows").cum_sum() <= cap).select("person_id", "rank")


def person_training_set(lake: UPath, buckets: int, as_of: date, config: RiskConfig) -> TrainingSet:
    """Features at the person as-of days with outcome (a), for the sampled persons."""
    return training_sets(lake, buckets, as_of, config, [PERSON_MODEL])[PERSON_MODEL]


def discharge_training_set(lake: UPath, buckets: int, as_of: date, config: RiskConfig) -> TrainingSet:
    """Features at the inpatient discharges of the sampled persons with outcome (b) and the LACE index."""
    return training_sets(lake, buckets, as_of, config, [DISCHARGE_MODEL])[DISCHARGE_MODEL]


def training_sets(
    lake: UPath,
    buckets: int,
    as_of: date,
    config: RiskConfig,
    names: Iterable[str] = (PERSON_MODEL, DISCHARGE_MODEL),
    chunk_persons: int = CHUNK_PERSONS,
) -> dict[str, TrainingSet]:
    """The training sets of `names`, built together: each chunk of sampled persons' records is read once
    for every set that needs them. `buckets` is the lake's bucket count (where records are); it does not
    change who is sampled."""
    names = list(dict.fromkeys(names))
    persons = read_table(lake, IDENTITY, PERSON)
    links = read_table(lake, IDENTITY, PERSON_LINK).select(
        "person_id", "source", pl.col("source_patient_id").alias("patient_id")
    )
    order = sample_order(persons["person_id"])
    days = person_days(as_of, config)
    last_cutoff = end_of_day(as_of)
    samples: dict[str, pl.DataFrame] = {}
    totals: dict[str, dict[str, int]] = {}
    caps = {PERSON_MODEL: config.person_max_train_rows, DISCHARGE_MODEL: config.discharge_max_train_rows}
    for name in names:
        if name == PERSON_MODEL:
            points = person_points(persons, sorted(d for ds in days.values() for d in ds))
            train = points.group_by("person_id").agg(pl.col("as_of").is_in(days["train"]).sum().alias("rows"))
        else:
            train = _train_discharges(lake, links, last_cutoff, config)
        samples[name] = first_within(order, train, caps[name])
        totals[name] = {"persons": train.height, "train_rows": int(train["rows"].sum())}
    frames: dict[str, list[pl.DataFrame]] = {name: [] for name in names}
    gap_inputs: list[CareGapInputs] = []
    for chunk in _chunks(samples, chunk_persons):
        records = PersonRecords(
            lake,
            persons.join(chunk, on="person_id", how="semi").sort("person_id"),
            links.join(chunk, on="person_id", how="semi"),
            _CHUNK_LABEL,
            buckets,
        )
        for name in names:
            mine = samples[name].join(chunk, on="person_id", how="semi").select("person_id")
            if not mine.height:
                continue
            if name == PERSON_MODEL:
                part = _person_rows(records, mine, days, config)
                gap_inputs.append(CareGapInputs.of(records))  # a person chunk holds sampled persons only
            else:
                part = _discharge_rows(records, mine, last_cutoff, config)
            if part.height:
                frames[name].append(part)
    if frames.get(PERSON_MODEL):
        # the care gaps of every chunk at once: the measure engine's cost is mostly per as-of day
        rows = pl.concat(frames[PERSON_MODEL], how="diagonal_relaxed")
        gaps = open_care_gaps(CareGapInputs.concat(gap_inputs), rows.select(POINT))
        outcome = rows.select(*POINT, "outcome")
        frames[PERSON_MODEL] = [with_open_care_gaps(rows.drop("outcome"), gaps).join(outcome, on=POINT)]
    sets = {}
    for name in names:
        sample = {
            "persons": totals[name]["persons"],  # with a row of this model in the lake
            "train_rows": totals[name]["train_rows"],  # in the lake
            "persons_sampled": samples[name].height,
            "max_train_rows": caps[name],
        }
        if name == PERSON_MODEL:
            sets[name] = _person_set(frames[name], days, sample)
        else:
            sets[name] = _discharge_set(frames[name], last_cutoff, config, sample)
    return sets


def _chunks(samples: dict[str, pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """The sampled persons (`person_id`) in chunks of at most `size`, in sample order: first the person
    model's, then those only the discharge model samples (so a chunk of the person model's persons is all
    sampled for it, and a discharge-only chunk never reads what only the person model needs)."""
    person = samples.get(PERSON_MODEL, pl.DataFrame(schema={"person_id": pl.String, "rank": pl.UInt32}))
    others = [s.join(person, on="person_id", how="anti") for n, s in samples.items() if n != PERSON_MODEL]
    for group in (person, *others):
        ordered = group.sort("rank").select("person_id")
        for start in range(0, ordered.height, size):
            yield ordered.slice(start, size)


def _train_discharges(
    lake: UPath, links: pl.DataFrame, last_cutoff: datetime, config: RiskConfig
) -> pl.DataFrame:
    """Per person with a discharge point: how many train rows (`person_id`, `rows`). A person's number of
    discharges must be known before sampling, so the encounter table is read for everyone, but only the
    columns that say when a stay ended."""
    scan = scan_table(lake, SILVER, "encounter")
    present = scan.collect_schema().names()
    if not {"source", "patient_id", "class_code"} <= set(present):
        return pl.DataFrame(schema={"person_id": pl.String, "rows": pl.UInt32})
    columns = [c for c in ENCOUNTER_COLUMNS if c in present]
    # only inpatient encounters can be discharges: parsing the others' times would be most of the cost
    encounters = (
        scan.select("source", "patient_id", *columns)
        .filter(pl.col("class_code") == "IMP")
        .collect()
        .join(links, on=["source", "patient_id"])
    )
    stays = inpatient_stays(encounter_times_of(encounters), last_cutoff, config.discharge_horizon_days)
    return stays.group_by("person_id").agg(
        (_discharge_role(last_cutoff, config) == "train").sum().alias("rows")
    )


def _person_rows(
    records: PersonRecords, sample: pl.DataFrame, days: dict[str, list[date]], config: RiskConfig
) -> pl.DataFrame:
    """Features and outcome at every as-of day of the sampled persons of `records`."""
    role_of = {d: role for role, ds in days.items() for d in ds}
    mine = records.persons.join(sample, on="person_id", how="semi")
    points = person_points(mine, sorted(role_of))
    if not points.height:
        return pl.DataFrame()
    features = point_in_time_features(records, points, with_care_gaps=False)  # added for all chunks at once
    labelled = person_outcomes(records, points, config.person_horizon_days).select(*POINT, "outcome")
    return features.join(labelled, on=POINT)


def _person_set(
    frames: list[pl.DataFrame], days: dict[str, list[date]], sample: dict[str, int]
) -> TrainingSet:
    role_of = {d: role for role, ds in days.items() for d in ds}
    frame = _concat(frames, PERSON_FEATURES, "charlson_index").with_columns(
        pl.col("as_of").replace_strict(role_of, return_dtype=pl.String).alias("role")
    )
    return TrainingSet(
        PERSON_MODEL,
        frame.sort(POINT),
        PERSON_FEATURES,
        "charlson_index",
        {role: [d.isoformat() for d in ds] for role, ds in days.items()},
        sample,
    )


def _discharge_rows(
    records: PersonRecords, sample: pl.DataFrame, last_cutoff: datetime, config: RiskConfig
) -> pl.DataFrame:
    """Features at every inpatient discharge of the sampled persons of `records`, with outcome (b)."""
    stays = discharge_points(records, last_cutoff, config.discharge_horizon_days).join(
        sample, on="person_id", how="semi"
    )
    if not stays.height:
        return pl.DataFrame()
    return discharge_features(
        records,
        stays.select(
            *POINT,
            "cutoff",
            "encounter_id",
            "length_of_stay_days",
            "emergent_admission",
            "charlson_index",
            "lace_index",
            "outcome",
        ),
    )


def _discharge_windows(last_cutoff: datetime, config: RiskConfig) -> tuple[datetime, datetime]:
    """Where the validation and the test discharges start."""
    test_from = last_cutoff - timedelta(days=config.discharge_horizon_days + config.discharge_test_days)
    return test_from - timedelta(days=config.discharge_validation_days), test_from


def _discharge_role(last_cutoff: datetime, config: RiskConfig) -> pl.Expr:
    validation_from, test_from = _discharge_windows(last_cutoff, config)
    return (
        pl.when(pl.col("cutoff") >= _utc(test_from))
        .then(pl.lit("test"))
        .when(pl.col("cutoff") >= _utc(validation_from))
        .then(pl.lit("validation"))
        .otherwise(pl.lit("train"))
    )


def _discharge_set(
    frames: list[pl.DataFrame], last_cutoff: datetime, config: RiskConfig, sample: dict[str, int]
) -> TrainingSet:
    frame = _concat(frames, DISCHARGE_FEATURES, "lace_index")
    validation_from, test_from = _discharge_windows(last_cutoff, config)
    frame = frame.with_columns(
        _discharge_role(last_cutoff, config).alias("role"), pl.col("charlson_index").cast(pl.Float64)
    )
    return TrainingSet(
        DISCHARGE_MODEL,
        frame.sort("cutoff", "encounter_id") if "encounter_id" in frame.columns else frame,
        DISCHARGE_FEATURES,
        "lace_index",
        {
            "train": [f"before {validation_from.date().isoformat()}"],
            "validation": [f"{validation_from.date().isoformat()} to {test_from.date().isoformat()}"],
            "test": [f"from {test_from.date().isoformat()}"],
        },
        sample,
    )


def _utc(moment: datetime) -> pl.Expr:
    return pl.lit(moment).dt.replace_time_zone("UTC")


def _concat(frames: list[pl.DataFrame], features: tuple[Feature, ...], baseline: str) -> pl.DataFrame:
    """The chunks' rows together; with no rows at all, an empty frame that still has every column."""
    if frames:
        return pl.concat(frames, how="diagonal_relaxed")
    return pl.DataFrame(
        schema={
            **POINT_SCHEMA,
            **{f.name: pl.Float64 for f in features},
            baseline: pl.Float64,
            "outcome": pl.Boolean,
        }
    )
