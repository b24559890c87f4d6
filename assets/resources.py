"""Dagster resources: where the lake lives, configured from `PATIENT_INSIGHTS_*` environment variables."""

from __future__ import annotations

import os

import dagster as dg
from upath import UPath

from pipelines.config import (
    DEFAULT_EXPORTS,
    DEFAULT_LAKE,
    DEFAULT_LANDING,
    Settings,
    parse_as_of,
)
from pipelines.deid.rules import SALT_ENV
from pipelines.layout import required_buckets
from pipelines.outreach.database import OUTREACH_DSN_ENV


class LakeResource(dg.ConfigurableResource):
    """Locations of landing, lake and exports (local paths or s3:// / gs:// urls), the bucket count of a
    new lake (0: from the data's volume; an existing lake keeps its own) and the as-of day."""

    landing: str = DEFAULT_LANDING
    lake: str = DEFAULT_LAKE
    exports: str = DEFAULT_EXPORTS
    buckets: int = 0
    as_of: str = ""  # YYYY-MM-DD; empty: the data's own (pipelines.gold.as_of)

    def settings(self) -> Settings:
        """The same locations as a plain `Settings` for the pure pipeline functions."""
        return Settings(
            UPath(self.landing),
            UPath(self.lake),
            UPath(self.exports),
            self.buckets or None,
            parse_as_of(self.as_of),
        )

    def buckets_of_lake(self) -> int:
        """The lake's bucket count, for the steps after bronze (which decides it)."""
        return required_buckets(UPath(self.lake))


def _env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """An `EnvVar` when the variable is set (shown as such in the UI), else the documented default."""
    return dg.EnvVar(name) if name in os.environ else default


def lake_resource_from_env() -> LakeResource:
    """The lake resource of the code location, read from the environment."""
    return LakeResource(
        landing=_env_or_default("PATIENT_INSIGHTS_LANDING", DEFAULT_LANDING),
        lake=_env_or_default("PATIENT_INSIGHTS_LAKE", DEFAULT_LAKE),
        exports=_env_or_default("PATIENT_INSIGHTS_EXPORTS", DEFAULT_EXPORTS),
        buckets=Settings.from_env().buckets or 0,
        as_of=_env_or_default("PATIENT_INSIGHTS_AS_OF", ""),
    )


def lake_resource_for(settings: Settings) -> LakeResource:
    """A lake resource for explicit locations (command line, tests)."""
    return LakeResource(
        landing=str(settings.landing),
        lake=str(settings.lake),
        exports=str(settings.exports),
        buckets=settings.buckets or 0,
        as_of=settings.as_of.isoformat() if settings.as_of else "",
    )


class OutreachDatabaseResource(dg.ConfigurableResource):
    """The PostgreSQL database outreach lists are also loaded into (`outreach_list`); an empty connection
    string disables the sink."""

    dsn: str = ""


def outreach_database_from_env() -> OutreachDatabaseResource:
    """The sink from `PATIENT_INSIGHTS_OUTREACH_DSN` (shown as an environment variable in the UI)."""
    return OutreachDatabaseResource(dsn=_env_or_default(OUTREACH_DSN_ENV, ""))


class DeidResource(dg.ConfigurableResource):
    """The secret salt of the de-identified export's pseudonyms. Set it only as the environment variable
    `PATIENT_INSIGHTS_DEID_SALT` (`deid_resource_from_env`): run configuration and the UI then show the
    variable's name, never its value. Empty: the export refuses to run."""

    salt: str = ""


def deid_resource_from_env() -> DeidResource:
    """The salt from `PATIENT_INSIGHTS_DEID_SALT` as an `EnvVar` (read when a run needs it; empty when
    unset)."""
    return DeidResource(salt=_env_or_default(SALT_ENV, ""))
