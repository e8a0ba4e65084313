"""Dagster layer: thin assets, checks, partitions, sensors, schedules and resources."""
