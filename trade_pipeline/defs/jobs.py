"""The main job: the embedded defaults end to end (what `make demo` runs)."""

import dagster as dg

# Everything on the main path, from the simulator to the backtest. The legacy import,
# raw-capture retention and walk-forward evaluation are separate, on-demand / scheduled work.
MAIN_JOB_NAME = "demo"
ON_DEMAND = dg.AssetSelection.assets("legacy_import", "raw_retention", "walkforward_results")

main_job = dg.define_asset_job(
    MAIN_JOB_NAME,
    selection=dg.AssetSelection.all() - ON_DEMAND,
    description="Simulator -> raw captures -> l2_snapshots -> l2_features -> feature_stats "
    "-> l2_model (MLflow) -> backtest_results, after the warehouse migrations.",
)
