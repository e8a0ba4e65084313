"""Paper trading: the live path on a WebSocket stream, with the backtest's execution model.

message -> `LiveSampler` (book + grid, the batch sampler's code) -> grid row ->
`OnlineFeatures` (the batch kernels, one row at a time) -> compiled model -> `next_signal`
-> `TradingEngine.on_row` (the backtest's step) -> position and PnL.

Tick to signal (measured per grid row: from the frame's arrival in the process to the
signal; the network is excluded) covers parse, book update, grid emission, features and
inference. Redis and warehouse writes come after the signal.

A/B: a shadow model sees the same rows and features; its predictions and signals are kept
(and simulated on its own engine) beside the champion's, stored with the same run id and
compared in the run summary and MLflow.

Risk: max position, drawdown stop and cooldown act inside the engine; the kill switch and
the stale-data halt (`risk.py`) flatten against the last book seen and stop the loop.
"""

import asyncio
import gc
import time
from dataclasses import dataclass, field

import numpy as np

from trade_pipeline.market.schema import BOOK_COLUMNS
from trade_pipeline.settings import Settings
from trade_pipeline.trading.engine import Book, TradingConfig, TradingEngine
from trade_pipeline.trading.model_adapter import LoadedModel
from trade_pipeline.trading.risk import KillSwitch, StaleDataGuard
from trade_pipeline.trading.strategy import next_signal, resolve_thresholds

PING_INTERVAL_S = 20.0
# `_process` slices a sampler row (BOOK_COLUMNS order) into a Book by position.
if list(BOOK_COLUMNS[:4]) != ["bid_price_1", "bid_size_1", "bid_price_2", "bid_size_2"] or \
        list(BOOK_COLUMNS[20:22]) != ["ask_price_1", "ask_size_1"] or len(BOOK_COLUMNS) != 40:
    raise RuntimeError("BOOK_COLUMNS layout changed: update PaperTrader._process")


@dataclass
class ModelTrack:
    """One model's view of the stream: predictions, signals and its own simulated engine."""

    model: LoadedModel
    engine: TradingEngine
    index: np.ndarray | None  # positions of the model's features in the catalog order
    signal: int = 0
    ts_us: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    signals: list = field(default_factory=list)

    def __post_init__(self) -> None:
        # Bound once: the compiled evaluator's row entry (expected return), skipping the
        # adapter layers.
        self._row = self.model.row_function()
        self._sel = np.empty(len(self.index), dtype=np.float64) if self.index is not None else None

    def predict(self, x: np.ndarray) -> float:
        if self.index is None:
            return self._row(x)
        np.take(x, self.index, out=self._sel)  # precomputed positions, preallocated buffer
        return self._row(self._sel)


def _feature_index(model: LoadedModel, names: list[str]) -> np.ndarray | None:
    if list(model.feature_names) == list(names):
        return None
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for n in model.feature_names if n not in pos]
    if missing:
        raise ValueError(f"model {model.label} uses features the catalog lacks: {missing[:5]}")
    return np.array([pos[n] for n in model.feature_names], dtype=np.int64)


