"""The backtest: the shared `TradingEngine` step over every row of the snapshot grid.

Entry point: `run_backtest(snapshots, predictions, config) -> BacktestResult`.

`predictions` is a frame with `timestamp` and either `signal` (the target position sign,
-1/0/+1, used as given) or `prediction` (an expected return, turned into signals by
`strategy.next_signal` with the thresholds of `strategy.resolve_thresholds`). It is joined to the grid on the timestamp; a grid row without a
prediction makes no new decision (the previous target stays). Predictions whose timestamp
is not on the grid are counted in `unmatched_predictions`.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trade_pipeline.market.schema import ASK_PRICE, ASK_SIZE, BID_PRICE, BID_SIZE
from trade_pipeline.trading.engine import Trade, TradingConfig, TradingEngine
from trade_pipeline.trading.metrics import compute_metrics
from trade_pipeline.trading.strategy import Thresholds, next_signal, resolve_thresholds

TRADE_SCHEMA = {
    "decided_at": pl.Datetime("us", "UTC"),
    "timestamp": pl.Datetime("us", "UTC"),
    "side": pl.Int8,
    "qty": pl.Float64,
    "price": pl.Float64,
    "notional": pl.Float64,
    "fee": pl.Float64,
    "liquidity": pl.String,
    "levels": pl.Int32,
    "unfilled": pl.Float64,
    "position_after": pl.Float64,
    "realized_pnl": pl.Float64,
    "reason": pl.String,
}


def trades_frame(trades: list[Trade]) -> pl.DataFrame:
    rows = {
        "decided_at": [t.decided_us for t in trades],
        "timestamp": [t.fill_us for t in trades],
        "side": [t.side for t in trades],
        "qty": [t.qty for t in trades],
        "price": [t.price for t in trades],
        "notional": [t.notional for t in trades],
        "fee": [t.fee for t in trades],
        "liquidity": [t.liquidity for t in trades],
        "levels": [t.levels for t in trades],
        "unfilled": [t.unfilled for t in trades],
        "position_after": [t.position_after for t in trades],
        "realized_pnl": [t.realized_pnl for t in trades],
        "reason": [t.reason for t in trades],
    }
    frame = pl.DataFrame(
        {k: v for k, v in rows.items() if k not in ("decided_at", "timestamp")},
        schema={k: v for k, v in TRADE_SCHEMA.items() if k not in ("decided_at", "timestamp")},
    )
    times = pl.DataFrame(
        {"decided_at": rows["decided_at"], "timestamp": rows["timestamp"]},
        schema={"decided_at": pl.Int64, "timestamp": pl.Int64},
    ).select(pl.all().cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    return pl.concat([times, frame], how="horizontal")


@dataclass
class BacktestResult:
    ts_us: np.ndarray
    equity: np.ndarray
    trades: list[Trade]
    metrics: dict
    config: TradingConfig
    counts: dict = field(default_factory=dict)
    # Where the run's inputs come from: thresholds and their source, the out-of-sample
    # check, the features' provenance (stored with the metrics).
    provenance: dict = field(default_factory=dict)

    def trades_frame(self) -> pl.DataFrame:
        return trades_frame(self.trades)

    def equity_frame(self) -> pl.DataFrame:
        ts = pl.Series("timestamp", self.ts_us, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return pl.DataFrame([ts, pl.Series("equity", self.equity)])

    def to_dict(self) -> dict:
        return {
            "metrics": self.metrics,
            "counts": self.counts,
            "provenance": self.provenance,
            "config": self.config.as_dict(),
            "trades": [_trade_json(t) for t in self.trades],
        }


def _trade_json(t: Trade) -> dict:
    import datetime as dt

    d = t.as_dict()
    for key in ("decided_us", "fill_us"):
        d[key.replace("_us", "_at")] = dt.datetime.fromtimestamp(d.pop(key) / 1e6, dt.UTC).isoformat()
    return d


class FrameBook:
    """A cursor over a snapshot frame's books that reads a row only when the engine asks
    (fills are rare; the mid is precomputed). Values are the same float64s as the live
    path's `Book`, so both give identical fills."""

    __slots__ = ("_ap", "_as", "_bp", "_bs", "_mid", "i")

    def __init__(self, frame: pl.DataFrame):
        def side(cols, fill):
            arr = frame.select(cols).to_numpy().astype(np.float64)
            arr[np.isnan(arr)] = fill  # null -> NaN price / 0 size
            return arr

        self._bp, self._bs = side(BID_PRICE, np.nan), side(BID_SIZE, 0.0)
        self._ap, self._as = side(ASK_PRICE, np.nan), side(ASK_SIZE, 0.0)
        self._mid = ((self._bp[:, 0] + self._ap[:, 0]) / 2.0).tolist()
        self.i = 0

    @property
    def bid_px(self):
        return self._bp[self.i]

    @property
    def bid_sz(self):
        return self._bs[self.i]

    @property
    def ask_px(self):
        return self._ap[self.i]

    @property
    def ask_sz(self):
        return self._as[self.i]

    @property
    def mid(self) -> float:
        return self._mid[self.i]


