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
