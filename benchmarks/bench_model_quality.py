"""Honesty: out-of-sample IC and hit rate of the model on the real Bybit captures, next to a
naive baseline (the sign of `order_book_imbalance`).

`trade-pipeline bench model_quality --json [--trials N] [--horizons 1s,5s,30s]`

The captures (../shared/data/bybit, ~57,000 rows of 100 ms over ~1.6 hours in 14 sessions)
go through the real snapshot builder and feature engine. Each horizon is trained with the
normal pipeline (purged walk-forward CV, Optuna) and scored on its held-out tail (the last
20 % of rows in time), which the search never saw. The figures are small-sample estimates:
the tail holds a few thousand correlated rows, so treat differences of a few 0.01 in IC as
noise. Hit rates count rows where both the prediction and the realized return are
non-zero (at 1 s most mids do not move: see `tail_nonzero_return_share`).
"""

import argparse
import json
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_features(data_dir: Path = DATA):
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.snapshots import build_snapshots

    files = sorted((data_dir / "bybit").glob("*.jsonl.gz"))
    if not files:
        raise SystemExit(f"no Bybit captures under {data_dir / 'bybit'}")
    snaps = build_snapshots(files)
    return compute_features(snaps.frame), snaps


def run(settings, argv: list[str]) -> dict:
    from trade_pipeline.models.training import train_model

    parser = argparse.ArgumentParser(prog="bench model_quality")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--horizons", default="1s,5s,30s")
    parser.add_argument("--task", default="regression")
    parser.add_argument("--json", action="store_true", help="(the bench command prints JSON)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frame, _snaps = real_features()
    out: dict = {"rows": frame.height, "sessions": frame["session_id"].n_unique(),
                 "trials": args.trials, "task": args.task,
                 "features_s": round(time.perf_counter() - started, 2)}
    for horizon in args.horizons.split(","):
        t0 = time.perf_counter()
        r = train_model(frame, trials=args.trials, horizon=horizon, task=args.task)
        tm, bm = r.tail_metrics, r.baseline_metrics
        out[horizon] = {
            "tail_rows": tm["n"],
            "tail_nonzero_return_share": float((r.tail_returns != 0).mean()),
            "model_ic": tm.get("ic"), "model_rank_ic": tm.get("rank_ic"),
            "model_hit_rate": tm.get("hit_rate"),
            "model_log_loss": tm.get("log_loss"), "model_auc": tm.get("auc"),
            "baseline_ic": bm.get("ic"), "baseline_hit_rate": bm.get("hit_rate"),
            "cv_score": r.cv_score,
            "model_strategy_return": tm["strategy_return"],
            "model_strategy_trades": tm["strategy_trades"],
            "baseline_strategy_return": bm.get("strategy_return"),
            "baseline_strategy_gross_return": bm.get("strategy_gross_return"),
            "top_features": [x["feature"] for x in r.importance[:5]],
            "train_s": round(time.perf_counter() - t0, 2),
        }
    return out


if __name__ == "__main__":
    from trade_pipeline.settings import Settings

    print(json.dumps(run(Settings.load(), sys.argv[1:]), indent=2, default=str))
