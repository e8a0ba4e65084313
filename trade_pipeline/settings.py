"""One typed settings object: every path, URI and cadence; the only reader of env vars.

`Settings.load(home=...)` resolves the home folder from the argument, then
`TRADE_PIPELINE_HOME`, then `~/.trade-pipeline`. Everything the pipeline writes lives
under that one folder, so two homes never interfere.
"""

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from trade_pipeline.errors import TradePipelineError

HOME_ENV = "TRADE_PIPELINE_HOME"
DEFAULT_HOME = Path("~/.trade-pipeline")

# Identifiers that reach paths or SQL must match these (security: no injection via symbol/date).
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
EXCHANGE_RE = re.compile(r"^[a-z0-9_]{2,20}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXECUTORS = ("in_process", "multiprocess", "k8s", "dask")
DEFAULT_TRAIN_MEMORY_GB = 8.0


class SettingsError(TradePipelineError, ValueError):
    """A configuration value is wrong; the message says which and why."""


def check_symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise SettingsError(
            f"invalid symbol {symbol!r}: expected 2-20 upper-case letters or digits, e.g. BTCUSDT"
        )
    return symbol


def check_exchange(exchange: str) -> str:
    if not isinstance(exchange, str) or not EXCHANGE_RE.match(exchange):
        raise SettingsError(
            f"invalid exchange {exchange!r}: expected 2-20 lower-case letters, digits or _"
        )
    return exchange


def check_date(day: str) -> str:
    import datetime as _dt

    if not isinstance(day, str) or not DATE_RE.match(day):
        raise SettingsError(f"invalid date {day!r}: expected YYYY-MM-DD")
    try:
        _dt.date.fromisoformat(day)
    except ValueError as exc:
        raise SettingsError(f"invalid date {day!r}: {exc}") from None
    return day


def _positive_float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not value > 0:
        raise SettingsError(f"{name}={raw!r}: expected a positive number")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    exchange: str = "bybit"
    symbol: str = "BTCUSDT"
    cadence_ms: int = 100
    bybit_ws_url: str = "wss://stream.bybit.com/v5/public/linear"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # How Dagster runs the steps of a run: in one process (local default), one process per
    # step, one Kubernetes pod per step, or on a Dask cluster (deployment; docs/DEPLOYMENT.md).
    executor: str = "in_process"
    # The Dask scheduler the `dask` executor and distributed training connect to
    # (tcp://host:8786); required with executor "dask".
    dask_scheduler: str | None = None
    # Memory one training process may plan to use (models/dataset.py refuses a larger request
    # with the figure, before loading anything).
    train_memory_gb: float = DEFAULT_TRAIN_MEMORY_GB
    # Optional overrides (None: derived from home).
    mlflow_tracking_uri_override: str | None = None
    mlflow_artifact_uri_override: str | None = None
    lake_uri_override: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_symbol(self.symbol)
        check_exchange(self.exchange)
        if self.cadence_ms <= 0:
            raise SettingsError(f"cadence_ms must be positive, got {self.cadence_ms}")
        if self.executor not in EXECUTORS:
            raise SettingsError(
                f"invalid executor {self.executor!r}: expected one of {', '.join(EXECUTORS)}"
            )
        if self.executor == "dask" and not self.dask_scheduler:
            raise SettingsError(
                "executor 'dask' needs the scheduler address: set TRADE_PIPELINE_DASK_SCHEDULER "
                "(e.g. tcp://dask-scheduler:8786)"
            )
        if not self.train_memory_gb > 0:
            raise SettingsError(f"train_memory_gb must be positive, got {self.train_memory_gb}")

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, home: str | os.PathLike | None = None, **overrides) -> "Settings":
        env = os.environ
        raw_home = home or env.get(HOME_ENV) or DEFAULT_HOME
        opts: dict = {
            "redis_url": env.get("TRADE_PIPELINE_REDIS_URL", cls.redis_url),
            # Our own variable, not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() exports that
            # one process-wide, which would silently redirect every other home.
            "mlflow_tracking_uri_override": env.get("TRADE_PIPELINE_MLFLOW_TRACKING_URI") or None,
            "mlflow_artifact_uri_override": env.get("TRADE_PIPELINE_MLFLOW_ARTIFACTS") or None,
            "lake_uri_override": env.get("TRADE_PIPELINE_LAKE") or None,
            "executor": env.get("TRADE_PIPELINE_EXECUTOR") or "in_process",
            "dask_scheduler": env.get("TRADE_PIPELINE_DASK_SCHEDULER") or None,
            "train_memory_gb": _positive_float(env, "TRADE_PIPELINE_TRAIN_MEMORY_GB",
                                               DEFAULT_TRAIN_MEMORY_GB),
        }
        opts.update({k: v for k, v in overrides.items() if v is not None})
        return cls(home=Path(raw_home).expanduser().resolve(), **opts)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    # ---- derived locations --------------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        """Append-only raw captures, one folder per day and symbol."""
        return self.home / "raw"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def lake_dir(self) -> str:
        """Root of the Parquet lake: a local folder, or an object-store URI (s3://...)."""
        return self.lake_uri_override or str(self.home / "lake")

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri_override:
            return self.mlflow_tracking_uri_override
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifact_uri(self) -> str:
        if self.mlflow_artifact_uri_override:
            return self.mlflow_artifact_uri_override
        return (self.home / "mlflow" / "artifacts").as_uri()

    def ensure_dirs(self) -> "Settings":
        for path in (self.home, self.raw_dir, self.archive_dir, self.dagster_home,
                     self.home / "mlflow"):
            path.mkdir(parents=True, exist_ok=True)
        if "://" not in self.lake_dir:
            Path(self.lake_dir).mkdir(parents=True, exist_ok=True)
        return self
