"""Walk-forward speed on one day (target: 864,000 rows, 3h/1h windows, 1 trial, <= 5 min on
one core), and where the time goes.

`trade-pipeline bench walkforward --json [--rows 864000] [--train 3h] [--test 1h]
[--horizon 5s] [--trials 1] [--store]`

- Input: the real Bybit captures (../shared/data/bybit) through the real snapshot builder and
  feature engine, tiled to `--rows` rows at 100 ms (one UTC day; each tile its own session so
  no label crosses a seam), as `bench inference` does for training.
- Measured: `trading.walkforward.walkforward_command` end to end (retrain per window, stitched
  predictions, bootstrap statistics and IC decay, the backtest engine over the stitched rows,
  plots), with `--store` also the lake table, the warehouse and MLflow (in a temporary home).
  Wall and process CPU time, LightGBM on one thread, the load average seen; the stages
  (`timings` of the models part, the engine separately) say what dominates.
Measures and prints; never asserts.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(settings=None, argv: list[str] | None = None) -> dict:
    from bench_inference import day_frame, real_features

    from trade_pipeline.models.training import TrainConfig
    from trade_pipeline.models.walkforward import WalkForwardConfig, parse_duration
    from trade_pipeline.settings import Settings
    from trade_pipeline.trading import walkforward as twf
    from trade_pipeline.trading.engine import TradingConfig

    parser = argparse.ArgumentParser(prog="bench walkforward")
    parser.add_argument("--rows", type=int, default=864_000)
    parser.add_argument("--train", default="3h")
    parser.add_argument("--test", default="1h")
    parser.add_argument("--horizon", default="5s")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--store", action="store_true",
                        help="also write the lake table, the warehouse and MLflow")
    parser.add_argument("--json", action="store_true", help="(the bench command prints JSON)")
    args = parser.parse_args(argv or [])

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    day = day_frame(real_features(), args.rows)
    prep_s = time.perf_counter() - t0
    trading = TradingConfig()
    config = WalkForwardConfig(
        train=parse_duration(args.train), test=parse_duration(args.test),
        model=TrainConfig(horizon=args.horizon, trials=args.trials, num_threads=1,
                          execution=trading.execution))
    # Time the engine apart: wrap the trading step the command calls.
    engine = {"s": 0.0}
    trade = twf.trade_predictions

    def timed_trade(*a, **kw):
        t = time.perf_counter()
        try:
            return trade(*a, **kw)
        finally:
            engine["s"] = time.perf_counter() - t

    twf.trade_predictions = timed_trade
    try:
        with tempfile.TemporaryDirectory() as tmp:
            features = Path(tmp) / "day.parquet"
            day.write_parquet(features)
            home = Settings.load(home=Path(tmp) / "home")
            if args.store:
                home.ensure_dirs()
            w0, c0 = time.perf_counter(), time.process_time()
            out = twf.walkforward_command(home, wf_config=config, trading=trading,
                                          features_path=str(features), store=args.store)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        twf.trade_predictions = trade
    timings = dict(out["timings"], engine_s=round(engine["s"], 2))
    stages = {k: v for k, v in timings.items() if k != "total_s"}
    return {
        "rows": day.height, "train": args.train, "test": args.test, "horizon": args.horizon,
        "trials": args.trials, "threads": 1, "store": args.store,
        "windows": out["windows"], "oos_n": out["oos_n"],
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "target_s": 300,
        "stages_s": stages, "dominant_stage": max(stages, key=stages.get),
        "per_window_fit_s": round(timings["fit_s"] / max(out["windows"], 1), 2),
        "feature_prep_s": round(prep_s, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        # No quality figures here: the tiles repeat the same rows, so a window's model has
        # seen copies of its test rows (see `walkforward` on real days for quality).
    }


if __name__ == "__main__":
    print(json.dumps(run(None, sys.argv[1:]), indent=2, default=str))
