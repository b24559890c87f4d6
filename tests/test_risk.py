"""Risk: baseline point tables at their boundaries, point-in-time features (no leakage), the training
and registry life cycle (refusal, reproducibility), scoring with reasons and tiers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from upath import UPath

from models.registry import RegistryError
from models.risk.baselines import (
    charlson_category_flags,
    charlson_index,
    lace_index,
    lace_length_points,
)
from models.risk.config import risk_config
from models.risk.drift import psi, psi_reference
from models.risk.explain import describe
from models.risk.features import PERSON_FEATURES, person_points, point_in_time_features
from models.risk.registry import check_compatible, load_model
from pipelines.gold.records import PersonRecords
from tests.test_identity import identity  # noqa: F401  (800 generated people through identity)

AS_OF = date(2026, 6, 30)
SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.mark.parametrize(
    ("days", "points"),
    [
        (0.0, 0),
        (0.9, 0),
        (1.0, 1),
        (2.0, 2),
        (3.0, 3),
        (4.0, 4),
        (6.0, 4),
        (7.0, 5),
        (13.0, 5),
        (14.0, 7),
        (40.0, 7),
    ],
)
def test_lace_length_of_stay_points(days: float, points: int) -> None:
    frame = pl.DataFrame({"d": [days]}).with_columns(pl.col("d").floor())
    assert frame.select(lace_length_points(pl.col("d"))).item() == points


@pytest.mark.parametrize(
    ("days", "emergent", "charlson", "ed", "total"),
    [
        (0, False, 0, 0, 0),
        (14, True, 4, 4, 19),  # the maximum
        (5, True, 3, 0, 10),  # 4 + 3 + 3: the high-risk threshold
        (5, False, 9, 7, 13),  # comorbidity capped at 5 points, ED visits at 4
        (2, True, 1, 1, 7),
    ],
)
def test_lace_index(days: int, emergent: bool, charlson: int, ed: int, total: int) -> None:
    frame = pl.DataFrame({"d": [float(days)], "a": [emergent], "c": [charlson], "e": [float(ed)]})
    assert frame.select(lace_index(pl.col("d"), pl.col("a"), pl.col("c"), pl.col("e"))).item() == total


@pytest.mark.parametrize(
    ("codes", "index"),
    [
        ([], 0),
        ([(SNOMED, "44054006")], 1),  # diabetes without complications
        ([(SNOMED, "44054006"), (SNOMED, "127013003")], 2),  # with complications supersedes
        ([(ICD, "E11.22")], 2),  # ICD-10-CM with its dot
        ([(ICD, "E11.9")], 1),
        ([(SNOMED, "254837009"), (SNOMED, "94503003")], 6),  # metastatic supersedes any malignancy
        ([(SNOMED, "88805009"), (SNOMED, "13645005"), (SNOMED, "46177005")], 4),  # CHF 1 + COPD 1 + renal 2
        ([(ICD, "I50.9"), (SNOMED, "42343007")], 1),  # one category counts once
        ([(SNOMED, "59621000")], 0),  # hypertension is not a Charlson category
    ],
)
def test_charlson_index(codes: list[tuple[str, str]], index: int) -> None:
    conditions = pl.DataFrame(
        {
            "person_id": ["p"] * len(codes),
            "code_system": [c[0] for c in codes],
            "code": [c[1] for c in codes],
        },
        schema={"person_id": pl.String, "code_system": pl.String, "code": pl.String},
    )
    flags = charlson_category_flags(conditions, ["person_id"])
    value = flags.select(charlson_index(flags)).to_series().to_list()
    assert (value[0] if value else 0) == index


def test_plain_words_of_features() -> None:
    by_name = {f.name: f for f in PERSON_FEATURES}
    assert describe(by_name["ed_visits_6m"], 3.0) == "3 ED visits in the last 6 months"
    assert describe(by_name["last_hba1c"], 10.24) == "last HbA1c 10.2%"
    assert describe(by_name["last_hba1c"], float("nan")) == "no HbA1c result"
    assert describe(by_name["has_heart_failure"], 1.0) == "has heart failure"


def test_psi_is_zero_for_the_same_population_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 5000)
    assert psi(psi_reference(reference), rng.normal(0, 1, 5000)) < 0.05
    assert psi(psi_reference(reference), rng.normal(1.5, 1, 5000)) > 0.2


def _future_changed(records: PersonRecords, cutoff: datetime) -> PersonRecords:
    """The same records with everything after `cutoff` deleted, and a burst of new future records."""
    changed = PersonRecords(records.lake, records.persons, records.links, records.bucket, records.buckets)
    when = {
        "encounter": "period_start",
        "condition": "onset_date_time",
        "observation": "effective_date_time",
        "observation_component": "effective_date_time",
        "medication_request": "authored_on",
        "appointment": "start_time",
        "questionnaire_response_item": "authored",
        "procedure": "performed_date_time",
        "immunization": "occurrence_date_time",
    }
    stamp = cutoff.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    for table, column in when.items():
        frame = records.table(table)
        known = frame.filter(pl.col(column).is_null() | (pl.col(column) < stamp))
        future = (
            frame.filter(pl.col(column).is_not_null())
            .head(200)
            .with_columns(pl.lit("2026-12-01T10:00:00+00:00").alias(column))
        )
        if table == "encounter":
            future = future.with_columns(
                pl.lit("EMER").alias("class_code"), pl.lit(None, pl.String).alias("period_end")
            )
        if table == "condition":  # a condition that abates after the cutoff is still active at it
            known = known.with_columns(pl.lit("2026-09-01").alias("abatement_date_time"))
        changed._tables[("silver", table)] = pl.concat([known, future], how="vertical_relaxed")
    return changed


def test_changing_data_after_the_as_of_day_cannot_change_features(identity) -> None:  # noqa: F811
    _, lake = identity
    records = PersonRecords.load(lake)
    day = date(2025, 6, 30)
    points = person_points(records.persons, [day])
    before = point_in_time_features(records, points)
    after = point_in_time_features(_future_changed(records, datetime(2025, 7, 1)), points)
    assert before.height > 500 and before["ed_visits_12m"].sum() > 0
    assert after.equals(before)


def test_points_leave_out_the_dead_and_the_unborn() -> None:
    persons = pl.DataFrame(
        {
            "person_id": ["alive", "dead_before", "dead_after", "dead_undated", "unborn"],
            "birth_date": ["1950-01-01", "1950-01-01", "1950-01-01", "1950-01-01", "2026-01-01"],
            "deceased": [None, "2024-01-01", "2026-01-01", "true", None],
        }
    )
    points = person_points(persons, [date(2025, 6, 30)], datetime(2026, 12, 7, tzinfo=UTC))
    assert points["person_id"].to_list() == ["alive", "dead_after"]


def test_a_person_whose_birth_date_gives_no_age_still_has_a_point_and_no_age() -> None:
    """Issue 25's rule: an unusable birth date makes the age unknown, the person stays - and keeps a risk
    score (issue 27: every living person). Born after the run's clock is a typo, not someone unborn."""
    persons = pl.DataFrame(
        {
            "person_id": ["missing", "partial", "typo_2096", "placeholder", "born_later"],
            "birth_date": [None, "1970-05", "2096-03-01", "1900-01-01", "2026-01-01"],
            "deceased": [None] * 5,
            "gender": ["female"] * 5,
        },
        schema_overrides={"deceased": pl.String},
    )
    clock = datetime(2026, 12, 7, tzinfo=UTC)
    points = person_points(persons, [date(2025, 6, 30)], clock)
    assert points["person_id"].to_list() == ["missing", "partial", "placeholder", "typo_2096"]
    records = PersonRecords(UPath("memory://nowhere"), persons, pl.DataFrame(), "00", 1)
    features = point_in_time_features(records, points, with_care_gaps=False)
    assert features["age"].null_count() == features.height


