"""LightGBM across a Dask cluster: one model on more rows than one worker holds.

`train_distributed(settings, client, start, end)` trains a regression model on the forward
return with `lightgbm.dask` (data-parallel: every worker builds histograms of its own rows,
LightGBM's own network sums them), on a cluster the caller is connected to:

1. The range's days are planned as in `models.dataset` (footer row counts, stride); the
   budget checked is the cluster's (60 % of the workers' memory limits), not this machine's.
2. Each day is loaded **on a worker** (`dataset.day_rows`: labels per session with the next
   day's look-ahead, stride, float32 features), straight from the lake (local folder shared
   by the workers, or `s3://...`), and stays there. Days are assigned to workers round-robin,
   so no worker ever holds the whole range; `rows_per_worker` reports where the rows were.
3. The held-out tail is the last `tail_fraction` of the rows in time; training rows end one
   embargo (>= the horizon) before it, so no training label peeks into the tail.
4. `DaskLGBMRegressor.fit` on the workers' parts; predictions on the tail are computed on the
   workers too and only the tail's predictions and returns come back here, to be scored with
   the same metrics as single-machine training (`training.regression_metrics`) next to the
   naive `sign(order_book_imbalance)` baseline.

Parameters are the single-machine default search point (`training.DEFAULT_SEARCH_POINT`) with a
fixed number of rounds: the Optuna search stays a single-machine affair (its trials are small:
`TrainConfig.max_fit_rows`); this is for the final fit on everything.
"""

import dataclasses
import datetime as dt
import math
import time
import uuid

import numpy as np

from trade_pipeline.models import dataset, significance
from trade_pipeline.models.labels import horizon_name, horizon_rows, parse_horizon
from trade_pipeline.models.training import (
    BASELINE_FEATURE,
    DEFAULT_SEARCH_POINT,
    PRICE_LEVEL_FEATURES,
    TrainingError,
    hit_rate,
    regression_metrics,
)

CLUSTER_BUDGET_SHARE = 0.6


@dataclasses.dataclass
class DistributedResult:
    booster: object  # lightgbm.Booster
    features: list[str]
    horizon: str
    stride: int
    rows: int  # training rows (all workers)
    tail_rows: int
    rows_per_worker: dict[str, int]
    days_per_worker: dict[str, list[str]]
    tail_metrics: dict
    baseline_metrics: dict
    data_start: dt.datetime
    data_end: dt.datetime
    tail_start: dt.datetime
    elapsed_s: float
    rounds: int

    def metrics(self) -> dict:
        out = {
            "horizon": self.horizon, "stride": self.stride, "rows": self.rows,
            "tail_rows": self.tail_rows, "features": len(self.features),
            "workers": len(self.rows_per_worker), "rows_per_worker": self.rows_per_worker,
            "days_per_worker": self.days_per_worker,
            "max_worker_share": max(self.rows_per_worker.values()) / max(self.rows, 1),
            "trees": self.booster.num_trees(), "rounds": self.rounds,
            "data_start": self.data_start.isoformat(), "data_end": self.data_end.isoformat(),
            "tail_start": self.tail_start.isoformat(), "elapsed_s": round(self.elapsed_s, 3),
        }
        out.update({f"tail_{k}": v for k, v in self.tail_metrics.items()})
        out.update({f"baseline_{k}": v for k, v in self.baseline_metrics.items()})
        return out


# ---- tasks that run on the workers ---------------------------------------------------------

def load_day_part(lake_dir: str, key, next_key, features: list[str], horizon: str,
                  stride_ms: int | None) -> dict:
    """One day's training rows as numpy arrays, built on the worker that will keep them."""
    following = dataset.read_label_inputs(lake_dir, next_key) if next_key is not None else None
    day = dataset.day_rows(lake_dir, key, features=features, horizon=horizon,
                           stride_ms=stride_ms, next_label_inputs=following)
    frame = day.frame if day is not None else None
    if frame is None or frame.height == 0:
        return {"x": np.empty((0, len(features)), np.float32), "y": np.empty(0),
                "ts": np.empty(0, np.int64), "obi": np.empty(0, np.float32), "date": key.date}
    matrix = dataset.FeatureMatrix(frame, features)
    return {
        "x": matrix[slice(None)],
        "y": frame.get_column(f"fwd_return_{horizon_name(horizon)}").to_numpy(),
        "ts": frame.get_column("timestamp").dt.epoch("us").to_numpy(),
        "obi": frame.get_column(BASELINE_FEATURE).cast(float).to_numpy()
        if BASELINE_FEATURE in frame.columns else np.empty(0),
        "date": key.date,
    }