class PaperTrader:
    """The per-message live path; no I/O of its own besides the optional online store."""

    def __init__(self, *, sampler, features, feature_names: list[str], model: LoadedModel,
                 config: TradingConfig, shadow: LoadedModel | None = None, online_store=None,
                 exchange: str = "bybit", symbol: str = "BTCUSDT", allow_in_sample: bool = False):
        self.sampler = sampler
        self.features = features
        self.feature_names = list(feature_names)
        self.config = config
        self.exchange, self.symbol = exchange, symbol
        self.main = ModelTrack(model, TradingEngine(config), _feature_index(model, self.feature_names))
        self.shadow = (ModelTrack(shadow, TradingEngine(config), _feature_index(shadow, self.feature_names))
                       if shadow is not None else None)
        self.online_store = online_store
        self.tick_to_signal_ns: list[int] = []
        self.equity_curve: list[float] = []
        self._written_rows = 0
        self._written_trades = 0
        self.messages = 0
        self.rows = 0
        self.last_x: np.ndarray | None = None
        # The model's decision rule (or an explicit [strategy] threshold), and its own for
        # the shadow; the out-of-sample guard of the traded model's training range.
        self.thresholds = resolve_thresholds(config.strategy, config.execution, model.rule)
        self._entry, self._exit = self.thresholds.entry, self.thresholds.exit
        self._shadow_thr = (resolve_thresholds(config.strategy, config.execution, shadow.rule)
                            if shadow is not None else None)
        self.guard = model.oos_guard(allow_in_sample)
        self.in_sample = False

    @property
    def engine(self) -> TradingEngine:
        return self.main.engine

    def on_message(self, raw, recv_ns: int, t0_ns: int | None = None) -> int:
        """Process one WebSocket frame; returns the number of grid rows it emitted.

        First the signal of every row the frame completes (the latency-critical part), then
        the simulated orders, the shadow model and the online-store write (latest row)."""
        t0 = time.perf_counter_ns() if t0_ns is None else t0_ns
        self.messages += 1
        block = self.sampler.on_message_arrays(raw, recv_ns)
        if block is None:
            return 0
        self._process(block[0], block[1], t0)
        return block[0].shape[0]

    def finish(self) -> int:
        """End of input: the sampler's last grid rows (as the batch sampler emits at the end)."""
        block = self.sampler.close_arrays()
        if block is None:
            return 0
        self._process(block[0], block[1], time.perf_counter_ns())
        return block[0].shape[0]

    def _process(self, out_i: np.ndarray, out_f: np.ndarray, t0: int) -> None:
        """Rows as the sampler's arrays (out_i: timestamp us, receive us, update id, session id;
        out_f: the 40 book values in BOOK_COLUMNS order), views valid during this call only.

        Hot loop: no per-row dicts or tuples; the features come back in the engine's own
        buffer (copied once, for the steps after the signal) and go straight to the compiled
        model (feature selection precomputed as an index array, or none)."""
        main = self.main
        entry, exit_ = self._entry, self._exit
        update = self.features.update_book_view
        predict = main.predict
        clock = time.perf_counter_ns
        lat = self.tick_to_signal_ns
        ts_list = out_i[:, 0].tolist()
        sid_list = out_i[:, 3].tolist()
        n = len(ts_list)
        if self.guard.check_span(ts_list[0], ts_list[-1]):
            self.in_sample = True
        xs = []
        preds = []
        sigs = []
        sig = main.signal
        for k in range(n):
            x = update(ts_list[k], sid_list[k], out_f[k])
            pred = predict(x)
            sig = next_signal(sig, pred, entry, exit_)
            lat.append(clock() - t0)
            xs.append(x.copy())
            preds.append(pred)
            sigs.append(sig)
        main.signal = sig
        # After the signals: simulated orders, the shadow model, bookkeeping.
        books = out_f.tolist()
        shadow = self.shadow
        for k in range(n):
            ts, x, pred, sig = ts_list[k], xs[k], preds[k], sigs[k]
            v = books[k]  # BOOK_COLUMNS order: bid p/q pairs by level, then ask p/q pairs
            book = Book(v[0:20:2], v[1:20:2], v[20::2], v[21::2])
            self.equity_curve.append(main.engine.on_row(ts, book, sig))
            main.ts_us.append(ts)
            main.predictions.append(pred)
            main.signals.append(sig)
            if shadow is not None:
                sp = shadow.predict(x)
                shadow.signal = next_signal(shadow.signal, sp, self._shadow_thr.entry,
                                            self._shadow_thr.exit)
                shadow.engine.on_row(ts, book, shadow.signal)
                shadow.ts_us.append(ts)
                shadow.predictions.append(sp)
                shadow.signals.append(shadow.signal)
            self.rows += 1
        self.last_x = xs[-1]
        if self.online_store is not None:
            self.online_store.put(self.exchange, self.symbol, main.ts_us[-1], self.last_x,
                                  str(main.model.version))

    def take_unwritten(self, run_id: str) -> dict:
        """Trades and predictions not yet handed to the warehouse (marks them handed)."""
        from trade_pipeline.trading.store import predictions_frame

        lo, hi = self._written_rows, self.rows
        preds = []
        for track in [self.main] + ([self.shadow] if self.shadow else []):
            if hi > lo:
                preds.append(predictions_frame(
                    track.ts_us[lo:hi], track.predictions[lo:hi], track.signals[lo:hi],
                    exchange=self.exchange, symbol=self.symbol, model_name=track.model.name,
                    model_version=track.model.version, source="paper", run_id=run_id,
                    role="champion" if track is self.main else "shadow"))
        t0 = self._written_trades
        trades = self.engine.trades[t0:]
        self._written_rows, self._written_trades = hi, t0 + len(trades)
        return {"trades": trades, "trade_offset": t0, "predictions": preds}

    def flatten_now(self, reason: str):
        """Kill switch / stale data: close at the last book seen and halt (both tracks)."""
        trade = self.engine.flatten_now(reason)
        if self.shadow is not None:
            self.shadow.engine.flatten_now(reason)
        if self.equity_curve:
            self.equity_curve[-1] = self.engine.equity
        return trade

    # ---- summary --------------------------------------------------------------------------
    def latency_figures(self) -> dict:
        lat = np.asarray(self.tick_to_signal_ns, dtype=np.float64) / 1000.0
        if len(lat) == 0:
            return {"tick_to_signal_rows": 0, "tick_to_signal_p50_us": None, "tick_to_signal_p99_us": None}
        return {"tick_to_signal_rows": len(lat),
                "tick_to_signal_p50_us": float(np.percentile(lat, 50)),
                "tick_to_signal_p99_us": float(np.percentile(lat, 99)),
                "tick_to_signal_max_us": float(lat.max())}

    def ab_comparison(self) -> dict | None:
        if self.shadow is None:
            return None
        a, b = np.asarray(self.main.predictions), np.asarray(self.shadow.predictions)
        ok = np.isfinite(a) & np.isfinite(b)
        corr = float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0 else None
        sa, sb = np.asarray(self.main.signals), np.asarray(self.shadow.signals)
        ea, eb = self.main.engine, self.shadow.engine
        return {
            "champion": self.main.model.label, "champion_version": self.main.model.version,
            "shadow": self.shadow.model.label, "shadow_version": self.shadow.model.version,
            "prediction_corr": corr,
            "signal_agreement": float((sa == sb).mean()) if len(sa) else None,
            "champion_pnl": ea.equity - ea.exe.initial_capital,
            "shadow_pnl": eb.equity - eb.exe.initial_capital,
            "champion_fills": len(ea.trades), "shadow_fills": len(eb.trades),
            "champion_fees": ea.account.fees, "shadow_fees": eb.account.fees,
        }


