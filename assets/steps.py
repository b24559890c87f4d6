"""What one step of a pipeline run rebuilds, and what it tells the steps after it.

A pipeline run is one Dagster run of `pipeline_job`: every asset is one step, and a step over per-patient
tables builds every bucket it needs inside that step (side by side in worker processes when there are
several). Which buckets it needs follows the run's mode (run tag `patient-insights/mode`):

- `full` (default): every bucket of every table.
- `incremental`: only what changed since the last successful run (`pipelines.incremental` has the rules):
  the buckets holding bronze rows that run had not processed, the buckets an upstream step of this run
  reported changed (its materialization's `buckets_changed`; for a step that reads every bucket of an
  upstream table, any change there means all of its own), and its own partitions that are no longer as
  that run left them (damaged, or rewritten by a killed run). When the lake has no such run, or its
  bucket count or as-of day differ, the run is full.

Each step's materialization carries `buckets_rebuilt` and `buckets_changed` (bucket keys, no patient data)
so that the next steps, the Dagster UI and the run summary see what happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from upath import UPath

from assets.resources import LakeResource
from pipelines import incremental as inc
from pipelines.bronze.tables import BRONZE
from pipelines.gold.as_of import resolve_as_of

MODE_TAG = "patient-insights/mode"
"""Run tag: `full` (rebuild everything) or `incremental` (only what changed since the last successful run)."""
RETRAIN_TAG = "patient-insights/retrain"
"""Run tag: `true` retrains the models whatever the retraining policy says."""
INCREMENTAL, FULL = "incremental", "full"
BUCKETS_REBUILT, BUCKETS_CHANGED, CHANGED = "buckets_rebuilt", "buckets_changed", "changed"
WHOLE = "whole"
"""Key of an unpartitioned table in `buckets_changed`."""

Table = tuple[str, str]


def table_of(key: dg.AssetKey) -> Table:
    """(layer, table) of an asset key."""
    return key.path[0], key.path[-1]


def wants_incremental(context: dg.AssetExecutionContext) -> bool:
    """Whether the run was launched as an incremental one."""
    return context.run.tags.get(MODE_TAG, FULL) == INCREMENTAL


def wants_retraining(context: dg.AssetExecutionContext) -> bool:
    """Whether the run asks for the models to be retrained."""
    return context.run.tags.get(RETRAIN_TAG, "").lower() == "true"


def changes_in_run(context: dg.AssetExecutionContext) -> inc.Changed:
    """Per table, the partitions the steps of this run so far reported changed (None: a whole table)."""
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    changed: inc.Changed = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None:
            continue
        metadata = materialization.metadata
        table = table_of(materialization.asset_key)
        text = getattr(metadata.get(BUCKETS_CHANGED), "value", None)
        if text is not None:
            keys = {None if k == WHOLE else k for k in str(text).split(",") if k}
            changed.setdefault(table, set()).update(keys)
        elif getattr(metadata.get(CHANGED), "value", True):  # a step that does not say: all of it changed
            changed.setdefault(table, set()).add(None)
    return changed


@dataclass
class StepPlan:
    """What a step rebuilds: `todo` of its partition `keys` ([None] for an unpartitioned step)."""

    lake: UPath
    outputs: list[Table]
    keys: list[str | None]
    todo: list[str | None]
    state: inc.LakeState | None  # the last successful run's, in an incremental run; None in a full run
    damaged: set[str | None] = field(default_factory=set)

    @property
    def incremental(self) -> bool:
        """Whether only what changed is rebuilt."""
        return self.state is not None

    def partitions(self, keys: Iterable[str | None]) -> list[inc.Partition]:
        """The (table, key) partitions of this step's outputs for `keys`."""
        return [(table, key) for table in self.outputs for key in keys]

    def changed(
        self, rebuilt: Sequence[str | None], outputs: Sequence[Table] | None = None
    ) -> list[str | None]:
        """Of the rebuilt partitions, those whose content is not what the last successful run left (all
        of them in a full run): what the steps after this one must follow."""
        if self.state is None:
            return list(rebuilt)
        tables = list(outputs) if outputs is not None else self.outputs
        partitions = [(table, key) for table in tables for key in rebuilt]
        differing = inc.differing(
            partitions, inc.Fingerprints(self.lake).snapshot(partitions), self.state.fingerprints
        )
        return sorted({key for _, key in differing}, key=lambda k: "" if k is None else k)

    def metadata(
        self, rebuilt: Sequence[str | None], outputs: Sequence[Table] | None = None
    ) -> dict[str, str | bool]:
        """Materialization metadata: the buckets rebuilt and changed (or whether the table changed)."""
        changed = self.changed(rebuilt, outputs)
        if self.keys == [None]:
            return {CHANGED: bool(changed), "mode": INCREMENTAL if self.incremental else FULL}
        return {
            BUCKETS_REBUILT: ",".join(k for k in rebuilt if k is not None),
            BUCKETS_CHANGED: ",".join(k for k in changed if k is not None),
            "mode": INCREMENTAL if self.incremental else FULL,
        }


