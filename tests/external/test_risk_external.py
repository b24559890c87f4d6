"""Risk training on the 79-patient Synthea bundles: features, outcomes and baselines are built end to end,
and training refuses, with its reason, to fit a model on too few outcomes (the honest result there)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from upath import UPath

from models.risk.config import risk_config
from models.risk.dataset import discharge_training_set, person_training_set
from models.risk.lifecycle import train_and_deploy

ANCHOR = date(2019, 6, 30)  # the bundles' acute care thins out after 2019


def test_synthea_risk_training_runs_end_to_end_and_says_why_it_stops(synthea_lake: UPath) -> None:
    lake = synthea_lake
    config = replace(risk_config(), train_points=10, discharge_test_days=730, discharge_validation_days=730)
    persons = person_training_set(lake, 4, ANCHOR, config)
    assert persons.part("test").height == 79 and persons.part("train")["outcome"].sum() > 20
    assert persons.frame["charlson_index"].max() > 0 and persons.frame["ed_visits_36m"].is_not_null().all()
    stays = discharge_training_set(lake, 4, ANCHOR, config)
    assert stays.frame.height > 300 and stays.frame["lace_index"].is_between(0, 19).all()
    outcomes = {o.name: o for o in train_and_deploy(lake, 4, ANCHOR, config)}
    for outcome in outcomes.values():
        assert outcome.status == "skipped" and "at least 10 of each class" in outcome.detail
        assert outcome.deployed is None
    assert not list((lake / "models").rglob("deployed.json"))