def _metadata(features: list[str], sklearn_version: str = "1.9.1") -> dict:
    return {
        "version": "person_180d-abc",
        "features": [{"name": f} for f in features],
        "sklearn_version": sklearn_version,
    }


def test_the_registry_refuses_a_model_of_another_schema_or_library_version() -> None:
    import sklearn

    names = [f.name for f in PERSON_FEATURES]
    check_compatible(_metadata(names, sklearn.__version__), names)  # fits: no error
    with pytest.raises(RegistryError, match="another feature schema"):
        check_compatible(_metadata(names[:-1], sklearn.__version__), names)
    with pytest.raises(RegistryError, match="another feature schema"):
        check_compatible(_metadata(list(reversed(names)), sklearn.__version__), names)
    with pytest.raises(RegistryError, match=r"scikit-learn 0\.24"):
        check_compatible(_metadata(names, "0.24.2"), names)


@pytest.fixture(scope="module")
def trained(identity, tmp_path_factory):  # noqa: F811
    """Both risk models trained on the 800-person lake (a copy: the registry lives in the lake)."""
    from models.risk.lifecycle import train_and_deploy

    _, lake = identity
    config = replace(risk_config(), train_points=2)
    outcomes = train_and_deploy(lake, 4, AS_OF, config)
    return lake, config, outcomes


