"""One logical WebSocket stream over successive connections: connect, keep alive, reconnect.

The one connect/reconnect loop of the project (the collector and paper trading use it). It
owns everything about keeping a stream up and nothing about what the frames mean:

    stream = ReconnectingWebSocket(url, on_open=subscribe, policy=ReconnectPolicy(),
                                   ping=lambda n: '{"op": "ping"}', is_data=is_push)
    async for msg in stream.messages(tick_s=0.1):   # Received, or None after tick_s idle
        if msg is None:
            ...  # housekeeping (kill switch, deadlines); connected or waiting to reconnect
            continue
        handle(msg.text, msg.received_ns)
        await stream.send(...)       # on the current connection (e.g. a resubscribe)
        stream.reconnect("reason")   # drop this connection on purpose (counted as `reason`)
    stream.stop()                    # from anywhere: messages() ends after the current frame

Iterate inside `contextlib.aclosing(stream.messages())` when the loop may be left early (a
break, an exception, a cancelled task): the open connection is then closed at once.

- `on_open(stream)` (async) runs after each successful connect, before any frame is yielded:
  send the subscriptions there. `msg.connection` tells the consumer a new connection began.
- Backoff: before attempt k after a failure, wait `min(cap_s, initial_s * factor**(k-1))`
  times a jitter factor drawn uniformly in [1 - jitter, 1]; ticks go on during the wait (a
  connection attempt itself is bounded by `open_timeout_s`). The failure count resets only
  when a connection proves healthy: it delivered a frame `is_data` accepts (acks and pongs
  do not count), so an outage right after a healthy period still backs off exponentially.
- Keep-alive: `ping(n)` text is sent every `ping_interval_s` (Bybit wants application
  pings); no frame at all for `idle_timeout_s` means a dead connection: reconnect.
- Disconnects are counted per reason in `stats.disconnects` (a small fixed vocabulary:
  exception class names and our own reasons, so memory is bounded however long it runs); the
  last few error texts are kept in `stats.last_errors`.
- `max_failures`: give up after that many consecutive failed attempts (ReconnectExhausted);
  None retries until stopped.
"""

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import ClientConnection, connect

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.settings import SettingsError

# Errors a connection attempt or a live connection can end with (anything else is a bug and
# propagates).
CONNECTION_ERRORS = (OSError, TimeoutError, websockets.exceptions.WebSocketException)


class ReconnectExhausted(TradePipelineError, ConnectionError):
    """`max_failures` consecutive connection attempts failed."""


class NotConnected(TradePipelineError, ConnectionError):
    """`send` while no connection is open."""


