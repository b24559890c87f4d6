"""The SQL on FHIR engine beyond the conformance suite: parsing, validation errors, semantics."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from pipelines.sof import ViewDefinitionError, run_view
from pipelines.sof.boundaries import high_boundary, low_boundary
from pipelines.sof.compiled import compile_singleton
from pipelines.sof.fhirpath import Binary, Call, Literal, Member, Path, parse
from pipelines.sof.frames import contexts_from_json

PATIENTS = [
    {
        "resourceType": "Patient",
        "id": "a",
        "name": [{"use": "official", "family": "Ng", "given": ["Ann", "Bo"]}, {"family": "Old"}],
        "telecom": [{"system": "phone", "value": "1"}],
    },
    {"resourceType": "Patient", "id": "b", "name": [{"family": "Ode"}]},
    {"resourceType": "Observation", "id": "o", "status": "final"},
]


def view(*columns: dict[str, object], **extra: object) -> dict[str, object]:
    return {"resource": "Patient", "select": [{"column": list(columns)}], **extra}


def test_parser_precedence_and_invocations() -> None:
    assert parse("a = 'x' and b") == Binary(
        "and", Binary("=", Member("a"), Literal("x", "string")), Member("b")
    )
    assert parse("name.where(use = 'official').first()") == Path(
        Path(Member("name"), Call("where", (Binary("=", Member("use"), Literal("official", "string")),))),
        Call("first", ()),
    )
    assert parse("1 + 2 * 3") == Binary(
        "+", Literal(1, "integer"), Binary("*", Literal(2, "integer"), Literal(3, "integer"))
    )


@pytest.mark.parametrize("expression", ["name.", "name.where(", "a ==", "'open", "name[0", "$index"])
def test_parser_rejects_broken_expressions(expression: str) -> None:
    with pytest.raises(ViewDefinitionError):
        parse(expression)


@pytest.mark.parametrize(
    "definition",
    [
        {"select": [{"column": [{"name": "id", "path": "id"}]}]},  # no resource
        {"resource": "Patient", "select": []},
        {"resource": "Patient", "select": [{"column": [{"name": "bad name", "path": "id"}]}]},
        {
            "resource": "Patient",
            "select": [{"column": [{"name": "id", "path": "id"}, {"name": "id", "path": "id"}]}],
        },
        {"resource": "Patient", "select": [{"forEach": "name", "forEachOrNull": "name", "column": []}]},
        {"resource": "Patient", "select": [{"column": [{"name": "x", "path": 5}]}]},
        {
            "resource": "Patient",
            "select": [
                {
                    "unionAll": [
                        {"column": [{"name": "a", "path": "id"}]},
                        {"column": [{"name": "b", "path": "id"}]},
                    ]
                }
            ],
        },
        {
            "resource": "Patient",
            "constant": [{"name": "c"}],
            "select": [{"column": [{"name": "a", "path": "%c"}]}],
        },
        {"resource": "Patient", "select": [{"column": [{"name": "a", "path": "%undefined"}]}]},
        {"resource": "Patient", "select": [{"column": [{"name": "a", "path": "name.frobnicate()"}]}]},
    ],
)
def test_invalid_views_raise_a_view_definition_error(definition: dict[str, object]) -> None:
    with pytest.raises(ViewDefinitionError):
        run_view(definition, PATIENTS)


def test_a_non_collection_column_with_several_values_is_an_error() -> None:
    with pytest.raises(ViewDefinitionError, match="several values"):
        run_view(view({"name": "family", "path": "name.family"}), PATIENTS)


def test_columns_rows_and_resource_filter() -> None:
    rows = run_view(
        view(
            {"name": "id", "path": "getResourceKey()"},
            {"name": "official", "path": "name.where(use = 'official').family"},
            {"name": "given", "path": "name.given", "collection": True},
            {"name": "phones", "path": "telecom.where(system = 'phone').count()"},
            {"name": "label", "path": "id & '-' & name.first().family"},
        ),
        PATIENTS,
    )
    assert rows == [
        {"id": "a", "official": "Ng", "given": ["Ann", "Bo"], "phones": 1, "label": "a-Ng"},
        {"id": "b", "official": None, "given": [], "phones": 0, "label": "b-Ode"},
    ]


def test_for_each_rows_and_where() -> None:
    definition = {
        "resource": "Patient",
        "where": [{"path": "name.exists()"}],
        "select": [
            {"column": [{"name": "id", "path": "id"}]},
            {
                "forEach": "name",
                "column": [{"name": "family", "path": "family"}, {"name": "i", "path": "%rowIndex"}],
            },
        ],
    }
    assert run_view(definition, PATIENTS) == [
        {"id": "a", "family": "Ng", "i": 0},
        {"id": "a", "family": "Old", "i": 1},
        {"id": "b", "family": "Ode", "i": 0},
    ]


def test_boundaries() -> None:
    assert low_boundary(1.0) == "0.95" and high_boundary(1.0) == "1.05"
    assert low_boundary(12, None) == "11.5"
    assert low_boundary("2020", "date") == "2020-01-01" and high_boundary("2020-02", "date") == "2020-02-29"
    assert high_boundary("2010-10-10T10:00", "dateTime") == "2010-10-10T10:00:59.999-12:00"
    assert low_boundary("12:34", "time") == "12:34:00.000"
    assert low_boundary("not a date", "date") is None and low_boundary(True) is None


def test_views_run_command_writes_parquet_and_counts_bad_lines(tmp_path) -> None:
    import orjson
    import polars as pl
    from typer.testing import CliRunner

    from pipelines.cli import app

    definition = view(
        {"name": "id", "path": "id", "type": "id"}, {"name": "gender", "path": "gender", "type": "code"}
    )
    (tmp_path / "v.json").write_bytes(orjson.dumps(definition))
    lines = [orjson.dumps({**p, "gender": "other"}) for p in PATIENTS] + [b"{broken"]
    (tmp_path / "in.ndjson").write_bytes(b"\n".join(lines))
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "c"}}]}
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle))
    args = ["views", "run", "--view", str(tmp_path / "v.json"), "--input", str(tmp_path / "in.ndjson")]
    args += ["--input", str(tmp_path / "b.json"), "--output", str(tmp_path / "out.parquet")]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert "invalid_json" in outcome.output
    written = pl.read_parquet(tmp_path / "out.parquet")
    assert written.sort("id").rows() == [("a", "other"), ("b", "other"), ("c", None)]
    bad = CliRunner().invoke(
        app,
        [
            "views",
            "run",
            "--view",
            str(tmp_path / "in.ndjson"),
            "--input",
            str(tmp_path / "b.json"),
            "--output",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert bad.exit_code == 2 and not (tmp_path / "x.parquet").exists()


def test_decoding_keeps_dates_as_text_even_when_they_first_appear_after_the_sample() -> None:
    import orjson
    import polars as pl

    from pipelines.sof.frames import SAMPLE_LINES, contexts_from_json

    plain = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(SAMPLE_LINES + 10)]
    plain[-1] = {**plain[-1], "birthDate": "2020-05-11", "meta": {"lastUpdated": "2020-05-11T10:00:00+02:00"}}
    plain[-2] = {**plain[-2], "extra": {"nested": [1, 2]}}
    raw = pl.Series([orjson.dumps(r).decode() for r in plain])
    contexts, decoder, _ = contexts_from_json(raw)
    assert decoder == "pyarrow"
    last = contexts["v"][-1]
    assert last["birthDate"] == "2020-05-11" and last["meta"]["lastUpdated"] == "2020-05-11T10:00:00+02:00"
    assert contexts["v"][-2]["extra"] == {"nested": [1, 2]}


def test_row_wise_columns_are_reported() -> None:
    from pipelines.sof.view import parse_view, row_wise_columns

    definition = {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "id"},
                    {"name": "low", "path": "value.ofType(Quantity).value.lowBoundary()"},
                ]
            },
            {
                "forEach": "component",
                "column": [{"name": "high", "path": "(value.ofType(Quantity).value).highBoundary() + 1"}],
            },
        ],
    }
    assert row_wise_columns(parse_view(definition)) == ["low", "high"]
    assert row_wise_columns(parse_view(view({"name": "id", "path": "id"}))) == []


TRICKY_OBSERVATIONS = [
    {
        "resourceType": "Observation",
        "id": "o1",
        "category": [{"text": "no coding"}, {"coding": [{"code": "vital-signs"}, {"code": "x"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "display": "no code"}, {"code": "8867-4"}]},
        "subject": {"reference": "Patient/p1/_history/2"},
        "effectivePeriod": {"start": "2026-01-01", "end": "2026-01-02"},
        "valueQuantity": {"value": 72, "unit": "/min"},
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "code": {"text": "no coding at all"},
        "subject": {"reference": "Group/g1"},
        "effectiveDateTime": "2026-02-01T10:00:00Z",
        "valueString": "text",
    },
    {"resourceType": "Observation", "id": "o3", "category": [], "code": {"coding": []}},
]
COMPILED_PATHS = [
    "getResourceKey()",
    "code.coding.first().code",
    "code.coding.first().system",
    "category.coding.first().code",
    "category.text.first()",
    "subject.getReferenceKey(Patient)",
    "subject.getReferenceKey()",
    "value.ofType(Quantity).value",
    "value.ofType(string)",
    "(effective.ofType(dateTime) | effective.ofType(Period).start).first()",
    "(category.coding.code | id).first()",
    "absent.element",
]


@pytest.mark.parametrize("path", COMPILED_PATHS)
def test_compiled_columns_agree_with_the_general_evaluator(path: str, monkeypatch) -> None:
    definition = {"resource": "Observation", "select": [{"column": [{"name": "c", "path": path}]}]}
    contexts, _, _ = contexts_from_json(
        pl.Series([orjson.dumps(r).decode() for r in TRICKY_OBSERVATIONS], dtype=pl.String)
    )
    assert compile_singleton(parse(path), contexts.schema["v"]) is not None, "path should take the fast path"
    fast = run_view(definition, TRICKY_OBSERVATIONS)
    monkeypatch.setattr("pipelines.sof.engine.compile_singleton", lambda *_: None)
    assert fast == run_view(definition, TRICKY_OBSERVATIONS)


def test_paths_the_fast_path_cannot_prove_single_take_the_general_path() -> None:
    contexts, _, _ = contexts_from_json(pl.Series([orjson.dumps(TRICKY_OBSERVATIONS[0]).decode()]))
    multiple = ("category.coding.code", "code.coding.where(code = 'x').code", "(id | status).first().lower()")
    for path in multiple:
        assert compile_singleton(parse(path), contexts.schema["v"]) is None


def test_a_resource_whose_element_has_another_shape_loses_only_that_element() -> None:
    """`item` given as one object (or an answer as an object, an array mixing objects and text) beside
    resources that give it as an array: neither decoder can read the batch; the element is set aside in
    the offending resources, counted by path, and every resource stays (issue 25)."""
    import orjson
    import polars as pl
    import pytest

    from pipelines.sof.frames import contexts_from_json

    def qr(rid: str, item: object) -> str:
        return orjson.dumps({"resourceType": "QuestionnaireResponse", "id": rid, "item": item}).decode()

    good = [{"linkId": "nps", "answer": [{"valueInteger": 9}]}]
    raw = pl.Series(
        [qr(f"q{n}", good) for n in range(3)]
        + [
            qr("one_object", {"linkId": "nps", "answer": [{"valueInteger": 9}]}),
            qr("answer_object", [{"linkId": "x", "answer": {"valueInteger": 1}}]),
            qr("mixed_items", [{"linkId": "a"}, "Zorblax"]),
        ]
    )
    with pytest.raises(pl.exceptions.ComputeError):
        raw.str.json_decode(infer_schema_length=None)  # the case this guards: no decoder reads it as is
    contexts, decoder, set_aside = contexts_from_json(raw)
    values = contexts["v"].to_list()
    assert [v["id"] for v in values] == ["q0", "q1", "q2", "one_object", "answer_object", "mixed_items"]
    assert all(v["item"] == good for v in values[:3])
    assert values[3]["item"] is None and values[5]["item"] is None
    assert values[4]["item"] == [{"linkId": "x", "answer": None}]
    assert set_aside == {"item": 2, "item[].answer": 1}
    assert decoder == "polars"


def test_the_shape_most_resources_give_an_element_stands_even_when_the_odd_one_comes_first() -> None:
    import orjson
    import polars as pl

    from pipelines.sof.frames import contexts_from_json

    def qr(rid: str, item: object) -> str:
        return orjson.dumps({"resourceType": "QuestionnaireResponse", "id": rid, "item": item}).decode()

    good = [{"linkId": "nps", "answer": [{"valueInteger": 9}]}]
    raw = pl.Series([qr("odd", {"linkId": "nps"})] + [qr(f"q{n}", good) for n in range(5)])
    contexts, _, set_aside = contexts_from_json(raw)
    items = [v["item"] for v in contexts["v"].to_list()]
    assert items == [None] + [good] * 5 and set_aside == {"item": 1}


def test_a_batch_that_cannot_be_repaired_fails_without_quoting_a_record() -> None:
    import orjson
    import polars as pl
    import pytest

    from pipelines.sof import frames

    def qr(rid: str, value: object) -> str:
        item = [{"linkId": "Zorblax", "answer": [{"valueInteger": value}]}]
        return orjson.dumps({"resourceType": "QuestionnaireResponse", "id": rid, "item": item}).decode()

    # a number most resources give as a number and one as text: that one value is set aside
    raw = pl.Series([qr(f"q{n}", 9) for n in range(4)] + [qr("text", "9")] + [qr("obj", {"x": 1})])
    _, _, set_aside = frames.contexts_from_json(raw)
    assert set_aside == {"item[].answer[].valueInteger": 2}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(frames, "MAX_SHAPE_REPAIRS", 0)
        with pytest.raises(ValueError) as refused:
            frames.contexts_from_json(raw)
    chained = refused.value.__cause__ or refused.value.__context__
    assert "Zorblax" not in str(refused.value) and (chained is None or "Zorblax" not in str(chained))


def test_repairing_a_batch_leaves_the_callers_texts_as_delivered() -> None:
    import orjson
    import polars as pl

    from pipelines.sof.frames import contexts_from_json

    texts = [orjson.dumps({"resourceType": "Q", "id": f"q{n}", "item": [{"a": 1}]}).decode() for n in (1, 2)]
    texts.append(orjson.dumps({"resourceType": "Q", "id": "odd", "item": {"a": 1}}).decode())
    raw = pl.Series(texts)
    contexts_from_json(raw)
    assert raw.to_list() == texts
