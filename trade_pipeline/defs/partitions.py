"""Partitions, as named constants in one module."""

import dagster as dg

PARTITION_START = "2024-08-01"

# One partition per UTC day; the symbol list lives in settings (one symbol per deployment
# by default), so backfills stay a plain date range in the UI.
DAILY = dg.DailyPartitionsDefinition(start_date=PARTITION_START, end_offset=1)
