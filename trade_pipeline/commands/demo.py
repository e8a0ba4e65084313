"""`trade-pipeline demo`: run the main job on the embedded defaults into a persistent home.

Out of sample, like a user should work: two simulated days; the first is ingested (raw
captures, snapshots, features, stats), then the second runs the whole job, whose model is
trained on the first day only and whose backtest trades the second day. Whether the model
becomes champion is the gate's call (a model that cannot beat noise is not promoted, and
the backtest then skips, saying so); nothing is tuned to force either outcome.

The runs land in the home's Dagster instance (`<home>/dagster`), so `make ui` shows them,
and the model in the home's MLflow store.
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
        description="Simulate two days of BTCUSDT order flow and materialize the main job: "
        "migrations, raw captures, l2_snapshots, l2_features and feature_stats for both days, "
        "l2_model (MLflow) trained on the first day, and backtest_results on the second "
        "(out of sample). The runs are recorded in <home>/dagster for the UI.",
    )
    p.add_argument("--day", default=None,
                   help="the backtested day, YYYY-MM-DD (default: yesterday, UTC); the model "
                   "is trained on the day before it")
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


def run_config(day: str, duration: float, trials: int, horizon: str,
               train_day: str | None = None) -> dict:
    train_day = train_day or day
    return {
        "ops": {
            "raw_l2_captures": {"config": {"source": "simulator", "duration_s": duration}},
            "l2_model": {"config": {"trials": trials, "horizon": horizon,
                                    "start_date": train_day, "end_date": train_day}},
            "backtest_results": {"config": {"model": f"btc_l2_{horizon}@champion"}},
        }
    }


TRAINED_AND_TRADED = ("l2_model", "backtest_results")


def _outcome(result) -> dict:
    """The decisions a user wants from the runs: the gate's and the backtest's."""
    out: dict = {}
    for event in result.get_asset_materialization_events():
        key = event.asset_key.to_user_string() if event.asset_key else ""
        md = {k: v.value for k, v in event.materialization.metadata.items()}
        if key == "l2_model":
            out["model"] = {k: md.get(k) for k in ("model_name", "model_version", "promoted",
                                                    "gate_reason", "gate_p_value", "tail_ic")}
        elif key == "backtest_results":
            out["backtest"] = ({"skipped": True, "reason": md.get("reason")} if md.get("skipped")
                               else {k: md.get(k) for k in (
                                   "model", "rows", "metric_n_fills", "metric_total_return",
                                   "entry_threshold", "in_sample")})
    return out


def handle(args: argparse.Namespace, settings) -> int:
    import datetime as dt

    import dagster as dg

    from trade_pipeline.definitions import build_definitions
    from trade_pipeline.defs.jobs import MAIN_JOB_NAME

    day = check_date(args.day or default_day())
    train_day = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
    settings.ensure_dirs()
    ensure_instance(settings)
    start = record_partitions_start(settings, train_day)
    defs = build_definitions(home=str(settings.home))
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    # The first day: everything but training and trading. Its freshness checks would only
    # say that the second day is not there yet; they run with the second day's run.
    later = [k for k in job.asset_layer.executable_asset_keys
             if k.to_user_string() in TRAINED_AND_TRADED]
    freshness = [k for k in defs.resolve_asset_graph().asset_check_keys
                 if k.name.startswith("freshness")]
    first_job = dg.define_asset_job(
        "demo_first_day",
        selection=dg.AssetSelection.assets(*job.asset_layer.executable_asset_keys)
        - dg.AssetSelection.assets(*later) - dg.AssetSelection.checks(*freshness))
    first = dg.Definitions.merge(defs, dg.Definitions(jobs=[first_job])).resolve_job_def(
        "demo_first_day")
    started = time.perf_counter()
    print(f"demo: home {settings.home}, {args.duration:.0f} s simulated on {train_day} "
          f"(training) and {day} (backtest); daily partitions start {start} "
          f"({settings.home_settings_path})", file=sys.stderr)
    results = []
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for partition, run_job in ((train_day, first), (day, job)):
            config = run_config(day, args.duration, args.trials, args.horizon, train_day)
            if run_job is first:
                config = {"ops": {"raw_l2_captures": config["ops"]["raw_l2_captures"]}}
            results.append(run_job.execute_in_process(
                run_config=config, partition_key=partition, instance=instance,
                raise_on_error=False,
            ))
    summary = {
        "success": all(r.success for r in results),
        "partitions_start": start,
        "run_ids": [r.run_id for r in results],
        "run_id": results[-1].run_id,
        "days": {"train": train_day, "backtest": day},
        "seconds": round(time.perf_counter() - started, 1),
        "home": str(settings.home),
        "materialized": sorted({
            e.asset_key.to_user_string()
            for r in results for e in r.get_asset_materialization_events()
            if e.asset_key is not None
        }),
        "failed_steps": [e.step_key for r in results for e in r.get_step_failure_events()],
    }
    summary.update(_outcome(results[-1]))
    failed_checks, warned_checks = [], []
    for r in results:
        for event in r.all_events:
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
        print(json.dumps(summary, indent=2, default=str))
    else:
        ok = summary["success"]
        print(f"demo {'succeeded' if ok else 'FAILED'} in {summary['seconds']} s "
              f"(runs {', '.join(summary['run_ids'])})")
        print("materialized: " + ", ".join(summary["materialized"]))
        if "model" in summary:
            m = summary["model"]
            print(f"model {m['model_name']} v{m['model_version']} trained on {train_day}: "
                  f"{'champion' if m['promoted'] else 'not promoted'} ({m['gate_reason']})")
        if "backtest" in summary:
            b = summary["backtest"]
            print(f"backtest of {day}: " + (b["reason"] if b.get("skipped") else
                  f"{b['rows']} rows, {b['metric_n_fills']} fills, return "
                  f"{b['metric_total_return']:.6f} (entry threshold {b['entry_threshold']:.6g})"))
        if summary["failed_steps"]:
            print("failed steps: " + ", ".join(summary["failed_steps"]))
        if failed_checks:
            print("failed checks: " + ", ".join(failed_checks))
        if warned_checks:
            print("check warnings: " + ", ".join(warned_checks))
        print(f"open the UI:  make ui HOME_DIR={settings.home}   (http://127.0.0.1:3000)")
    return 0 if summary["success"] else 1
