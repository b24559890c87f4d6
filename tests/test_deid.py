"""The de-identified analytics export (HIPAA Safe Harbor): every rule on crafted frames, the scanner finding
planted identifiers and passing a clean table, and the Dagster asset on a generated lake, whose export
holds none of the generated people's names, birth dates, phones, e-mails, MRNs or ids."""

from __future__ import annotations

import hashlib
import hmac
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest
from typer.testing import CliRunner
from upath import UPath

from assets.deid import assets as deid_assets
from assets.deid.assets import NO_RESIDUAL_IDENTIFIERS, deidentified_tables
from assets.resources import DeidResource, lake_resource_for
from dashboards.testing import DEMO_AS_OF, DEMO_BUCKETS
from pipelines.cli import app
from pipelines.config import Settings
from pipelines.deid.export import DEIDENTIFIED, export_file, identifying_values, scan_export
from pipelines.deid.rules import (
    SALT_ENV,
    DeidError,
    PolicyError,
    Rule,
    TablePolicy,
    load_policy,
)
from pipelines.deid.scanner import IdentifyingValues, scan
from pipelines.deid.transform import deidentify, link_persons, require_salt
from pipelines.lake import parquet_files, read_parquet, scan_table

SALT = "test-salt-0123456789abcdef0123456789abcdef"
OTHER_SALT = "another-salt-fedcba9876543210fedcba98765432"
KEY = SALT.encode()
AS_OF = date(2026, 6, 30)


def policy(table: str = "people", **rules: Rule) -> TablePolicy:
    """A policy for a crafted table."""
    return TablePolicy(table, "gold", table, dict(rules))


# --- transform ------------------------------------------------------------------------------------------


def test_zip_codes_keep_three_digits_and_restricted_areas_become_000() -> None:
    frame = pl.DataFrame(
        {"zip": ["12693", "03601", "10212-1234", "203011234", "55601", "19478", "A1B 2C3", "8901", None]}
    )
    out = deidentify(frame, policy(zip=Rule.ZIP3), KEY, AS_OF)
    # 036, 102, 203 and 556 are on the HHS list of 3-digit areas with 20,000 people or fewer
    assert out["zip"].to_list() == ["126", "000", "000", "000", "000", "194", None, None, None]


def test_ages_over_89_become_90_plus_and_their_birth_years_are_removed() -> None:
    frame = pl.DataFrame(
        {
            "age": [89, 90, 95, 5, 89, None],
            "birth_date": ["1937-01-02", "1936-03-04", "1931-05-06", "2021-07-08", "1936-12-31", "1960"],
        },
        schema={"age": pl.Int32, "birth_date": pl.String},
    )
    out = deidentify(frame, policy(age=Rule.AGE_GROUP, birth_date=Rule.BIRTH_YEAR), KEY, AS_OF)
    assert out["age"].to_list() == ["89", "90+", "90+", "5", "89", None]
    # born in 1936: 89 on the as-of day but 90 later that year, so the year could tell an age over 89
    assert out["birth_date"].to_list() == [1937, None, None, 2021, None, 1960]
    fractional = deidentify(pl.DataFrame({"age": [89.9, 90.0, 12.5]}), policy(age=Rule.AGE_GROUP), KEY, AS_OF)
    assert fractional["age"].to_list() == ["89", "90+", "12"]


def test_dates_and_timestamps_become_years() -> None:
    frame = pl.DataFrame(
        {
            "day": [date(2025, 3, 14), None],
            "at": [datetime(2024, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)],
            "text": ["2019-07-04", "2018-02-03T10:00:00Z"],
        }
    )
    out = deidentify(frame, policy(day=Rule.YEAR, at=Rule.YEAR, text=Rule.YEAR), KEY, AS_OF)
    assert out.to_dict(as_series=False) == {"day": [2025, None], "at": [2024, 2026], "text": [2019, 2018]}
    assert all(dtype == pl.Int32 for dtype in out.schema.values())
    with pytest.raises(PolicyError, match="year needs a date"):
        deidentify(pl.DataFrame({"n": [1.5]}), policy(n=Rule.YEAR), KEY, AS_OF)


