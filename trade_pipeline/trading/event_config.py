"""Everything one event backtest (or event paper session) assumes, in one object.

`EventBacktestConfig.load("run.toml")` reads:

    [event_execution]   # EventExecutionConfig: tick/lot, fees, latency, feed clock, queue model
    [event_run]         # strategy = "none" | "taker" | "maker" | "market_maker",
                        # interval_ms (strategy wake-ups), drawdown_stop (fraction or unset)
    [taker]             # event_taker.TakerConfig
    [maker]             # maker.MakerConfig
    [market_maker]      # market_maker.MarketMakerConfig

Unknown sections and keys are errors; what a file omits keeps its default.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.market.execution_config import config_from_mapping, read_toml
from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.event_driver import STRATEGY_KINDS
from trade_pipeline.trading.event_taker import TakerConfig
from trade_pipeline.trading.maker import MakerConfig
from trade_pipeline.trading.market_maker import MarketMakerConfig

SECTIONS = ("event_execution", "event_run", "taker", "maker", "market_maker")


@dataclass(frozen=True)
class EventRunConfig:
    strategy: str = "none"
    interval_ms: float = 100.0
    drawdown_stop: float | None = 0.10

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_KINDS:
            raise SettingsError(f"event_run.strategy must be one of {sorted(STRATEGY_KINDS)}, got {self.strategy!r}")
        if not (isinstance(self.interval_ms, int | float) and self.interval_ms > 0):
            raise SettingsError(f"event_run.interval_ms must be positive, got {self.interval_ms!r}")
        if self.drawdown_stop is not None and not 0 < self.drawdown_stop <= 1:
            raise SettingsError(f"event_run.drawdown_stop must be in (0, 1] or unset, got {self.drawdown_stop!r}")

    @property
    def interval_ns(self) -> int:
        return round(self.interval_ms * 1_000_000)


@dataclass(frozen=True)
class EventBacktestConfig:
    execution: EventExecutionConfig = field(default_factory=EventExecutionConfig)
    run: EventRunConfig = field(default_factory=EventRunConfig)
    taker: TakerConfig = field(default_factory=TakerConfig)
    maker: MakerConfig = field(default_factory=MakerConfig)
    market_maker: MarketMakerConfig = field(default_factory=MarketMakerConfig)

    @classmethod
    def load(cls, path: str | Path | None) -> "EventBacktestConfig":
        if path is None:
            return cls()
        data = read_toml(path)
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise SettingsError(f"{path}: unknown sections {unknown}; known: {', '.join(SECTIONS)}")
        return cls(
            execution=config_from_mapping(EventExecutionConfig, data.get("event_execution", {}), "event_execution"),
            run=config_from_mapping(EventRunConfig, data.get("event_run", {}), "event_run"),
            taker=config_from_mapping(TakerConfig, data.get("taker", {}), "taker"),
            maker=config_from_mapping(MakerConfig, data.get("maker", {}), "maker"),
            market_maker=config_from_mapping(MarketMakerConfig, data.get("market_maker", {}), "market_maker"),
        )

    def with_(self, **changes) -> "EventBacktestConfig":
        from dataclasses import replace

        return replace(self, **changes)

    def strategy_config(self):
        return {"none": None, "taker": self.taker, "maker": self.maker,
                "market_maker": self.market_maker}[self.run.strategy]

    def as_dict(self) -> dict:
        out = {"event_execution": self.execution.as_dict(), "event_run": asdict(self.run)}
        strat = self.strategy_config()
        if strat is not None:
            out[self.run.strategy] = strat.as_dict()
        return out
