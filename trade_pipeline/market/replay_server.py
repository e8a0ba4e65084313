"""Replay server: serves recorded captures over Bybit's v5 wire protocol on loopback.

Sources: recorded jsonl captures (docs/DATA_FORMATS.md format 2, with format-2b trade lines among them)
and this project's raw store files (`<ns> <wire frame>`, book and trade pushes), in the
order given. It answers `subscribe` / `unsubscribe` with an ack and `ping` with a pong, then
pushes `orderbook.50.<SYMBOL>` and `publicTrade.<SYMBOL>` frames, in recorded order, paced
by their recorded `ts` divided by `speed` (0 or inf: as fast as possible). Format-2b lines
become publicTrade pushes (consecutive trades of one millisecond in one push), by a small
local conversion; the trade *readers* are the lake's business (market/trades.py).

The stream position is shared by every connection, like a live exchange: a client that
reconnects continues where the stream is now, and (as Bybit does) gets a snapshot of the
current book first; so does a client that unsubscribes the book topic and subscribes it again
on the same connection (how a collector resynchronises after a gap). In paced mode, pushes
that fell due while nobody was connected are applied to the book but not sent.

Fault injection for tests, on book and trade pushes alike: `disconnect_after` (abort the
connection after the N-th sent push in total, each listed N once), `drop_at_u` (never send
book pushes with these update ids) and `drop_every` (drop every K-th book delta and every
K-th trade push). Dropped book pushes still change the server's book, so the client sees a
real update-id gap. `stats.loss_until_snapshot` lists, per dropped delta, how many book
deltas were sent after it before the next snapshot: what a client could not use.
"""

import asyncio
import contextlib
import gzip
import math
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import websockets
from websockets.asyncio.server import ServerConnection, serve

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.bybit_ws import (
    orderbook_topic,
    pong_reply,
    push_frame,
    subscribe_ack,
    trade_push_frame,
    trade_topic,
)


class ReplaySourceError(TradePipelineError, ValueError):
    """A file the server cannot replay (unknown format, no data)."""


@dataclass(slots=True)
class Push:
    ts_ms: int
    cts_ms: int
    kind: str  # snapshot | delta | trade
    symbol: str
    bids: list  # [[price str, size str], ...]
    asks: list
    u: int
    seq: int
    frame: str | None = None  # the original wire text, when the source had it
    trades: list | None = None  # kind trade: the wire trade objects (docs/DATA_FORMATS.md 1b)

    @property
    def is_trade(self) -> bool:
        return self.kind == "trade"


def _num(x) -> str:
    if isinstance(x, str):
        return x
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _levels(rows) -> list[list[str]]:
    return [[_num(p), _num(q)] for p, q in rows]


@dataclass
class ReadStats:
    files: int = 0
    pushes: int = 0
    trade_pushes: int = 0
    trades: int = 0  # trades in them
    truncated_files: list[str] = field(default_factory=list)
    bad_lines: int = 0
    control_lines: int = 0  # acks / pongs in a raw store file (never replayed)


def read_pushes(paths: Iterable[Path], stats: ReadStats | None = None) -> Iterator[Push]:
    """Stream pushes from recorded files (format 2 / 2b or raw store), in the order given.

    A truncated gzip stops that file after its last complete line (listed in
    `stats.truncated_files`); an unparsable line is counted in `stats.bad_lines`."""
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        path = Path(path)
        stats.files += 1
        opener = gzip.open if path.name.endswith(".gz") else open
        trades = _TradeBatcher()
        try:
            with opener(path, "rb") as src:
                for line in src:
                    for push in _parse_line(line, stats, trades):
                        yield _count(push, stats)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            stats.truncated_files.append(str(path))
        last = trades.flush()
        if last is not None:
            yield _count(last, stats)


def _count(push: Push, stats: ReadStats) -> Push:
    stats.pushes += 1
    if push.is_trade:
        stats.trade_pushes += 1
        stats.trades += len(push.trades)
    return push


_TICKS = {1: "PlusTick", -1: "MinusTick"}


