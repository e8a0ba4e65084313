"""Paper trading: a session on a live (or replayed) stream, with the backtest's execution.

The parts live in their own modules:
- `paper_trader.PaperTrader`: the per-message path (book, grid row, features, model, signal,
  simulated orders on the grid engine or the event engine);
- `market/ws_reconnect.ReconnectingWebSocket`: the WebSocket connection (connect, subscribe,
  ping, reconnect with backoff; disconnects counted per reason), the collector's loop too;
- `paper_config.PaperConfig`: what the session is told;
- `paper_store`: warehouse rows (flushed while running, and at the end);
- `paper_report`: the summary, the A/B comparison and the MLflow run.

This module runs a session: `run_paper(settings, PaperConfig(...), trading=..., model=...)`.
Risk: max position, drawdown stop and cooldown act inside the engines; the kill switch and
the stale-data halt (`risk.py`) stop the session: the grid engine closes the position
against the last book seen, the event engine cancels every resting order and closes the
position with market orders.
"""

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass

from trade_pipeline.market.bybit_ws import (
    is_book_push,
    is_push,
    orderbook_topic,
    ping_request,
    subscribe_request,
    trade_topic,
)
from trade_pipeline.market.ws_reconnect import (
    ReconnectExhausted,
    ReconnectingWebSocket,
    ReconnectPolicy,
)
from trade_pipeline.settings import Settings
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.model_adapter import LoadedModel
from trade_pipeline.trading.paper_config import RECONNECT, PaperConfig
from trade_pipeline.trading.paper_trader import PaperTrader
from trade_pipeline.trading.risk import KillSwitch, StaleDataGuard

TICK_S = 0.1  # housekeeping (kill switch, stale data, deadline, flush) at least this often


@dataclass
class LoopResult:
    # duration, end_of_stream, kill_switch:..., stale_data, or (the stream was given up)
    # connect_failed (never connected) / disconnected (lost and not restored)
    stop_reason: str
    stream: dict  # the connection's stats: connections, reconnects, disconnects by reason, ...
    seconds: float
    flatten_trade: object | None = None
    error: str | None = None  # one line, when the stream was given up

    @property
    def connections(self) -> int:
        return self.stream["connections"]


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
                      policy: ReconnectPolicy = RECONNECT, end_of_stream=None, flush=None,
                      flush_every_s: float = 5.0) -> LoopResult:
    """Feed the trader from `orderbook.50.<symbol>` (and, with event execution, the trades of
    `publicTrade.<symbol>`: maker orders fill on them) at `url` until the duration ends (then
    the sampler's last rows are flushed), the kill switch trips, book data goes stale or the
    stream is given up after `policy.max_failures` failed attempts in a row (all three:
    flatten and stop).

    The stale-data clock starts at the first connection: before it no position can exist,
    and the policy alone decides (connect_failed).
    `end_of_stream` (optional callable): checked whenever the socket has been idle for
    TICK_S; True ends the run like the duration does (a replayed file that was fully sent).
    `flush` (optional callable, run in a worker thread every `flush_every_s`): writes the
    rows produced so far (it receives `trader.take_unwritten`'s batch)."""
    start = time.monotonic()
    deadline = start + duration_s
    next_flush = start + flush_every_s
    topics = [orderbook_topic(symbol)]
    if trader.events is not None:
        topics.append(trade_topic(symbol))

    async def on_open(stream: ReconnectingWebSocket) -> None:
        if stream.stats.connections == 1:
            stale.touch()
        # each connection subscribes again; Bybit restarts the book with a snapshot
        await stream.send(subscribe_request(topics, req_id=f"paper-{stream.stats.connections}"))

    stream = ReconnectingWebSocket(url, on_open=on_open, policy=policy, is_data=is_push,
                                   ping=lambda n: ping_request(req_id=f"paper-ping-{n}"))
    stop, error = "duration", None
    try:
        async with contextlib.aclosing(stream.messages(tick_s=min(TICK_S, kill.check_every_s))) as msgs:
            async for msg in msgs:
                t0 = time.perf_counter_ns()  # tick-to-signal counts from the frame's arrival
                now = time.monotonic()
                reason = kill.check(now)
                if reason:
                    stop = reason
                    break
                if stream.stats.connections and stale.stale(now):
                    stop = "stale_data"
                    break
                if now >= deadline:
                    break
                if flush is not None and now >= next_flush:
                    await asyncio.to_thread(flush, trader.take_unwritten(flush.run_id))
                    next_flush = time.monotonic() + flush_every_s
                if msg is None:
                    if end_of_stream is not None and stream.stats.connections and end_of_stream():
                        stop = "end_of_stream"
                        break
                    continue
                if is_book_push(msg.text):  # trades alone do not keep the book fresh
                    stale.touch()
                trader.on_message(msg.text, msg.received_ns, t0)
    except ReconnectExhausted as exc:
        stop = "disconnected" if stream.stats.connections else "connect_failed"
        lost = (f"lost after {stream.stats.connections} connection(s) and not restored"
                if stream.stats.connections else "never connected")
        error = " ".join(f"{stop}: stream {lost}: {exc}".split())  # one line
    flat = None
    if stop in ("duration", "end_of_stream"):
        if flush_at_end:
            trader.finish()
    else:
        flat = trader.flatten_now(stop)
    return LoopResult(stop, stream.stats.as_dict(), time.monotonic() - start, flat, error)


