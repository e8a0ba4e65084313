"""The execution assumptions in one explicit, frozen config object (hftbacktest style).

Fees, latency, cadence, order type, lot size and capital: everything that turns a signal into
money is read from `ExecutionConfig`, by training's strategy scoring, the champion gate,
walk-forward, the backtests and paper trading alike, so no two of them can assume different
costs. It sits in the market layer (it describes the exchange's rules and our assumptions
about trading on it) so that models and trading can both use it; the fill functions that
apply it live in `trading/execution.py`. Loadable from TOML (`--config exec.toml`).
"""

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from trade_pipeline.settings import SettingsError

THIN_BOOK_POLICIES = ("partial", "reject")
ORDER_TYPES = ("market", "limit")


@dataclass(frozen=True)
class ExecutionConfig:
    taker_fee: float = 0.00055
    maker_fee: float = 0.0002
    latency_steps: int = 1
    cadence_ms: int = 100
    order_type: str = "market"
    limit_timeout_steps: int = 50
    thin_book: str = "partial"
    qty_step: float = 0.001
    initial_capital: float = 10_000.0
    funding_rate_8h: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.latency_steps, int) or self.latency_steps < 1:
            raise SettingsError(f"latency_steps must be an integer >= 1, got {self.latency_steps!r}")
        if self.cadence_ms <= 0:
            raise SettingsError(f"cadence_ms must be positive, got {self.cadence_ms!r}")
        for name in ("taker_fee", "maker_fee"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and -0.01 < value < 0.01):
                raise SettingsError(f"{name} must be a fraction of notional in (-0.01, 0.01), got {value!r}")
        if self.order_type not in ORDER_TYPES:
            raise SettingsError(f"order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")
        if self.thin_book not in THIN_BOOK_POLICIES:
            raise SettingsError(f"thin_book must be one of {THIN_BOOK_POLICIES}, got {self.thin_book!r}")
        if not self.qty_step > 0:
            raise SettingsError(f"qty_step must be positive, got {self.qty_step!r}")
        if not self.initial_capital > 0:
            raise SettingsError(f"initial_capital must be positive, got {self.initial_capital!r}")
        if self.limit_timeout_steps < 1:
            raise SettingsError(f"limit_timeout_steps must be >= 1, got {self.limit_timeout_steps!r}")

    @property
    def latency_us(self) -> int:
        return self.latency_steps * self.cadence_ms * 1000

    def round_qty(self, qty: float) -> float:
        """Round a non-negative quantity down to the lot step (with a little float slack)."""
        lots = math.floor(qty / self.qty_step + 1e-9)
        return round(lots * self.qty_step, 12)

    def as_dict(self) -> dict:
        return asdict(self)


def config_from_mapping(cls, data: dict, section: str):
    """Build a frozen config dataclass from a TOML section; unknown keys are an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"[{section}]: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise SettingsError(f"[{section}]: {exc}") from None


def read_toml(path: str | Path) -> dict:
    from trade_pipeline.storage.input_files import check_input_file

    path = check_input_file(path, "config file")  # missing, a directory, unreadable, empty
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path}: not valid TOML ({exc})") from None
