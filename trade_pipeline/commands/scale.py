"""CLI subcommands for scale-out: `trade-pipeline train-distributed`.

`trade-pipeline train-distributed [--scheduler tcp://host:8786] [--start DAY --end DAY]
[--horizon 5s] [--stride N|auto] [--rounds 200] [--output model.txt] [--no-mlflow] [--json]`
"""

import argparse
import contextlib
import json
import sys
from pathlib import Path

from trade_pipeline.commands.argtypes import stride_or_auto


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-distributed",
        help="train one LightGBM model across a Dask cluster (lightgbm.dask)",
        description="Load each l2_features day of the range on a Dask worker (labels per "
        "session, stride, float32), train one LightGBM regression on the forward return with "
        "lightgbm.dask across the workers, and score it on the held-out tail (the last "
        "--tail-fraction of the rows, after an embargo of one horizon) next to the naive "
        "order-book-imbalance baseline, with block-bootstrap intervals. The run is logged to "
        "MLflow (metrics, placement, the model) but not registered: the champion gate scores "
        "on one machine. --output also saves the model.",
    )
    p.add_argument("--scheduler", help="Dask scheduler address (default: "
                   "$TRADE_PIPELINE_DASK_SCHEDULER)")
    p.add_argument("--start", help="first day (YYYY-MM-DD)")
    p.add_argument("--end", help="last day (YYYY-MM-DD, inclusive)")
    p.add_argument("--horizon", default="5s", help="label horizon (default 5s)")
    p.add_argument("--stride", type=stride_or_auto, default=None,
                   help="keep every Nth grid row after labelling (default auto)")
    p.add_argument("--rounds", type=int, default=200, help="boosting rounds (default 200)")
    p.add_argument("--tail-fraction", type=float, default=0.2,
                   help="share of the rows held out at the end (default 0.2)")
    p.add_argument("--output", type=Path, help="save the model (LightGBM text format) here")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.models.labels import horizon_name
    from trade_pipeline.settings import SettingsError, check_date

    for day in (args.start, args.end):
        if day:
            check_date(day)
    horizon = horizon_name(args.horizon)
    if args.rounds < 1:
        raise SettingsError(f"--rounds must be >= 1, got {args.rounds}")
    address = args.scheduler or settings.dask_scheduler
    if not address:
        raise SettingsError("no Dask scheduler: pass --scheduler or set "
                            "TRADE_PIPELINE_DASK_SCHEDULER")

    from distributed import Client

    target = None
    if not args.no_mlflow:
        from trade_pipeline.commands.models import _registry_preflight

        target = _registry_preflight(settings)  # before any work: seconds, naming the URL

    from trade_pipeline.models.distributed import train_distributed

    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise SettingsError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    # lightgbm.dask prints its progress ("Finding random open ports for workers") on stdout,
    # which is the JSON's: send it to stderr with the other progress.
    with client, contextlib.redirect_stdout(sys.stderr):
        result = train_distributed(settings, client, args.start, args.end, horizon=horizon,
                                   stride=args.stride, rounds=args.rounds,
                                   tail_fraction=args.tail_fraction)
    out = result.metrics()
    if target is not None:
        from trade_pipeline.models.registry import log_distributed

        out["mlflow_run_id"] = log_distributed(result, target, settings.exchange, settings.symbol)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        result.booster.save_model(str(args.output))
        out["output"] = str(args.output)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for key in ("rows", "tail_rows", "workers", "max_worker_share", "tail_ic",
                    "tail_ic_ci", "tail_rank_ic", "tail_hit_rate", "baseline_ic", "baseline_ic_ci",
                    "elapsed_s", "mlflow_run_id"):
            print(f"{key:20s} {out.get(key)}")
    sys.stdout.flush()
    return 0
