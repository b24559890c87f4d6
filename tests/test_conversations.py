"""Silver conversation_turn: decoding, the latest copy wins, rejects with reasons, and the asset."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pipelines.feedback.conversations import TURN_SCHEMA, conversation_turns
from tests.test_identity import identity  # noqa: F401  (800 generated people through silver and identity)


def _transcript(conversation: str, *turns: tuple[int, str, str]) -> str:
    body = ",".join(
        f'{{"turn":{n},"speaker":"{who}","at":"2026-05-01T10:0{n}:00-04:00","text":"{text}"}}'
        for n, who, text in turns
    )
    return (
        f'{{"conversation_id":"{conversation}","patient_source":"ehr_a","patient_reference":"Patient/p1",'
        f'"channel":"chat","agent_id":"agent-1","department":"billing","started_at":"2026-05-01T10:00:00-04:00",'
        f'"ended_at":"2026-05-01T10:09:00-04:00","escalated_from_bot":false,"turns":[{body}]}}'
    )


def _records(*raw: tuple[str, str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": ["service_center"] * len(raw),
            "file": ["service_center/c.ndjson"] * len(raw),
            "line": list(range(1, len(raw) + 1)),
            "record_format": ["conversation"] * len(raw),
            "record_id": [r[0] for r in raw],
            "raw": [r[1] for r in raw],
            "ingested_at": [datetime(2026, 5, day, tzinfo=UTC) for _, _, day in raw],
        }
    )


def test_turns_are_decoded_with_their_conversation() -> None:
    turns, rejects = conversation_turns(
        _records(("c1", _transcript("c1", (1, "agent", "Hello"), (2, "Patient", "My bill is wrong")), 2))
    )
    assert rejects.is_empty()
    assert turns.columns == list(TURN_SCHEMA)
    assert turns.select("turn", "speaker", "text").rows() == [
        (1, "agent", "Hello"),
        (2, "patient", "My bill is wrong"),
    ]
    row = turns.row(1, named=True)
    assert (row["patient_id"], row["department"], row["at"]) == (
        "p1",
        "billing",
        datetime(2026, 5, 1, 14, 2, tzinfo=UTC),
    )


def test_the_latest_copy_of_a_conversation_wins_and_bad_ones_are_rejected_with_reasons() -> None:
    turns, rejects = conversation_turns(
        _records(
            ("c1", _transcript("c1", (1, "patient", "second copy")), 9),
            ("c1", _transcript("c1", (1, "patient", "first copy")), 3),
            ("c2", "{broken", 3),
            ("c3", '{"conversation_id":"c3","turns":[]}', 3),
            ("c4", '{"conversation_id":"c4","turns":"not a list"}', 3),
            ("c5", _transcript("c5", (1, "alien", "beep"), (2, "agent", "Hi")), 3),
        )
    )
    assert turns.select("conversation_id", "text").rows() == [("c1", "second copy"), ("c5", "Hi")]
    reasons = dict(zip(rejects["record_id"], rejects["reason_code"], strict=True))
    assert reasons == {
        "c2": "unreadable_transcript",
        "c3": "no_turns",
        "c4": "unreadable_transcript",
        "c5": "unknown_speaker",
    }
    assert rejects.filter(pl.col("record_id") == "c5")["turn"].to_list() == [1]


def test_the_asset_builds_every_generated_conversation(identity) -> None:  # noqa: F811
    import dagster as dg

    from assets.feedback.assets import conversation_turns as asset
    from assets.resources import LakeResource
    from pipelines.lake import read_table

    root, lake = identity
    resource = LakeResource(landing=str(root / "landing"), lake=str(lake), buckets=4)
    result = dg.materialize([asset], resources={"lake": resource}, instance=dg.DagsterInstance.ephemeral())
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    turns = read_table(lake, "silver", "conversation_turn")
    bronze = read_table(lake, "bronze", "feedback_records")
    assert turns["conversation_id"].n_unique() == bronze["record_id"].n_unique() > 50
    assert set(turns["speaker"]) == {"patient", "agent", "bot"}


def test_sentiment_assets_train_score_summarize_and_report(identity, tmp_path) -> None:  # noqa: F811
    import shutil

    import dagster as dg
    from upath import UPath

    from assets.feedback.assets import conversation_turns as turns_asset
    from assets.gold.assets import person_tables
    from assets.resources import LakeResource
    from assets.sentiment.assets import sentiment_model, sentiment_report, sentiment_reports
    from pipelines.lake import read_table

    root, source = identity
    lake = tmp_path / "lake"
    shutil.copytree(str(source), lake)
    resource = LakeResource(
        landing=str(root / "landing"),
        lake=str(lake),
        exports=str(tmp_path / "exports"),
        buckets=4,
        as_of="2026-06-30",
    )
    instance = dg.DagsterInstance.ephemeral()
    trained = dg.materialize([sentiment_model], resources={"lake": resource}, instance=instance)
    assert trained.success
    assert (
        trained.asset_materializations_for_node("models__sentiment")[0].metadata["status"].value == "deployed"
    )
    for asset in (turns_asset, person_tables):  # every bucket in one run each
        done = dg.materialize([asset], resources={"lake": resource}, instance=instance)
        assert done.success and all(c.passed for c in done.get_asset_check_evaluations())
    summary = dg.materialize(
        [sentiment_reports, sentiment_report], resources={"lake": resource}, instance=instance
    )
    assert summary.success and all(c.passed for c in summary.get_asset_check_evaluations())
    messages = read_table(UPath(lake), "gold", "sentiment_message")
    patients = messages.filter(pl.col("speaker") == "patient")
    assert patients["text_status"].is_not_null().all() and patients["label"].is_not_null().mean() > 0.9
    assert messages.filter(pl.col("speaker") == "agent")["label"].is_null().all()  # agents are context only
    view = read_table(UPath(lake), "gold", "patient_360")
    assert view["latest_sentiment"].is_not_null().sum() > 100
    assert list((tmp_path / "exports" / "sentiment_reports").glob("*/report.html"))
    # the landing folder is the generator's: the model learnt from generated texts and scores only those
    model = trained.asset_materializations_for_node("models__sentiment")[0].metadata
    assert model["provenance"].value == "generated"
    assert set(patients.drop_nulls("label")["model_version"]) == {model["version"].value}
    # the same lake fed from a landing folder the generator did not write: VADER scores its texts
    own = tmp_path / "own_landing"
    own.mkdir()
    real = LakeResource(
        landing=str(own), lake=str(lake), exports=str(tmp_path / "exports"), buckets=4, as_of="2026-06-30"
    )
    assert dg.materialize([person_tables], resources={"lake": real}, instance=instance).success
    rescored = read_table(UPath(lake), "gold", "sentiment_message").filter(pl.col("speaker") == "patient")
    assert set(rescored.drop_nulls("label")["model_version"]) == {"vader"}
    assert rescored["label"].is_not_null().mean() > 0.9
