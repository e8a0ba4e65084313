"""What a paper session did: its summary, the A/B comparison, and the MLflow run."""

import re

import numpy as np

from trade_pipeline.settings import Settings


def latency_figures(trader) -> dict:
    lat = np.asarray(trader.tick_to_signal_ns, dtype=np.float64) / 1000.0
    if len(lat) == 0:
        return {"tick_to_signal_rows": 0, "tick_to_signal_p50_us": None, "tick_to_signal_p99_us": None}
    return {"tick_to_signal_rows": len(lat),
            "tick_to_signal_p50_us": float(np.percentile(lat, 50)),
            "tick_to_signal_p99_us": float(np.percentile(lat, 99)),
            "tick_to_signal_max_us": float(lat.max())}


def ab_comparison(trader) -> dict | None:
    if trader.shadow is None:
        return None
    main, shadow = trader.main, trader.shadow
    a, b = np.asarray(main.predictions), np.asarray(shadow.predictions)
    ok = np.isfinite(a) & np.isfinite(b)
    corr = (float(np.corrcoef(a[ok], b[ok])[0, 1])
            if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0 else None)
    sa, sb = np.asarray(main.signals), np.asarray(shadow.signals)
    ea, eb = main.engine, shadow.engine
    return {
        "champion": main.model.label, "champion_version": main.model.version,
        "shadow": shadow.model.label, "shadow_version": shadow.model.version,
        "prediction_corr": corr,
        "signal_agreement": float((sa == sb).mean()) if len(sa) else None,
        "champion_pnl": ea.equity - ea.exe.initial_capital,
        "shadow_pnl": eb.equity - eb.exe.initial_capital,
        "champion_fills": len(ea.trades), "shadow_fills": len(eb.trades),
        "champion_fees": ea.account.fees, "shadow_fees": eb.account.fees,
    }


def _sampler_counters(sampler) -> dict | None:
    report = getattr(sampler, "report", None)
    return report() if callable(report) else None


def _event_part(trader) -> tuple[dict, list, str | None, np.ndarray, np.ndarray]:
    """Metrics (with the order counts), fills, halt, and the equity curve of an
    event-execution session."""
    from trade_pipeline.trading.metrics import compute_metrics

    res = trader.events.run.result()
    eq = res.samples
    ts_us = (eq["ts_ns"].to_numpy() // 1000).astype(np.int64)
    equity = eq["equity"].to_numpy()
    metrics = compute_metrics(ts_us, equity, res.account, res.fills.height)
    metrics["orders"] = res.orders.height
    metrics["orders_by_status"] = dict(res.orders["status"].value_counts().iter_rows())
    fills = [{**r, "fill_at": r["fill_at"].isoformat(),
              "known_at": r["known_at"].isoformat() if r["known_at"] else None}
             for r in res.fills.iter_rows(named=True)]
    return metrics, fills, res.halted, ts_us, equity


def summary(trader, loop, run_id: str) -> dict:
    from trade_pipeline.trading.metrics import compute_metrics

    if trader.events is not None:
        metrics, trades, halted, _ts, _eq = _event_part(trader)
    else:
        eng = trader.engine
        ts = np.asarray(trader.main.ts_us, dtype=np.int64)
        metrics = compute_metrics(ts, np.asarray(trader.equity_curve, dtype=np.float64), eng.account,
                                  len(eng.trades))
        trades, halted = [t.as_dict() for t in eng.trades], eng.halted
    return {
        "run_id": run_id,
        "stop_reason": loop.stop_reason if loop else None,
        "seconds": loop.seconds if loop else None,
        "connections": loop.connections if loop else None,
        "disconnects": dict(loop.stream["disconnects"]) if loop else None,  # by reason
        "stream": loop.stream if loop else None,  # the connection's stats (market/ws_reconnect)
        "messages": trader.messages,
        "rows": trader.rows,
        "sampler": _sampler_counters(trader.sampler),
        "event_input": trader.events.report() if trader.events is not None else None,
        "model": trader.main.model.label,
        "model_version": trader.main.model.version,
        "execution": "events" if trader.events is not None else "grid",
        **latency_figures(trader),
        "metrics": metrics,
        "halted": halted,
        "in_sample": trader.in_sample,
        "thresholds": trader.thresholds.as_dict(),
        "ab": ab_comparison(trader),
        "online_store_writes": trader.online_store.writes if trader.online_store else 0,
        "trades": trades,
        "error": loop.error if loop else None,
    }


def side_by_side(trader):
    """Per row: the champion's and (if any) the shadow's prediction and signal."""
    import polars as pl

    cols = {"timestamp_us": trader.main.ts_us, "champion_prediction": trader.main.predictions,
            "champion_signal": trader.main.signals}
    if trader.shadow is not None:
        cols |= {"shadow_prediction": trader.shadow.predictions, "shadow_signal": trader.shadow.signals}
    return pl.DataFrame(cols)


def _stream_metrics(stream: dict | None) -> dict:
    """Connections and disconnects (in all and per reason) as MLflow metric names."""
    if not stream:
        return {}
    out = {"stream_connections": stream["connections"], "stream_reconnects": stream["reconnects"],
           "stream_disconnects": sum(stream["disconnects"].values())}
    for reason, n in stream["disconnects"].items():
        # reasons are class names and our own words (and "InvalidStatus:503"): keep MLflow's
        # name alphabet
        out["stream_disconnects." + re.sub(r"[^\w.\-/ ]", "_", reason)] = n
    return out


def log_session(settings: Settings, trader, out: dict, run_id: str, *, tracking_uri: str | None,
                artifact_uri: str | None) -> str:
    """The session as an MLflow run (metrics, A/B figures, equity plot, per-row table)."""
    from trade_pipeline.trading.plots import equity_drawdown_png
    from trade_pipeline.trading.tracking import log_run

    flat = {**out["metrics"], **{k: v for k, v in out.items() if k.startswith("tick_to_signal")}}
    flat.update(_stream_metrics(out["stream"]))
    if out["ab"]:
        flat.update({f"ab_{k}": v for k, v in out["ab"].items()})
    if trader.events is not None:
        _m, _f, _h, ts, equity = _event_part(trader)
        params = trader.events.config.as_dict()
    else:
        ts, equity = np.asarray(trader.main.ts_us), np.asarray(trader.equity_curve, dtype=np.float64)
        params = trader.config.as_dict()
    png = equity_drawdown_png(ts, equity, title=f"paper {trader.main.model.label} ({run_id})")
    return log_run(
        settings, run_name=run_id, kind="paper", params=params, metrics=flat,
        pngs={"equity_drawdown.png": png}, tables={"side_by_side.csv": side_by_side(trader)},
        tags={"model": trader.main.model.label, "run_id": run_id,
              "in_sample": str(out["in_sample"]),
              "shadow": trader.shadow.model.label if trader.shadow else ""},
        tracking_uri=tracking_uri, artifact_uri=artifact_uri)
