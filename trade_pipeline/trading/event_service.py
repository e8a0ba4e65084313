"""Event backtests end to end: captures -> events (book changes and trades,
`market.event_stream`) -> scripted orders or a strategy -> fills, report, plots -> JSON (and
MLflow). Shared by the CLI and the Dagster asset."""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from trade_pipeline.settings import Settings, SettingsError
from trade_pipeline.trading.event.engine import EventEngine, prepare_events
from trade_pipeline.trading.event_config import EventBacktestConfig
from trade_pipeline.trading.event_report import MARKOUT_HORIZONS_S, report
from trade_pipeline.trading.scripted_orders import ScriptedOrder, read_orders

QUEUE_CHOICES = {"risk_averse": "risk_averse", "prob": "prob_power", "prob_power": "prob_power",
                 "prob_log": "prob_log"}


def iso_utc(t) -> str | None:
    """A polars/py datetime -> ISO 8601 with the UTC offset."""
    return None if t is None else t.isoformat()


@dataclass
class EventRunOutput:
    mode: str
    fills: pl.DataFrame  # with markouts
    orders: pl.DataFrame
    figures: dict
    equity: pl.DataFrame
    counts: dict
    config: EventBacktestConfig
    refused: list = field(default_factory=list)
    id_names: dict = field(default_factory=dict)
    halted: str | None = None

    def fills_json(self) -> list[dict]:
        out = []
        for r in self.fills.iter_rows(named=True):
            oid = self.id_names.get(r["order_id"], r["order_id"])
            out.append({"order_id": str(oid), "price": r["price"], "qty": r["qty"],
                        "liquidity": r["liquidity"], "fill_at": iso_utc(r["fill_at"]),
                        "side": "buy" if r["side"] == 1 else "sell", "fee": r["fee"],
                        **{f"markout_{h}s_bp": r[f"markout_{h}s_bp"] for h in MARKOUT_HORIZONS_S}})
        return out

    def orders_json(self) -> list[dict]:
        out = []
        for r in self.orders.iter_rows(named=True):
            d = {k: (iso_utc(v) if k.endswith("_at") else v) for k, v in r.items()}
            d["order_id"] = str(self.id_names.get(r["order_id"], r["order_id"]))
            d["side"] = "buy" if r["side"] == 1 else "sell"
            if d["price"] is not None and math.isnan(d["price"]):
                d["price"] = None
            out.append(d)
        return out

    def to_dict(self) -> dict:
        return {"mode": self.mode, "fills": self.fills_json(), "orders": self.orders_json(),
                "refused": self.refused, "report": self.figures, "counts": self.counts,
                "halted": self.halted, "config": self.config.as_dict()}

    def metrics(self) -> dict:
        """Flat numeric figures (MLflow / Dagster metadata)."""
        f = self.figures
        out = {"fills": f["fills"], "maker_fills": f["maker_fills"], "taker_fills": f["taker_fills"],
               "orders": f["orders"], "fill_ratio_qty": f["fill_ratio_qty"],
               "fill_ratio_orders": f["fill_ratio_orders"],
               "time_in_queue_to_fill_median_s": f["time_in_queue_to_fill_s"]["median"],
               **{f"pnl_{k}": v for k, v in f["pnl"].items()},
               **{f"pnl_{k}": f["pnl_uncertainty"][k] for k in ("total_ci_low", "total_ci_high",
                                                                "total_p_value")},
               **{f"markout_{h}_{k}_bp": v[k] for h, v in f["markout_bp"].items()
                  for k in ("mean", "ci_low", "ci_high")}}
        return {k: v for k, v in out.items() if v is not None}

    def png(self, title: str) -> bytes:
        from trade_pipeline.trading.plots import event_run_png

        curves = {}
        for kind in ("maker", "taker"):
            sub = self.fills.filter(pl.col("liquidity") == kind)
            if sub.height:
                curves[kind] = {h: sub[f"markout_{h}s_bp"].mean() for h in MARKOUT_HORIZONS_S}
        return event_run_png(self.equity["ts_ns"].to_numpy(), self.equity["equity"].to_numpy(),
                             self.equity["position"].to_numpy(), curves, title=title)


