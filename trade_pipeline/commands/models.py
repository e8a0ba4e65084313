"""CLI subcommands for the models area.

`trade-pipeline train --trials N [--horizon 5s] [--start DAY --end DAY] [--features FILE]
[--top-k K[,K2...]] [--alpha 0.05] [--config exec.toml] [--json]` (a stable interface:
automated checks call it; `--json` prints `model.gate.{passed,promoted,reason,p_value}`).
"""

import argparse
import json
import sys
from pathlib import Path

from trade_pipeline.commands.argtypes import non_negative_finite_float, positive_int, stride_or_auto


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a LightGBM model (Optuna search, purged walk-forward CV) and register it",
        description="Label the l2_features rows (forward mid return over the horizon, within "
        "each session), search LightGBM parameters with Optuna TPE scored by purged "
        "walk-forward CV, train the final model, score it on a held-out tail the search never "
        "saw (next to a naive order-book-imbalance baseline), log it to MLflow, register it as "
        "<base>_l2_<horizon> (classifiers: <base>_l2_<horizon>_cls) with alias 'challenger', and "
        "move 'champion' only when the champion gate says so: on rows neither model was "
        "trained on, the challenger's IC is significantly above 0 (block bootstrap, --alpha), "
        "beats the champion's significantly, and its cost-aware strategy does not lose after "
        "costs. Not being promoted is a normal outcome (exit 0). Progress goes to stderr; "
        "--json prints the metrics on stdout.",
    )
    p.add_argument("--trials", type=positive_int, default=10, help="Optuna trials (default 10)")
    p.add_argument("--horizon", default="5s", help="label horizon, e.g. 1s, 5s, 30s (default 5s)")
    p.add_argument("--start", help="first day (YYYY-MM-DD) of lake partitions to use")
    p.add_argument("--end", help="last day (YYYY-MM-DD, inclusive) of lake partitions to use")
    p.add_argument("--features", type=Path,
                   help="train on this feature Parquet file instead of the lake")
    p.add_argument("--top-k", type=_top_k, default=None, metavar="K[,K2...]",
                   help="also retrain on the K features with the largest mean |SHAP| and report, "
                   "per k, the held-out IC and the single-row inference time (one K compares "
                   "K/4, K/2 and K)")
    p.add_argument("--task", choices=("regression", "classification"), default="regression",
                   help="regression on the forward return (default) or 3-class direction")
    p.add_argument("--folds", type=positive_int, default=3, help="walk-forward folds (default 3)")
    p.add_argument("--stride", type=stride_or_auto, default=None,
                   help="keep every Nth 100 ms row after labelling (lake only; default auto: "
                   "every row if they fit TRADE_PIPELINE_TRAIN_MEMORY_GB, else the smallest "
                   "stride that fits)")
    p.add_argument("--threads", type=positive_int, default=1, help="LightGBM threads (default 1)")
    p.add_argument("--alpha", type=_probability, default=0.05,
                   help="significance level of the champion gate (default 0.05): the challenger's "
                   "IC, and its IC difference over the champion, must be significant under a "
                   "block bootstrap on rows neither model was trained on")
    p.add_argument("--margin", type=non_negative_finite_float, default=None,
                   help="IC difference over the champion required on top of significance "
                   "(default 0)")
    p.add_argument("--config", metavar="exec.toml",
                   help="execution assumptions (fees, cadence) the decision rule is priced with "
                   "(the backtest's TOML; default: ExecutionConfig's defaults)")
    p.add_argument("--no-register", action="store_true",
                   help="train and score only; do not log to MLflow")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=handle)
    register_walkforward(sub)

    r = sub.add_parser(
        "register-pending",
        help="register the models `train` kept locally while the MLflow registry was down",
        description="`train` checks the MLflow registry before it starts; if the registry "
        "fails later, while the trained model is being logged, the model is kept in "
        "<home>/pending_models/. This registers each kept model as `train` would have "
        "(challenger alias, champion gate on the same training data, warehouse row), oldest "
        "first, and removes it from the folder once registered.",
    )
    r.add_argument("--list", action="store_true", help="only list the kept models")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=handle_register_pending)


