"""The event backtest's execution assumptions in one explicit, frozen config object.

`EventExecutionConfig` says everything the event-level engine assumes about trading on the
exchange, hftbacktest style, with nothing implied:

- the instrument: `tick_size` (price step) and `lot_size` (quantity step; orders and fills
  are whole lots). Bybit BTCUSDT linear: 0.1 and 0.001.
- fees on traded notional: `maker_fee` (negative = a rebate) and `taker_fee`. Defaults:
  Bybit's base tier, 0.02 % maker and 0.055 % taker (as `ExecutionConfig`).
- order latency: `latency = "constant"` with `entry_latency_ms` (request to the exchange)
  and `response_latency_ms` (exchange event to us); `"feed"`, read from the recorded data:
  the stream's feed latency (receive time - exchange time), sampled every `feed_every_s`,
  times `entry_feed_mul` / `response_feed_mul`, plus the `*_latency_ms` as offsets
  (hftbacktest's `generate_order_latency`); or `"table"`: rows (req_ts, exch_ts, resp_ts)
  in ns from `latency_table` (Parquet / CSV / npz), interpolated as hftbacktest's
  `IntpOrderLatency`.
- the feed: `feed_latency_ms` None uses the recorded receive clock (moved later as a whole
  if it ever runs ahead of the exchange clock, as hftbacktest's `correct_local_timestamp`
  does); a number replaces it by exchange time + that many ms (recorded receive clocks carry
  the recorder's clock offset, and a replayed stream's receive time is the replay's).
- the queue: `queue_model` "risk_averse" | "prob_power" | "prob_log" (see
  `trading/event/queue.py`), `queue_power` the exponent of "prob_power".
- `initial_capital` (quote currency) for equity and returns.

Loadable from TOML (`[event_execution]` section): `EventExecutionConfig.from_toml(path)`.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from trade_pipeline.market.execution_config import config_from_mapping, read_toml
from trade_pipeline.settings import SettingsError

LATENCY_KINDS = ("constant", "feed", "table")
QUEUE_MODEL_NAMES = ("risk_averse", "prob_power", "prob_log")
SECTION = "event_execution"


@dataclass(frozen=True)
class EventExecutionConfig:
    tick_size: float = 0.1
    lot_size: float = 0.001
    maker_fee: float = 0.0002
    taker_fee: float = 0.00055
    latency: str = "constant"
    entry_latency_ms: float = 10.0
    response_latency_ms: float = 10.0
    feed_every_s: float = 1.0
    entry_feed_mul: float = 1.0
    response_feed_mul: float = 1.0
    latency_table: str | None = None
    feed_latency_ms: float | None = None
    queue_model: str = "risk_averse"
    queue_power: float = 2.0
    initial_capital: float = 10_000.0

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size", "initial_capital", "feed_every_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise SettingsError(f"{name} must be positive, got {value!r}")
        for name in ("maker_fee", "taker_fee"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and -0.01 < value < 0.01):
                raise SettingsError(f"{name} must be a fraction of notional in (-0.01, 0.01), got {value!r}")
        if self.latency not in LATENCY_KINDS:
            raise SettingsError(f"latency must be one of {LATENCY_KINDS}, got {self.latency!r}")
        for name in ("entry_latency_ms", "response_latency_ms"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0):
                raise SettingsError(f"{name} must be >= 0, got {value!r}")
        for name in ("entry_feed_mul", "response_feed_mul"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0):
                raise SettingsError(f"{name} must be >= 0, got {value!r}")
        if self.latency == "table" and not self.latency_table:
            raise SettingsError("latency = 'table' needs latency_table (a file of req_ts, exch_ts, resp_ts)")
        if self.feed_latency_ms is not None and not (
                isinstance(self.feed_latency_ms, int | float) and self.feed_latency_ms >= 0):
            raise SettingsError(f"feed_latency_ms must be >= 0 or unset, got {self.feed_latency_ms!r}")
        if self.queue_model not in QUEUE_MODEL_NAMES:
            raise SettingsError(f"queue_model must be one of {QUEUE_MODEL_NAMES}, got {self.queue_model!r}")
        if not (isinstance(self.queue_power, int | float) and self.queue_power > 0):
            raise SettingsError(f"queue_power must be positive, got {self.queue_power!r}")

    @property
    def entry_ns(self) -> int:
        return round(self.entry_latency_ms * 1_000_000)

    @property
    def response_ns(self) -> int:
        return round(self.response_latency_ms * 1_000_000)

    def with_(self, **changes) -> "EventExecutionConfig":
        from dataclasses import replace

        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: dict) -> "EventExecutionConfig":
        return config_from_mapping(cls, data, SECTION)

    @classmethod
    def from_toml(cls, path: str | Path | None) -> "EventExecutionConfig":
        """The `[event_execution]` section of a TOML file (defaults for what it omits)."""
        if path is None:
            return cls()
        return cls.from_mapping(read_toml(path).get(SECTION, {}))
