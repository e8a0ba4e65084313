"""Single-row inference latency of the compiled evaluator vs LightGBM's own predict, and the
time of `train --trials 1` on one day of 100 ms rows.

`trade-pipeline bench inference --json [--trees 468] [--leaves 57] [--calls 20000]
[--skip-train]`

- Model: LightGBM on the 118 features of the real Bybit captures (../shared/data, via the
  real snapshot builder and feature engine), forced to `--trees` rounds with `--leaves` leaves
  (target shape: ~468 trees, 57 leaves, 118 features), then compiled (`models/compiled.py`).
- Rows are the real feature rows in time order, so successive calls see successive books as in
  live use; a shuffled pass is reported too (worst case for branch prediction).
- Latency: `time.perf_counter_ns` around each single call, after warm-up; p50 / p99 / max.
- Training: the real rows tiled to 864,000 rows (one UTC day at 100 ms; each tile its own
  session so no label crosses a seam), then `train_model(trials=1, horizon=5s)` as
  `trade-pipeline train --trials 1` runs it, and the MLflow logging + registration + gate
  separately (SQLite store in a temporary home).
The machine is shared (2 cores, several users): figures are noisy.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_features(data_dir: Path = DATA):
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.snapshots import build_snapshots

    files = sorted((data_dir / "bybit").glob("*.jsonl.gz"))
    if not files:
        raise SystemExit(f"no Bybit captures under {data_dir / 'bybit'}")
    return compute_features(build_snapshots(files).frame)


def _pct(ns: list[int]) -> dict:
    a = np.asarray(ns) / 1e3
    return {"p50_us": round(float(np.percentile(a, 50)), 2),
            "p99_us": round(float(np.percentile(a, 99)), 2), "max_us": round(float(a.max()), 1)}


def latency(frame, trees: int, leaves: int, calls: int) -> dict:
    import lightgbm as lgb

    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.models.compiled import CompiledBooster
    from trade_pipeline.models.labels import forward_returns

    y = forward_returns(frame, "5s").to_numpy()
    x = frame.select(FEATURE_NAMES).to_numpy()
    ok = np.isfinite(y)
    t0 = time.perf_counter()
    booster = lgb.train(
        {"objective": "regression", "num_leaves": leaves, "min_data_in_leaf": 20,
         "learning_rate": 0.03, "verbosity": -1, "num_threads": 1, "max_bin": 63},
        lgb.Dataset(x[ok], y[ok]), num_boost_round=trees,
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = CompiledBooster.from_booster(booster)
    compile_s = time.perf_counter() - t0

    rows = np.ascontiguousarray(x)
    parity = float(np.max(np.abs(compiled.predict(rows) - booster.predict(rows))))
    n = min(calls, rows.shape[0])

    def time_calls(fn, order) -> list[int]:
        for i in order[:200]:
            fn(rows[i])
        out = []
        for i in order:
            t = time.perf_counter_ns()
            fn(rows[i])
            out.append(time.perf_counter_ns() - t)
        return out

    in_order = np.arange(n)
    shuffled = np.random.default_rng(0).permutation(rows.shape[0])[:n]
    lgb_calls = min(n, 3000)
    one = lambda r: booster.predict(r.reshape(1, -1))  # noqa: E731
    info = booster.dump_model(num_iteration=-1)["tree_info"]
    return {
        "trees": booster.num_trees(), "leaves_max": max(t["num_leaves"] for t in info),
        "features": len(FEATURE_NAMES), "model_train_s": round(train_s, 2),
        "compile_s": round(compile_s, 3), "parity_max_abs_diff": parity,
        "parity_rows": int(rows.shape[0]), "calls": n,
        "compiled_time_order": _pct(time_calls(compiled.predict_row, in_order)),
        "compiled_shuffled": _pct(time_calls(compiled.predict_row, shuffled)),
        "lightgbm_predict_one_row": _pct(time_calls(one, in_order[:lgb_calls])),
        "target_p99_us": 20,
    }


def day_frame(frame, rows: int = 864_000):
    """The real rows tiled to `rows` rows at 100 ms: one synthetic UTC day."""
    import datetime as dt

    import polars as pl

    reps = -(-rows // frame.height)
    tiled = pl.concat([frame.with_columns(pl.lit(k, dtype=pl.Int64).alias("_tile"))
                       for k in range(reps)]).head(rows)
    start = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    return tiled.with_columns(
        pl.datetime_range(start, start + dt.timedelta(milliseconds=100 * (rows - 1)),
                          interval="100ms", time_unit="us", time_zone="UTC", eager=True)
        .alias("timestamp"),
        (pl.col("_tile") * 1_000_000 + pl.col("session_id").rank("dense")).cast(pl.Int64)
        .alias("session_id"),
    ).drop("_tile")


def training_time(frame, threads: int) -> dict:
    from trade_pipeline.models.gate import champion_gate
    from trade_pipeline.models.registry import MlflowTarget, log_and_register
    from trade_pipeline.models.training import train_model
    from trade_pipeline.settings import Settings

    day = day_frame(frame)
    t0 = time.perf_counter()
    result = train_model(day, trials=1, horizon="5s", num_threads=threads)
    train_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as home:
        settings = Settings.load(home=home).ensure_dirs()
        target = MlflowTarget.from_settings(settings)
        t0 = time.perf_counter()
        ref = log_and_register(result, target, "bybit", "BTCUSDT",
                               day.select(result.features).tail(5).to_numpy())
        champion_gate(target, ref.name, ref.version, day)
        log_s = time.perf_counter() - t0
    return {
        "train_rows": day.height, "train_threads": threads,
        "train_trials1_s": round(train_s, 2), "mlflow_log_register_gate_s": round(log_s, 2),
        "train_total_s": round(train_s + log_s, 2), "train_target_s": 60,
        "train_trees": result.booster.num_trees(), "train_tail_ic": result.tail_metrics["ic"],
    }


def run(settings, argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench inference")
    parser.add_argument("--trees", type=int, default=468)
    parser.add_argument("--leaves", type=int, default=57)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads for training")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--json", action="store_true", help="(the bench command prints JSON)")
    args = parser.parse_args(argv)
    frame = real_features()
    out = {"rows": frame.height, **latency(frame, args.trees, args.leaves, args.calls)}
    if not args.skip_train:
        out.update(training_time(frame, args.threads))
    return out


if __name__ == "__main__":
    from trade_pipeline.settings import Settings

    print(json.dumps(run(Settings.load(), sys.argv[1:]), indent=2, default=str))
