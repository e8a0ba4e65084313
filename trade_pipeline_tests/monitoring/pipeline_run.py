"""Run whatever part of the pipeline exists, on one day of simulated data (tests only).

The chain is discovered from `trade_pipeline.definitions`: the migration assets (one run),
then the daily chain raw_l2_captures -> l2_snapshots -> l2_features -> feature_stats (and any
other daily asset whose upstreams are all in the chain and that needs no run config), each
with its asset checks. Prefers the lead's `trade-pipeline demo` when it exists."""

import dagster as dg

from trade_pipeline.definitions import build_definitions

DAY = "2025-07-07"
DAILY_CHAIN = ("raw_l2_captures", "l2_snapshots", "l2_features", "feature_stats")
MODEL = "l2_model"  # unpartitioned: trained on the day once it exists
AFTER_MODEL = ("backtest_results",)  # daily, needs the registered champion


def demo_available() -> bool:
    from trade_pipeline.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return "demo" in sub.choices


def run_available_assets(home: str, instance: dg.DagsterInstance, day: str = DAY,
                         sim_seconds: float = 120.0, with_model: bool = False,
                         ) -> list[dg.ExecuteInProcessResult]:
    defs = build_definitions(home)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string(): k for k in graph.get_all_asset_keys()
            if graph.get(k).is_materializable}
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    checks = list(defs.asset_checks or [])
    resources = defs.resources
    results = []
    migrations = sorted(n for n in keys if n.startswith("migration_"))
    if migrations:
        results.append(dg.materialize(
            [*assets, *checks], selection=[keys[n] for n in migrations], instance=instance,
            resources=resources,
        ))
    chain = [n for n in DAILY_CHAIN if n in keys]
    run_config = {}
    if "raw_l2_captures" in chain:
        run_config = {"ops": {"raw_l2_captures": {"config": {
            "source": "simulator", "duration_s": sim_seconds, "start_offset_s": 36_000.0}}}}
    if chain:
        results.append(dg.materialize(
            [*assets, *checks], selection=[keys[n] for n in chain], partition_key=day,
            instance=instance, resources=resources, run_config=run_config,
        ))
    if with_model and MODEL in keys and "l2_features" in chain:
        results.append(dg.materialize(
            [*assets, *checks], selection=[keys[MODEL]], instance=instance, resources=resources,
            run_config={"ops": {MODEL: {"config": {"trials": 1, "horizon": "5s",
                                                   "start_date": day, "end_date": day}}}},
        ))
        after = [keys[n] for n in AFTER_MODEL if n in keys]
        if after:
            results.append(dg.materialize(
                [*assets, *checks], selection=after, partition_key=day, instance=instance,
                resources=resources,
            ))
    return results