def _top_k(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or K1,K2,..., got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"k must be >= 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _training_frame(settings, features: Path | None, start: str | None, end: str | None,
                    horizon: str | None = None, stride: int | None = 1):
    """The frame `train` trains on (a feature file, or the lake's partitions streamed with
    `horizon`'s labels and `stride`: models/dataset.py) and its partition keys; days filtered
    to start..end (inclusive)."""
    import polars as pl

    from trade_pipeline.models.training import load_feature_frame

    if features is None:
        return load_feature_frame(settings, start, end, horizon=horizon, stride=stride)
    from trade_pipeline.features.batch import features_schema
    from trade_pipeline.storage.input_files import read_parquet_input

    features = Path(features)
    frame = read_parquet_input(features, "--features", features_schema(),
                               "an l2_features table (trade-pipeline features)")
    frame = frame.sort("timestamp", maintain_order=True)
    if start or end:
        days = pl.col("timestamp").dt.date().cast(pl.String)
        frame = frame.filter((days >= (start or "0000")) & (days <= (end or "9999")))
    return frame, [str(features)]


def _registry_preflight(settings):
    """Check the MLflow registry answers (seconds, naming the URL) and make the MLflow client
    fail fast if it stops answering later (its default retries for ~4 minutes)."""
    import os

    from trade_pipeline.models.registry import MlflowTarget
    from trade_pipeline.storage.services import check_mlflow

    settings.ensure_dirs()
    target = MlflowTarget.from_settings(settings)
    check_mlflow(target.tracking_uri, settings.service_timeout_s)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    return target


def _register_or_keep(settings, result, frame, target, margin: float, alpha: float,
                      source: dict):
    """Register a trained model; if the registry fails now, keep the model locally (never
    lose the training) and stop with one line saying how to register it later."""
    import polars as pl

    from trade_pipeline.models import pending
    from trade_pipeline.models.pipeline import register_trained
    from trade_pipeline.storage.services import ServiceUnavailable, redact

    example = frame.select(result.features).tail(5).cast(pl.Float64).to_numpy()
    try:
        return register_trained(result, frame, target, settings.exchange, settings.symbol,
                                margin=margin, alpha=alpha, settings=settings, example=example)
    except Exception as exc:  # the registry's failures have no common base class
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        kept = pending.save(settings, result, example, exchange=settings.exchange,
                            symbol=settings.symbol, margin=margin, alpha=alpha, source=source,
                            error=error)
        raise ServiceUnavailable(
            f"MLflow registry {redact(target.tracking_uri)} failed while registering the "
            f"trained model ({error}); the model is kept in {kept}: run `trade-pipeline "
            "register-pending` once the registry is back") from None