def test_pseudonyms_are_stable_with_one_salt_and_differ_with_another() -> None:
    visits = pl.DataFrame({"person_id": ["psn-1", "psn-2", "psn-1", None], "visits": [1, 2, 3, 4]})
    gaps = pl.DataFrame({"person_id": ["psn-2", "psn-1"]})
    rules = {"person_id": Rule.HASH, "visits": Rule.KEEP}
    first = deidentify(visits, policy(**rules), KEY, AS_OF)
    again = deidentify(gaps, policy("gaps", person_id=Rule.HASH), KEY, AS_OF)
    other = deidentify(visits, policy(**rules), require_salt(OTHER_SALT), AS_OF)
    expected = hmac.new(KEY, b"psn-1", hashlib.sha256).hexdigest()[:32]
    by_visit = dict(zip(first["visits"], first["person_id"], strict=True))
    assert by_visit[1] == by_visit[3] == expected  # the same id, the same pseudonym
    assert by_visit[4] is None
    assert set(again["person_id"]) == {by_visit[1], by_visit[2]}  # joins across tables still work
    other_by_visit = dict(zip(other["visits"], other["person_id"], strict=True))
    assert other_by_visit[1] != by_visit[1] and other_by_visit[2] != by_visit[2]
    assert first["person_id"].drop_nulls().str.contains(r"^[0-9a-f]{32}$").all()
    assert first["person_id"].drop_nulls().to_list() == sorted(
        first["person_id"].drop_nulls()
    )  # not source order


def test_keep_drop_and_link() -> None:
    frame = pl.DataFrame(
        {
            "patient_source": ["ehr_a", "ehr_b"],
            "patient_id": ["p1", "p9"],
            "given": ["Ann", "Bo"],
            "n": [1, 2],
        }
    )
    links = pl.DataFrame({"source": ["ehr_a"], "source_patient_id": ["p1"], "person_id": ["psn-1"]})
    linked = link_persons(frame, links)
    assert linked["person_id"].to_list() == ["psn-1", None]  # an unlinked patient has no person
    rules = {"patient_source": Rule.CODE, "patient_id": Rule.DROP, "given": Rule.DROP, "n": Rule.KEEP}
    out = deidentify(linked, policy(**rules, person_id=Rule.HASH), KEY, AS_OF)
    assert out.columns == ["patient_source", "n", "person_id"]
    assert out.filter(pl.col("n") == 2)["person_id"].item() is None


def test_a_column_without_a_rule_stops_the_export() -> None:
    frame = pl.DataFrame({"person_id": ["psn-1"], "nickname": ["Bobby Tables"]})
    with pytest.raises(PolicyError, match="nickname") as raised:
        deidentify(frame, policy(person_id=Rule.HASH), KEY, AS_OF)
    assert "Bobby" not in str(raised.value)  # the column's name, never its values


def test_the_salt_is_required_and_never_shown() -> None:
    for missing in (None, "", "   "):
        with pytest.raises(DeidError, match=SALT_ENV):
            require_salt(missing)
    with pytest.raises(DeidError, match="shorter") as raised:
        require_salt("tiny-secret-value")
    assert "tiny-secret-value" not in str(raised.value)
    assert require_salt(SALT) == KEY


def test_the_policy_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("tables:\n  people:\n    from: gold/people\n    columns: {given: blur}\n")
    with pytest.raises(PolicyError, match=r"people\.given: unknown rule 'blur'"):
        load_policy(bad)
    bad.write_text(
        "tables:\n  people:\n    from: gold/people\n    link_persons: true\n    columns: {n: keep}\n"
    )
    with pytest.raises(PolicyError, match="links persons"):
        load_policy(bad)
    shipped = load_policy()
    assert {
        "patient_360",
        "care_gaps",
        "segment_membership",
        "risk_scores",
        "timeline",
        "trigger_events",
    } <= set(shipped)
    assert {"device_daily", "device_adherence", "device_alerts"} <= set(shipped)