class _TradeBatcher:
    """Format-2b lines -> publicTrade pushes: consecutive trades with the same time of record
    share one push (Bybit batches the trades of one match), oldest first. The tick direction
    `L` is derived from the previous trade's price, as Bybit defines it."""

    def __init__(self) -> None:
        self.pending: Push | None = None
        self.last_price: float | None = None
        self.last_dir = 1

    def add(self, obj: dict) -> Push | None:
        """Take one trade line; returns the previous push when this line starts a new one."""
        side, price, size = obj["side"], obj["price"], obj["size"]
        t, trade_id = obj["timestamp_ms"], obj["trade_id"]
        if side not in ("buy", "sell") or type(t) is not int:
            raise ValueError("not a trade line")
        for value in (price, size):
            if type(value) not in (int, float) or not (0 < value < math.inf):
                raise ValueError("price and size must be positive numbers")
        if self.last_price is not None and price != self.last_price:
            self.last_dir = 1 if price > self.last_price else -1
            tick = _TICKS[self.last_dir]
        else:
            tick = "Zero" + _TICKS[self.last_dir]
        self.last_price = price
        trade = {"T": t, "s": obj["symbol"], "S": "Buy" if side == "buy" else "Sell",
                 "v": _num(size), "p": _num(price), "L": tick, "i": str(trade_id), "BT": False,
                 "seq": obj.get("sequence_id") or 0}
        done = None
        if self.pending is not None and (self.pending.ts_ms != t
                                         or self.pending.symbol != obj["symbol"]):
            done = self.flush()
        if self.pending is None:
            self.pending = Push(t, t, "trade", obj["symbol"], [], [], 0, trade["seq"],
                                trades=[])
        self.pending.trades.append(trade)
        return done

    def flush(self) -> Push | None:
        push, self.pending = self.pending, None
        return push


def _parse_line(line: bytes, stats: ReadStats, trades: _TradeBatcher) -> list[Push]:
    """The pushes one line completes (a trade line may complete the previous trade push)."""
    line = line.strip()
    if not line:
        return []
    head, _, rest = line.partition(b" ")
    try:
        if head.isdigit() and rest.startswith(b"{"):  # raw store / wire frame
            obj = orjson.loads(rest)
            topic = str(obj.get("topic", ""))
            data = obj.get("data")
            if topic.startswith("publicTrade.") and isinstance(data, list) and data:
                return [Push(obj["ts"], obj["ts"], "trade", data[0]["s"], [], [], 0,
                             data[0].get("seq", 0), rest.decode(), trades=data)]
            if not topic and "op" in obj:
                stats.control_lines += 1
                return []
            return [Push(obj["ts"], obj.get("cts", obj["ts"]), obj["type"], data["s"],
                         data["b"], data["a"], data["u"], data.get("seq", 0), rest.decode())]
        obj = orjson.loads(line)  # format 2 / 2b
        if obj.get("type") == "trade":
            done = trades.add(obj)
            return [done] if done is not None else []
        done = trades.flush()
        push = Push(obj["timestamp_ms"], obj["timestamp_ms"], obj["type"], obj["symbol"],
                    _levels(obj["bids"]), _levels(obj["asks"]), obj["update_id"],
                    obj.get("sequence_id", 0))
        return [done, push] if done is not None else [push]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError,
            AttributeError, UnicodeDecodeError):
        stats.bad_lines += 1
        return []


@dataclass
class Faults:
    disconnect_after: list[int] = field(default_factory=list)  # total pushes sent
    drop_at_u: set[int] = field(default_factory=set)
    drop_every: int = 0  # drop every K-th delta (0: never)


@dataclass
class ServerStats:
    connections: int = 0
    subscribes: int = 0
    unsubscribes: int = 0
    resubscribes: int = 0  # the book topic subscribed again on a streaming connection
    pongs: int = 0
    sent: int = 0  # pushes sent, book and trade (including synthesized snapshots)
    trade_pushes_sent: int = 0
    snapshots_sent: int = 0
    dropped: int = 0  # book deltas dropped
    dropped_u: list[int] = field(default_factory=list)
    trade_pushes_dropped: int = 0
    loss_until_snapshot: list[int] = field(default_factory=list)  # see the module doc
    skipped_while_away: int = 0
    skipped_unsubscribed: int = 0  # pushes of a topic the streaming client had unsubscribed
    disconnects_injected: int = 0
    finished: bool = False


class _Client:
    """What one streaming connection subscribed to."""

    def __init__(self) -> None:
        self.topics: set[str] = set()
        self.need_snapshot = False  # the book topic was (re)subscribed: snapshot first


