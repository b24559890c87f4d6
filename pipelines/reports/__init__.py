"""Rendered reports for people who do not open the dashboard (self-contained HTML under the exports)."""