@dataclass
class EventInput:
    """The captures as the engine runs them, and what was read."""

    stream: np.ndarray  # `market.event_stream`'s events: order of receipt, times of record
    events: np.ndarray  # the same rows, exchange clock made non-decreasing (the engine's input)
    report: dict  # the builder's report, plus `exch_ts_raised`


def load_events(captures: list[str], fmt: str = "auto") -> EventInput:
    """Captures -> their book changes and trades (`market.event_stream`, the same conversion
    as paper trading's, message by message) -> the engine's order (`monotone_exchange_clock`)."""
    from trade_pipeline.market.event_stream import (
        build_event_stream,
        event_type,
        monotone_exchange_clock,
    )
    from trade_pipeline.market.events import TRADE_EVENT

    stream, built = build_event_stream(captures, fmt)
    if not np.any(event_type(stream) != TRADE_EVENT):
        raise SettingsError("the captures hold no book events")
    events = stream.copy()
    report = built.to_dict()
    report["exch_ts_raised"] = monotone_exchange_clock(events)
    return EventInput(stream, events, report)


def _output(mode, fills, orders, events, config, counts, **kw) -> EventRunOutput:
    ex = config.execution
    figures, marked, equity = report(fills, orders, events, tick_size=ex.tick_size,
                                     lot_size=ex.lot_size, initial_capital=ex.initial_capital)
    return EventRunOutput(mode, marked, orders, figures, equity, counts, config, **kw)


def run_scripted(events: np.ndarray, config: EventBacktestConfig,
                 orders: list[ScriptedOrder]) -> EventRunOutput:
    """`orders`: the ORDERS file as `scripted_orders.read_orders` parsed it."""
    from trade_pipeline.trading.scripted_orders import run_orders

    prepared, info = prepare_events(events, config.execution)
    engine = EventEngine(config.execution, prepared, prepared=True)
    engine.prepare_info = info
    refused = run_orders(engine, orders)
    return _output("orders", engine.fills(), engine.order_log(), prepared, config, engine.counts(),
                   refused=refused, id_names=engine.id_names)


def model_signals(settings: Settings, model_ref: str, captures: list[str], stream: np.ndarray,
                  prepared: np.ndarray) -> pl.DataFrame:
    """The registered model's predictions on the captures' snapshot grid, as signals usable
    from the receive time of the message that completed each row (`stream`: the builder's
    events, `prepared`: the same rows as the engine runs them)."""
    from trade_pipeline.market.snapshots import build_snapshots
    from trade_pipeline.trading.event_backtest import signals_from_predictions
    from trade_pipeline.trading.inputs import model_predictions
    from trade_pipeline.trading.model_adapter import load_model

    model = load_model(settings, model_ref)
    snaps = build_snapshots([Path(c) for c in captures]).frame
    preds = model_predictions(model, snaps)
    ts_us = preds["timestamp"].dt.epoch("us").to_numpy()
    return signals_from_predictions(stream, prepared, ts_us, preds["prediction"].to_numpy())


def run_strategy(events: np.ndarray, config: EventBacktestConfig,
                 signals: pl.DataFrame | None = None) -> EventRunOutput:
    from trade_pipeline.trading.event_backtest import EventRun

    prepared, info = prepare_events(events, config.execution)
    run = EventRun(config, prepared, signals=signals, prepared=True)
    run.engine.prepare_info = info
    run.finish()
    res = run.result()
    return _output(config.run.strategy, res.fills, res.orders, prepared, config, res.counts,
                   halted=res.halted)


