"""Every table name in one place: the Parquet lake tables (one folder each, hive-partitioned,
and the Dagster assets of the same name) and the DuckDB warehouse tables of the migrations.

Code names a table through these constants, never a bare string, so a rename is one edit
(the SQL migrations in lake/sql/ spell them out, and a test holds both to agreement).
"""

# ---- the lake (storage/layout.py; DuckDB views of the same name over them) -----------------
SNAPSHOTS = "l2_snapshots"
FEATURES = "l2_features"
TRADES = "l2_trades"
FEATURE_STATS = "feature_stats"
WALKFORWARD_PREDICTIONS = "walkforward_predictions"

# ---- the warehouse (lake/sql/) --------------------------------------------------------------
MIGRATION_LOG = "migration_log"
MODELS = "models"
PREDICTIONS = "predictions"
TRADE_LOG = "trades"  # the trades our backtests and paper runs made (not the market's l2_trades)
BACKTEST_RESULTS = "backtest_results"
FEATURE_METADATA = "feature_metadata"
LEGACY_QUARANTINE = "legacy_quarantine"
