"""Outreach: campaigns over segments, channel choice, suppression with reasons, priority, exports."""
