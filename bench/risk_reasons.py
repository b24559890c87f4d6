"""Do a lake's risk reasons agree with its model? For every reason in `gold/risk_scores`, the feature it
names (found by saying each feature's scored value from `gold/risk_features` in words) is set alone to
the model's stated reference value (the typical training person; the training median for a model that
recorded no reference) and the person re-scored with the deployed model: the reason contradicts the score
when the words say "lowers risk" and the feature pushes the score up, or the reverse. Also counted: reasons
that say an admission, ED visit, diagnosis, alert or other event a clinician reads as raising risk lowers
it (the issue's "lowers risk: 1 hospital admissions in the last 12 months").

    python -m bench.risk_reasons --lake DIR
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import polars as pl
from upath import UPath

from models.risk.explain import describe
from models.risk.features import PERSON_FEATURES
from pipelines.gold.build import deployed_risk_model
from pipelines.lake import read_table

EVENTS = {
    "ed_visits_6m",
    "ed_visits_12m",
    "ed_visits_36m",
    "inpatient_admissions_12m",
    "inpatient_admissions_36m",
    "readmissions_36m",
    "bed_days_12m",
    "charlson_index",
    "medications_12m",
    "missed_appointments_12m",
    "poor_survey_ratings_12m",
    "device_alerts_30d",
    "open_care_gaps",
    *[f.name for f in PERSON_FEATURES if f.name.startswith("has_")],
}
"""Features a care manager reads as raising risk whenever a person has more of them than is typical."""


def check_reasons(lake: UPath) -> dict[str, int]:
    """Counts of the lake's reasons: all, contradicting the model, naming no feature unambiguously, with
    no effect, and saying an event lowers risk."""
    model = deployed_risk_model(lake)
    if model is None:
        raise SystemExit("no person model is deployed in this lake: its reasons are the baseline's")
    stated = model.metadata.get("reference") or model.metadata["medians"]
    reference = np.array([np.nan if stated[f] is None else float(stated[f]) for f in model.features])
    by_name = {f.name: f for f in PERSON_FEATURES}
    features = [by_name[f] for f in model.features]
    scores = read_table(lake, "gold", "risk_scores").filter(pl.col("model_version") == model.version)
    values = read_table(lake, "gold", "risk_features").join(scores.select("person_id"), on="person_id")
    values = values.sort("person_id")
    x = values.select([pl.col(f).cast(pl.Float64) for f in model.features]).to_numpy()
    row_of = {p: i for i, p in enumerate(values["person_id"].to_list())}
    base = model.estimator.predict_proba(x)[:, 1]
    counts = {"reasons": 0, "contradicting": 0, "unmatched": 0, "no_effect": 0, "event_said_to_lower": 0}
    pairs: list[tuple[int, int, int, bool]] = []  # row, feature, direction said, an event said to lower
    for person, reasons in scores.select("person_id", "reasons").iter_rows():
        i = row_of[person]
        for reason in reasons or []:
            counts["reasons"] += 1
            said, _, words = reason.partition(": ")
            direction = 1 if said == "raises risk" else -1
            named = [j for j, f in enumerate(features) if describe(f, float(x[i, j])) == words]
            if len(named) != 1:
                counts["unmatched"] += 1
                continue
            j = named[0]
            event = features[j].name in EVENTS and direction < 0 and x[i, j] > np.nan_to_num(reference[j])
            pairs.append((i, j, direction, bool(event)))
    typical = x[[i for i, *_ in pairs]].copy()
    for k, (_, j, *_) in enumerate(pairs):
        typical[k, j] = reference[j]
    effects = base[[i for i, *_ in pairs]] - model.estimator.predict_proba(typical)[:, 1] if pairs else []
    for (_, _, direction, event), effect in zip(pairs, effects, strict=True):
        if effect == 0:
            counts["no_effect"] += 1
        elif np.sign(effect) != direction:
            counts["contradicting"] += 1
        counts["event_said_to_lower"] += int(event)
    return counts


def main() -> None:
    """Print the counts of one lake as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", required=True)
    print(json.dumps(check_reasons(UPath(parser.parse_args().lake)), indent=2))


if __name__ == "__main__":
    main()
