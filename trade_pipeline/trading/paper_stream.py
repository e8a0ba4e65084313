"""The paper session's stream connection: connect, subscribe, keep alive, reconnect.

STOPGAP: the market layer is getting the one shared WebSocket reconnect loop (exponential
backoff with jitter and a cap, counts per reason); `StreamConnection.frames` is the only
place paper trading talks to the socket, so switching to it changes this module alone.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

PING_INTERVAL_S = 20.0
CONNECT_ATTEMPTS = 3  # failures before the first connection: give up
IDLE = (None, 0, 0)


class StreamClosed(Exception):
    """The connection is gone for good; `reason` says why (connect_failed / disconnected)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StreamConnection:
    def __init__(self, url: str, topics: list[str], *, max_reconnects: int = 10,
                 req_id: str = "paper"):
        self.url, self.topics, self.max_reconnects, self.req_id = url, topics, max_reconnects, req_id
        self.connections = 0
        self.failures = 0
        self.last_error: str | None = None

    async def frames(self, idle_s: Callable[[], float], stop: Callable[[], bool]
                     ) -> AsyncIterator[tuple]:
        """Yields (frame, receive time ns, perf counter ns) per frame, and IDLE whenever
        `idle_s()` seconds pass without one (also after each reconnect wait). Ends when
        `stop()`; raises StreamClosed when it gives up."""
        import websockets
        from websockets.asyncio.client import connect

        from trade_pipeline.market.bybit_ws import ping_request, subscribe_request

        backoff = 0.2
        while not stop():
            try:
                async with connect(self.url, ping_interval=None, max_size=None, compression=None,
                                   open_timeout=10) as ws:
                    self.connections += 1
                    backoff = 0.2
                    await ws.send(subscribe_request(self.topics, req_id=self.req_id))
                    next_ping = time.monotonic() + PING_INTERVAL_S
                    while not stop():
                        now = time.monotonic()
                        if now >= next_ping:
                            await ws.send(ping_request(self.req_id))
                            next_ping = now + PING_INTERVAL_S
                        timeout = max(0.0, min(idle_s(), next_ping - now))
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout)
                        except TimeoutError:
                            yield IDLE
                            continue
                        yield raw, time.time_ns(), time.perf_counter_ns()
                    return
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.connections == 0 and self.failures >= CONNECT_ATTEMPTS:
                    raise StreamClosed(f"connect_failed: {self.last_error}") from None
                if self.failures > self.max_reconnects:
                    raise StreamClosed(f"disconnected: {self.last_error}") from None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                yield IDLE
