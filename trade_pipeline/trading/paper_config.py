"""Everything one paper-trading session is told, in one object (instead of 19 arguments).

The execution assumptions stay in their own objects: `TradingConfig` (the grid engine, market
orders) or `EventBacktestConfig` (the event engine and its strategy: limit orders).
"""

from dataclasses import dataclass
from pathlib import Path

from trade_pipeline.market.ws_reconnect import ReconnectPolicy
from trade_pipeline.settings import SettingsError

EXECUTIONS = ("grid", "events")

# The session's stream (market/ws_reconnect.py): 0.2 s doubling (jittered) to a 5 s cap; five
# failed attempts in a row (about 1.5-3 s of waiting) end the session, sooner than the default
# stale-data halt, so a dead stream is reported as such (connect_failed / disconnected).
RECONNECT = ReconnectPolicy(initial_s=0.2, cap_s=5.0, max_failures=5)


@dataclass(frozen=True)
class PaperConfig:
    url: str  # WebSocket URL (Bybit's public stream, or a replay server)
    duration_s: float
    model_ref: str | None = None  # NAME@ALIAS; None: the settings' model (TRADE_PIPELINE_MODEL)
    shadow_ref: str | None = None  # a second model in shadow (A/B), grid execution only
    execution: str = "grid"  # "grid": market orders on the 100 ms grid; "events": the event engine
    stale_after_s: float = 5.0  # no book update for this long: flatten and stop
    redis_url: str | None = None  # the online feature store (None: not written)
    redis_prefix: str = "trade_pipeline"
    ttl_s: float = 30.0
    kill_file: Path | None = None  # None: <home>/KILL
    install_signal: bool = False  # SIGINT/SIGTERM/SIGUSR1 stop the session like the kill switch
    store: bool = True  # warehouse rows (results, trades, predictions)
    mlflow: bool = True
    run_id: str | None = None
    tracking_uri: str | None = None
    artifact_uri: str | None = None
    flush_every_s: float = 5.0  # rows reach the warehouse while the session runs
    reconnect: ReconnectPolicy = RECONNECT  # backoff, pings, idle timeout, max_failures
    # Trade even rows inside the model's training range (a replayed capture it was trained
    # on); the run is labelled in-sample instead of refused.
    allow_in_sample: bool = False

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise SettingsError(f"paper duration must be positive, got {self.duration_s!r}")
        if not self.stale_after_s > 0:
            raise SettingsError(f"stale_after_s must be positive, got {self.stale_after_s!r}")
        if self.execution not in EXECUTIONS:
            raise SettingsError(f"execution must be one of {EXECUTIONS}, got {self.execution!r}")
        if self.reconnect.max_failures is None:
            raise SettingsError("a paper session's reconnect policy needs max_failures "
                                "(a stream that cannot be restored must end the session)")
        if self.execution == "events" and self.shadow_ref:
            raise SettingsError("a shadow model runs with grid execution only")