def test_training_registers_a_card_and_re_running_reuses_the_version(trained) -> None:
    from models.risk.lifecycle import train_and_deploy

    lake, config, outcomes = trained
    person = next(o for o in outcomes if o.name == "person_180d")
    assert person.status == "registered", person.detail
    folder = lake / "models" / "person_180d" / person.version
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["chosen"] in {"logistic_regression", "gradient_boosting"}
    assert {"auroc", "auprc", "brier"} <= set(metadata["metrics"]["model"])
    assert metadata["metrics"]["model"]["brier"] < metadata["metrics"]["prevalence_only"]["brier"]
    card = (folder / "model_card.md").read_text()
    assert "## Fairness slices" in card and "charlson_index" in card and "Calibration" in card
    again = train_and_deploy(lake, 4, AS_OF, config)
    assert [(o.name, o.version) for o in again] == [(o.name, o.version) for o in outcomes]
    assert all(o.status in ("reused", "skipped") for o in again)


def test_the_same_data_and_seed_give_the_same_model(identity) -> None:  # noqa: F811
    from models.risk.dataset import person_training_set
    from models.risk.registry import version_id
    from models.risk.train import train_model

    _, lake = identity
    config = replace(risk_config(), train_points=1)
    first = person_training_set(lake, 4, AS_OF, config)
    second = person_training_set(lake, 4, AS_OF, config)
    assert version_id(first, config.seed) == version_id(second, config.seed)
    a, b = train_model(first, config.seed), train_model(second, config.seed)
    assert a.metrics == b.metrics and a.chosen == b.chosen


def test_scoring_gives_every_living_person_a_score_tier_and_reasons(trained) -> None:
    from models.risk.score import FEATURE_NAMES, score_persons

    lake, config, outcomes = trained
    person = next(o for o in outcomes if o.name == "person_180d")
    model = load_model(lake, "person_180d", FEATURE_NAMES, version=person.version)  # deployed or not
    records = PersonRecords.load(lake, "01", 4)
    scores, features = score_persons(records, AS_OF, model, config)
    assert scores.height == features.height > 50
    assert scores["score"].is_between(0, 1).all() and set(scores["tier"]) <= {"high", "medium", "low"}
    assert scores["points"].is_null().all() and set(scores["model_version"]) == {model.version}
    # a person typical in every way has nothing that stands out; almost everybody has something
    assert (scores["reasons"].list.len() >= 1).mean() > 0.9 and (scores["reasons"].list.len() <= 3).all()
    first = scores["reasons"].explode().drop_nulls().to_list()
    assert all(r.startswith(("raises risk: ", "lowers risk: ")) for r in first)
    high_share = (scores["tier"] == "high").mean()
    assert high_share < 0.2  # about the configured 5% of a population like the reference