def handle_register_pending(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.models import pending

    items = pending.listing(settings)
    if args.list or not items:
        rows = [{"path": str(i.path), **i.meta} for i in items]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{len(rows)} model(s) kept in {pending.pending_dir(settings)}")
            for r in rows:
                print(f"  {Path(r['path']).name}  trained {r['trained_at']}  "
                      f"({r['registry_error']})")
        return 0
    target = _registry_preflight(settings)
    done = []
    for item in items:
        source = item.meta["source"]
        features = Path(source["features"]) if source.get("features") else None
        frame, _ = _training_frame(settings, features, source.get("start"), source.get("end"))
        trained = pending.register(settings, item, target, frame)
        ref, gate = trained.ref, trained.gate
        done.append({"kept": item.name, "name": ref.name, "version": ref.version,
                     "run_id": ref.run_id, "gate": gate.as_dict()})
        print(f"registered {item.name} as {ref.name} v{ref.version} (challenger); champion "
              f"gate: {'promoted' if gate.promoted else 'kept the champion'} ({gate.reason})",
              file=sys.stderr)
    if args.json:
        print(json.dumps(done, indent=2, default=str))
    return 0


def handle(args: argparse.Namespace, settings) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trade_pipeline.features.provenance import read_stamp
    from trade_pipeline.models.decision import load_execution
    from trade_pipeline.models.labels import LabelError, horizon_name
    from trade_pipeline.models.training import (
        TrainConfig,
        TrainingError,
        feature_stamp_of_partitions,
        train_model,
    )
    from trade_pipeline.settings import SettingsError, check_date

    err = Console(stderr=True)
    try:
        horizon = horizon_name(args.horizon)
        for day in (args.start, args.end):
            if day:
                check_date(day)
        if not args.no_register:
            # before any work: an unreachable registry is an error in seconds, naming the URL
            target = _registry_preflight(settings)
        frame, partitions = _training_frame(settings, args.features, args.start, args.end,
                                            horizon=horizon, stride=args.stride)
        stamp = (read_stamp(str(args.features)) if args.features is not None
                 else feature_stamp_of_partitions(settings, partitions))
        config = TrainConfig(horizon=horizon, trials=args.trials, task=args.task,
                             top_k=args.top_k, n_folds=args.folds, num_threads=args.threads,
                             execution=load_execution(args.config))
    except (LabelError, TrainingError, ValueError) as exc:
        raise SettingsError(str(exc)) from None

    err.print(f"training {config.task} model, horizon {horizon}, {frame.height:,} rows, "
              f"{config.trials} trial(s)")
    with Progress(TextColumn("[bold]optuna"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), console=err, transient=False) as progress:
        task = progress.add_task("", total=config.trials)

        def on_trial(done: int, total: int, value, best) -> None:
            progress.update(task, completed=done,
                            description=f"last {value:.5g}  best {best:.5g}" if value is not None
                            and best is not None else "")

        try:
            if args.no_register:
                result = train_model(frame, config, on_trial=on_trial, partitions=partitions,
                                     feature_stamp=stamp)
                out = result.metrics()
            else:
                from trade_pipeline.models.gate import DEFAULT_MARGIN

                margin = DEFAULT_MARGIN if args.margin is None else args.margin
                result = train_model(frame, config, on_trial=on_trial, partitions=partitions,
                                     feature_stamp=stamp)
                source = {"features": str(args.features) if args.features else None,
                          "start": args.start, "end": args.end}
                trained = _register_or_keep(settings, result, frame, target, margin, args.alpha,
                                            source)
                out = trained.metrics()
        except (LabelError, TrainingError, ValueError) as exc:
            raise SettingsError(f"training failed: {exc}") from None

    if not args.no_register:
        ref, gate = trained.ref, trained.gate
        err.print(f"registered {ref.name} v{ref.version} (challenger) in "
                  f"{target.tracking_uri}; champion gate (p={gate.p_value:.3g}): {gate.reason}")
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for key in ("rows", "cv_score", "tail_score", "tail_ic", "tail_ic_ci", "tail_ic_p_value",
                    "tail_rank_ic", "tail_hit_rate", "tail_log_loss", "tail_balanced_accuracy",
                    "tail_auc", "tail_strategy_return", "tail_strategy_trades",
                    "decision_entry_threshold", "baseline_ic", "baseline_ic_ci",
                    "baseline_hit_rate", "elapsed_s"):
            if key in out:
                print(f"{key:28s} {out[key]}")
        if result.top_k:
            print(f"{'top_k_score_diff_vs_full':28s} {result.top_k['score_diff_vs_full']}")
        for row in result.top_k_report:
            print(f"  k={row['k']:<4d} tail IC {row['tail_ic']}  inference p50 "
                  f"{row['inference_p50_us']} us, p99 {row['inference_p99_us']} us")
    sys.stdout.flush()
    return 0


def register_walkforward(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "walkforward",
        help="rolling retrain-then-test evaluation, traded after costs (the figures to believe)",
        description="Walk forward over feature rows: train on --train, predict the next --test, "
        "move by --step (default: the test length), purged and embargoed at every boundary. "
        "The stitched out-of-sample predictions are scored (pooled IC with a block-bootstrap "
        "CI, per window, next to the sign(order-book imbalance) baseline), traded through the "
        "backtest engine with each window model's cost-aware decision rule, and each model is "
        "also scored on later windows (IC decay with CIs and a recommended retraining "
        "interval). Writes the lake table walkforward_predictions, the warehouse "
        "(backtest_results, trades) and an MLflow run with plots, unless --no-store.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--features", type=Path, help="feature Parquet file (default: the lake)")
    p.add_argument("--start", help="first day (YYYY-MM-DD) of the range")
    p.add_argument("--end", help="last day (YYYY-MM-DD, inclusive) of the range")
    p.add_argument("--train", default="3h", help="training period, e.g. 3h, 2d, 90m (default 3h)")
    p.add_argument("--test", default="1h", help="test period, e.g. 1h (default 1h)")
    p.add_argument("--step", default=None, help="move by this much (default: --test)")
    p.add_argument("--horizon", default="5s", help="label horizon (default 5s)")
    p.add_argument("--trials", type=int, default=1,
                   help="Optuna trials per window (default 1: the default parameters, no search)")
    p.add_argument("--task", choices=("regression", "classification"), default="regression")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")
    p.add_argument("--max-age", type=int, default=6,
                   help="score each model on this many later test periods (IC decay; default 6)")
    p.add_argument("--decay-fraction", type=float, default=0.5,
                   help="retrain before the IC lower bound falls below this fraction of the "
                   "fresh IC (default 0.5)")
    p.add_argument("--config", metavar="exec.toml",
                   help="execution assumptions and strategy limits (the backtest's TOML)")
    p.add_argument("--no-store", dest="store", action="store_false",
                   help="do not write the lake, the warehouse or MLflow")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=handle_walkforward)


