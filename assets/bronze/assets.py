"""The bronze ingest asset: every new landing file read once, every record kept or quarantined."""

import dagster as dg

from assets.resources import LakeResource
from pipelines.bronze.ingest import ingest_landing
from pipelines.bronze.repair import repair_bronze
from pipelines.bronze.tables import (
    BRONZE,
    DEVICE_RECORDS,
    FEEDBACK_RECORDS,
    FHIR_RESOURCES,
    INGEST_LOG,
    OUTREACH_EVENTS,
    QUARANTINE,
)
from pipelines.layout import BucketCountChanged, resolve_buckets
from pipelines.locks import exclusive

BRONZE_GROUP = "bronze"
FHIR_RESOURCES_KEY = dg.AssetKey([BRONZE, FHIR_RESOURCES])
DEVICE_RECORDS_KEY = dg.AssetKey([BRONZE, DEVICE_RECORDS])
FEEDBACK_RECORDS_KEY = dg.AssetKey([BRONZE, FEEDBACK_RECORDS])
OUTREACH_EVENTS_KEY = dg.AssetKey([BRONZE, OUTREACH_EVENTS])
QUARANTINE_KEY = dg.AssetKey([BRONZE, QUARANTINE])
INGEST_LOG_KEY = dg.AssetKey([BRONZE, INGEST_LOG])

_DESCRIPTIONS = {
    FHIR_RESOURCES_KEY: "Every FHIR resource from Bulk NDJSON, Bundles and deleted[] files, raw JSON with "
    "type, id, version, lastUpdated, patient key; hive-partitioned by patient bucket.",
    DEVICE_RECORDS_KEY: "Every device data point (Open mHealth), vendor payload item (iHealth) and "
    "remote-monitoring enrolment row, raw; partitioned by bucket of the device user key.",
    FEEDBACK_RECORDS_KEY: "Every service-center conversation, raw; partitioned by patient bucket.",
    OUTREACH_EVENTS_KEY: "Every outreach outcome event a vendor delivered (sent, delivered, replied, "
    "opted-out, booked, ...), typed, reply text only in raw; partitioned by bucket of person_id, else "
    "source_identifier.",
    QUARANTINE_KEY: "Records that could not be used, with a reason code, a reason and the raw bytes.",
    INGEST_LOG_KEY: "One row per ingested landing file: content hash, counts in / bronze / quarantine, "
    "manifest transaction time and errors. Its part files commit each write batch.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(key, description=text, group_name=BRONZE_GROUP) for key, text in _DESCRIPTIONS.items()
    ],
    can_subset=False,
)
def bronze_ingest(context: dg.AssetExecutionContext, lake: LakeResource):
    """Read every landing file not ingested before into the bronze tables (idempotent, crash-safe)."""
    settings = lake.settings()
    with exclusive(settings.lake, "bronze_ingest"):  # two ingests at once would both take in a new file
        try:  # the lake's bucket count: decided here, once, from the data's volume or the setting
            buckets = resolve_buckets(settings.lake, settings.landing, settings.buckets)
        except BucketCountChanged as changed:
            raise dg.Failure(str(changed)) from None
        repair = repair_bronze(settings.lake)  # damaged batches are taken out and read again below
        report = ingest_landing(settings.landing, settings.lake, buckets)
    if repair.batches_removed:
        context.log.warning(
            f"{len(repair.damaged)} unreadable bronze part(s): {len(repair.batches_removed)} batch(es) "
            "removed and their landing files ingested again"
        )
    context.log.info(
        f"ingest run {report.run_id}: {report.files_ingested} files, {report.records_in} records in, "
        f"{report.rows[QUARANTINE]} quarantined, {report.files_skipped_duplicate} already ingested"
    )
    for source, reason in sorted(report.sources_refused.items()):
        context.log.warning(f"landing source {source} refused (nothing of it read): {reason}")
    counts = report.as_metadata()
    by_reason = {f"quarantined_{reason}": n for reason, n in sorted(report.quarantine_by_reason.items())}
    for key in _DESCRIPTIONS:
        table = key.path[-1]
        metadata = {"run_id": report.run_id, "rows": report.rows[table], "patient_buckets": buckets}
        if key == INGEST_LOG_KEY:
            metadata |= counts | {
                "bronze_parts_checked": repair.parts_checked,
                "bronze_batches_reingested": len(repair.batches_removed),
                # source names and reasons only (configuration errors, never record content)
                "refused_sources": dg.MetadataValue.json(dict(sorted(report.sources_refused.items()))),
            }
        if key == QUARANTINE_KEY:
            metadata |= by_reason
        if key in (FHIR_RESOURCES_KEY, DEVICE_RECORDS_KEY, FEEDBACK_RECORDS_KEY, OUTREACH_EVENTS_KEY):
            # bucket keys, not patient data: the silver sensor rebuilds only these partitions
            metadata["buckets_touched"] = ",".join(report.buckets_touched(table))
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
