"""Warehouse writes of the trading area: `predictions`, `trades`, `backtest_results`.

The one place that maps our objects to the warehouse columns (sql/001_add_l2_feature_tables.sql).
Paper runs are recorded in `backtest_results` too, with `metrics.source = "paper"` and
their tick-to-signal latency figures.
"""

import datetime as dt
import json
import math

import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.settings import Settings
from trade_pipeline.storage.tables import BACKTEST_RESULTS, PREDICTIONS, TRADE_LOG
from trade_pipeline.trading.engine import Trade

PREDICTION_COLUMNS = ["timestamp", "exchange", "symbol", "model_name", "model_version",
                      "prediction", "signal", "source", "run_id", "role"]
TRADE_COLUMNS = ["trade_id", "run_id", "source", "timestamp", "exchange", "symbol", "side", "qty",
                 "price", "fee", "liquidity", "position_after", "realized_pnl"]
SOURCES = ("backtest", "paper")
# A/B role of a paper prediction (the traded model vs the shadow); backtests store NULL.
ROLES = ("champion", "shadow")
REQUIRED_TABLES = (PREDICTIONS, TRADE_LOG, BACKTEST_RESULTS)


class WarehouseNotReady(TradePipelineError, RuntimeError):
    """The trading tables are missing: the migrations have not run."""


def _check_tables(conn) -> None:
    have = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    missing = [t for t in REQUIRED_TABLES if t not in have]
    if missing:
        raise WarehouseNotReady(
            f"warehouse tables {missing} do not exist: run `trade-pipeline migrate` first")


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _us_to_dt(ts_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC)


def predictions_frame(ts_us, predictions, signals, *, exchange: str, symbol: str, model_name: str,
                      model_version: int, source: str, run_id: str,
                      role: str | None = None) -> pl.DataFrame:
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES} or None, got {role!r}")
    n = len(ts_us)
    return pl.DataFrame({
        "timestamp": pl.Series(ts_us, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "exchange": [exchange] * n, "symbol": [symbol] * n,
        "model_name": [model_name] * n, "model_version": pl.Series([model_version] * n, dtype=pl.Int32),
        "prediction": pl.Series(predictions, dtype=pl.Float64).fill_nan(None),
        "signal": pl.Series(signals, dtype=pl.Int32),
        "source": [source] * n, "run_id": [run_id] * n,
        "role": pl.Series([role] * n, dtype=pl.String),
    })


def trades_rows(trades: list[Trade], *, run_id: str, source: str, exchange: str, symbol: str,
                offset: int = 0) -> pl.DataFrame:
    """Trade ids are the fill's position in the run (`offset` + index), zero-padded."""
    return pl.DataFrame({
        "trade_id": [f"{offset + i:07d}" for i in range(len(trades))],
        "run_id": [run_id] * len(trades),
        "source": [source] * len(trades),
        "timestamp": pl.Series([t.fill_us for t in trades], dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "exchange": [exchange] * len(trades), "symbol": [symbol] * len(trades),
        "side": ["buy" if t.side > 0 else "sell" for t in trades],
        "qty": pl.Series([t.qty for t in trades], dtype=pl.Float64),
        "price": pl.Series([t.price for t in trades], dtype=pl.Float64),
        "fee": pl.Series([t.fee for t in trades], dtype=pl.Float64),
        "liquidity": pl.Series([t.liquidity for t in trades], dtype=pl.String),
        "position_after": pl.Series([t.position_after for t in trades], dtype=pl.Float64),
        "realized_pnl": pl.Series([t.realized_pnl for t in trades], dtype=pl.Float64),
    }, schema_overrides={"trade_id": pl.String, "run_id": pl.String, "source": pl.String,
                         "exchange": pl.String, "symbol": pl.String, "side": pl.String})


def _insert(conn, table: str, frame: pl.DataFrame, columns: list[str]) -> int:
    if frame.height == 0:
        return 0
    arrow = frame.select(columns).to_arrow()
    conn.register("_tp_rows", arrow)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _tp_rows")
    finally:
        conn.unregister("_tp_rows")
    return frame.height


def write_run(
    settings: Settings,
    *,
    run_id: str,
    source: str,
    model: str,
    start_us: int,
    end_us: int,
    metrics: dict,
    config: dict,
    trades: list[Trade],
    predictions: list[pl.DataFrame] | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
    trade_offset: int = 0,
) -> dict:
    """One run (backtest or paper) in one transaction: its result row, trades and predictions
    (for a paper run: those not yet written by `append_rows`, trade ids from `trade_offset`).
    Returns the row counts written."""
    from trade_pipeline.lake.warehouse import session

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    exchange = exchange or settings.exchange
    symbol = symbol or settings.symbol
    metrics = _json_safe({**metrics, "source": source})
    with session(settings) as conn:
        _check_tables(conn)
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(
                f'INSERT INTO {BACKTEST_RESULTS} (run_id, model, "start", "end", metrics, config) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, model, _us_to_dt(start_us), _us_to_dt(end_us),
                 json.dumps(metrics), json.dumps(_json_safe(config))],
            )
            n_trades = _insert(conn, TRADE_LOG, trades_rows(
                trades, run_id=run_id, source=source, exchange=exchange, symbol=symbol,
                offset=trade_offset), TRADE_COLUMNS)
            n_preds = sum(_insert(conn, PREDICTIONS, p, PREDICTION_COLUMNS) for p in predictions or [])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return {"backtest_results": 1, "trades": n_trades, "predictions": n_preds}


def append_rows(settings: Settings, *, run_id: str, source: str, exchange: str, symbol: str,
                trades: list[Trade], trade_offset: int, predictions: list[pl.DataFrame]) -> dict:
    """A running session's new trades and predictions, in one short transaction (paper
    trading flushes every few seconds so a crash loses little and monitors see the run)."""
    from trade_pipeline.lake.warehouse import session

    with session(settings) as conn:
        _check_tables(conn)
        conn.execute("BEGIN TRANSACTION")
        try:
            n_trades = _insert(conn, TRADE_LOG, trades_rows(
                trades, run_id=run_id, source=source, exchange=exchange, symbol=symbol,
                offset=trade_offset), TRADE_COLUMNS)
            n_preds = sum(_insert(conn, PREDICTIONS, p, PREDICTION_COLUMNS) for p in predictions)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return {"trades": n_trades, "predictions": n_preds}


def read_run(settings: Settings, run_id: str) -> dict:
    """The stored result row, trades and predictions of one run (for checks and tests)."""
    from trade_pipeline.lake.warehouse import session

    with session(settings, read_only=True) as conn:
        res = conn.sql("SELECT * FROM backtest_results WHERE run_id = ?", params=[run_id]).to_arrow_table()
        trades = conn.sql("SELECT * FROM trades WHERE run_id = ? ORDER BY trade_id", params=[run_id]).to_arrow_table()
        preds = conn.sql('SELECT * FROM predictions WHERE run_id = ? ORDER BY model_version, "timestamp"',
                         params=[run_id]).to_arrow_table()
    return {"result": pl.from_arrow(res), "trades": pl.from_arrow(trades),
            "predictions": pl.from_arrow(preds)}
