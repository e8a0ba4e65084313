"""A small generator of feature frames with the real columns (tests only).

The mid follows a random walk whose next steps lean towards `order_book_imbalance`, so a
model (and the naive baseline) can find signal; sessions break the stream at known times."""

import datetime as dt

import numpy as np
import polars as pl

from trade_pipeline.features.catalog import FEATURE_NAMES

T0 = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)


def feature_frame(
    n: int = 3000, sessions: int = 2, cadence_ms: int = 100, seed: int = 0,
    start: dt.datetime = T0, gap_s: float = 60.0, lean: float = 0.4,
) -> pl.DataFrame:
    """`lean`: how strongly the next steps follow `order_book_imbalance` (0: not at all,
    negative: against it)."""
    rng = np.random.default_rng(seed)
    sess = np.repeat(np.arange(sessions), int(np.ceil(n / sessions)))[:n] + 1
    t_ms = np.arange(n) * cadence_ms + (sess - 1) * int(gap_s * 1000)
    obi = np.clip(np.convolve(rng.normal(size=n), np.ones(20) / 6, mode="same"), -1, 1)
    steps = lean * obi + rng.normal(scale=1.0, size=n)
    mid = 100_000 + np.cumsum(steps)
    spread = np.full(n, 0.1)
    cols = {name: rng.normal(size=n) for name in FEATURE_NAMES}
    cols.update(mid_price=mid, spread=spread, order_book_imbalance=obi,
                # stationary (a random-walk mid would make it drift from day to day)
                spread_bps=spread / 100_000 * 1e4 + rng.normal(scale=1e-3, size=n))
    cols["mid_price_return"] = np.r_[np.nan, mid[1:] / mid[:-1] - 1]
    frame = pl.DataFrame(
        {
            "timestamp": [start + dt.timedelta(milliseconds=int(v)) for v in t_ms],
            "exchange": "bybit", "symbol": "BTCUSDT", "session_id": sess.astype(np.int64),
            **{name: cols[name] for name in FEATURE_NAMES},
        }
    )
    return frame.with_columns(
        pl.col("timestamp").dt.cast_time_unit("us"),
        pl.col("mid_price_return").fill_nan(None),
    )


# ---- order books with a known truth (the noise and planted-edge tests) -----------

def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) with unit variance."""
    from scipy.signal import lfilter

    eps = rng.normal(scale=np.sqrt(1 - phi * phi), size=n)
    eps[0] = rng.normal()
    return lfilter([1.0], [1.0, -phi], eps)


def book_frame(
    n: int, *, seed: int = 0, start: dt.datetime = T0, mid0: float = 100_000.0,
    tick: float = 0.1, move: float | None = None, move_prob: float = 0.3,
    tilt: float = 0.0, phi: float = 0.98, sessions: int = 1,
) -> tuple[pl.DataFrame, np.ndarray]:
    """`l2_snapshots` rows on the 100 ms grid whose truth is known, and the driver.

    The spread is one tick; levels 2-10 sit one tick apart behind the best; their sizes are
    iid. At each row the mid moves by `move` (default one tick) with probability
    `move_prob`, up with probability `0.5 + tilt * I_t`, where I_t is the level-1 imbalance
    (bq_1 - aq_1) / (bq_1 + aq_1) of that row: with `tilt = 0` a pure iid random walk (and
    iid level-1 sizes, I_t iid), otherwise I_t = clip(AR(1) with coefficient `phi`) so the
    edge persists. Returns (frame, I) with I the imbalance of each row."""
    rng = np.random.default_rng(seed)
    move = tick if move is None else move
    if tilt == 0.0:
        imb = rng.uniform(-0.9, 0.9, size=n)  # iid sizes => iid imbalance
    else:
        imb = np.clip(0.5 * _ar1(rng, n, phi), -0.95, 0.95)
    p_up = 0.5 + tilt * imb
    u = rng.random(n)
    moves = rng.random(n) < move_prob
    step = np.where(moves, np.where(u < p_up, 1.0, -1.0), 0.0) * move
    # the move decided at row t shows from row t + 1 on
    mid = mid0 + np.concatenate([[0.0], np.cumsum(step[:-1])])
    mid = np.round(mid / tick) * tick + tick / 2  # mid half-way between two ticks
    total = rng.lognormal(np.log(10.0), 0.5, size=n)
    cols = {}
    for i in range(1, 11):
        cols[f"bid_price_{i}"] = mid - tick / 2 - (i - 1) * tick
        cols[f"ask_price_{i}"] = mid + tick / 2 + (i - 1) * tick
        if i == 1:
            cols["bid_size_1"] = np.round(total * (1 + imb) / 2, 3) + 0.001
            cols["ask_size_1"] = np.round(total * (1 - imb) / 2, 3) + 0.001
        else:
            cols[f"bid_size_{i}"] = np.round(rng.lognormal(np.log(0.5), 1.0, size=n), 3) + 0.001
            cols[f"ask_size_{i}"] = np.round(rng.lognormal(np.log(0.5), 1.0, size=n), 3) + 0.001
    from trade_pipeline.market.schema import SNAPSHOT_SCHEMA

    sess = (np.arange(n) * sessions // n + 1).astype(np.int64)
    t_us = (np.arange(n) * 100_000 + (sess - 1) * 60_000_000).astype(np.int64)
    base = int((start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    frame = pl.DataFrame({
        "timestamp": pl.Series(base + t_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "exchange": "bybit", "symbol": "BTCUSDT",
        **{c: cols[c] for c in SNAPSHOT_SCHEMA if c in cols},
        "update_id": np.arange(n, dtype=np.int64) + 1,
        "received_timestamp": pl.Series(base + t_us).cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC"),
        "session_id": sess,
    })
    # level-1 imbalance as the feature engine computes it, from the rounded sizes
    b1, a1 = cols["bid_size_1"], cols["ask_size_1"]
    return frame.select([c for c in SNAPSHOT_SCHEMA if c in frame.columns]), (b1 - a1) / (b1 + a1)


def book_features(n: int, **kwargs) -> tuple[pl.DataFrame, np.ndarray]:
    """`book_frame` through the real feature engine: (l2_features rows, imbalance)."""
    from trade_pipeline.features.batch import compute_features

    snaps, imb = book_frame(n, **kwargs)
    return compute_features(snaps), imb


# A handful of real features (the driver among them): enough for the model to find an edge
# or fail to, small enough for tests on 10^5 rows to run in seconds.
TEST_FEATURES = (
    "order_book_imbalance", "order_book_imbalance_5", "spread", "mid_price_return",
    "ofi_10s", "ofi_normalized_30s", "l2_volatility_10", "pressure_imbalance",
    "volume_concentration", "book_resilience",
)
