"""Outreach lists: one partition per campaign (data_contracts/campaigns), each run exported immutably under
`<exports>/<campaign>/<run_id>/`, audited, optionally loaded into PostgreSQL, then re-read and checked."""

import dagster as dg
import polars as pl

from assets.resources import LakeResource, OutreachDatabaseResource
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
OUTREACH_JOB = "outreach_job"
_ALL = dg.AllPartitionMapping()

campaign_partitions = dg.StaticPartitionsDefinition([c.id for c in shipped_campaigns()])
"""One partition per campaign file, in priority order (run them in this order on a day)."""


@dg.asset(
    key=OUTREACH_LIST_KEY,
    group_name=OUTREACH_GROUP,
    partitions_def=campaign_partitions,
    deps=[
        *[
            dg.AssetDep(["gold", table], partition_mapping=_ALL)
            for table in (SEGMENT_MEMBERSHIP, PATIENT_360, CARE_GAPS, TRIGGER_EVENTS)
        ],
        dg.AssetDep(["silver", "patient_identifier"], partition_mapping=_ALL),
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
    """The campaign's list for the as-of day: selected from its segments' current members, suppressions
    with reasons, priority order; exported (CSV, Parquet, FHIR Group, delta, manifest), audited and,
    when a database is configured, loaded into `outreach_list`."""
    settings = lake.settings()
    campaigns = shipped_campaigns()
    campaign = next(c for c in campaigns if c.id == context.partition_key)
    as_of = resolve_as_of(settings.as_of, settings.lake)
    outcome = run_campaign(
        settings.lake,
        settings.exports,
        campaign,
        campaigns,
        as_of,
        run_by=run_by(context.run.run_id),
        dsn=outreach_database.dsn or None,
    )
    if outcome.export is None:
        yield dg.MaterializeResult(metadata={"as_of": str(as_of), "active": False})
        for check in (EXPORT_VERIFIED_CHECK, LIST_RULES_CHECK):
            yield dg.AssetCheckResult(check_name=check, passed=True, metadata={"active": False})
        return
    result = outcome.export
    yield dg.MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "run_id": result.run.run_id,
            "written": result.written,
            "folder": dg.MetadataValue.path(str(result.run.folder)),
            **{
                f"rows_{name.split('.')[0]}": n for name, n in result.counts.items() if name != "list.parquet"
            },
            **{f"suppressed_{reason}": n for reason, n in outcome.suppressed_by_reason.items()},
            **({f"database_{k}": v for k, v in outcome.database.items()} if outcome.database else {}),
        }
    )
    problems = verify_export(result.run)
    yield dg.AssetCheckResult(
        check_name=EXPORT_VERIFIED_CHECK,
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none"},
    )
    listed_ids = result.run.read_list()["person_id"]
    people = (
        scan_table(settings.lake, "gold", PATIENT_360)
        .select("person_id", "deceased", *[f"consent_{c}" for c in ("phone", "sms", "email", "mail")])
        .filter(pl.col("person_id").is_in(listed_ids.implode()))
        .collect()
    )
    people = apply_opt_outs(people, opt_outs(settings.lake, listed_ids))
    history = contact_history(settings.exports, campaigns, campaign, result.run.as_of)
    breaches = check_list_rules(result.run, campaign, people, history)
    yield dg.AssetCheckResult(
        check_name=LIST_RULES_CHECK, passed=not any(breaches.values()), metadata=breaches
    )


outreach_job = dg.define_asset_job(
    OUTREACH_JOB,
    selection=dg.AssetSelection.assets(OUTREACH_LIST_KEY),
    description="Gold segments → one campaign's outreach list, exported and checked.",
)


def campaign_order() -> list[str]:
    """Campaign partition keys in the order a day's runs should go (priority, then id)."""
    return campaign_partitions.get_partition_keys()
