"""`trade-pipeline demo`: run the main job on the embedded defaults into a persistent home.

The run lands in the home's Dagster instance (`<home>/dagster`), so `make ui` shows it, and
its model in the home's MLflow store.
"""

import argparse
import json
import sys
import time

from trade_pipeline.settings import check_date


def default_day() -> str:
    """Yesterday (UTC): the latest complete day, so the freshness checks see a current lake."""
    import datetime as dt

    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()

INSTANCE_YAML = """\
# Written by `trade-pipeline demo`: local storage under this folder, and the DuckDB writer
# pool limited to 1 (one writer per DuckDB file).
concurrency:
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded defaults (simulator to backtest)",
        description="Materialize the main job for one day of simulated BTCUSDT order flow: "
        "migrations, raw captures, l2_snapshots, l2_features, feature_stats, l2_model (MLflow) "
        "and backtest_results. The run is recorded in <home>/dagster for the UI.",
    )
    p.add_argument("--day", default=None, help="partition day, YYYY-MM-DD (default: yesterday, UTC)")
    p.add_argument("--duration", type=float, default=1800.0,
                   help="simulated seconds of order flow (default 1800)")
    p.add_argument("--trials", type=int, default=5, help="Optuna trials (default 5)")
    p.add_argument("--horizon", default="5s", help="label horizon (default 5s)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=handle)


def ensure_instance(settings) -> None:
    """A persistent local instance under the home, with the DuckDB pool limit set."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    yaml = settings.dagster_home / "dagster.yaml"
    if not yaml.exists():
        yaml.write_text(INSTANCE_YAML)


def record_partitions_start(settings, first_day: str) -> str:
    """Start the home's daily partitions at `first_day` (its settings.toml), unless they
    start earlier already: the UI then lists the days that hold data, not every day since
    the default start. Returns the start in effect for the home."""
    from trade_pipeline.settings import read_home_settings, render_home_settings
    from trade_pipeline.storage.atomic import write_text_atomic

    values = read_home_settings(settings.home)
    current = values.get("partitions_start")
    if current is None or first_day < current:
        values["partitions_start"] = first_day
        write_text_atomic(render_home_settings(values), settings.home_settings_path,
                          "home settings")
    return values["partitions_start"]


def run_config(day: str, duration: float, trials: int, horizon: str) -> dict:
    return {
        "ops": {
            "raw_l2_captures": {"config": {"source": "simulator", "duration_s": duration}},
            "l2_model": {"config": {"trials": trials, "horizon": horizon,
                                    "start_date": day, "end_date": day}},
            "backtest_results": {"config": {"model": f"btc_l2_{horizon}@champion"}},
        }
    }


def handle(args: argparse.Namespace, settings) -> int:
    import dagster as dg

    from trade_pipeline.definitions import build_definitions
    from trade_pipeline.defs.jobs import MAIN_JOB_NAME

    day = check_date(args.day or default_day())
    settings.ensure_dirs()
    ensure_instance(settings)
    start = record_partitions_start(settings, day)
    defs = build_definitions(home=str(settings.home))
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    started = time.perf_counter()
    print(f"demo: home {settings.home}, day {day}, {args.duration:.0f} s simulated; daily "
          f"partitions start {start} ({settings.home_settings_path})", file=sys.stderr)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        result = job.execute_in_process(
            run_config=run_config(day, args.duration, args.trials, args.horizon),
            partition_key=day,
            instance=instance,
            raise_on_error=False,
        )
    summary = {
        "success": result.success,
        "partitions_start": start,
        "run_id": result.run_id,
        "seconds": round(time.perf_counter() - started, 1),
        "home": str(settings.home),
        "materialized": sorted(
            e.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()
            if e.asset_key is not None
        ),
        "failed_steps": [e.step_key for e in result.get_step_failure_events()],
    }
    failed_checks, warned_checks = [], []
    for event in result.all_events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        check = event.asset_check_evaluation_data
        if check.passed:
            continue
        label = f"{check.asset_key.to_user_string()}:{check.check_name}"
        is_warning = check.severity == dg.AssetCheckSeverity.WARN
        (warned_checks if is_warning else failed_checks).append(label)
    summary["failed_checks"] = failed_checks
    summary["check_warnings"] = warned_checks
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"demo {'succeeded' if result.success else 'FAILED'} in {summary['seconds']} s "
              f"(run {result.run_id})")
        print("materialized: " + ", ".join(summary["materialized"]))
        if summary["failed_steps"]:
            print("failed steps: " + ", ".join(summary["failed_steps"]))
        if failed_checks:
            print("failed checks: " + ", ".join(failed_checks))
        if warned_checks:
            print("check warnings: " + ", ".join(warned_checks))
        print(f"open the UI:  make ui HOME_DIR={settings.home}   (http://127.0.0.1:3000)")
    return 0 if result.success else 1
