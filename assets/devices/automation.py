"""Jobs of the device assets, for runs started by hand or by `run_pipeline` (the assets also rebuild
themselves through their eager automation conditions when upstream data changes)."""

import dagster as dg

from assets.devices.assets import DEVICE_GOLD_GROUP, DEVICE_GROUP

DEVICE_SILVER_JOB = "device_silver_job"
DEVICE_GOLD_JOB = "device_gold_job"

device_silver_job = dg.define_asset_job(
    DEVICE_SILVER_JOB,
    selection=dg.AssetSelection.groups(DEVICE_GROUP),
    description="Bronze device records and device Observations → silver device_reading, one bucket.",
)
device_gold_job = dg.define_asset_job(
    DEVICE_GOLD_JOB,
    selection=dg.AssetSelection.groups(DEVICE_GOLD_GROUP),
    description="Silver device readings → daily aggregates, adherence and alerts for one patient bucket.",
)
