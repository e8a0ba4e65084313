"""Live risk controls of paper trading: kill switch and stale-data halt.

(Max position, drawdown stop and cooldown are strategy limits applied by the engine, the
same in the backtest.) Both controls here make the paper loop flatten at once against
the last book seen and stop.

- Kill switch: any of a file that exists, a Redis key that exists, or SIGUSR1.
- Stale data: no book update (data push) for `stale_after_s` seconds.
"""

import signal
import time
from pathlib import Path


class KillSwitch:
    def __init__(self, path: str | Path | None = None, redis_client=None, redis_key: str | None = None,
                 check_every_s: float = 0.25, install_signal: bool = False):
        self.path = Path(path) if path else None
        self.redis = redis_client
        self.redis_key = redis_key
        self.check_every_s = check_every_s
        self._signalled = False
        self._next_check = 0.0
        self.reason: str | None = None
        if install_signal:
            signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, *_):
        self._signalled = True

    def trip(self, reason: str = "kill_switch:signal") -> None:
        """Turn the switch on from code (a signal handler, an operator command)."""
        self.reason = self.reason or reason

    def check(self, now: float | None = None) -> str | None:
        """The reason the switch is on, or None. File and Redis are polled at most every
        `check_every_s` (a Redis round trip per tick would cost more than the tick)."""
        if self.reason:
            return self.reason
        if self._signalled:
            self.reason = "kill_switch:signal"
            return self.reason
        now = time.monotonic() if now is None else now
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every_s
        if self.path is not None and self.path.exists():
            self.reason = f"kill_switch:file:{self.path}"
        elif self.redis is not None and self.redis_key and self.redis.exists(self.redis_key):
            self.reason = f"kill_switch:redis:{self.redis_key}"
        return self.reason


class StaleDataGuard:
    def __init__(self, stale_after_s: float):
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
        self.stale_after_s = stale_after_s
        self.last_update = time.monotonic()

    def touch(self, now: float | None = None) -> None:
        self.last_update = time.monotonic() if now is None else now

    def stale(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self.last_update > self.stale_after_s
