"""Live collector: Bybit v5 `orderbook.50.<SYMBOL>` and `publicTrade.<SYMBOL>` -> the raw store.

Every data push of both topics is appended as received, in order of receipt, with its local
receive time, to a `RawStoreWriter` (one gzip member per flush, at least once a second). The
connection is kept by `ws_reconnect.ReconnectingWebSocket` (application pings every 20 s,
exponential backoff with jitter and a cap, disconnects counted per reason); each connection
subscribes to both topics, and Bybit restarts the book with a snapshot.

Sequence gaps: a book delta whose `u` is not the previous `u` + 1 makes the book unusable
until the next snapshot. The collector then resubscribes the book topic alone (unsubscribe +
subscribe on the same connection; trades are not touched) and Bybit answers with a fresh
snapshot, so at most the pushes between the gap and that snapshot are unusable (counted
`deltas_while_resyncing`). A refused or unanswered resubscribe falls back to a reconnect.

Faults: a write error (disk full) stops the run with `CaptureWriteError` after everything
flushed before was kept intact; the hole since the previous capture of the symbol (e.g. a
collector killed with SIGKILL) is measured at the first push and reported.
"""

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.bybit_ws import (
    PING_INTERVAL_S,
    FrameKind,
    SequenceTracker,
    classify,
    is_push,
    orderbook_topic,
    ping_request,
    subscribe_request,
    trade_topic,
    unsubscribe_request,
)
from trade_pipeline.market.ws_reconnect import ReconnectingWebSocket, ReconnectPolicy
from trade_pipeline.settings import SettingsError, check_symbol
from trade_pipeline.storage import raw_store
from trade_pipeline.storage.raw_store import RawStoreWriter, RawWriteError


class SubscribeError(TradePipelineError, RuntimeError):
    """The server refused the subscription (e.g. an unknown symbol): reconnecting won't help."""


class CaptureWriteError(TradePipelineError, OSError):
    """The raw store could not be written (e.g. the disk is full); flushed data is intact."""


@dataclass(frozen=True)
class CollectorConfig:
    url: str
    symbol: str = "BTCUSDT"
    duration_s: float = 60.0
    depth: int = 50
    trades: bool = True  # also record publicTrade.<SYMBOL> (docs/DATA_FORMATS.md 1b) on the same connection
    resync_on_gap: bool = True  # resubscribe the book after a sequence gap
    resync_timeout_s: float = 10.0  # no snapshot this long after a resubscribe: reconnect
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
                     "open_timeout_s", "close_timeout_s", "idle_timeout_s", "resync_timeout_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")

    def policy(self) -> ReconnectPolicy:
        return ReconnectPolicy(
            initial_s=self.backoff_initial_s, cap_s=self.backoff_max_s,
            open_timeout_s=self.open_timeout_s, close_timeout_s=self.close_timeout_s,
            idle_timeout_s=self.idle_timeout_s, ping_interval_s=self.ping_interval_s,
        )


@dataclass
class CollectorStats:
    messages: int = 0  # data pushes stored (book + trades)
    book_messages: int = 0
    trade_messages: int = 0
    snapshots: int = 0
    gaps: int = 0
    deltas_before_snapshot: int = 0
    resyncs: int = 0  # book resubscribes after a gap
    resync_failures: int = 0  # refused / unanswered resubscribes (then: reconnect)
    deltas_while_resyncing: int = 0  # book deltas stored between a gap and its snapshot
    reconnects: int = 0
    connections: int = 0
    pongs: int = 0
    acks: int = 0
    other_frames: int = 0  # valid control frames we do not use (counted, not stored)
    invalid_frames: int = 0  # not JSON / not an object (counted, not stored)
    wrong_topic: int = 0  # pushes of a topic we did not subscribe to (counted, not stored)
    disconnect_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count
    last_errors: list[str] = field(default_factory=list)  # the newest few error texts
    backoff_waited_s: float = 0.0
    first_u: int | None = None
    last_u: int | None = None
    write_error: str | None = None
    lines_lost: int = 0  # received but not written (write error)
    previous_capture: dict | None = None  # the hole since the symbol's previous capture
    started_at: float = field(default_factory=time.time)

    def rate(self) -> float:
        return self.messages / max(time.time() - self.started_at, 1e-9)