def part_summary(part: dict) -> dict:
    ts = part["ts"]
    return {"rows": int(ts.size), "first": int(ts[0]) if ts.size else None,
            "last": int(ts[-1]) if ts.size else None, "date": part["date"]}


def part_ts_at(part: dict, i: int) -> int:
    return int(part["ts"][i])


def part_slice(part: dict, lo_us: int | None, hi_us: int | None) -> dict:
    ts = part["ts"]
    mask = np.ones(ts.size, dtype=bool)
    if lo_us is not None:
        mask &= ts >= lo_us
    if hi_us is not None:
        mask &= ts < hi_us
    return {k: (v[mask] if isinstance(v, np.ndarray) and v.shape[:1] == ts.shape else v)
            for k, v in part.items()}


def part_field(part: dict, name: str) -> np.ndarray:
    return part[name]


def part_rows(part: dict) -> int:
    return int(part["ts"].size)


# ---- the driver ------------------------------------------------------------------------------

def _worker_memory(client) -> int:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return sum(int(w.get("memory_limit") or 0) for w in workers.values())


def train_distributed(
    settings, client, start: str | None = None, end: str | None = None, *,
    horizon: str = "5s", stride: int | None = None, features: list[str] | None = None,
    rounds: int = 200, tail_fraction: float = 0.2, params: dict | None = None, seed: int = 7,
) -> DistributedResult:
    import dask.array as da
    import lightgbm as lgb

    from trade_pipeline.features.catalog import FEATURE_NAMES

    started = time.perf_counter()
    horizon = horizon_name(horizon)
    if not 0 < tail_fraction < 1:
        raise TrainingError(f"tail_fraction must be in (0, 1), got {tail_fraction}")
    features = list(features) if features else [
        n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES]
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise TrainingError(f"the Dask cluster at {client.scheduler.address} has no workers")
    budget = int(_worker_memory(client) * CLUSTER_BUDGET_SHARE) or None
    plan = dataset.plan_dataset(settings, start, end, features=features, horizon=horizon,
                                stride=stride, budget_bytes=budget, check_free=False)
    stride_ms = plan.stride * settings.cadence_ms if plan.stride > 1 else None
    token = uuid.uuid4().hex[:8]
    placed: dict[str, list[str]] = {w: [] for w in workers}
    parts, homes = [], []
    for i, key in enumerate(plan.keys):
        nxt = plan.keys[i + 1] if i + 1 < len(plan.keys) else None
        adjacent = nxt if nxt is not None and nxt.day == key.day + dt.timedelta(days=1) else None
        worker = workers[i % len(workers)]
        placed[worker].append(key.date)
        homes.append(worker)
        parts.append(client.submit(
            load_day_part, settings.lake_dir, key, adjacent, features, horizon, stride_ms,
            workers=[worker], allow_other_workers=False, pure=False,
            key=f"tp-day-{token}-{key.date}",
        ))
    def on_home(fn, i: int, *args):
        """Run `fn` on the worker that holds part i: the rows never move between workers."""
        return client.submit(fn, *args, workers=[homes[i]], allow_other_workers=False,
                             pure=False)

    summaries = client.gather([on_home(part_summary, i, p) for i, p in enumerate(parts)])
    rows = [s["rows"] for s in summaries]
    total = sum(rows)
    if total == 0:
        raise TrainingError("no labelled rows in the range: every session is shorter than "
                            "the horizon")
    # The tail starts at the row at position (1 - tail_fraction) * total, in time order.
    cut = int(total * (1 - tail_fraction))
    cum = np.cumsum(rows)
    j = int(np.searchsorted(cum, cut, side="right"))
    tail_start_us = on_home(part_ts_at, j, parts[j], cut - (int(cum[j - 1]) if j else 0)).result()
    embargo_us = int(parse_horizon(horizon) / dt.timedelta(microseconds=1))

    def collect(lo, hi):
        sliced = [on_home(part_slice, i, p, lo, hi) for i, p in enumerate(parts)]
        sizes = client.gather([on_home(part_rows, i, s) for i, s in enumerate(sliced)])
        kept = [(i, s, n) for i, (s, n) in enumerate(zip(sliced, sizes, strict=True)) if n]
        x = da.concatenate([da.from_delayed(on_home(part_field, i, s, "x"),
                                            shape=(n, len(features)), dtype=np.float32)
                            for i, s, n in kept])
        y = da.concatenate([da.from_delayed(on_home(part_field, i, s, "y"),
                                            shape=(n,), dtype=np.float64) for i, s, n in kept])
        obi = [on_home(part_field, i, s, "obi") for i, s, _ in kept]
        return x, y, obi, kept

    x_fit, y_fit, _, fit_kept = collect(None, tail_start_us - embargo_us)
    x_tail, y_tail, obi_tail, tail_kept = collect(tail_start_us, None)
    n_fit, n_tail = sum(n for *_, n in fit_kept), sum(n for *_, n in tail_kept)
    if n_fit == 0 or n_tail == 0:
        raise TrainingError(f"too few rows to split: {n_fit} training / {n_tail} tail rows")
    rows_per_worker: dict[str, int] = dict.fromkeys(workers, 0)
    for _i, part, n in fit_kept:  # where the training rows actually are, as Dask reports it
        for holder in client.who_has([part]).get(part.key, ()):
            rows_per_worker[holder] += n

    full = {
        "objective": "regression", "verbosity": -1, "num_threads": 1, "seed": seed,
        "deterministic": True, "max_bin": 63, "bagging_freq": 1,
        **DEFAULT_SEARCH_POINT, **(params or {}),
    }
    model = lgb.DaskLGBMRegressor(client=client, n_estimators=rounds, **full)
    model.fit(x_fit, y_fit)
    pred = model.predict(x_tail).compute()
    realized = y_tail.compute()
    tail_metrics = regression_metrics(pred, realized)
    obi = np.concatenate(client.gather(obi_tail))
    # The IC's uncertainty as single-machine training reports it (block bootstrap sized for
    # the labels' overlap; a stride of s rows leaves h / s overlapping rows per label).
    h_rows = max(1, math.ceil(horizon_rows(horizon, settings.cadence_ms) / plan.stride))
    tail_ic = significance.ic_test(pred, realized, h_rows, seed=seed)
    tail_metrics.update(ic_ci=tail_ic.ci, ic_p_value=tail_ic.p_value,
                        independent_returns=round(tail_ic.n_independent, 1))
    baseline = {}
    if obi.size == realized.size:
        base_ic = significance.ic_test(np.sign(obi), realized, h_rows, seed=seed)
        ok = np.isfinite(obi)
        baseline = {"ic": base_ic.ic, "ic_ci": base_ic.ci, "ic_p_value": base_ic.p_value,
                    "hit_rate": hit_rate(np.sign(obi[ok]), realized[ok]), "n": int(ok.sum())}
    firsts = [s["first"] for s in summaries if s["first"] is not None]
    lasts = [s["last"] for s in summaries if s["last"] is not None]

    def to_dt(us: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC)

    client.cancel(parts)
    return DistributedResult(
        booster=model.booster_, features=features, horizon=horizon, stride=plan.stride,
        rows=n_fit, tail_rows=n_tail, rows_per_worker=rows_per_worker,
        days_per_worker={w: d for w, d in placed.items() if d},
        tail_metrics=tail_metrics, baseline_metrics=baseline,
        data_start=to_dt(min(firsts)), data_end=to_dt(max(lasts)),
        tail_start=to_dt(tail_start_us), elapsed_s=time.perf_counter() - started,
        rounds=rounds,
    )
