"""Paper sessions in the warehouse: rows flushed while the session runs, the rest at its end."""

from trade_pipeline.settings import Settings


class Flusher:
    """Writes a running session's new trades and predictions to the warehouse (called in a
    worker thread with `PaperTrader.take_unwritten`'s batch)."""

    def __init__(self, settings: Settings, run_id: str, exchange: str, symbol: str):
        self.settings, self.run_id, self.exchange, self.symbol = settings, run_id, exchange, symbol
        self.written = {"trades": 0, "predictions": 0, "flushes": 0}

    def __call__(self, batch: dict) -> None:
        from trade_pipeline.trading.store import append_rows

        n = append_rows(self.settings, run_id=self.run_id, source="paper", exchange=self.exchange,
                        symbol=self.symbol, **batch)
        for k, v in n.items():
            self.written[k] += v
        self.written["flushes"] += 1


def store_session(settings: Settings, trader, out: dict, run_id: str, flushed: dict | None) -> dict:
    """The session's result row and what was not flushed yet; returns the counts written."""
    from trade_pipeline.lake.warehouse import ensure_warehouse
    from trade_pipeline.trading.store import write_run

    ensure_warehouse(settings)
    rest = trader.take_unwritten(run_id)
    ts = trader.main.ts_us
    metrics = {**out["metrics"], **{k: v for k, v in out.items() if k.startswith("tick_to_signal")},
               "messages": trader.messages, "stop_reason": out["stop_reason"], "ab": out["ab"],
               "stream": out["stream"],
               "in_sample": out["in_sample"], "thresholds": out["thresholds"],
               "shadow": trader.shadow.model.label if trader.shadow else None,
               "execution": "events" if trader.events is not None else "grid"}
    config = trader.config.as_dict() if trader.events is None else trader.events.config.as_dict()
    written = write_run(
        settings, run_id=run_id, source="paper", model=trader.main.model.label,
        start_us=int(ts[0]), end_us=int(ts[-1]), metrics=metrics, config=config,
        trades=rest["trades"], predictions=rest["predictions"], trade_offset=rest["trade_offset"],
        exchange=trader.exchange, symbol=trader.symbol)
    flushed = flushed or {}
    return {"backtest_results": 1,
            "trades": written["trades"] + flushed.get("trades", 0),
            "predictions": written["predictions"] + flushed.get("predictions", 0),
            "flushes_before_end": flushed.get("flushes", 0)}