# --- scanner --------------------------------------------------------------------------------------------

NOTES = policy("notes", person_id=Rule.HASH, comment=Rule.KEEP, code=Rule.CODE, year=Rule.YEAR, zip=Rule.ZIP3)


def clean_notes() -> pl.DataFrame:
    """A de-identified table as the transform writes it."""
    frame = pl.DataFrame(
        {
            "person_id": ["psn-1", "psn-2", "psn-3"],
            "comment": ["called about a bill", "prefers mornings", None],
            "code": ["24623002", "2.16.840.1.113883", "10582"],  # SNOMED CT, an OID, RxNorm: not identifiers
            "year": [date(2025, 1, 2), date(2024, 3, 4), None],
            "zip": ["12693", "03601", None],
        }
    )
    return deidentify(frame, NOTES, KEY, AS_OF)


def findings_of(
    frame: pl.DataFrame, identifying: IdentifyingValues | None = None
) -> dict[tuple[str, str], int]:
    return {(f.column, f.check): f.count for f in scan(frame, NOTES, identifying, AS_OF)}


def test_the_scanner_passes_a_clean_table() -> None:
    identifying = IdentifyingValues.from_columns(
        [pl.Series(["Grace", "Doyle", "(860) 555-0691", "30746504"])]
    )
    assert findings_of(clean_notes(), identifying) == {}


def test_the_scanner_finds_planted_identifiers() -> None:
    planted = clean_notes().with_columns(
        pl.Series(
            "comment",
            [
                "seen on 2025-03-14 at the clinic",  # a full date
                "call back at (860) 555-0691 after 5",  # a phone in a comment
                "Grace",  # a name, as the whole value
            ],
        )
    )
    identifying = IdentifyingValues.from_columns(
        [pl.Series(["Grace", "Doyle", "Grace Doyle", "(860) 555-0691", "30746504"])]
    )
    found = findings_of(planted, identifying)
    assert found == {
        ("comment", "full_date"): 1,
        ("comment", "phone"): 1,
        ("comment", "identifying_value"): 1,
        ("comment", "identifying_value_in_text"): 1,  # the phone, a known contact
    }
    for finding in scan(planted, NOTES, identifying, AS_OF):
        assert "Grace" not in repr(finding) and "555" not in repr(finding)  # counts, never values


def test_the_scanner_reads_every_kind_of_identifier() -> None:
    texts = {
        "email": "write to ann.lee@example.org",
        "ssn": "ssn 923-69-1805",
        "zip5": "lives in 12693",
        "record_number": "MRN 86302059",
        "url": "see https://portal.example.org/me",
        "ip": "from 192.168.10.7",
    }
    frame = pl.DataFrame({"comment": list(texts.values())})
    found = {(f.column, f.check) for f in scan(frame, NOTES)}
    assert {("comment", check) for check in texts} <= found
    full_name = IdentifyingValues.from_columns([pl.Series(["Grace Doyle"])])
    in_text = pl.DataFrame({"comment": ["spoke with grace doyle today"]})
    assert [f.check for f in scan(in_text, NOTES, full_name)] == ["identifying_value_in_text"]


def test_the_scanner_checks_columns_and_formats() -> None:
    frame = clean_notes().with_columns(
        pl.Series("person_id", ["psn-1", "0" * 32, None]),  # a raw id left in a pseudonym column
        pl.Series("zip", ["036", "12693", None]),  # a restricted area and a full ZIP
        pl.Series("year", [date(2025, 1, 2), None, None]),  # a date, not a year
        pl.Series("given", ["Ann", "Bo", "Cy"]),  # a column the policy does not name
    )
    found = findings_of(frame)
    assert found[("person_id", "not_hash")] == 1
    assert found[("zip", "restricted_zip3")] == 1 and found[("zip", "not_zip3")] == 1
    assert found[("year", "full_date")] == 1
    assert found[("given", "unknown_column")] == 1
    dropped = scan(pl.DataFrame({"secret": ["x"]}), policy("notes", secret=Rule.DROP))
    assert [f.check for f in dropped] == ["dropped_column_present"]
    codes = pl.DataFrame({"code": ["86302059"], "comment": ["86302059"]})
    assert {(f.column, f.check) for f in scan(codes, NOTES)} == {("comment", "record_number")}


