"""patient-insights pipeline machinery: readers, lake I/O, and the Dagster wiring in `definitions.py`."""