@dataclass(frozen=True)
class ReconnectPolicy:
    initial_s: float = 0.5  # first delay after a failure
    cap_s: float = 30.0  # longest delay
    factor: float = 2.0
    jitter: float = 0.5  # each delay is drawn in [base * (1 - jitter), base]
    open_timeout_s: float = 10.0  # TCP + TLS + HTTP upgrade
    close_timeout_s: float = 1.0  # stopping never waits longer for the close handshake
    idle_timeout_s: float | None = 60.0  # no frame at all for this long: reconnect
    ping_interval_s: float | None = 20.0
    max_failures: int | None = None  # consecutive failed attempts before giving up
    max_size: int = 2**24  # largest frame accepted

    def __post_init__(self) -> None:
        for name in ("initial_s", "cap_s", "open_timeout_s", "close_timeout_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("idle_timeout_s", "ping_interval_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SettingsError(f"{name} must be positive or None, got {value}")
        if not self.factor >= 1:
            raise SettingsError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise SettingsError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.max_failures is not None and self.max_failures < 1:
            raise SettingsError(f"max_failures must be >= 1 or None, got {self.max_failures}")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait before the next attempt after `failures` consecutive failures."""
        base = min(self.cap_s, self.initial_s * self.factor ** max(failures - 1, 0))
        return base * (1.0 - self.jitter * rng.random())


@dataclass
class ConnectionStats:
    attempts: int = 0  # connection attempts made
    connections: int = 0  # attempts that opened
    reconnects: int = 0  # attempts after the first
    healthy_connections: int = 0  # connections that delivered data
    disconnects: dict[str, int] = field(default_factory=dict)  # reason -> count (bounded)
    last_errors: deque = field(default_factory=lambda: deque(maxlen=5))  # newest texts
    waited_s: float = 0.0  # total backoff time
    longest_wait_s: float = 0.0
    frames: int = 0

    def count(self, reason: str, text: str) -> None:
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1
        self.last_errors.append(text[:200])

    def as_dict(self) -> dict:
        return {"attempts": self.attempts, "connections": self.connections,
                "reconnects": self.reconnects, "healthy_connections": self.healthy_connections,
                "disconnects": dict(self.disconnects), "last_errors": list(self.last_errors),
                "waited_s": round(self.waited_s, 3),
                "longest_wait_s": round(self.longest_wait_s, 3), "frames": self.frames}


@dataclass(frozen=True, slots=True)
class Received:
    text: str | bytes
    received_ns: int  # time.time_ns() when the frame was taken off the socket
    connection: int  # 1 for the first connection, 2 after the first reconnect, ...


class _Reconnect(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _IdleTimeout(TimeoutError):
    pass


def disconnect_reason(exc: BaseException) -> str:
    """The counted reason of a failure: the exception's class name (plus the HTTP status of
    a refused upgrade): a bounded vocabulary, unlike the error texts."""
    if isinstance(exc, _IdleTimeout):
        return "idle_timeout"
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"InvalidStatus:{exc.response.status_code}"
    return type(exc).__name__


class ReconnectingWebSocket:
    """See the module doc. One consumer iterates `messages()` at a time."""

    def __init__(
        self,
        url: str,
        *,
        on_open: Callable[["ReconnectingWebSocket"], Awaitable[None]] | None = None,
        policy: ReconnectPolicy | None = None,
        ping: Callable[[int], str] | None = None,
        is_data: Callable[[str | bytes], bool] | None = None,
        seed: int | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise SettingsError(f"url must start with ws:// or wss://, got {url!r}")
        self.url = url
        self.policy = policy or ReconnectPolicy()
        self.on_open = on_open
        self.ping = ping
        self.is_data = is_data or (lambda frame: True)
        self.stats = ConnectionStats()
        self._rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._reconnect_reason: str | None = None
        self._failures = 0

    # ---- control (callable from the consumer's loop) ----------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def send(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            raise NotConnected(f"not connected to {self.url}")
        await ws.send(text)

    def reconnect(self, reason: str) -> None:
        """Close the current connection after the frame being handled; the next one opens
        after the initial backoff delay. Counted under `reason`."""
        self._reconnect_reason = reason

    def stop(self) -> None:
        """End `messages()` (it returns after closing the connection); safe to call twice."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.transport.abort()  # a blocked recv() returns at once; nothing is left to read

    # ---- the loop ---------------------------------------------------------------------------
    async def messages(self, tick_s: float | None = None) -> AsyncIterator[Received | None]:
        """Frames of every connection in turn, reconnecting as needed; with `tick_s`, None is
        yielded whenever no frame came for that long (an open connection stays up), also
        while waiting to reconnect."""
        first = True
        while not self._stop.is_set():
            if not first:
                self.stats.reconnects += 1
                end = time.monotonic() + self._next_delay()
                # the wait, in ticks: the consumer's housekeeping goes on while disconnected
                while (left := end - time.monotonic()) > 0:
                    if await self._wait_stop(left if tick_s is None else min(left, tick_s)):
                        return
                    if tick_s is not None and time.monotonic() < end:
                        yield None
                if self._stop.is_set():
                    return
            first = False
            self.stats.attempts += 1
            try:
                async with connect(
                    self.url,
                    open_timeout=self.policy.open_timeout_s,
                    close_timeout=self.policy.close_timeout_s,
                    ping_interval=None,  # application-level pings (Bybit), see `ping`
                    max_size=self.policy.max_size,
                    compression=None,
                ) as ws:
                    self._ws = ws
                    self.stats.connections += 1
                    self._reconnect_reason = None
                    if self.on_open is not None:
                        await self.on_open(self)
                    async for item in self._session(ws, tick_s):
                        yield item
                return  # the session ends only when stopped
            except _Reconnect as exc:
                self.stats.count(exc.reason, f"reconnect: {exc.reason}")
                self._failures += 1
            except CONNECTION_ERRORS as exc:
                if self._stop.is_set():
                    return
                self.stats.count(disconnect_reason(exc), f"{type(exc).__name__}: {exc}")
                self._failures += 1
                limit = self.policy.max_failures
                if limit is not None and self._failures >= limit:
                    raise ReconnectExhausted(
                        f"{self.url}: {self._failures} connection attempts failed in a row; "
                        f"last: {type(exc).__name__}: {exc}") from None
            finally:
                self._ws = None

    def _next_delay(self) -> float:
        """The backoff delay before the next attempt (counted in the stats)."""
        delay = self.policy.delay(self._failures, self._rng)
        self.stats.waited_s += delay
        self.stats.longest_wait_s = max(self.stats.longest_wait_s, delay)
        return delay

    async def _wait_stop(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    async def _session(self, ws: ClientConnection, tick_s: float | None
                       ) -> AsyncIterator[Received | None]:
        pol = self.policy
        pinger = asyncio.create_task(self._pinger(ws)) if self.ping and pol.ping_interval_s else None
        healthy = False
        last_frame = time.monotonic()
        connection = self.stats.connections
        try:
            while not self._stop.is_set():
                wait = None
                if pol.idle_timeout_s is not None:
                    wait = max(pol.idle_timeout_s - (time.monotonic() - last_frame), 0.0)
                if tick_s is not None:
                    wait = tick_s if wait is None else min(wait, tick_s)
                try:
                    if wait is None:
                        frame = await ws.recv()
                    else:
                        # asyncio.timeout, not wait_for: wait_for can swallow a cancellation
                        # on 3.11; websockets' recv() is safe to cancel (nothing is lost)
                        async with asyncio.timeout(wait):
                            frame = await ws.recv()
                except TimeoutError:
                    if (pol.idle_timeout_s is not None
                            and time.monotonic() - last_frame >= pol.idle_timeout_s):
                        raise _IdleTimeout(f"no frame for {pol.idle_timeout_s} s") from None
                    yield None  # a tick
                    continue
                received = time.time_ns()
                last_frame = time.monotonic()
                self.stats.frames += 1
                if not healthy and self.is_data(frame):
                    healthy = True
                    self._failures = 0
                    self.stats.healthy_connections += 1
                yield Received(frame, received, connection)
                if self._reconnect_reason is not None:
                    raise _Reconnect(self._reconnect_reason)
        finally:
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError, *CONNECTION_ERRORS):
                    await pinger

    async def _pinger(self, ws: ClientConnection) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.policy.ping_interval_s)
            n += 1
            await ws.send(self.ping(n))
