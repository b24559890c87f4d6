"""Dagster assets, checks, sensors and schedules: one folder per layer, thin wrappers over `pipelines/`."""