def _is_data(raw) -> bool:
    """A data push (Bybit puts "topic" first), as opposed to a pong or an ack."""
    head = raw[:24]
    return (b'"topic"' in head) if isinstance(head, bytes) else ('"topic"' in head)


# ---- the WebSocket loop -------------------------------------------------------------------------
@dataclass
class LoopResult:
    stop_reason: str
    connections: int
    seconds: float
    flatten_trade: object | None = None


async def run_stream(trader: PaperTrader, *args, stop_signals: bool = False, **kwargs) -> LoopResult:
    """`_run_stream` with the objects alive at the start (model, state) moved out of the
    collector's generations: fewer, shorter GC pauses inside ticks. With `stop_signals`,
    SIGINT/SIGTERM stop the session like the kill switch (flatten, then results are stored)."""
    import signal as _signal

    kill: KillSwitch = kwargs["kill"]
    loop = asyncio.get_running_loop()
    if stop_signals:
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, kill.trip, f"stopped:{sig.name}")
    gc.collect()
    gc.freeze()
    try:
        return await _run_stream(trader, *args, **kwargs)
    finally:
        gc.unfreeze()
        if stop_signals:
            for sig in (_signal.SIGINT, _signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _run_stream(trader: PaperTrader, url: str, symbol: str, duration_s: float, *,
                     stale: StaleDataGuard, kill: KillSwitch, flush_at_end: bool = True,
                     max_reconnects: int = 10, end_of_stream=None, flush=None,
                     flush_every_s: float = 5.0) -> LoopResult:
    """Subscribe to `orderbook.50.<symbol>` at `url` and feed the trader until the duration
    ends (then the sampler's last rows are flushed), the kill switch trips or data goes
    stale (both: flatten and stop). Reconnects with backoff on a dropped connection.

    `end_of_stream` (optional callable): checked whenever the socket has been idle for
    0.1 s; True ends the run like the duration does (a replayed file that was fully sent).
    `flush` (optional callable, run in a worker thread every `flush_every_s`): writes the
    rows produced so far (it receives `trader.take_unwritten`'s batch)."""
    import websockets
    from websockets.asyncio.client import connect

    from trade_pipeline.market.bybit_ws import orderbook_topic, ping_request, subscribe_request

    start = time.monotonic()
    deadline = start + duration_s
    next_flush = start + flush_every_s
    connections = 0
    stale.touch()
    stop = "duration"
    backoff = 0.2
    failures = 0
    while True:
        if time.monotonic() >= deadline:
            break
        try:
            async with connect(url, ping_interval=None, max_size=None, compression=None,
                               open_timeout=10) as ws:
                connections += 1
                backoff = 0.2
                await ws.send(subscribe_request([orderbook_topic(symbol)], req_id="paper"))
                next_ping = time.monotonic() + PING_INTERVAL_S
                while True:
                    now = time.monotonic()
                    reason = kill.check(now)
                    if reason:
                        stop = reason
                        break
                    if stale.stale(now):
                        stop = "stale_data"
                        break
                    if now >= deadline:
                        stop = "duration"
                        break
                    if now >= next_ping:
                        await ws.send(ping_request("paper"))
                        next_ping = now + PING_INTERVAL_S
                    if flush is not None and now >= next_flush:
                        await asyncio.to_thread(flush, trader.take_unwritten(flush.run_id))
                        next_flush = time.monotonic() + flush_every_s
                    timeout = max(0.0, min(deadline - now, stale.remaining(now) + 1e-3,
                                           next_ping - now, kill.check_every_s, 0.1))
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout)
                    except TimeoutError:
                        if end_of_stream is not None and end_of_stream():
                            stop = "end_of_stream"
                            break
                        continue
                    t0 = time.perf_counter_ns()
                    recv_ns = time.time_ns()
                    if _is_data(raw):
                        stale.touch()
                    trader.on_message(raw, recv_ns, t0)
                break
        except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
            failures += 1
            last_error = f"{type(exc).__name__}: {exc}"
            if connections == 0 and failures >= 3:
                stop = f"connect_failed: {last_error}"
                break
            if failures > max_reconnects:
                stop = f"disconnected: {last_error}"
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            if stale.stale():
                stop = "stale_data"
                break
    flat = None
    if stop in ("duration", "end_of_stream"):
        if flush_at_end:
            trader.finish()
    else:
        flat = trader.flatten_now(stop)
    return LoopResult(stop, connections, time.monotonic() - start, flat)