def _iso_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()


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
        self.trade_topic = trade_topic(config.symbol) if config.trades else None
        self.topics = [self.topic] + ([self.trade_topic] if self.trade_topic else [])
        self._seq = SequenceTracker()
        self._resync_since: float | None = None  # monotonic time of the pending resubscribe
        self.stream = ReconnectingWebSocket(
            config.url, on_open=self._on_open, policy=config.policy(),
            ping=lambda n: ping_request(req_id=f"ping-{n}"), is_data=is_push, seed=seed,
        )
        self._previous: raw_store.LastRecord | None = None
        self._previous_path = None

    def stop(self) -> None:
        self.stream.stop()

    async def run(self) -> CollectorStats:
        cfg = self.config
        self._find_previous_capture()
        consumer = asyncio.create_task(self._consume(), name="collector")
        try:
            done, _ = await asyncio.wait([consumer], timeout=cfg.duration_s)
            if not done:
                self.stop()
                # stop() aborts an open connection; an attempt still opening or closing
                # gets a bounded grace, then is cancelled
                done, _ = await asyncio.wait([consumer], timeout=cfg.close_timeout_s + 1.0)
            if not done:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            consumer.result()  # re-raise SubscribeError / CaptureWriteError
        finally:
            if not consumer.done():
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await consumer
            self._flush(final=True)
            self._sync()
        return self.stats

    # ---- the receive loop ---------------------------------------------------------------
    async def _on_open(self, stream: ReconnectingWebSocket) -> None:
        self._seq.reset()  # a new connection restarts the chain at its first snapshot
        self._resync_since = None
        await stream.send(subscribe_request(self.topics, req_id=f"sub-{stream.stats.connections}"))

    async def _consume(self) -> None:
        cfg = self.config
        next_flush = time.monotonic() + cfg.flush_interval_s / 2
        async with contextlib.aclosing(self.stream.messages(tick_s=cfg.flush_interval_s / 2)) as msgs:
            async for msg in msgs:
                if msg is not None:
                    await self._handle(msg.text, msg.received_ns)
                now = time.monotonic()
                # ticks come while waiting to reconnect too: a resync pending on a lost
                # connection is settled by the next one (on_open), not counted here
                if (self._resync_since is not None and self.stream.connected
                        and now - self._resync_since > cfg.resync_timeout_s):
                    self.stats.resync_failures += 1
                    self._resync_since = None
                    self.stream.reconnect("resync_timeout")
                if now >= next_flush:
                    # a quiet stream still reaches the disk within the flush interval
                    self._flush()
                    next_flush = now + cfg.flush_interval_s / 2
                    self._sync()
                    if self.on_progress is not None:
                        self.on_progress(self.stats)

    async def _handle(self, frame, received_ns: int) -> None:
        info = classify(frame)
        stats = self.stats
        if info.kind is FrameKind.DATA:
            if info.topic == self.topic:
                self._store(received_ns, frame)
                stats.book_messages += 1
                await self._book(info)
            elif info.topic == self.trade_topic:
                self._store(received_ns, frame)
                stats.trade_messages += 1
            else:
                stats.wrong_topic += 1
        elif info.kind is FrameKind.PONG:
            stats.pongs += 1
        elif info.kind is FrameKind.SUBSCRIBE_ACK:
            stats.acks += 1
        elif info.kind is FrameKind.ERROR:
            if info.req_id.startswith("resync"):
                # e.g. a server that refuses to resubscribe: a new connection brings a snapshot
                stats.resync_failures += 1
                self._resync_since = None
                self.stream.reconnect("resync_refused")
            else:
                raise SubscribeError(f"server refused: {info.message}")
        elif info.kind is FrameKind.INVALID:
            stats.invalid_frames += 1
        else:
            stats.other_frames += 1

    def _store(self, received_ns: int, frame) -> None:
        if self.stats.messages == 0:
            self._measure_hole(received_ns)
        try:
            self.writer.append(received_ns, frame)
        except RawWriteError as exc:
            self.stats.write_error = str(exc)
            raise CaptureWriteError(
                f"collect stopped: {exc}; every push flushed before is intact "
                f"({self.writer.stats.lines_written} written, {self.writer.stats.lines_lost} "
                "lost)") from None
        self.stats.messages += 1

    async def _book(self, info) -> None:
        stats = self.stats
        if info.push_type == "snapshot" or info.u == 1:
            self._resync_since = None
        elif self._resync_since is not None:
            stats.deltas_while_resyncing += 1
        gap = self._seq.observe(info.push_type, info.u)
        if info.u is not None:
            if stats.first_u is None:
                stats.first_u = info.u
            stats.last_u = info.u
        if gap and self.config.resync_on_gap and self._resync_since is None:
            # resubscribe the book alone: Bybit answers with a fresh snapshot
            stats.resyncs += 1
            self._resync_since = time.monotonic()
            n = stats.resyncs
            await self.stream.send(unsubscribe_request([self.topic], req_id=f"resync-{n}-unsub"))
            await self.stream.send(subscribe_request([self.topic], req_id=f"resync-{n}-sub"))

    # ---- bookkeeping --------------------------------------------------------------------
    def _flush(self, final: bool = False) -> None:
        try:
            self.writer.flush()
        except RawWriteError as exc:
            self.stats.write_error = str(exc)
            if not final:
                raise CaptureWriteError(f"collect stopped: {exc}; every push flushed before "
                                        "is intact") from None

    def _sync(self) -> None:
        s, seq, conn = self.stats, self._seq, self.stream.stats
        s.gaps = seq.gaps
        s.snapshots = seq.snapshots
        s.deltas_before_snapshot = seq.deltas_before_snapshot
        s.connections = conn.connections
        s.reconnects = conn.reconnects
        s.disconnect_reasons = dict(conn.disconnects)
        s.last_errors = list(conn.last_errors)
        s.backoff_waited_s = round(conn.waited_s, 3)
        s.lines_lost = self.writer.stats.lines_lost

    def _find_previous_capture(self) -> None:
        """The symbol's newest capture before this run and its last line (read from the
        file's tail): the hole up to our first push is reported."""
        try:
            path = raw_store.newest_capture(self.writer.raw_dir, self.writer.exchange,
                                            self.writer.symbol)
            self._previous = raw_store.last_record(path) if path is not None else None
            self._previous_path = path
        except OSError:
            self._previous = None

    def _measure_hole(self, first_ns: int) -> None:
        prev = self._previous
        if prev is None:
            return
        self.stats.previous_capture = {
            "file": str(self._previous_path),
            "last_receive_time": _iso_ns(prev.receive_ns),
            "first_receive_time": _iso_ns(first_ns),
            "hole_s": round((first_ns - prev.receive_ns) / 1e9, 3),
            "ended_in_a_cut_member": prev.truncated,
        }


def summary(stats: CollectorStats, writer: RawStoreWriter) -> dict:
    out = asdict(stats)
    out.pop("started_at")
    out["duration_s"] = round(time.time() - stats.started_at, 3)
    out["files"] = [str(p) for p in writer.paths]
    out["bytes"] = writer.stats.bytes_written
    out["flushes"] = writer.stats.flushes
    out["lines_written"] = writer.stats.lines_written
    return out
