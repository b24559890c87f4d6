"""Gold: person-level tables for care managers and outreach (360 view, timeline, ...)."""