def _epoch_us(frame: pl.DataFrame) -> np.ndarray:
    return frame.get_column("timestamp").dt.replace_time_zone("UTC").dt.epoch("us").to_numpy()


def align_signals(snapshots: pl.DataFrame, predictions: pl.DataFrame, config: TradingConfig,
                  thresholds: Thresholds | None = None) -> tuple[np.ndarray, dict]:
    """Per grid row, the target sign (-1/0/+1) as `next_signal` sees it; plus counts.
    `thresholds`: for a `prediction` column (default: `resolve_thresholds` without a model)."""
    has_signal = "signal" in predictions.columns
    has_pred = "prediction" in predictions.columns
    if has_signal == has_pred:
        raise ValueError("predictions need exactly one of the columns 'signal' or 'prediction'")
    col = "signal" if has_signal else "prediction"
    if predictions.get_column("timestamp").is_duplicated().any():
        raise ValueError("predictions have duplicated timestamps")
    preds = predictions.select(
        pl.col("timestamp").dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC")),
        pl.col(col).cast(pl.Float64).alias("_v"),
    )
    if has_signal:
        bad = preds.filter(pl.col("_v").is_not_null() & ~pl.col("_v").is_in([-1.0, 0.0, 1.0]))
        if bad.height:
            raise ValueError(f"signal must be -1, 0 or +1; {bad.height} rows are not, e.g. {bad.row(0)}")
    grid = snapshots.select(pl.col("timestamp").dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC")))
    joined = grid.join(preds, on="timestamp", how="left", maintain_order="left")
    values = joined.get_column("_v").fill_null(math.nan).to_numpy()
    matched = int(np.isfinite(values).sum())
    counts = {"rows": grid.height, "rows_with_prediction": matched,
              "unmatched_predictions": preds.height - matched}
    out = np.zeros(len(values), dtype=np.int8)
    prev = 0
    if has_signal:
        for i, v in enumerate(values.tolist()):
            if v == v:
                prev = int(v)
            out[i] = prev
    else:
        thr = thresholds or resolve_thresholds(config.strategy, config.execution)
        entry, exit_ = thr.entry, thr.exit
        counts["entry_threshold"], counts["threshold_source"] = entry, thr.source
        for i, v in enumerate(values.tolist()):
            prev = next_signal(prev, v, entry, exit_)
            out[i] = prev
    return out, counts


def run_signals(snapshots: pl.DataFrame, signals: np.ndarray, config: TradingConfig) -> BacktestResult:
    """The engine over the grid with per-row target signs already known."""
    if snapshots.height == 0:
        raise ValueError("no snapshot rows to backtest")
    keys = [c for c in ("exchange", "symbol") if c in snapshots.columns]
    if keys and snapshots.select(pl.struct(keys).n_unique()).item() > 1:
        raise ValueError("the backtest runs on one (exchange, symbol) at a time")
    ts = _epoch_us(snapshots)
    if np.any(np.diff(ts) <= 0):
        raise ValueError("snapshot timestamps must be strictly increasing")
    book = FrameBook(snapshots)
    engine = TradingEngine(config)
    equity = np.empty(snapshots.height)
    sig = signals.tolist()
    step = engine.on_row
    for i, t in enumerate(ts.tolist()):
        book.i = i
        equity[i] = step(t, book, sig[i])
    metrics = compute_metrics(ts, equity, engine.account, len(engine.trades))
    metrics["cancelled_orders"] = engine.cancelled_orders
    metrics["unfilled_qty"] = engine.unfilled_qty
    metrics["halted"] = engine.halted
    return BacktestResult(ts, equity, engine.trades, metrics, config)


def run_backtest(snapshots: pl.DataFrame, predictions: pl.DataFrame, config: TradingConfig | None = None) -> BacktestResult:
    """Backtest `predictions` (timestamp + signal | prediction) on the snapshot grid."""
    config = config or TradingConfig()
    snapshots = snapshots.sort("timestamp")
    signals, counts = align_signals(snapshots, predictions, config)
    result = run_signals(snapshots, signals, config)
    result.counts = counts
    return result
