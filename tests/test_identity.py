"""Identity on generated data with ground truth: pairwise precision and recall, stable person ids when a
new export arrives, the golden record's survivorship, and the clerical-review grey zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.generate import generate_landing
from pipelines.identity.build import build_identity
from pipelines.identity.golden import choose_fields
from pipelines.lake import read_table
from pipelines.silver.build import build_partition, partition_keys

BUCKETS = 4
PRECISION_FLOOR = 0.995
RECALL_FLOOR = 0.98


def _build(landing: Path, lake: UPath) -> None:
    ingest_landing(UPath(landing), lake, BUCKETS)
    for key in partition_keys(BUCKETS):
        build_partition(lake, key)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, UPath]:
    """800 generated people (30% in both EHRs, with the generator's demographic noise), through silver
    and identity."""
    root = tmp_path_factory.mktemp("identity")
    generate_landing(root / "landing", 800, seed=21)
    lake = UPath(root / "lake")
    _build(root / "landing", lake)
    build_identity(lake, now=datetime(2026, 6, 30, tzinfo=UTC))
    return root, lake


def _pairs(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    joined = frame.join(frame, on=key, suffix="_r").filter(pl.col("unique_id") < pl.col("unique_id_r"))
    return joined.select("unique_id", "unique_id_r")


def test_pairwise_precision_and_recall_against_the_ground_truth(identity) -> None:
    root, lake = identity
    truth = pl.read_csv(root / "ground_truth" / "identity.csv", infer_schema_length=0).select(
        pl.format("{}|{}", "source", "source_patient_id").alias("unique_id"), "person_index"
    )
    links = read_table(lake, "identity", "person_link").select(
        pl.format("{}|{}", "source", "source_patient_id").alias("unique_id"), "person_id"
    )
    assert links.height == truth.height  # every record has exactly one person
    true_pairs, predicted = _pairs(truth, "person_index"), _pairs(links, "person_id")
    hits = predicted.join(true_pairs, on=["unique_id", "unique_id_r"]).height
    assert true_pairs.height > 150  # the generator puts ~30% of people in both sources
    assert hits / predicted.height >= PRECISION_FLOOR
    assert hits / true_pairs.height >= RECALL_FLOOR


def test_tables_hold_their_contracts(identity) -> None:
    _, lake = identity
    links = read_table(lake, "identity", "person_link")
    persons = read_table(lake, "identity", "person")
    assert links.select("source", "source_patient_id").is_unique().all()
    assert persons["person_id"].is_unique().all()
    assert set(persons["person_id"]) == set(links["person_id"])
    assert set(links["match_rule"]) <= {"identifier:ssn", "probabilistic", "single_record"}
    review = read_table(lake, "identity", "clerical_review")
    assert ((review["match_probability"] >= 0.5) & (review["match_probability"] < 0.99)).all()
    history = read_table(lake, "identity", "person_id_history")
    assert history.filter(pl.col("event") == "created").height == persons.height


def _second_export(root: Path, lake: UPath) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A third source holding a copy of five known patients (new ids, same demographics) and one
    stranger; returns the person links before and after."""
    before = read_table(lake, "identity", "person_link")
    known = [
        orjson.loads(line)
        for line in (root / "landing" / "ehr_a" / "Patient.000.ndjson").read_bytes().splitlines()[:5]
    ]
    copies = []
    for i, patient in enumerate(known):
        patient = {
            **patient,
            "id": f"copy-{i}",
            "identifier": [i for i in patient.get("identifier", []) if "ssn" in i.get("system", "")],
        }
        copies.append(patient)
    stranger = {
        "resourceType": "Patient",
        "id": "stranger",
        "name": [{"family": "Quillfeather", "given": ["Odalys"]}],
        "gender": "female",
        "birthDate": "1901-02-03",
    }
    folder = root / "landing" / "ehr_c"
    folder.mkdir()
    (folder / "Patient.000.ndjson").write_bytes(
        b"\n".join(orjson.dumps(p) for p in [*copies, stranger]) + b"\n"
    )
    _build(root / "landing", lake)
    build_identity(lake, now=datetime(2026, 7, 1, tzinfo=UTC))
    return before, read_table(lake, "identity", "person_link")


def test_a_new_export_keeps_every_person_id_and_attaches_known_people(identity) -> None:
    root, lake = identity
    before, after = _second_export(root, lake)
    key = ["source", "source_patient_id"]
    kept = before.join(after, on=key, suffix="_after")
    assert kept.height == before.height
    assert (kept["person_id"] == kept["person_id_after"]).all()
    copies = after.filter(pl.col("source") == "ehr_c")
    originals = after.filter(pl.col("source") == "ehr_a")
    attached = copies.filter(pl.col("source_patient_id").str.starts_with("copy-"))
    assert attached["person_id"].is_in(originals["person_id"].implode()).all()
    stranger = copies.filter(pl.col("source_patient_id") == "stranger")["person_id"].item()
    assert stranger not in set(before["person_id"])
    history = read_table(lake, "identity", "person_id_history")
    new_events = history.filter(pl.col("recorded_at") == datetime(2026, 7, 1, tzinfo=UTC))
    assert new_events.select("event", "person_id").rows() == [("created", stranger)]


def test_survivorship_prefers_the_trusted_source_then_the_newest_value() -> None:
    patients = pl.DataFrame(
        {
            "source": ["ehr_a", "ehr_b", "ehr_b"],
            "id": ["a1", "b1", "b2"],
            "last_updated": ["2026-01-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"],
            "given": ["Ann", "Annie", "Anna"],
            "family": [None, "Ng", "Ngo"],
            "birth_date": ["1970-01-02", "1970-01-02", "1970-02-01"],
            "gender": ["female"] * 3,
            "deceased_boolean": [None, None, None],
            "deceased_date_time": [None, None, None],
            "language": [None, "es", None],
            "marital_status": [None] * 3,
            "address_line": [None] * 3,
            "address_city": [None] * 3,
            "address_state": [None] * 3,
            "address_postal_code": [None] * 3,
        },
        schema_overrides={"deceased_boolean": pl.Boolean, "deceased_date_time": pl.String},
    )
    telecom = pl.DataFrame(
        {
            "source": ["ehr_b"],
            "patient_id": ["b2"],
            "system": ["email"],
            "value": ["x@example.org"],
            "use": ["home"],
            "rank": [1],
        }
    )
    links = pl.DataFrame(
        {
            "source": ["ehr_a", "ehr_b", "ehr_b"],
            "source_patient_id": ["a1", "b1", "b2"],
            "person_id": ["P"] * 3,
        }
    )
    golden = choose_fields(patients, telecom, links, ("ehr_a", "ehr_b")).row(0, named=True)
    assert (golden["given"], golden["given_source"]) == ("Ann", "ehr_a")  # the trusted source wins
    assert (golden["family"], golden["family_source"]) == ("Ngo", "ehr_b")  # A has none: B's newest
    assert golden["language"] == "es" and golden["email"] == "x@example.org"
    assert golden["source_records"] == ["ehr_a|a1", "ehr_b|b1", "ehr_b|b2"]


def test_identity_asset_materializes_with_blocking_contracts(identity) -> None:
    import dagster as dg

    from assets.identity.assets import identity_tables
    from assets.resources import LakeResource

    root, lake = identity
    resource = LakeResource(landing=str(root / "landing"), lake=str(lake), buckets=BUCKETS)
    result = dg.materialize(
        [identity_tables], resources={"lake": resource}, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 and all(c.passed for c in checks)
    metadata = repr([m.materialization.metadata for m in result.get_asset_materialization_events()])
    assert "rule_probabilistic" in metadata and "@example" not in metadata  # counts, no contact data
