"""Live collector: Bybit v5 `orderbook.50.<SYMBOL>` -> the raw capture store.

Every data push is appended as received, with its local receive time, to a
`RawStoreWriter` (one gzip member per flush, at least once a second). The connection is kept
alive with `{"op":"ping"}` every 20 s; on any disconnect the collector reconnects with
exponential backoff and jitter, then resubscribes (the server restarts the stream with a
snapshot). Update-id gaps, reconnects, pongs and acks are counted, never stored.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import websockets
from websockets.asyncio.client import connect

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.bybit_ws import (
    PING_INTERVAL_S,
    FrameKind,
    SequenceTracker,
    classify,
    orderbook_topic,
    ping_request,
    subscribe_request,
)
from trade_pipeline.settings import SettingsError, check_symbol
from trade_pipeline.storage.raw_store import RawStoreWriter


class SubscribeError(TradePipelineError, RuntimeError):
    """The server refused the subscription (e.g. an unknown symbol): reconnecting won't help."""


@dataclass(frozen=True)
class CollectorConfig:
    url: str
    symbol: str = "BTCUSDT"
    duration_s: float = 60.0
    depth: int = 50
    ping_interval_s: float = PING_INTERVAL_S
    flush_interval_s: float = 1.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 1.0
    # No data (nor pong) for this long on an open connection: treat it as dead and reconnect.
    idle_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        check_symbol(self.symbol)
        if not (self.duration_s > 0):
            raise SettingsError(f"duration must be a positive number of seconds, got {self.duration_s}")
        if not self.url.startswith(("ws://", "wss://")):
            raise SettingsError(f"url must start with ws:// or wss://, got {self.url!r}")
        for name in ("ping_interval_s", "flush_interval_s", "backoff_initial_s", "backoff_max_s",
                     "open_timeout_s", "close_timeout_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class CollectorStats:
    messages: int = 0  # data pushes stored
    snapshots: int = 0
    gaps: int = 0
    deltas_before_snapshot: int = 0
    reconnects: int = 0
    connections: int = 0
    pongs: int = 0
    acks: int = 0
    other_frames: int = 0  # valid control frames we do not use (counted, not stored)
    invalid_frames: int = 0  # not JSON / not an object (counted, not stored)
    wrong_topic: int = 0  # pushes of a topic we did not subscribe to (counted, not stored)
    disconnect_reasons: list[str] = field(default_factory=list)
    first_u: int | None = None
    last_u: int | None = None
    started_at: float = field(default_factory=time.time)

    def rate(self) -> float:
        return self.messages / max(time.time() - self.started_at, 1e-9)


def _backoff(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter in [base/2, base]."""
    base = min(cap, initial * 2 ** max(attempt - 1, 0))
    return base * (0.5 + 0.5 * rng.random())


class Collector:
    """One collect run. `run()` returns when the duration has elapsed or `stop()` is called."""

    def __init__(
        self,
        config: CollectorConfig,
        writer: RawStoreWriter,
        on_progress: Callable[[CollectorStats], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.writer = writer
        self.stats = CollectorStats()
        self.on_progress = on_progress
        self.topic = orderbook_topic(config.symbol, config.depth)
        self._seq = SequenceTracker()
        self._stop = asyncio.Event()
        self._rng = random.Random(seed)
        self._got_data = False

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> CollectorStats:
        cfg = self.config
        tasks = [
            asyncio.create_task(self._connection_loop(), name="connection"),
            asyncio.create_task(self._flusher(), name="flusher"),
        ]
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait(
                [*tasks, stopper], timeout=cfg.duration_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()
        finally:
            # The stop flag ends the loops even if a cancellation were lost somewhere (Python
            # 3.11's wait_for can swallow one); cancel until every task is really done.
            self._stop.set()
            pending = {*tasks, stopper}
            for task in pending:
                task.cancel()
            # give the close handshake (close_timeout) time to finish before insisting
            _, pending = await asyncio.wait(pending, timeout=cfg.close_timeout_s + 1.0)
            for _ in range(50):
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.2)
            for task in {*tasks, stopper} - pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
            self.writer.flush()
        self._sync_seq()
        return self.stats

    def _sync_seq(self) -> None:
        self.stats.gaps = self._seq.gaps
        self.stats.snapshots = self._seq.snapshots
        self.stats.deltas_before_snapshot = self._seq.deltas_before_snapshot

    async def _flusher(self) -> None:
        # Flush on a clock too, so a quiet stream still reaches the disk within a second.
        while True:
            await asyncio.sleep(self.config.flush_interval_s / 2)
            self.writer.flush()
            self._sync_seq()
            if self.on_progress is not None:
                self.on_progress(self.stats)

    async def _connection_loop(self) -> None:
        cfg = self.config
        attempt = 0
        first = True
        while not self._stop.is_set():
            if not first:
                attempt += 1
                self.stats.reconnects += 1
                await asyncio.sleep(_backoff(attempt, cfg.backoff_initial_s, cfg.backoff_max_s, self._rng))
            first = False
            try:
                async with connect(
                    cfg.url,
                    open_timeout=cfg.open_timeout_s,
                    ping_interval=None,  # Bybit wants application-level pings
                    max_size=2**24,
                    compression=None,
                    close_timeout=cfg.close_timeout_s,  # stopping must not wait long
                ) as ws:
                    self.stats.connections += 1
                    self._seq.reset()
                    self._got_data = False
                    await ws.send(subscribe_request([self.topic], req_id=f"sub-{self.stats.connections}"))
                    await self._session(ws)
            except SubscribeError:
                raise
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                self.stats.disconnect_reasons.append(f"{type(exc).__name__}: {exc}"[:200])
                if self._got_data:
                    attempt = 0  # the connection was healthy: reconnect quickly

    async def _session(self, ws) -> None:
        """Receive until the connection fails (raises); data pushes go to the writer."""
        cfg = self.config
        pinger = asyncio.create_task(self._pinger(ws))
        try:
            while not self._stop.is_set():
                try:
                    # asyncio.timeout, not wait_for: wait_for can swallow a cancellation on 3.11
                    async with asyncio.timeout(cfg.idle_timeout_s):
                        frame = await ws.recv()
                except TimeoutError:
                    raise TimeoutError(f"no frame for {cfg.idle_timeout_s} s") from None
                received = time.time_ns()
                info = classify(frame)
                if info.kind is FrameKind.DATA:
                    if info.topic != self.topic:
                        self.stats.wrong_topic += 1
                        continue
                    self.writer.append(received, frame)
                    self.stats.messages += 1
                    self._got_data = True
                    self._seq.observe(info.push_type, info.u)
                    if info.u is not None:
                        if self.stats.first_u is None:
                            self.stats.first_u = info.u
                        self.stats.last_u = info.u
                elif info.kind is FrameKind.PONG:
                    self.stats.pongs += 1
                elif info.kind is FrameKind.SUBSCRIBE_ACK:
                    self.stats.acks += 1
                elif info.kind is FrameKind.ERROR:
                    raise SubscribeError(f"server refused: {info.message}")
                elif info.kind is FrameKind.INVALID:
                    self.stats.invalid_frames += 1
                else:
                    self.stats.other_frames += 1
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def _pinger(self, ws) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            n += 1
            await ws.send(ping_request(req_id=f"ping-{n}"))


def summary(stats: CollectorStats, writer: RawStoreWriter) -> dict:
    out = asdict(stats)
    out.pop("started_at")
    out["duration_s"] = round(time.time() - stats.started_at, 3)
    out["files"] = [str(p) for p in writer.paths]
    out["bytes"] = writer.stats.bytes_written
    out["flushes"] = writer.stats.flushes
    return out