# ---- the command ---------------------------------------------------------------------------------
def build_trader(settings: Settings, config: TradingConfig, model: LoadedModel,
                 shadow: LoadedModel | None = None, online_store=None,
                 allow_in_sample: bool = False) -> PaperTrader:
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.features.online import OnlineFeatures
    from trade_pipeline.market.live import LiveSampler

    sampler = LiveSampler(fmt="bybit_raw", symbol=settings.symbol,
                          cadence=f"{config.execution.cadence_ms}ms")
    # The model's own feature parameters (serving checked them against the catalog).
    return PaperTrader(sampler=sampler, features=OnlineFeatures(model.feature_params),
                       feature_names=list(FEATURE_NAMES), model=model, config=config,
                       shadow=shadow, online_store=online_store, exchange=settings.exchange,
                       symbol=settings.symbol, allow_in_sample=allow_in_sample)


def run_paper(settings: Settings, *, config: TradingConfig, url: str, duration_s: float,
              model: LoadedModel, shadow: LoadedModel | None = None, stale_after_s: float = 5.0,
              redis_url: str | None = None, redis_prefix: str = "trade_pipeline", ttl_s: float = 30.0,
              kill_file=None, install_signal: bool = False, store: bool = True, mlflow: bool = True,
              run_id: str | None = None, tracking_uri: str | None = None,
              artifact_uri: str | None = None, end_of_stream=None,
              flush_every_s: float = 5.0, allow_in_sample: bool = False) -> dict:
    """One paper session end to end; returns its summary (and stores it)."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.trading.online_store import OnlineStore
    from trade_pipeline.trading.service import new_run_id

    run_id = run_id or new_run_id("paper")
    redis_client = None
    online = None
    if redis_url:
        import redis

        redis_client = redis.Redis.from_url(redis_url)
        online = OnlineStore(redis_client, redis_prefix, list(FEATURE_NAMES), ttl_s)
    trader = build_trader(settings, config, model, shadow, online, allow_in_sample)
    flusher = None
    if store:
        from trade_pipeline.lake.warehouse import ensure_warehouse

        ensure_warehouse(settings)
        flusher = _Flusher(settings, run_id, trader.exchange, trader.symbol)
    kill = KillSwitch(path=kill_file or settings.home / "KILL", redis_client=redis_client,
                      redis_key=f"{redis_prefix}:kill" if redis_client is not None else None,
                      install_signal=install_signal)
    loop = asyncio.run(run_stream(trader, url, settings.symbol, duration_s,
                                  stale=StaleDataGuard(stale_after_s), kill=kill,
                                  end_of_stream=end_of_stream, stop_signals=install_signal,
                                  flush=flusher, flush_every_s=flush_every_s))
    return finish_run(settings, trader, loop, run_id=run_id, store=store, mlflow=mlflow,
                      tracking_uri=tracking_uri, artifact_uri=artifact_uri,
                      flushed=flusher.written if flusher else None)


class _Flusher:
    """Writes a running session's new trades and predictions to the warehouse."""

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