def _reasons_against_the_model(
    model, scores: pl.DataFrame, features: pl.DataFrame, known=PERSON_FEATURES, key: str = "person_id"
) -> list[dict]:
    """Every reason of `scores` with the feature it names (exactly one, by the words of its scored value),
    that feature's value and reference, and its recomputed contribution: the row of `features` (joined on
    `key`) re-scored with that feature alone at the model's reference value."""
    from models.risk.explain import describe, reference_array
    from models.risk.train import matrix

    by_name = {f.name: f for f in known}
    used = [by_name[f] for f in model.features]
    rows = features.join(scores.select(key, "reasons"), on=key).sort(key)
    x = matrix(rows, model.features)
    reference = reference_array(model.metadata, model.features)
    said: list[dict] = []
    for i, reasons in enumerate(rows["reasons"].to_list()):
        for reason in reasons:
            words = reason.split(": ", 1)[1]
            named = [j for j, f in enumerate(used) if describe(f, float(x[i, j])) == words]
            assert len(named) == 1, reason
            j = named[0]
            said.append(
                {"row": i, "reason": reason, "feature": used[j], "value": x[i, j], "reference": reference[j]}
            )
    typical = x[[r["row"] for r in said]].copy()
    for k, r in enumerate(said):
        typical[k, model.features.index(r["feature"].name)] = r["reference"]
    base = model.estimator.predict_proba(x[[r["row"] for r in said]])[:, 1]
    for r, effect in zip(said, base - model.estimator.predict_proba(typical)[:, 1], strict=True):
        r["effect"] = float(effect)
    return said


def _contradictions(checked: list[dict]) -> tuple[list[dict], list[dict]]:
    """The reasons whose words go against their feature's contribution, and those that say an admission,
    ED visit, diagnosis or alert above the typical person's lowers risk."""
    wrong = [r for r in checked if (r["effect"] > 0) != r["reason"].startswith("raises risk: ")]
    events_lowering = [
        r
        for r in checked
        if r["feature"].direction > 0
        and r["value"] > r["reference"]
        and r["reason"].startswith("lowers risk")
    ]
    return wrong, events_lowering


def test_no_reason_contradicts_its_score_on_a_generated_lake(trained) -> None:
    """Property over every scored person of the 800-person lake: the feature a reason names pushes the
    score the way the words say, and no admission, ED visit, diagnosis or alert above the typical person's
    is said to lower risk."""
    from models.risk.score import FEATURE_NAMES, score_persons

    lake, config, outcomes = trained
    person = next(o for o in outcomes if o.name == "person_180d")
    model = load_model(lake, "person_180d", FEATURE_NAMES, version=person.version)
    checked = []
    for bucket in ("00", "01", "02", "03"):
        scores, features = score_persons(PersonRecords.load(lake, bucket, 4), AS_OF, model, config)
        checked += _reasons_against_the_model(model, scores, features)
    assert len(checked) > 1500
    wrong, events_lowering = _contradictions(checked)
    assert not wrong, wrong[:5]
    assert all(abs(r["effect"]) > 0 for r in checked)
    assert not events_lowering, events_lowering[:5]


def _discharge_model(trained):
    from models.risk.score import DISCHARGE_FEATURE_NAMES

    lake, _, outcomes = trained
    discharge = next(o for o in outcomes if o.name == "discharge_30d")
    assert discharge.version, discharge.detail  # registered (deployed or not: it need not beat LACE here)
    return load_model(lake, "discharge_30d", DISCHARGE_FEATURE_NAMES, version=discharge.version)


