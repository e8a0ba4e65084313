"""Partitions, as named constants in one module."""

import dagster as dg

from trade_pipeline.settings import Settings

# The first day comes from the settings (TRADE_PIPELINE_PARTITIONS_START, or the home's
# settings.toml that `trade-pipeline demo` writes): where the data begins, so the UI does
# not list hundreds of days before it as missing partitions.
PARTITION_START = Settings.load().partitions_start

# One partition per UTC day; the symbol list lives in settings (one symbol per deployment
# by default), so backfills stay a plain date range in the UI. `end_offset=1` includes
# today's (incomplete) partition so live data can be materialized during the day.
DAILY = dg.DailyPartitionsDefinition(start_date=PARTITION_START, end_offset=1)
