"""Tags an asset carries to say which generic checks and freshness policy it gets.

The monitoring area applies its check factories to every asset the defs folder loads, by
these tags (never by the asset's name), so a new asset declares what it is where it is
defined:

- `CHECKS`: `lake_table` (a daily Parquet table with a schema contract: its own rows are read
  back), `raw_captures` (the raw capture folder of a day), `migration` (a warehouse phase;
  `MIGRATION` holds its number), `model` (a registered model version); absent: the generic
  row-count and schema checks from the materialization's metadata.
- `FRESHNESS`: `none` for assets materialized once on purpose (migrations, one-off imports);
  absent: daily assets by 06:00 UTC, others weekly.
"""

CHECKS = "trade_pipeline/checks"
MIGRATION = "trade_pipeline/migration"
FRESHNESS = "trade_pipeline/freshness"

LAKE_TABLE = {CHECKS: "lake_table"}
RAW_CAPTURES = {CHECKS: "raw_captures"}
MODEL = {CHECKS: "model"}
ONE_OFF = {FRESHNESS: "none"}


def migration(version: int) -> dict[str, str]:
    return {CHECKS: "migration", MIGRATION: f"{version:03d}", **ONE_OFF}
