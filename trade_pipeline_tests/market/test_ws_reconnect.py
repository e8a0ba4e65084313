"""The one reconnect loop (market/ws_reconnect.py): backoff law, ticks, idle timeout, send,
stop, against the replay server on loopback."""

import asyncio
import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trade_pipeline.market.bybit_ws import is_push, subscribe_request
from trade_pipeline.market.replay_server import ReplayServerThread
from trade_pipeline.market.ws_reconnect import (
    NotConnected,
    ReconnectingWebSocket,
    ReconnectPolicy,
)
from trade_pipeline.settings import SettingsError


@given(initial=st.floats(0.01, 5), cap=st.floats(0.01, 60), factor=st.floats(1, 4),
       jitter=st.floats(0, 0.99), failures=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_delay_is_exponential_capped_and_jittered(initial, cap, factor, jitter, failures, seed):
    pol = ReconnectPolicy(initial_s=initial, cap_s=cap, factor=factor, jitter=jitter)
    rng = random.Random(seed)
    base = min(cap, initial * factor ** (failures - 1))
    d = pol.delay(failures, rng)
    assert base * (1 - jitter) - 1e-12 <= d <= base + 1e-12
    # the base never shrinks as failures accumulate, and never passes the cap
    assert min(cap, initial * factor ** failures) >= base and base <= cap


@pytest.mark.parametrize("kwargs", [{"initial_s": 0}, {"cap_s": -1}, {"jitter": 1.0},
                                    {"factor": 0.5}, {"idle_timeout_s": 0},
                                    {"max_failures": 0}])
def test_wrong_policy_values_are_refused(kwargs):
    with pytest.raises(SettingsError):
        ReconnectPolicy(**kwargs)


def test_ticks_idle_timeout_send_and_stop(bybit_delta_files):
    """Silent connection: ticks while waiting, then the idle timeout reconnects (counted);
    after a subscribe frames flow; stop() ends the loop at once."""
    with ReplayServerThread([bybit_delta_files[0]], speed=0) as srv:
        url = srv.url

        async def main():
            opened = []

            async def on_open(stream):
                opened.append(stream.stats.connections)

            stream = ReconnectingWebSocket(
                url, on_open=on_open, is_data=is_push, seed=1,
                policy=ReconnectPolicy(initial_s=0.01, idle_timeout_s=0.3, ping_interval_s=None))
            with pytest.raises(NotConnected):
                await stream.send("x")
            ticks = frames = 0
            async with contextlib.aclosing(stream.messages(tick_s=0.05)) as msgs:
                async for msg in msgs:
                    if msg is None:
                        ticks += 1
                        if stream.stats.disconnects.get("idle_timeout") and not frames:
                            await stream.send(subscribe_request(["orderbook.50.BTCUSDT"]))
                        continue
                    frames += 1
                    if frames == 50:
                        stream.stop()
            return stream, opened, ticks, frames

        stream, opened, ticks, frames = asyncio.run(asyncio.wait_for(main(), 30))
    assert ticks >= 2 and frames == 50  # ~6 on a quiet machine (0.3 s idle, 0.05 s ticks)
    assert stream.stats.disconnects == {"idle_timeout": 1}
    assert opened == [1, 2] and stream.stats.healthy_connections == 1
    assert stream.stopped and not stream.connected


def test_ticks_go_on_while_waiting_to_reconnect():
    """Housekeeping during an outage (paper trading's kill switch and deadlines): ticks come
    during each backoff wait, not only on an open connection; stop() from a tick ends the
    loop without another attempt."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens: every attempt is refused
    stream = ReconnectingWebSocket(
        f"ws://127.0.0.1:{port}", seed=2,
        policy=ReconnectPolicy(initial_s=0.4, cap_s=0.4, jitter=0, max_failures=10))

    async def main():
        seen = []  # attempts made when each tick came
        async with contextlib.aclosing(stream.messages(tick_s=0.05)) as msgs:
            async for msg in msgs:
                assert msg is None and not stream.connected
                seen.append(stream.stats.attempts)
                if stream.stats.attempts == 3:
                    stream.stop()
                    t_stop = time.monotonic()
        return seen, time.monotonic() - t_stop

    seen, after_stop = asyncio.run(asyncio.wait_for(main(), 30))
    # two full 0.4 s waits of 0.05 s ticks (about 7 each; fewer on a loaded machine), then
    # the first tick of the third wait stopped it
    assert seen.count(1) >= 2 and seen.count(2) >= 2 and seen[-1] == 3 and seen.count(3) == 1
    assert after_stop < 0.2
    assert stream.stats.attempts == 3 and stream.stats.disconnects == {"ConnectionRefusedError": 3}
