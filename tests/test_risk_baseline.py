"""Always a risk score: the clinical baselines' points, tiers at fixed cut-offs and reasons in words
(pure functions), and a lake on which no model can be trained honestly still scoring every living person
with the Charlson baseline, through the whole pipeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml
from upath import UPath

from models.risk.baselines import (
    baseline_tier,
    charlson_categories,
    charlson_index,
    charlson_reasons,
    lace_index,
)
from models.risk.config import risk_config
from models.risk.score import CHARLSON_BASELINE, LACE_BASELINE, score_discharges_with_baseline
from tests.test_dashboard import use_lake  # noqa: F401  (the dashboard's lake and role, cache cleared)

AS_OF = date(2026, 6, 30)


def _flags(rows: dict[str, list[bool]]) -> pl.DataFrame:
    people = len(next(iter(rows.values())))
    return pl.DataFrame({"person_id": [f"p{i}" for i in range(people)], **rows})


def test_charlson_reasons_say_the_counted_conditions_heaviest_first_with_their_points() -> None:
    flags = _flags(
        {
            "congestive_heart_failure": [True, False, False],
            "diabetes_without_complications": [True, True, False],
            "diabetes_with_complications": [True, False, False],  # supersedes the milder form
            "metastatic_solid_tumor": [True, False, False],
            "any_malignancy": [True, False, False],  # superseded by the metastatic tumour
        }
    )
    reasons = dict(charlson_reasons(flags, ["person_id"], top=3).iter_rows())
    assert reasons == {
        "p0": [
            "raises risk: cancer that has spread (metastatic solid tumour) (Charlson 6 points)",
            "raises risk: diabetes with organ damage (Charlson 2 points)",
            "raises risk: heart failure (Charlson 1 point)",
        ],
        "p1": ["raises risk: diabetes (Charlson 1 point)"],
    }  # p2 has no condition of the index: nothing to say
    assert flags.select(charlson_index(flags))["charlson_index"].to_list() == [9, 1, 0]


def test_every_reason_of_a_person_with_few_conditions_adds_up_to_their_points() -> None:
    categories = list(charlson_categories())
    flags = _flags({name: [i == k for i in range(len(categories))] for k, name in enumerate(categories)})
    index = flags.select("person_id", charlson_index(flags))
    reasons = charlson_reasons(flags, ["person_id"], top=3).join(index, on="person_id")
    assert reasons.height == len(categories)  # every category has words
    said = reasons["reasons"].list.first().str.extract(r"\(Charlson (\d) points?\)").cast(pl.Int32)
    assert (said == reasons["charlson_index"]).all()


@pytest.mark.parametrize(
    ("points", "tier"), [(0, "low"), (1, "medium"), (2, "medium"), (3, "high"), (9, "high")]
)
def test_charlson_points_map_to_the_published_tiers(points: int, tier: str) -> None:
    frame = pl.DataFrame({"points": [points]})
    assert frame.select(baseline_tier(pl.col("points"), risk_config().charlson_tiers))["tier"][0] == tier


def test_lace_scores_discharges_in_points_tiers_and_reasons() -> None:
    stays = pl.DataFrame(
        {
            "person_id": ["a", "b", "c"],
            "encounter_id": ["e1", "e2", "e3"],
            "as_of": [AS_OF] * 3,
            "length_of_stay_days": [0.5, 5.2, 15.0],
            "emergent_admission": [False, True, True],
            "charlson_index": [0, 2, 5],
            "ed_visits_before_6m": [0.0, 0.0, 6.0],
        }
    ).with_columns(
        lace_index(
            pl.col("length_of_stay_days"),
            pl.col("emergent_admission"),
            pl.col("charlson_index"),
            pl.col("ed_visits_before_6m"),
        )
    )
    scores = score_discharges_with_baseline(stays, risk_config())
    assert scores["points"].to_list() == [0, 9, 19]
    assert scores["tier"].to_list() == ["low", "medium", "high"]
    assert set(scores["model_version"]) == {LACE_BASELINE}
    assert scores["reasons"].to_list() == [
        [],
        [
            "raises risk: a 5-day hospital stay (LACE 4 points)",
            "raises risk: admitted through the emergency department (LACE 3 points)",
            "raises risk: Charlson comorbidity index 2 (LACE 2 points)",
        ],
        [
            "raises risk: a 15-day hospital stay (LACE 7 points)",
            "raises risk: Charlson comorbidity index 5 (LACE 5 points)",
            "raises risk: 6 ED visits in the 6 months before admission (LACE 4 points)",
        ],
    ]


def test_baseline_cut_offs_are_read_from_the_contract_and_checked(tmp_path: Path) -> None:
    contract = Path(__file__).resolve().parents[1] / "data_contracts" / "risk" / "model.yaml"
    data = yaml.safe_load(contract.read_text())
    assert (data["baselines"]["charlson"]["medium"], data["baselines"]["charlson"]["high"]) == (1, 3)
    data["baselines"]["lace"] = {"medium": 12, "high": 10}
    wrong = tmp_path / "model.yaml"
    wrong.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"baselines\.lace"):
        risk_config(wrong)


@pytest.fixture(scope="module")
def untrainable_lake(tmp_path_factory: pytest.TempPathFactory) -> UPath:
    """The whole pipeline on 60 generated people: far too few outcomes for an honest model."""
    import os

    from pipelines.config import Settings
    from pipelines.generate.landing import generate_landing
    from pipelines.run import run_pipeline

    root = tmp_path_factory.mktemp("untrainable")
    generate_landing(root / "landing", 60, seed=5, as_of=AS_OF)
    settings = Settings(UPath(root / "landing"), UPath(root / "lake"), UPath(root / "exports"), 1, AS_OF)
    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = ""  # an ephemeral Dagster instance
    try:
        run = run_pipeline(settings, workers=1)
    finally:
        if before is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = before
    assert run.success, run.failed_checks  # the risk_scores contract passed on the baseline's rows
    return settings.lake


def test_a_lake_where_no_model_can_be_trained_still_scores_every_living_person(untrainable_lake) -> None:
    from pipelines.lake import read_table

    lake = untrainable_lake
    assert not list((lake / "models" / "person_180d").glob("*/metadata.json"))  # training refused
    view = read_table(lake, "gold", "patient_360")
    scores = read_table(lake, "gold", "risk_scores")
    features = read_table(lake, "gold", "risk_features")
    living = view.filter(~pl.col("deceased")).select("person_id", "risk_tier", "risk_score")
    assert living.height > 40
    assert sorted(scores["person_id"]) == sorted(living["person_id"])  # every living person, once
    assert set(scores["model_version"]) == {CHARLSON_BASELINE}
    assert scores["score"].is_null().all()  # the baseline gives points, not a probability
    joined = scores.join(features.select("person_id", "charlson_index"), on="person_id")
    assert (joined["points"].cast(pl.Float64) == joined["charlson_index"]).all()
    medium, high = risk_config().charlson_tiers
    expected = (
        pl.when(pl.col("points") >= high)
        .then(pl.lit("high"))
        .when(pl.col("points") >= medium)
        .then(pl.lit("medium"))
    )
    assert (joined["tier"] == joined.select(expected.otherwise(pl.lit("low")))[:, 0]).all()
    with_points = joined.filter(pl.col("points") > 0)
    assert with_points.height > 0 and (with_points["reasons"].list.len() >= 1).all()
    reasons = scores["reasons"].explode().drop_nulls()
    assert reasons.str.contains(r"^raises risk: .+ \(Charlson \d points?\)$").all()
    tiers = living.join(scores.select("person_id", "tier"), on="person_id")
    assert (tiers["risk_tier"] == tiers["tier"]).all() and tiers["risk_score"].is_null().all()
    # no discharge model either: LACE scores whatever recent discharges there are (the contract passed)
    discharges = read_table(lake, "gold", "discharge_risk")
    assert set(discharges["model_version"]) <= {LACE_BASELINE} and discharges["score"].is_null().all()
    assert discharges["person_id"].is_in(living["person_id"].implode()).all()


def test_new_baseline_cut_offs_rescore_every_person(monkeypatch) -> None:
    """The baselines and their cut-offs are the 'models' the person tables are scored with: changing them
    makes an incremental run rebuild every person bucket, like deploying a model does."""
    from models.risk import config as config_module
    from pipelines.gold.build import deployed_model_versions

    lake = UPath("/nonexistent-lake")
    first = deployed_model_versions(lake)
    assert (first["person_180d"], first["discharge_30d"]) == (
        f"{CHARLSON_BASELINE} 1/3",
        f"{LACE_BASELINE} 5/10",
    )
    changed = replace(risk_config(), charlson_tiers=(2, 4))
    monkeypatch.setattr("pipelines.gold.build.risk_config", lambda: changed)
    assert deployed_model_versions(lake)["person_180d"] != first["person_180d"]
    lace = replace(risk_config(), lace_tiers=(6, 11))
    monkeypatch.setattr("pipelines.gold.build.risk_config", lambda: lace)
    assert deployed_model_versions(lake)["discharge_30d"] != first["discharge_30d"]
    assert config_module.risk_config().charlson_tiers == (1, 3)


def test_the_dashboard_says_the_clinical_baseline_scored(untrainable_lake, use_lake) -> None:  # noqa: F811
    """Overview and patient 360 say in plain words that the tiers come from the Charlson baseline, and the
    patient's risk tab shows points and the conditions that count, never a probability."""
    from tests.test_dashboard import open_page, texts

    lake = untrainable_lake
    use_lake(Path(str(lake)), Path(str(lake)).parent / "exports")
    words = "**Clinical baseline (Charlson comorbidity index)**: no model trained on this data yet"
    overview = open_page("views/overview.py")
    assert not overview.exception, [e.value for e in overview.exception]
    assert words in texts(overview)
    scores = pl.read_parquet(Path(str(lake)) / "gold" / "risk_scores" / "**" / "*.parquet")
    view = pl.read_parquet(Path(str(lake)) / "gold" / "patient_360" / "**" / "*.parquet")
    person = (
        view.join(scores.filter(pl.col("points") > 0), on="person_id")
        .drop_nulls(["given", "family"])
        .sort("points", "person_id", descending=[True, False])
        .row(0, named=True)
    )
    patient = open_page("views/patient.py")
    patient.text_input(key="search").input(f"{person['family']} {person['given'].split()[0]}").run()
    options = [str(o) for o in patient.selectbox[0].options]
    chosen = next(i for i, o in enumerate(options) if person["family"] in o and person["birth_date"] in o)
    patient.selectbox[0].select(chosen).run()
    shown = texts(patient)
    assert not patient.exception, [e.value for e in patient.exception]
    assert (
        words in shown and "Charlson comorbidity index (risk of an ED visit or unplanned admission)" in shown
    )
    assert f"{person['points']} point" in shown and person["reasons"][0] in shown
    assert "%" not in shown.split("Charlson comorbidity index (risk")[1].split("\n")[0]
