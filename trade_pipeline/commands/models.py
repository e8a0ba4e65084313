"""CLI subcommands for the models area.

`trade-pipeline train --trials N [--horizon 5s] [--start DAY --end DAY] [--features FILE]
[--top-k K] [--json]` (a stable interface: automated checks call it).
"""

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a LightGBM model (Optuna search, purged walk-forward CV) and register it",
        description="Label the l2_features rows (forward mid return over the horizon, within "
        "each session), search LightGBM parameters with Optuna TPE scored by purged "
        "walk-forward CV, train the final model, score it on a held-out tail the search never "
        "saw (next to a naive order-book-imbalance baseline), log it to MLflow, register it as "
        "<base>_l2_<horizon> with alias 'challenger', and move 'champion' when it beats the "
        "champion on the same tail by --margin. Progress goes to stderr; --json prints the "
        "metrics on stdout.",
    )
    p.add_argument("--trials", type=int, default=10, help="Optuna trials (default 10)")
    p.add_argument("--horizon", default="5s", help="label horizon, e.g. 1s, 5s, 30s (default 5s)")
    p.add_argument("--start", help="first day (YYYY-MM-DD) of lake partitions to use")
    p.add_argument("--end", help="last day (YYYY-MM-DD, inclusive) of lake partitions to use")
    p.add_argument("--features", type=Path,
                   help="train on this feature Parquet file instead of the lake")
    p.add_argument("--top-k", type=int, default=None,
                   help="also retrain on the K most important features and report the difference")
    p.add_argument("--task", choices=("regression", "classification"), default="regression",
                   help="regression on the forward return (default) or 3-class direction")
    p.add_argument("--folds", type=int, default=3, help="walk-forward folds (default 3)")
    p.add_argument("--stride", type=_stride, default=None,
                   help="keep every Nth 100 ms row after labelling (lake only; default auto: "
                   "every row if they fit TRADE_PIPELINE_TRAIN_MEMORY_GB, else the smallest "
                   "stride that fits)")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")
    p.add_argument("--margin", type=float, default=None,
                   help="score margin the challenger needs over the champion (default 0.005)")
    p.add_argument("--no-register", action="store_true",
                   help="train and score only; do not log to MLflow")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=handle)


def _stride(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return value


def handle(args: argparse.Namespace, settings) -> int:
    import polars as pl
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trade_pipeline.models.labels import LabelError, horizon_name
    from trade_pipeline.models.training import (
        TrainConfig,
        TrainingError,
        load_feature_frame,
        train_model,
    )
    from trade_pipeline.settings import SettingsError, check_date

    err = Console(stderr=True)
    try:
        horizon = horizon_name(args.horizon)
        for day in (args.start, args.end):
            if day:
                check_date(day)
        if args.features is not None:
            if not args.features.is_file():
                raise SettingsError(f"--features: no such file {args.features}")
            frame = pl.read_parquet(args.features).sort("timestamp", maintain_order=True)
            if args.start or args.end:
                days = pl.col("timestamp").dt.date().cast(pl.String)
                frame = frame.filter(
                    (days >= (args.start or "0000")) & (days <= (args.end or "9999"))
                )
            partitions = [str(args.features)]
        else:
            frame, partitions = load_feature_frame(settings, args.start, args.end,
                                                   horizon=horizon, stride=args.stride)
        config = TrainConfig(horizon=horizon, trials=args.trials, task=args.task,
                             top_k=args.top_k, n_folds=args.folds, num_threads=args.threads)
    except (LabelError, TrainingError) as exc:
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
                result = train_model(frame, config, on_trial=on_trial, partitions=partitions)
                out = result.metrics()
            else:
                from trade_pipeline.models.gate import DEFAULT_MARGIN
                from trade_pipeline.models.pipeline import train_and_register
                from trade_pipeline.models.registry import MlflowTarget

                settings.ensure_dirs()
                target = MlflowTarget.from_settings(settings)
                margin = DEFAULT_MARGIN if args.margin is None else args.margin
                trained = train_and_register(frame, target, settings.exchange, settings.symbol,
                                             config, margin=margin, partitions=partitions,
                                             on_trial=on_trial, settings=settings)
                result, out = trained.result, trained.metrics()
        except (LabelError, TrainingError, ValueError) as exc:
            raise SettingsError(f"training failed: {exc}") from None

    if not args.no_register:
        ref, gate = trained.ref, trained.gate
        err.print(f"registered {ref.name} v{ref.version} (challenger) in "
                  f"{target.tracking_uri}; champion gate: "
                  f"{'promoted' if gate.promoted else 'kept the champion'} ({gate.reason})")
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for key in ("rows", "cv_score", "tail_score", "tail_ic", "tail_rank_ic", "tail_hit_rate",
                    "tail_log_loss", "tail_balanced_accuracy", "tail_auc",
                    "tail_strategy_return", "baseline_ic", "baseline_hit_rate", "elapsed_s"):
            if key in out:
                print(f"{key:28s} {out[key]}")
        if result.top_k:
            print(f"{'top_k_score_diff_vs_full':28s} {result.top_k['score_diff_vs_full']}")
    sys.stdout.flush()
    return 0