def plan_step(
    context: dg.AssetExecutionContext,
    lake: UPath,
    outputs: Sequence[Table],
    keys: Sequence[str | None],
    as_of: date,
    buckets: int,
    same_bucket: Iterable[Table] = (),
    models: dict[str, str | None] | None = None,
) -> StepPlan:
    """The partitions a step over `outputs` rebuilds in this run.

    `same_bucket`: upstream tables whose bucket b feeds only this step's bucket b (bronze tables always
    do); any other upstream table feeds every bucket. `models`: the deployed model versions the step
    scores with, when it does (a different model than the last run's rebuilds everything)."""
    keys = list(keys)
    outputs = list(outputs)
    state = inc.read_state(lake) if wants_incremental(context) else None
    if state is not None and (
        state.buckets != buckets
        or state.as_of != inc.as_of_text(as_of)
        or (models is not None and any(state.models.get(k) != v for k, v in models.items()))
    ):
        state = None
    if state is None:
        return StepPlan(lake, outputs, keys, keys, None)
    aligned = set(same_bucket)
    upstream = [
        inc.Upstream(table, table[0] == BRONZE or table in aligned)
        for table in sorted({table_of(k) for k in context.assets_def.dependency_keys} - set(outputs))
    ]
    changes = changes_in_run(context)
    bronze = [u.table[1] for u in upstream if u.table[0] == BRONZE]
    if bronze:
        for table, touched in inc.unprocessed_buckets(lake, state.ingest_keys, bronze).items():
            changes[(BRONZE, table)] = set(touched)
    needed = set(inc.partitions_to_run(upstream, changes, keys))
    partitions = [(table, key) for table in outputs for key in keys]
    damaged = {
        key
        for _, key in inc.differing(
            partitions, inc.Fingerprints(lake).snapshot(partitions), state.fingerprints
        )
    }
    todo = [key for key in keys if key in needed or key in damaged]
    return StepPlan(lake, outputs, keys, todo, state, damaged)


def plan_whole_step(context: dg.AssetExecutionContext, lake: LakeResource) -> StepPlan:
    """The plan of a step over whole (unpartitioned) tables, its selected assets: rebuilt or not."""
    settings = lake.settings()
    outputs = [table_of(k) for k in context.selected_asset_keys]
    as_of = resolve_as_of(settings.as_of, settings.lake)
    return plan_step(context, settings.lake, outputs, [None], as_of, lake.buckets_of_lake())


def unchanged_results(
    context: dg.AssetExecutionContext,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """What a step yields when an incremental run finds nothing it reads changed: each of its tables as
    it was (not rebuilt), each check passed on the unchanged table."""
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={CHANGED: False, "mode": INCREMENTAL, "rebuilt": "no: nothing it reads changed"},
        )
    for check in sorted(
        context.selected_asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)
    ):
        yield dg.AssetCheckResult(
            asset_key=check.asset_key,
            check_name=check.name,
            passed=True,
            metadata={"checked": "unchanged table"},
        )