def test_a_deployed_discharge_model_scores_the_recent_discharges(trained, monkeypatch) -> None:
    """The deployed (here: pinned) discharge model scores gold/discharge_risk with its probability, a tier
    from its own reference scores, reasons in words and its version; it changes the versions the person
    buckets are planned with, so deploying one rebuilds them."""
    from models.risk.score import DISCHARGE_RISK_SCHEMA, tier_thresholds
    from pipelines.gold.build import (
        build_person_tables,
        deployed_discharge_model,
        deployed_model_versions,
        no_history,
    )
    from pipelines.silver.expectations import EXPECTATIONS_DIR, check_table, load_suites

    lake, config, _ = trained
    model = _discharge_model(trained)
    assert {"reference_scores", "reference"} <= set(model.metadata)
    before = deployed_model_versions(lake)["discharge_30d"]
    monkeypatch.setenv("PATIENT_INSIGHTS_RISK_MODEL_VERSION", model.version)
    assert deployed_discharge_model(lake).version == model.version
    assert before == "baseline:lace 5/10" != deployed_model_versions(lake)["discharge_30d"] == model.version
    tables = build_person_tables(PersonRecords.load(lake), AS_OF, no_history(), None, None, model)
    scores = tables["discharge_risk"]
    assert scores.height > 0 and scores.schema == pl.Schema(DISCHARGE_RISK_SCHEMA)
    assert set(scores["model_version"]) == {model.version} and scores["points"].is_null().all()
    assert scores["score"].is_between(0, 1).all()
    high, medium = tier_thresholds(model.metadata["reference_scores"], config)
    expected = pl.when(pl.col("score") >= high).then(pl.lit("high"))
    expected = expected.when(pl.col("score") >= medium).then(pl.lit("medium")).otherwise(pl.lit("low"))
    assert (scores["tier"] == scores.select(expected)[:, 0]).all()
    reasons = scores["reasons"].explode().drop_nulls()
    assert reasons.len() > 0 and reasons.str.contains(r"^(raises|lowers) risk: ").all()
    suite = load_suites(EXPECTATIONS_DIR / "gold")["discharge_risk"]
    assert check_table("discharge_risk", scores, suite).success
    lace = build_person_tables(PersonRecords.load(lake), AS_OF, no_history())["discharge_risk"]
    assert lace.select("encounter_id", "returned_on").equals(scores.select("encounter_id", "returned_on"))


def test_no_discharge_reason_contradicts_its_score(trained) -> None:
    """The property of the person scores, for the discharge model: over the recent discharges of a year of
    monthly as-of days, the feature each reason names, valued as at the discharge instant, pushes the score
    the way the words say."""
    from models.risk.features import DISCHARGE_FEATURES, discharge_features
    from models.risk.outcomes import recent_discharges
    from models.risk.score import score_discharges

    lake, config, _ = trained
    model = _discharge_model(trained)
    records = PersonRecords.load(lake)
    checked = []
    for months in range(12):
        day = AS_OF - timedelta(days=30 * months)
        scores = score_discharges(records, day, model, config)
        stays = recent_discharges(records, day, config.discharge_horizon_days)
        features = discharge_features(records, stays)
        checked += _reasons_against_the_model(model, scores, features, DISCHARGE_FEATURES, "encounter_id")
    assert len(checked) > 100
    wrong, events_lowering = _contradictions(checked)
    assert not wrong, wrong[:5]
    assert not events_lowering, events_lowering[:5]


def _with_open_stays(records: PersonRecords, day: date) -> PersonRecords:
    """The same records with some inpatient stays still running at the end of `day`: no end recorded yet,
    or an end after it."""
    changed = PersonRecords(records.lake, records.persons, records.links, records.bucket, records.buckets)
    for key, rows in records._tables.items():
        changed._tables[key] = rows
    encounters = records.table("encounter").with_row_index("_row")
    stays = encounters.filter(pl.col("class_code") == "IMP")["_row"]
    open_now, ending_later = stays.head(15), stays.slice(15, 15)
    changed._tables[("silver", "encounter")] = encounters.with_columns(
        pl.when(pl.col("_row").is_in(open_now.implode()) | pl.col("_row").is_in(ending_later.implode()))
        .then(pl.lit(f"{(day - timedelta(days=3)).isoformat()}T08:00:00+00:00"))
        .otherwise(pl.col("period_start"))
        .alias("period_start"),
        pl.when(pl.col("_row").is_in(open_now.implode()))
        .then(pl.lit(None, pl.String))
        .when(pl.col("_row").is_in(ending_later.implode()))
        .then(pl.lit(f"{(day + timedelta(days=9)).isoformat()}T08:00:00+00:00"))
        .otherwise(pl.col("period_end"))
        .alias("period_end"),
    ).drop("_row")
    return changed