def summary(trader: PaperTrader, loop: LoopResult | None, run_id: str) -> dict:
    from trade_pipeline.trading.metrics import compute_metrics

    eng = trader.engine
    ts = np.asarray(trader.main.ts_us, dtype=np.int64)
    metrics = compute_metrics(ts, _equity_curve(trader), eng.account, len(eng.trades))
    out = {
        "run_id": run_id,
        "stop_reason": loop.stop_reason if loop else None,
        "seconds": loop.seconds if loop else None,
        "connections": loop.connections if loop else None,
        "messages": trader.messages,
        "rows": trader.rows,
        "sampler": _sampler_counters(trader.sampler),
        "model": trader.main.model.label,
        "model_version": trader.main.model.version,
        **trader.latency_figures(),
        "metrics": metrics,
        "halted": eng.halted,
        "in_sample": trader.in_sample,
        "thresholds": trader.thresholds.as_dict(),
        "ab": trader.ab_comparison(),
        "online_store_writes": trader.online_store.writes if trader.online_store else 0,
        "trades": [t.as_dict() for t in eng.trades],
        "error": loop.stop_reason if loop and loop.stop_reason.startswith(
            ("connect_failed", "disconnected")) else None,
    }
    return out


def _equity_curve(trader: PaperTrader) -> np.ndarray:
    return np.asarray(trader.equity_curve, dtype=np.float64)


def _sampler_counters(sampler) -> dict | None:
    report = getattr(sampler, "report", None)
    return report() if callable(report) else None