def day_config() -> EventBacktestConfig:
    """The asset's default: the GLFT market maker, its order arrivals read from the touch (a
    day's captures may hold the book topic alone), a 5-minute estimation window. Maker
    orders fill on the captures' trades whenever they carry any."""
    from trade_pipeline.trading.event_config import EventRunConfig
    from trade_pipeline.trading.market_maker import MarketMakerConfig

    return EventBacktestConfig(run=EventRunConfig(strategy="market_maker"),
                               market_maker=MarketMakerConfig(arrival="touch", window=3000))


def run_captures(settings: Settings, captures: list[str], config: EventBacktestConfig, *,
                 fmt: str = "auto", orders_path: str | None = None,
                 model_ref: str | None = None) -> tuple[EventRunOutput, dict]:
    """Scripted orders (`orders_path`) or the config's strategy on the captures (their book
    changes and trades); returns the output and the input report."""
    # a bad ORDERS file fails before the captures are read (seconds to minutes of them)
    orders = read_orders(orders_path) if orders_path else None
    data = load_events(captures, fmt)
    if orders is not None:
        return run_scripted(data.events, config, orders), data.report
    signals = None
    if config.run.strategy in ("maker", "taker"):
        if not model_ref:
            raise SettingsError(f"strategy {config.run.strategy!r} trades a model's signal: "
                                "give --model NAME@ALIAS")
        prepared, _ = prepare_events(data.events, config.execution)
        signals = model_signals(settings, model_ref, captures, data.stream, prepared)
    return run_strategy(data.events, config, signals), data.report


def run_market(settings: Settings, source: dict | None) -> tuple[str, str]:
    """(exchange, symbol) the run traded: the captures' as the event-stream builder read
    them (`source`: its report), each falling back to the settings' when the data did not
    say or says something that is not a valid name (it becomes an experiment name and an
    artifact path)."""
    from trade_pipeline.settings import check_exchange, check_symbol

    def valid(check, value) -> str | None:
        try:
            return check(value) if value is not None else None
        except SettingsError:
            return None

    source = source or {}
    return (valid(check_exchange, source.get("exchange")) or settings.exchange,
            valid(check_symbol, source.get("symbol")) or settings.symbol)


def log_output(settings: Settings, out: EventRunOutput, *, source: dict | None = None,
               tracking_uri: str | None = None,
               artifact_uri: str | None = None) -> tuple[str, str, bytes]:
    """The run in MLflow (metrics, config, plots, fills/orders/equity tables), under the
    experiment of the market the captures hold (`source`: the input report; `run_market`);
    returns (run id, MLflow run id, the plot)."""
    from trade_pipeline.trading.service import new_run_id
    from trade_pipeline.trading.tracking import log_run

    run_id = new_run_id("ev")
    exchange, symbol = run_market(settings, source)
    png = out.png(f"event backtest {out.mode} ({run_id})")
    mlflow_id = log_run(
        settings, run_name=run_id, kind="event_backtest", params=out.config.as_dict(),
        metrics=out.metrics(), pngs={"event_backtest.png": png},
        tables={"fills.csv": out.fills, "orders.csv": out.orders, "equity.csv": out.equity},
        tags={"mode": out.mode, "run_id": run_id, "exchange": exchange, "symbol": symbol},
        tracking_uri=tracking_uri, artifact_uri=artifact_uri, exchange=exchange, symbol=symbol)
    return run_id, mlflow_id, png


def event_backtest_command(settings: Settings, *, captures: list[str], fmt: str = "auto",
                           orders_path: str | None, config_path: str | None,
                           queue_model: str | None, model_ref: str | None = None,
                           store: bool = True) -> dict:
    from trade_pipeline.trading.store import _json_safe

    config = EventBacktestConfig.load(config_path)
    if queue_model:
        config = config.with_(execution=config.execution.with_(queue_model=QUEUE_CHOICES[queue_model]))
    out, report_in = run_captures(settings, captures, config, fmt=fmt, orders_path=orders_path,
                                  model_ref=model_ref)
    result = out.to_dict()
    result["input"] = report_in
    if store:
        result["run_id"], result["mlflow_run_id"], _png = log_output(settings, out, source=report_in)
    return _json_safe(result)
