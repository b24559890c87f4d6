"""Benchmarks (`make bench`): measured figures go to markdown reports under bench/reports/."""
