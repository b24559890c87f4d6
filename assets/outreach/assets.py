"""Outreach lists: one partition per campaign (data_contracts/campaigns), each run exported immutably under
`<exports>/<campaign>/<run_id>/`, audited, optionally loaded into PostgreSQL, then re-read and checked."""

import dagster as dg
import polars as pl

from assets.resources import LakeResource, OutreachDatabaseResource
from assets.steps import CHANGED, plan_whole_step, unchanged_results
from pipelines.gold.as_of import resolve_as_of
from pipelines.gold.patient_360 import PATIENT_360
from pipelines.identity.build import IDENTITY, PERSON_LINK
from pipelines.lake import scan_table
from pipelines.measures.build import CARE_GAPS
from pipelines.outreach.audit import run_by
from pipelines.outreach.exports import contact_history
from pipelines.outreach.inputs import apply_opt_outs, opt_outs
from pipelines.outreach.responses import COMMUNICATION_OPT_OUT, INVALID_CONTACT_POINT
from pipelines.outreach.run import run_campaign, shipped_campaigns
from pipelines.outreach.verify import check_list_rules, verify_export
from pipelines.segments.build import SEGMENT_MEMBERSHIP
from pipelines.segments.triggers import TRIGGER_EVENTS

OUTREACH_GROUP = "outreach"
OUTREACH_LIST_KEY = dg.AssetKey(["exports", "outreach_list"])
EXPORT_VERIFIED_CHECK = "export_matches_manifest"
LIST_RULES_CHECK = "no_deceased_opted_out_or_over_cap"


@dg.asset(
    key=OUTREACH_LIST_KEY,
    group_name=OUTREACH_GROUP,
    deps=[
        *[
            dg.AssetDep(["gold", table])
            for table in (SEGMENT_MEMBERSHIP, PATIENT_360, CARE_GAPS, TRIGGER_EVENTS)
        ],
        dg.AssetDep(["silver", "patient_identifier"]),
        dg.AssetDep([IDENTITY, PERSON_LINK]),
        # answers from outreach systems: opt-outs and bounced contact points steer the selection
        dg.AssetDep(["gold", COMMUNICATION_OPT_OUT]),
        dg.AssetDep(["gold", INVALID_CONTACT_POINT]),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            EXPORT_VERIFIED_CHECK,
            asset=OUTREACH_LIST_KEY,
            blocking=True,
            description="Every file of the run re-read: sha256 and row count as in manifest.json.",
        ),
        dg.AssetCheckSpec(
            LIST_RULES_CHECK,
            asset=OUTREACH_LIST_KEY,
            blocking=True,
            description="Nobody listed is deceased, held out, reached on a channel they opted out of, or "
            "over the campaign's or the weekly contact cap.",
        ),
    ],
)
def outreach_list(
    context: dg.AssetExecutionContext, lake: LakeResource, outreach_database: OutreachDatabaseResource
):
    """Every active campaign's list for the as-of day, one after another in priority order (earlier lists
    count in later caps): selected from its segments' current members, suppressions with reasons,
    priority order; exported (CSV, Parquet, FHIR Group, delta, manifest), audited and, when a database is
    configured, loaded into `outreach_list`. The checks re-read every run's export."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    campaigns = shipped_campaigns()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    metadata: dict[str, object] = {"as_of": str(as_of), CHANGED: True}
    problems: dict[str, str] = {}
    breaches: dict[str, int] = {}
    for campaign in campaigns:  # shipped in priority order
        outcome = run_campaign(
            settings.lake,
            settings.exports,
            campaign,
            campaigns,
            as_of,
            run_by=run_by(context.run.run_id),
            dsn=outreach_database.dsn or None,
        )
        name = campaign.id
        if outcome.export is None:
            metadata[f"{name}_active"] = False
            continue
        result = outcome.export
        metadata |= {
            f"{name}_run_id": result.run.run_id,
            f"{name}_written": result.written,
            f"{name}_folder": dg.MetadataValue.path(str(result.run.folder)),
            **{
                f"{name}_rows_{file.split('.')[0]}": n
                for file, n in result.counts.items()
                if file != "list.parquet"
            },
            **{f"{name}_suppressed_{reason}": n for reason, n in outcome.suppressed_by_reason.items()},
            **({f"{name}_database_{k}": v for k, v in outcome.database.items()} if outcome.database else {}),
        }
        found = verify_export(result.run)
        if found:
            problems[name] = "; ".join(found)
        for rule, count in _list_rule_breaches(settings, campaigns, campaign, result).items():
            if count:
                breaches[f"{name}_{rule}"] = count
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=EXPORT_VERIFIED_CHECK,
        passed=not problems,
        metadata={"problems": "; ".join(f"{c}: {p}" for c, p in problems.items()) or "none"},
    )
    yield dg.AssetCheckResult(
        check_name=LIST_RULES_CHECK, passed=not breaches, metadata=breaches or {"breaches": 0}
    )


def _list_rule_breaches(settings, campaigns, campaign, result) -> dict[str, int]:
    """Listed persons who are deceased, held out, reached on an opted-out channel or over a cap."""
    listed_ids = result.run.read_list()["person_id"]
    people = (
        scan_table(settings.lake, "gold", PATIENT_360)
        .select("person_id", "deceased", *[f"consent_{c}" for c in ("phone", "sms", "email", "mail")])
        .filter(pl.col("person_id").is_in(listed_ids.implode()))
        .collect()
    )
    people = apply_opt_outs(people, opt_outs(settings.lake, listed_ids.implode()))
    history = contact_history(settings.exports, campaigns, campaign, result.run.as_of)
    return check_list_rules(result.run, campaign, people, history)


def campaign_order() -> list[str]:
    """Campaign ids in the order a day's runs go (priority, then id)."""
    return [c.id for c in shipped_campaigns()]