# ---- a session ------------------------------------------------------------------------------------
def build_trader(settings: Settings, config: TradingConfig, model: LoadedModel,
                 shadow: LoadedModel | None = None, online_store=None, events=None,
                 allow_in_sample: bool = False) -> PaperTrader:
    """A trader on the Bybit wire format; `events` (an EventBacktestConfig) selects event
    execution (limit orders) instead of the grid engine."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.features.online import OnlineFeatures
    from trade_pipeline.market.live import LiveSampler

    sampler = LiveSampler(fmt="bybit_raw", symbol=settings.symbol,
                          cadence=f"{config.execution.cadence_ms}ms")
    # The model's own feature parameters (serving checked them against the catalog).
    return PaperTrader(sampler=sampler, features=OnlineFeatures(model.feature_params),
                       feature_names=list(FEATURE_NAMES), model=model, config=config,
                       shadow=shadow, online_store=online_store, exchange=settings.exchange,
                       symbol=settings.symbol, events=events, allow_in_sample=allow_in_sample)


def run_paper(settings: Settings, paper: PaperConfig, *, trading: TradingConfig, model: LoadedModel,
              shadow: LoadedModel | None = None, events=None, end_of_stream=None) -> dict:
    """One paper session end to end; returns its summary (and stores it)."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.trading.online_store import OnlineStore
    from trade_pipeline.trading.paper_store import Flusher
    from trade_pipeline.trading.service import new_run_id

    if (paper.execution == "events") != (events is not None):
        raise ValueError("execution 'events' needs an EventBacktestConfig (and 'grid' none)")
    run_id = paper.run_id or new_run_id("paper")
    redis_client = None
    online = None
    if paper.redis_url:
        import redis

        redis_client = redis.Redis.from_url(paper.redis_url)
        online = OnlineStore(redis_client, paper.redis_prefix, list(FEATURE_NAMES), paper.ttl_s)
    trader = build_trader(settings, trading, model, shadow, online, events=events,
                          allow_in_sample=paper.allow_in_sample)
    flusher = None
    if paper.store:
        from trade_pipeline.lake.warehouse import ensure_warehouse

        ensure_warehouse(settings)
        flusher = Flusher(settings, run_id, trader.exchange, trader.symbol)
    kill = KillSwitch(path=paper.kill_file or settings.home / "KILL", redis_client=redis_client,
                      redis_key=f"{paper.redis_prefix}:kill" if redis_client is not None else None,
                      install_signal=paper.install_signal)
    loop = asyncio.run(run_stream(trader, paper.url, settings.symbol, paper.duration_s,
                                  stale=StaleDataGuard(paper.stale_after_s), kill=kill,
                                  end_of_stream=end_of_stream, stop_signals=paper.install_signal,
                                  flush=flusher, flush_every_s=paper.flush_every_s,
                                  policy=paper.reconnect))
    return finish_run(settings, trader, loop, run_id=run_id, store=paper.store, mlflow=paper.mlflow,
                      tracking_uri=paper.tracking_uri, artifact_uri=paper.artifact_uri,
                      flushed=flusher.written if flusher else None)


def finish_run(settings: Settings, trader: PaperTrader, loop: LoopResult | None, *, run_id: str,
               store: bool = True, mlflow: bool = True, tracking_uri: str | None = None,
               artifact_uri: str | None = None, flushed: dict | None = None) -> dict:
    from trade_pipeline.trading.paper_report import log_session, summary
    from trade_pipeline.trading.paper_store import store_session

    out = summary(trader, loop, run_id)
    if store and trader.rows:
        out["written"] = store_session(settings, trader, out, run_id, flushed)
    if mlflow and trader.rows:
        out["mlflow_run_id"] = log_session(settings, trader, out, run_id, tracking_uri=tracking_uri,
                                           artifact_uri=artifact_uri)
    return out


def paper_command(settings: Settings, paper: PaperConfig, *, trading: TradingConfig,
                  events=None) -> dict:
    """The CLI's session: models from the registry (default: the settings' model)."""
    from trade_pipeline.trading.model_adapter import load_model

    model = load_model(settings, paper.model_ref or settings.model_ref)
    shadow = load_model(settings, paper.shadow_ref) if paper.shadow_ref else None
    return run_paper(settings, paper, trading=trading, model=model, shadow=shadow, events=events)