def test_utilization_in_reasons_equals_the_360_view_also_for_stays_still_open(trained) -> None:
    """One definition of utilization: the 360 view's columns equal the risk features' (and so the numbers
    the reasons say), with stays still running at the as-of day counting their days so far."""
    from pipelines.gold.patient_360 import build_patient_360

    lake, _, _ = trained
    records = _with_open_stays(PersonRecords.load(lake), AS_OF)
    view = build_patient_360(records, AS_OF)
    features = point_in_time_features(records, person_points(records.persons, [AS_OF]), with_care_gaps=False)
    joined = view.join(features, on="person_id", suffix="_feature")
    assert joined.height > 500
    for column in ("ed_visits_6m", "ed_visits_12m", "inpatient_admissions_12m", "bed_days_12m"):
        assert (joined[column].cast(pl.Float64) == joined[f"{column}_feature"]).all(), column
    assert (joined["outpatient_visits_12m"].cast(pl.Float64) == joined["outpatient_visits_12m_feature"]).all()
    # the open stays began 3 days before the end of the as-of day: 3 days so far each, none to come
    opened = records.table("encounter").filter(pl.col("period_start") == "2026-06-27T08:00:00+00:00")
    persons = opened["person_id"].unique()
    assert persons.len() > 5
    assert (joined.filter(pl.col("person_id").is_in(persons.implode()))["bed_days_12m"] >= 3).all()


def test_a_model_pinned_to_an_unknown_version_is_refused(trained, monkeypatch) -> None:
    from models.risk.score import FEATURE_NAMES

    lake, _, _ = trained
    monkeypatch.setenv("PATIENT_INSIGHTS_RISK_MODEL_VERSION", "person_180d-000000000000")
    with pytest.raises(RegistryError, match="not in the registry"):
        load_model(lake, "person_180d", FEATURE_NAMES)


def test_no_deployed_model_means_no_scores(tmp_path) -> None:
    from pipelines.gold.build import deployed_risk_model

    assert deployed_risk_model(UPath(tmp_path)) is None


def test_risk_assets_materialize_train_score_and_check_drift(identity, tmp_path) -> None:  # noqa: F811
    import shutil

    import dagster as dg

    from assets.gold.assets import person_tables
    from assets.resources import LakeResource
    from assets.risk.assets import risk_drift, risk_models
    from models.registry import deploy, registry_of
    from pipelines.lake import read_table

    root, source = identity
    lake = tmp_path / "lake"
    shutil.copytree(str(source), lake)  # the module's lake keeps no model of this test
    shutil.rmtree(lake / "models", ignore_errors=True)  # nor this test one of the module's (`trained`)
    resource = LakeResource(landing=str(root / "landing"), lake=str(lake), buckets=4, as_of="2026-06-30")
    instance = dg.DagsterInstance.ephemeral()
    trained = dg.materialize([risk_models], resources={"lake": resource}, instance=instance)
    assert trained.success
    metadata = trained.asset_materializations_for_node("models__risk")[0].metadata
    assert metadata["person_180d_status"].value in ("registered", "skipped")
    versions = sorted((lake / "models" / "person_180d").glob("person_180d-*"))
    assert versions, metadata["person_180d_detail"].value
    if metadata["person_180d_deployed"].value == "none":
        # scoring does not depend on beating Charlson
        deploy(registry_of(UPath(lake)), "person_180d", versions[0].name)
    discharge = metadata["discharge_30d_deployed"].value
    if discharge == "none":  # nor on beating LACE
        discharge = sorted((lake / "models" / "discharge_30d").glob("discharge_30d-*"))[0].name
        deploy(registry_of(UPath(lake)), "discharge_30d", discharge)
    scored = dg.materialize([person_tables], resources={"lake": resource}, instance=instance)
    assert scored.success and all(c.passed for c in scored.get_asset_check_evaluations())
    drift = dg.materialize([risk_drift], resources={"lake": resource}, instance=instance)
    assert drift.success
    checks = {c.check_name: c for c in drift.get_asset_check_evaluations()}
    assert checks["contract"].passed and "score_drift" in checks
    view = read_table(UPath(lake), "gold", "patient_360")
    scores = read_table(UPath(lake), "gold", "risk_scores")
    assert scores.height == view.filter(~pl.col("deceased")).height > 500
    assert view["risk_tier"].drop_nulls().len() == scores.height
    assert read_table(UPath(lake), "gold", "risk_drift").filter(pl.col("variable") == "score").height == 1
    discharges = read_table(UPath(lake), "gold", "discharge_risk")
    assert discharges.height > 0 and set(discharges["model_version"]) == {discharge}