class ReplayServer:
    def __init__(
        self,
        paths: list[Path],
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        faults: Faults | None = None,
        depth: int = 50,
    ) -> None:
        if speed < 0 or math.isnan(speed):
            raise ValueError(f"speed must be >= 0 (0 or inf: as fast as possible), got {speed}")
        self.paths = [Path(p) for p in paths]
        self.host = host
        self.port = port
        self.speed = speed
        self.faults = faults or Faults()
        self.depth = depth
        self.stats = ServerStats()
        self.read_stats = ReadStats()
        self._pushes = read_pushes(self.paths, self.read_stats)
        self._pending: Push | None = next(self._pushes, None)
        if self._pending is None:
            raise ReplaySourceError(f"no order-book pushes in {[str(p) for p in self.paths]}")
        self.symbol = self._pending.symbol
        self.topic = orderbook_topic(self.symbol, depth)
        self.trade_topic = trade_topic(self.symbol)
        self._bids: dict[str, str] = {}
        self._asks: dict[str, str] = {}
        self._last: Push | None = None  # the last book push applied
        self._deltas_seen = 0
        self._trades_seen = 0
        self._loss: int | None = None  # book deltas sent since a drop, before a snapshot
        self._clock: tuple[float, int] | None = None  # (wall time, ts_ms) of the first push
        self._lock = asyncio.Lock()
        self._server = None
        self._disconnects = sorted(self.faults.disconnect_after)
        self.finished = asyncio.Event()

    # ---- stream state ---------------------------------------------------------------------
    def _apply(self, push: Push) -> None:
        if push.is_trade:
            return  # trades do not change the book
        if push.kind == "snapshot":
            self._bids.clear()
            self._asks.clear()
        for book, rows in ((self._bids, push.bids), (self._asks, push.asks)):
            for price, size in rows:
                if float(size) == 0.0:
                    book.pop(price, None)
                else:
                    book[price] = size
        self._last = push

    def _advance(self) -> Push | None:
        push = self._pending
        if push is not None:
            self._pending = next(self._pushes, None)
        return push

    @property
    def paced(self) -> bool:
        return not (self.speed == 0 or math.isinf(self.speed))

    def _due(self, push: Push) -> float:
        if not self.paced:
            return 0.0
        if self._clock is None:
            self._clock = (time.monotonic(), push.ts_ms)
        wall0, ts0 = self._clock
        return wall0 + (push.ts_ms - ts0) / 1000.0 / self.speed

    def _snapshot_frame(self) -> str:
        last = self._last
        assert last is not None
        bids = sorted(self._bids.items(), key=lambda kv: -float(kv[0]))[: self.depth]
        asks = sorted(self._asks.items(), key=lambda kv: float(kv[0]))[: self.depth]
        return push_frame(self.topic, "snapshot", last.ts_ms, last.cts_ms, self.symbol,
                          [list(kv) for kv in bids], [list(kv) for kv in asks], last.u, last.seq)

    def _frame(self, push: Push) -> str:
        if push.frame is not None:
            return push.frame
        if push.is_trade:
            return trade_push_frame(self.trade_topic, push.ts_ms, push.trades)
        return push_frame(self.topic, push.kind, push.ts_ms, push.cts_ms, push.symbol,
                          push.bids, push.asks, push.u, push.seq)

    def _should_drop(self, push: Push) -> bool:
        k = self.faults.drop_every
        if push.is_trade:
            self._trades_seen += 1
            return k > 0 and self._trades_seen % k == 0
        if push.kind == "snapshot":
            return False
        self._deltas_seen += 1
        if push.u in self.faults.drop_at_u:
            return True
        return k > 0 and self._deltas_seen % k == 0

    async def _send(self, ws: ServerConnection, text: str) -> bool:
        """Send one push; True when an injected disconnect ended the connection."""
        await ws.send(text)
        self.stats.sent += 1
        if self._disconnects and self.stats.sent >= self._disconnects[0]:
            self._disconnects.pop(0)
            self.stats.disconnects_injected += 1
            ws.transport.abort()  # a network failure: no close frame
            return True
        return False

    async def _send_snapshot(self, ws: ServerConnection, client: _Client) -> bool:
        client.need_snapshot = False
        self._end_loss()
        self.stats.snapshots_sent += 1
        return await self._send(ws, self._snapshot_frame())

    def _end_loss(self) -> None:
        if self._loss is not None:
            self.stats.loss_until_snapshot.append(self._loss)
            self._loss = None

    async def _stream(self, ws: ServerConnection, client: _Client) -> None:
        async with self._lock:  # one streaming client at a time: the stream is shared
            if self._last is not None:
                now = time.monotonic()
                while self.paced and self._pending is not None and self._due(self._pending) < now:
                    self._apply(self._advance())
                    self.stats.skipped_while_away += 1
                if (self.topic in client.topics and client.need_snapshot
                        and (self._pending is None or self._pending.kind != "snapshot")
                        and await self._send_snapshot(ws, client)):
                    return
            else:
                client.need_snapshot = False  # no book yet: the recording's snapshot comes
            n = 0
            while self._pending is not None:
                push = self._pending
                delay = self._due(push) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif (n := n + 1) % 32 == 0:
                    # at full speed send() rarely waits: let the client's requests (an
                    # unsubscribe, a resubscribe, a ping) be read in between, as Bybit would
                    await asyncio.sleep(0)
                book = not push.is_trade
                # a (re)subscribed book starts with a snapshot of the current book
                if (book and client.need_snapshot and self.topic in client.topics
                        and push.kind != "snapshot" and self._last is not None
                        and await self._send_snapshot(ws, client)):
                    return
                self._advance()
                self._apply(push)
                if self._should_drop(push):
                    if book:
                        self.stats.dropped += 1
                        self.stats.dropped_u.append(push.u)
                        if self._loss is None:
                            self._loss = 0
                    else:
                        self.stats.trade_pushes_dropped += 1
                    continue
                topic = self.trade_topic if push.is_trade else self.topic
                if topic not in client.topics:
                    self.stats.skipped_unsubscribed += 1
                    continue
                if book:
                    if push.kind == "snapshot":
                        client.need_snapshot = False
                        self.stats.snapshots_sent += 1
                        self._end_loss()
                    elif self._loss is not None:
                        self._loss += 1
                else:
                    self.stats.trade_pushes_sent += 1
                if await self._send(ws, self._frame(push)):
                    return
            self.stats.finished = True
            self.finished.set()

    # ---- protocol -------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        conn_id = str(uuid.uuid4())
        self.stats.connections += 1
        streamer: asyncio.Task | None = None
        client = _Client()
        try:
            async for raw in ws:
                try:
                    req = orjson.loads(raw)
                    op, req_id = req.get("op"), str(req.get("req_id", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    await ws.send(subscribe_ack(conn_id, "", False, "invalid request"))
                    continue
                args = req.get("args") or []
                if op == "ping":
                    self.stats.pongs += 1
                    await ws.send(pong_reply(conn_id, req_id))
                elif op == "subscribe":
                    bad = [a for a in args if a not in (self.topic, self.trade_topic)]
                    if bad or not args:
                        await ws.send(subscribe_ack(conn_id, req_id, False,
                                                    f"Invalid symbol :[{','.join(map(str, bad))}]"))
                        continue
                    again = [a for a in args if a in client.topics]
                    if again:  # as Bybit: a topic is subscribed once per connection
                        await ws.send(subscribe_ack(
                            conn_id, req_id, False,
                            f"error:already subscribed,topic:{','.join(again)}"))
                        continue
                    self.stats.subscribes += 1
                    client.topics.update(args)
                    if self.topic in args:
                        client.need_snapshot = True
                        if streamer is not None:
                            self.stats.resubscribes += 1
                    await ws.send(subscribe_ack(conn_id, req_id))
                    if streamer is None:
                        streamer = asyncio.create_task(self._stream(ws, client))
                elif op == "unsubscribe":
                    missing = [a for a in args if a not in client.topics]
                    if missing or not args:
                        await ws.send(subscribe_ack(conn_id, req_id, False,
                                                    f"error:not subscribed,topic:{missing}",
                                                    op="unsubscribe"))
                        continue
                    self.stats.unsubscribes += 1
                    client.topics.difference_update(args)
                    await ws.send(subscribe_ack(conn_id, req_id, op="unsubscribe"))
                else:
                    await ws.send(subscribe_ack(conn_id, req_id, False, f"unsupported op {op!r}"))
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            if streamer is not None:
                streamer.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.ConnectionClosed):
                    await streamer

    async def start(self) -> int:
        """Start listening; returns the bound port (useful with port=0)."""
        self._server = await serve(self._handler, self.host, self.port, compression=None,
                                   ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop at once: connections are aborted, not closed politely (a client that stopped
        reading would otherwise block the close frame behind a full send buffer forever)."""
        if self._server is not None:
            self._server.close(close_connections=False)
            for connection in list(self._server.connections):
                connection.transport.abort()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"


class ReplayServerThread:
    """Run a ReplayServer on its own event loop in a background thread (tests, tools).

    `with ReplayServerThread(paths, speed=0) as srv: ...srv.url...`"""

    def __init__(self, paths: list[Path], **kwargs) -> None:
        self._kwargs = kwargs
        self._paths = paths
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: ReplayServer | None = None

    def __enter__(self) -> ReplayServer:
        self._thread.start()

        async def _start() -> ReplayServer:
            srv = ReplayServer(self._paths, **self._kwargs)
            await srv.start()
            return srv

        self.server = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout=30)
        return self.server

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def wait_finished(self, timeout: float) -> bool:
        """Block until the whole stream was pushed (True) or the timeout passed (False)."""
        assert self.server is not None
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self.server.finished.wait(), timeout), self._loop
        )
        try:
            fut.result(timeout + 1)
            return True
        except TimeoutError:
            return False