def finish_run(settings: Settings, trader: PaperTrader, loop: LoopResult | None, *, run_id: str,
               store: bool = True, mlflow: bool = True, tracking_uri: str | None = None,
               artifact_uri: str | None = None, flushed: dict | None = None) -> dict:
    from trade_pipeline.trading.store import write_run

    out = summary(trader, loop, run_id)
    if store and trader.rows:
        from trade_pipeline.lake.warehouse import ensure_warehouse

        ensure_warehouse(settings)
        rest = trader.take_unwritten(run_id)
        ts = trader.main.ts_us
        metrics = {**out["metrics"], **{k: v for k, v in out.items() if k.startswith("tick_to_signal")},
                   "messages": trader.messages, "stop_reason": out["stop_reason"], "ab": out["ab"],
                   "in_sample": out["in_sample"], "thresholds": out["thresholds"],
                   "shadow": trader.shadow.model.label if trader.shadow else None}
        written = write_run(
            settings, run_id=run_id, source="paper", model=trader.main.model.label,
            start_us=int(ts[0]), end_us=int(ts[-1]), metrics=metrics,
            config=trader.config.as_dict(), trades=rest["trades"], predictions=rest["predictions"],
            trade_offset=rest["trade_offset"], exchange=trader.exchange, symbol=trader.symbol)
        flushed = flushed or {}
        out["written"] = {"backtest_results": 1,
                          "trades": written["trades"] + flushed.get("trades", 0),
                          "predictions": written["predictions"] + flushed.get("predictions", 0),
                          "flushes_before_end": flushed.get("flushes", 0)}
    if mlflow and trader.rows:
        from trade_pipeline.trading.plots import equity_drawdown_png
        from trade_pipeline.trading.tracking import log_run

        flat = {**out["metrics"], **{k: v for k, v in out.items() if k.startswith("tick_to_signal")}}
        if out["ab"]:
            flat.update({f"ab_{k}": v for k, v in out["ab"].items()})
        png = equity_drawdown_png(np.asarray(trader.main.ts_us), _equity_curve(trader),
                                  title=f"paper {trader.main.model.label} ({run_id})")
        tables = {"side_by_side.csv": side_by_side(trader)}
        out["mlflow_run_id"] = log_run(
            settings, run_name=run_id, kind="paper", params=trader.config.as_dict(), metrics=flat,
            pngs={"equity_drawdown.png": png}, tables=tables,
            tags={"model": trader.main.model.label, "run_id": run_id,
                  "in_sample": str(out["in_sample"]),
                  "shadow": trader.shadow.model.label if trader.shadow else ""},
            tracking_uri=tracking_uri, artifact_uri=artifact_uri)
    return out


def side_by_side(trader: PaperTrader):
    """Per row: the champion's and (if any) the shadow's prediction and signal."""
    import polars as pl

    cols = {"timestamp_us": trader.main.ts_us, "champion_prediction": trader.main.predictions,
            "champion_signal": trader.main.signals}
    if trader.shadow is not None:
        cols |= {"shadow_prediction": trader.shadow.predictions, "shadow_signal": trader.shadow.signals}
    return pl.DataFrame(cols)


def paper_command(settings: Settings, *, config: TradingConfig, duration_s: float, url: str,
                  model_ref: str | None, shadow_ref: str | None, stale_after_s: float,
                  redis_url: str | None, redis_prefix: str, ttl_s: float,
                  allow_in_sample: bool = False) -> dict:
    from trade_pipeline.trading.model_adapter import load_model

    model = load_model(settings, model_ref or "btc_l2_5s@champion")
    shadow = load_model(settings, shadow_ref) if shadow_ref else None
    return run_paper(settings, config=config, url=url, duration_s=duration_s, model=model,
                     shadow=shadow, stale_after_s=stale_after_s, redis_url=redis_url,
                     redis_prefix=redis_prefix, ttl_s=ttl_s, install_signal=True,
                     allow_in_sample=allow_in_sample)
