"""Training with bounded memory: rows, seconds and peak RSS of `trade-pipeline train` on 1, 7
and 30 days of `l2_features` from the lake.

`trade-pipeline bench training --json [--days 1,7,30] [--strides auto,1] [--trials 1]
[--base-days 3] [--bench-home DIR] [--register] [--stride-ic]`

How the days are built (once; reused from `--bench-home`, default `<home>/bench-training`):

- `--base-days` distinct UTC days are simulated in full (86,400 s each, seeds 1..N, the
  embedded queue-reactive simulator), rebuilt into the 100 ms grid by the real snapshot
  builder and turned into the 118 features by the real batch engine: 864,000 rows a day.
- Day k of a longer range is base day `k mod N` shifted by k whole days: timestamps + k days,
  `session_id` (the session's start time in us) + k days, so sessions stay unique and no label
  crosses a seam. Written to the lake like `l2_features` (zstd level 3 to keep the build
  short; the reader does not care). 30 days take ~7 GB of disk.

Each measurement is a fresh process (`trade-pipeline train --trials 1 --start --end --stride
... --json`, MLflow registration and the gate too with `--register`), timed from outside:
wall time, CPU time (user + system of the child) and its peak RSS (`wait4` rusage). A
request that the memory budget refuses is reported with the message and the time it took to
refuse. Before each run the machine's available memory must exceed the request's own
estimate plus a 2 GB margin, or the run is skipped with the reason: the bench never puts a
shared machine at risk.

`--stride-ic real,simulated,signal`: the stride's effect on out-of-sample IC, on the real
captures (../shared/data, small), on the distinct simulated base days (no tiling: the
held-out tail must never repeat a training day) and on 3 days with a known signal
(`known_signal`). Models are trained at strides 1, 2, 5, 10, 25 and 50 (default search point,
one fold, `max_fit_rows` off so the stride is the only thinning) and every model is scored on
the same full-resolution tail, with the IC difference to stride 1 and a moving-block
bootstrap (blocks of 10 label windows) of that paired difference.
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

DAY0 = dt.date(2025, 1, 1)
TABLE = "l2_features"
MARGIN_BYTES = 2 * 2**30


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def build_base_day(settings, bench, day: dt.date, seed: int) -> dict:
    """Simulate one full day and write its features into the bench lake."""
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.simulator import SimulatorConfig, simulate_to_store
    from trade_pipeline.market.snapshots import build_snapshots
    from trade_pipeline.settings import Settings
    from trade_pipeline.storage.layout import PartitionKey, write_partition
    from trade_pipeline.storage.raw_store import raw_files_for_day

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-raw-", dir=bench.home) as tmp:
        raw_home = Settings.load(home=tmp).ensure_dirs()
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        sim = simulate_to_store(raw_home, SimulatorConfig(start=start, duration_s=86_400,
                                                          seed=seed))
        files = raw_files_for_day(raw_home, raw_home.exchange, raw_home.symbol, day.isoformat())
        snaps = build_snapshots(files).frame
    snaps = snaps.filter(pl.col("timestamp").dt.date() == day)
    features = compute_features(snaps)
    del snaps
    key = PartitionKey(bench.exchange, bench.symbol, day.isoformat())
    write_partition(features, bench.lake_dir, TABLE, key, compression_level=3)
    return {"day": day.isoformat(), "rows": features.height, "messages": sim["messages"],
            "seconds": round(time.perf_counter() - t0, 1)}


def tile_day(bench, base: dt.date, day: dt.date) -> int:
    from trade_pipeline.storage.layout import PartitionKey, read_partition, write_partition

    shift = day - base
    frame = read_partition(bench.lake_dir, TABLE, PartitionKey(bench.exchange, bench.symbol,
                                                                base.isoformat()))
    frame = frame.with_columns(
        pl.col("timestamp") + shift,
        pl.col("session_id") + int(shift / dt.timedelta(microseconds=1)),
    )
    write_partition(frame, bench.lake_dir, TABLE,
                    PartitionKey(bench.exchange, bench.symbol, day.isoformat()),
                    compression_level=3)
    return frame.height


def ensure_days(bench, n_days: int, base_days: int, log) -> list[dict]:
    from trade_pipeline.storage.layout import list_partitions

    have = {k.date for k in list_partitions(bench.lake_dir, TABLE)}
    built = []
    for i in range(min(base_days, n_days)):
        day = DAY0 + dt.timedelta(days=i)
        if day.isoformat() not in have:
            built.append(build_base_day(bench.settings, bench, day, seed=i + 1))
            log(f"simulated base day {built[-1]}")
    for i in range(base_days, n_days):
        day = DAY0 + dt.timedelta(days=i)
        if day.isoformat() not in have:
            rows = tile_day(bench, DAY0 + dt.timedelta(days=i % base_days), day)
            built.append({"day": day.isoformat(), "rows": rows, "tiled_from": i % base_days})
            log(f"tiled {day} ({rows} rows)")
    return built


class Bench:
    def __init__(self, home: Path):
        from trade_pipeline.settings import Settings

        self.home = home
        self.settings = Settings.load(home=home).ensure_dirs()
        self.lake_dir = self.settings.lake_dir
        self.exchange, self.symbol = self.settings.exchange, self.settings.symbol


def run_train(bench: Bench, days: int, stride: str, trials: int, register: bool,
              budget_gb: float | None) -> dict:
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.models.dataset import auto_stride, available_bytes, estimate_bytes
    from trade_pipeline.models.training import PRICE_LEVEL_FEATURES

    end = DAY0 + dt.timedelta(days=days - 1)
    rows_in = days * 864_000
    n_features = len([n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES])
    budget = (budget_gb or bench.settings.train_memory_gb) * 2**30
    s = auto_stride("5s", 100, rows_in, n_features, budget) if stride == "auto" else int(stride)
    estimate = estimate_bytes(-(-rows_in // s), n_features)
    out = {"days": days, "stride": s, "stride_arg": stride, "estimated_gb": round(estimate / 2**30, 2)}
    free = available_bytes()
    if estimate <= budget and estimate + MARGIN_BYTES > free:
        out["skipped"] = (f"needs ~{estimate / 2**30:.1f} GB + 2 GB margin, the machine has "
                          f"{free / 2**30:.1f} GB available now")
        return out
    cmd = [sys.executable, "-m", "trade_pipeline.cli", "--home", str(bench.home), "train",
           "--trials", str(trials), "--horizon", "5s", "--start", DAY0.isoformat(),
           "--end", end.isoformat(), "--stride", stride, "--json"]
    if not register:
        cmd.append("--no-register")
    env = dict(os.environ)
    if budget_gb:
        env["TRADE_PIPELINE_TRAIN_MEMORY_GB"] = str(budget_gb)
    load_before = _load()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(), se.read().decode()
    out.update(
        exit_code=proc.returncode, wall_s=round(wall, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
        peak_rss_gb=round(usage.ru_maxrss * 1024 / 2**30, 2),
        load_before=load_before, load_after=_load(),
    )
    if proc.returncode == 0:
        metrics = json.loads(stdout)
        out.update(rows_in=rows_in, rows_trained=metrics["rows"],
                   tail_ic=metrics.get("tail_ic"), baseline_ic=metrics.get("baseline_ic"),
                   train_elapsed_s=metrics.get("elapsed_s"))
    else:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        out["error"] = lines[-1][:400] if lines else f"exit {proc.returncode}"
    return out


# ---- stride vs out-of-sample IC ---------------------------------------------------------------

def stride_ic(full: pl.DataFrame, strides=(1, 2, 5, 10, 25, 50), horizon: str = "5s") -> dict:
    """Train at each stride on `full` (labelled at full resolution, `fwd_return_<h>`); score
    every model on the same full-resolution held-out tail (stride 1's)."""
    from arch.bootstrap import MovingBlockBootstrap

    from trade_pipeline.models.training import TrainConfig, score_on_tail, train_model

    label = f"fwd_return_{horizon}"
    window = int(horizon.removesuffix("s")) * 10  # rows per label window at 100 ms
    config = TrainConfig(horizon=horizon, trials=1, n_folds=1, max_fit_rows=None,
                         num_threads=1)
    rows, preds, bounds = {}, {}, None
    for s in strides:
        frame = full if s == 1 else full.filter(
            pl.col("timestamp").dt.epoch("ms") % (100 * s) == 0)
        t0 = time.perf_counter()
        result = train_model(frame, config)
        seconds = time.perf_counter() - t0
        if bounds is None:  # stride 1's tail: the common scoring window
            bounds = (result.tail_start, result.tail_end)
        rows[s] = {"rows": frame.height, "train_s": round(seconds, 1),
                   "trees": result.booster.num_trees()}
        captured: list[np.ndarray] = []

        def predict(x, booster=result.booster, captured=captured):
            captured.append(booster.predict(x))
            return captured[-1]

        metrics = score_on_tail(predict, result.features, full, bounds, config)
        preds[s] = np.concatenate(captured)  # predicted in row chunks (dataset.predict_rows)
        rows[s].update(tail_ic=_r(metrics["ic"]), tail_rank_ic=_r(metrics["rank_ic"]),
                       tail_rows=metrics["n"])
    # the rows score_on_tail scored (it allows 1 us either side for the datetime round trip)
    one_us = dt.timedelta(microseconds=1)
    tail = full.filter(pl.col("timestamp").is_between(bounds[0] - one_us, bounds[1] + one_us))
    realized = tail.get_column(label).to_numpy()
    block = 10 * window  # 10 label windows per bootstrap block (overlapping labels)

    def diff(a, b, y):
        return np.corrcoef(a, y)[0, 1] - np.corrcoef(b, y)[0, 1]

    for s in strides[1:]:
        bs = MovingBlockBootstrap(block, preds[s], preds[1], realized, seed=7)
        draws = bs.apply(diff, reps=200).ravel()
        rows[s]["ic_minus_stride1"] = _r(diff(preds[s], preds[1], realized))
        rows[s]["diff_ci95"] = [_r(np.percentile(draws, q)) for q in (2.5, 97.5)]
    return {"tail_rows": int(realized.size), "independent_labels": int(realized.size // window),
            "tail": [b.isoformat() for b in bounds], "strides": rows}


def _r(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 5)


def labelled(frame: pl.DataFrame, horizon: str = "5s") -> pl.DataFrame:
    """Label at full resolution, keep labelled rows, model features as float32 (what the
    lake loader produces)."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.models.labels import forward_returns
    from trade_pipeline.models.training import PRICE_LEVEL_FEATURES

    ret = forward_returns(frame, horizon)
    feats = [n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES]
    out = frame.with_columns(ret).filter(ret.is_not_null())
    return out.with_columns(pl.col(feats).cast(pl.Float32)).sort("timestamp")


def known_signal(days: int = 3, seed: int = 11) -> pl.DataFrame:
    """Grid rows with a known, persistent signal (the real captures are small and the
    simulator's books carry no learnable 5 s signal): `order_book_imbalance` follows an AR(1)
    with a 3 s half-life, each 100 ms mid step is 0.03 x imbalance + N(0, 1) ticks, and the
    other 92 model features are noise. The best possible 5 s IC is ~0.3."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.models.training import PRICE_LEVEL_FEATURES

    rng = np.random.default_rng(seed)
    n = days * 864_000
    phi = 0.5 ** (1 / 30)  # 3 s half-life at 100 ms
    shocks = rng.normal(scale=np.sqrt(1 - phi**2), size=n)
    obi = np.empty(n)
    obi[0] = shocks[0]
    for i in range(1, n):  # plain loop over 2.6M rows: ~1 s
        obi[i] = phi * obi[i - 1] + shocks[i]
    mid = 100_000 + 0.1 * np.cumsum(0.03 * obi + rng.normal(size=n))
    start = dt.datetime.combine(DAY0, dt.time(), tzinfo=dt.UTC)
    feats = [f for f in FEATURE_NAMES if f not in PRICE_LEVEL_FEATURES]
    cols = {f: rng.normal(size=n).astype(np.float32) for f in feats}
    cols.update(order_book_imbalance=obi.astype(np.float32),
                spread=np.full(n, 0.1, np.float32))
    frame = pl.DataFrame({
        "timestamp": pl.datetime_range(start, start + dt.timedelta(milliseconds=100 * (n - 1)),
                                       dt.timedelta(milliseconds=100), time_unit="us",
                                       eager=True),
        "session_id": np.repeat(np.arange(days, dtype=np.int64), 864_000),
        "mid_price": mid, **cols,
    })
    from trade_pipeline.models.labels import forward_returns

    ret = forward_returns(frame, "5s")
    return frame.with_columns(ret).filter(ret.is_not_null())


def real_captures() -> pl.DataFrame | None:
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.snapshots import build_snapshots

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bybit"
    files = sorted(p for p in data.glob("*.jsonl.gz") if "175705" not in p.name)
    return compute_features(build_snapshots(files).frame) if files else None


def run(settings, argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="bench training")
    p.add_argument("--days", default="1,7,30")
    p.add_argument("--strides", default="auto,1", help="comma list; 'auto' or integers")
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--base-days", type=int, default=3)
    p.add_argument("--bench-home", type=Path, default=None)
    p.add_argument("--register", action="store_true",
                   help="also log + register in MLflow and run the gate (as `train` does)")
    p.add_argument("--budget-gb", type=float, default=None)
    p.add_argument("--stride-ic", default="",
                   help="comma list of data sets for the stride/IC study: real,simulated,signal")
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args(argv)
    home = args.bench_home or Path(settings.home) / "bench-training"
    bench = Bench(home)

    def log(msg: str) -> None:
        print(f"[bench training] {msg}", file=sys.stderr, flush=True)

    days = sorted({int(d) for d in args.days.split(",") if d})
    out: dict = {"bench_home": str(home), "load_start": _load(), "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    out["built"] = ensure_days(bench, max([*days, args.base_days]), args.base_days, log)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    runs = []
    if not args.skip_train:
        for n in days:
            for stride in args.strides.split(","):
                log(f"train {n} day(s), stride {stride}")
                runs.append(run_train(bench, n, stride, args.trials, args.register,
                                      args.budget_gb))
                log(json.dumps(runs[-1]))
    out["runs"] = runs
    sets = set(args.stride_ic.split(",")) if args.stride_ic else set()
    if "real" in sets:
        log("stride vs IC: real captures")
        real = real_captures()
        if real is not None:
            out["stride_ic_real_captures"] = stride_ic(labelled(real))
    if "simulated" in sets:
        from trade_pipeline.models.training import load_feature_frame

        log("stride vs IC: simulated base days")
        last = (DAY0 + dt.timedelta(days=args.base_days - 1)).isoformat()
        sim, _ = load_feature_frame(bench.settings, DAY0.isoformat(), last, horizon="5s",
                                    stride=1)
        out["stride_ic_simulated_days"] = stride_ic(sim)
    if "signal" in sets:
        log("stride vs IC: 3 days with a known signal")
        out["stride_ic_known_signal"] = stride_ic(known_signal())
    out["load_end"] = _load()
    return out


if __name__ == "__main__":
    from trade_pipeline.settings import Settings

    print(json.dumps(run(Settings.load(), sys.argv[1:]), indent=2, default=str))