def handle_walkforward(args: argparse.Namespace, settings) -> int:
    from rich.console import Console

    from trade_pipeline.models.labels import LabelError, horizon_name
    from trade_pipeline.models.training import TrainConfig, TrainingError
    from trade_pipeline.models.walkforward import WalkForwardConfig, parse_duration
    from trade_pipeline.settings import SettingsError, check_date
    from trade_pipeline.trading.engine import TradingConfig
    from trade_pipeline.trading.walkforward import walkforward_command

    err = Console(stderr=True)
    try:
        for day in (args.start, args.end):
            if day:
                check_date(day)
        trading = TradingConfig.load(args.config)
        model = TrainConfig(horizon=horizon_name(args.horizon), trials=args.trials,
                            task=args.task, num_threads=args.threads,
                            execution=trading.execution)
        wf_config = WalkForwardConfig(
            train=parse_duration(args.train), test=parse_duration(args.test),
            step=parse_duration(args.step) if args.step else None, model=model,
            max_age=args.max_age, decay_fraction=args.decay_fraction)
    except (LabelError, TrainingError) as exc:
        raise SettingsError(str(exc)) from None

    def on_window(done: int, total: int, info: dict) -> None:
        ic = info["ic"]
        err.print(f"window {done}/{total} (test from {info['test_start']}): "
                  f"IC {'undefined' if ic is None else f'{ic:.4f}'}, {info['seconds']} s")

    if args.store:
        settings.ensure_dirs()
    try:
        out = walkforward_command(
            settings, wf_config=wf_config, trading=trading,
            features_path=str(args.features) if args.features else None, start=args.start,
            end=args.end, store=args.store, on_window=on_window)
    except (LabelError, TrainingError) as exc:
        raise SettingsError(f"walk-forward failed: {exc}") from None
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for key in ("windows", "oos_n", "oos_ic", "oos_ic_ci", "oos_ic_p_value", "baseline_ic",
                    "baseline_ic_ci", "trades", "gross_return", "net_return", "fees_paid",
                    "recommended_retrain_every", "run_id"):
            print(f"{key:28s} {out.get(key)}")
    sys.stdout.flush()
    return 0