# --- the asset on a generated lake ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def export_lake(
    dashboard_lake: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A copy of the generated lake (the dashboard tests share the original) with the export materialized."""
    source, _ = dashboard_lake
    lake = tmp_path_factory.mktemp("deid") / "lake"
    shutil.copytree(source, lake)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SALT_ENV, SALT)
        result = materialize(lake)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert {e.asset_key.path[-1] for e in checks} == set(load_policy())
    assert all(e.check_name == NO_RESIDUAL_IDENTIFIERS and e.passed for e in checks)
    yield lake


def materialize(lake: Path, deid: DeidResource | None = None) -> dg.ExecuteInProcessResult:
    """The export asset materialized on `lake` (the salt from the environment unless `deid` is given)."""
    settings = Settings(
        UPath(lake.parent / "landing"), UPath(lake), UPath(lake.parent / "exports"), DEMO_BUCKETS, DEMO_AS_OF
    )
    return dg.materialize(
        [deidentified_tables],
        resources={
            "lake": lake_resource_for(settings),
            "deid": deid or DeidResource(salt=dg.EnvVar(SALT_ENV)),
        },
        raise_on_error=False,
    )


def test_the_asset_exports_every_table_and_its_check_passes(export_lake: Path) -> None:
    policies = load_policy()
    for name in policies:
        assert export_file(UPath(export_lake), name).exists(), name
    exported = {p.parent.name for p in parquet_files(UPath(export_lake) / DEIDENTIFIED)}
    assert exported == set(policies)
    persons = read_parquet(export_file(UPath(export_lake), "patient_360"))
    source = scan_table(UPath(export_lake), "gold", "patient_360").collect()
    assert persons.height == source.height and persons["person_id"].n_unique() == source.height
    gaps = read_parquet(export_file(UPath(export_lake), "care_gaps"))
    assert set(gaps["person_id"]) <= set(persons["person_id"])  # pseudonyms join across tables
    devices = read_parquet(export_file(UPath(export_lake), "device_daily"))
    assert devices.height and set(devices["person_id"].drop_nulls()) <= set(persons["person_id"])
    assert not any(dtype.is_temporal() for dtype in persons.schema.values())
    # the scanner over the whole published export, with the lake's identifiable values, finds nothing
    assert scan_export(UPath(export_lake), as_of=DEMO_AS_OF) == []


def test_the_policy_names_exactly_the_columns_of_the_lake(export_lake: Path) -> None:
    for name, table in load_policy().items():
        columns = set(
            scan_table(UPath(export_lake), table.layer, table.source_table).collect_schema().names()
        )
        columns.discard("bucket")  # the hive partition, not a column of the files
        if table.link_persons:
            columns.add("person_id")
        assert set(table.columns) == columns, name  # no column unruled, no rule for a column long gone


def test_the_export_holds_none_of_the_generated_identifiers(
    export_lake: Path, dashboard_lake: tuple[Path, Path]
) -> None:
    names, specific = generated_identifiers(dashboard_lake[0].parent / "landing")
    assert len(names) > 100 and len(specific) > 500
    exact = pl.Series(sorted(names | specific))
    for path in parquet_files(UPath(export_lake) / DEIDENTIFIED):
        frame = read_parquet(path)
        for column, dtype in frame.schema.items():
            values = frame.get_column(column)
            if isinstance(dtype, pl.List):
                values = values.explode()
            if values.dtype != pl.String:
                continue
            texts = values.drop_nulls().unique().str.to_lowercase()
            assert not texts.is_in(exact.implode()).any(), f"{path.parent.name}.{column}"
            if not texts.str.contains(r"^[0-9a-f]{32}$").all():  # pseudonyms are checked whole, above
                hits = texts.str.contains_any(sorted(specific), ascii_case_insensitive=True)
                assert not hits.any(), f"{path.parent.name}.{column}"


def generated_identifiers(landing: Path) -> tuple[set[str], set[str]]:
    """(names, specific values) of every Patient in the generated landing folder, read from the FHIR files
    themselves: given and family names; full names, birth dates, phones, e-mails, MRNs, SSNs, street lines,
    patient ids (lower case)."""
    names: set[str] = set()
    specific: set[str] = set()
    for patient in _patients(landing):
        specific.update(str(v).lower() for v in (patient.get("id"), patient.get("birthDate")) if v)
        people = [*patient.get("name", []), *[c.get("name", {}) for c in patient.get("contact", [])]]
        for name in people:
            given, family = name.get("given", []), name.get("family")
            names.update(n.lower() for n in [*given, family] if n and len(n) >= 3)
            if given and family:
                specific.add(f"{given[0]} {family}".lower())
        telecoms = [
            *patient.get("telecom", []),
            *[t for c in patient.get("contact", []) for t in c.get("telecom", [])],
        ]
        specific.update(t["value"].lower() for t in telecoms if t.get("value"))
        specific.update(i["value"].lower() for i in patient.get("identifier", []) if i.get("value"))
        specific.update(line.lower() for a in patient.get("address", []) for line in a.get("line", [])[:1])
    return names, specific


def _patients(landing: Path) -> Iterator[dict]:
    for path in sorted(landing.rglob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("resourceType") == "Patient":
                yield record
    for path in sorted(landing.rglob("*.json")):
        try:
            bundle = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        for entry in bundle.get("entry", []) if isinstance(bundle, dict) else []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
                yield resource


def test_a_leaky_policy_publishes_nothing(export_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = export_file(UPath(export_lake), "patient_360").read_bytes()
    leaky = dict(deid_assets.POLICIES)
    leaky["patient_360"] = leaky["patient_360"].with_rule("family", Rule.KEEP)
    monkeypatch.setattr(deid_assets, "POLICIES", leaky)
    monkeypatch.setenv(SALT_ENV, SALT)
    result = materialize(export_lake)
    assert not result.success
    checks = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert not checks["patient_360"].passed and checks["care_gaps"].passed
    metadata = {k: v.value for k, v in checks["patient_360"].metadata.items()}
    assert metadata["family:identifying_value"] > 0
    family = scan_table(UPath(export_lake), "gold", "patient_360").select("family").collect()["family"]
    assert not any(str(v) in family.to_list() for v in metadata.values())  # counts, never a name
    assert export_file(UPath(export_lake), "patient_360").read_bytes() == before  # the old export stays


def test_no_salt_no_export(tmp_path: Path, export_lake: Path) -> None:
    result = materialize(export_lake, DeidResource(salt=""))
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and SALT_ENV in failure.to_string()
    runner = CliRunner()
    completed = runner.invoke(app, ["deidentify", "--lake", str(tmp_path)], env={SALT_ENV: ""})
    assert completed.exit_code == 2 and SALT_ENV in completed.output


def test_the_command_line_exports_and_scans(export_lake: Path) -> None:
    before = read_parquet(export_file(UPath(export_lake), "patient_360"))
    completed = CliRunner().invoke(
        app,
        ["deidentify", "--lake", str(export_lake)],
        env={SALT_ENV: OTHER_SALT, "PATIENT_INSIGHTS_AS_OF": DEMO_AS_OF.isoformat(), "DAGSTER_HOME": ""},
    )
    assert completed.exit_code == 0, completed.output
    assert "no_residual_identifiers passed" in completed.output.replace("\n", " ")
    # a new salt gives new pseudonyms: exports made with different salts cannot be joined
    persons = read_parquet(export_file(UPath(export_lake), "patient_360"))
    assert persons["person_id"].n_unique() == persons.height
    assert not set(persons["person_id"]) & set(before["person_id"])
    identifying = identifying_values(UPath(export_lake))
    assert len(identifying) > 1000
    assert scan_export(UPath(export_lake), identifying, DEMO_AS_OF) == []
