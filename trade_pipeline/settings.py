"""One typed settings object: every path, URI and cadence; the only reader of env vars.

`Settings.load(home=...)` resolves the home folder from the argument, then
`TRADE_PIPELINE_HOME`, then `~/.trade-pipeline`. Everything the pipeline writes lives
under that one folder, so two homes never interfere.

A home may hold `settings.toml` for values that belong to its data rather than to one
process (today: `partitions_start`, the first daily partition, i.e. where the home's data
begins; `trade-pipeline demo` writes it). The environment overrides the file.
"""

import os
import re
import tomllib
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
HOME_SETTINGS_FILE = "settings.toml"
HOME_SETTINGS_KEYS = ("partitions_start",)
# The first daily partition when neither the environment nor the home's settings.toml set one.
DEFAULT_PARTITIONS_START = "2024-08-01"
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
    """A positive finite number from the environment (`default` when unset)."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not 0 < value < float("inf"):
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
    # How long a command waits for a service (MLflow, PostgreSQL, Redis) to answer its
    # preflight check before it stops with an error naming the URL.
    service_timeout_s: float = 5.0
    # How Dagster runs the steps of a run: in one process (local default), one process per
    # step, one Kubernetes pod per step, or on a Dask cluster (deployment; docs/DEPLOYMENT.md).
    executor: str = "in_process"
    # First day (UTC, YYYY-MM-DD) of the daily partitions: set it to where the data begins,
    # or the UI lists every day since the default as a missing partition.
    partitions_start: str = DEFAULT_PARTITIONS_START
    # The registered model traded by default (paper trading, the backtest asset), NAME@ALIAS.
    model_ref: str = "btc_l2_5s@champion"
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
        check_date(self.partitions_start)
        if self.cadence_ms <= 0:
            raise SettingsError(f"cadence_ms must be positive, got {self.cadence_ms}")
        if not (0 < self.service_timeout_s < float("inf")):
            raise SettingsError(
                f"service timeout must be a positive number of seconds, got {self.service_timeout_s}")
        if not isinstance(self.model_ref, str) or "@" not in self.model_ref:
            raise SettingsError(f"invalid model reference {self.model_ref!r}: expected NAME@ALIAS")
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
        home_path = Path(raw_home).expanduser().resolve()
        in_home = read_home_settings(home_path)
        opts: dict = {
            "redis_url": env.get("TRADE_PIPELINE_REDIS_URL", cls.redis_url),
            "service_timeout_s": _positive_float(env, "TRADE_PIPELINE_SERVICE_TIMEOUT",
                                                 cls.service_timeout_s),
            # Our own variable, not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() exports that
            # one process-wide, which would silently redirect every other home.
            "mlflow_tracking_uri_override": env.get("TRADE_PIPELINE_MLFLOW_TRACKING_URI") or None,
            "mlflow_artifact_uri_override": env.get("TRADE_PIPELINE_MLFLOW_ARTIFACTS") or None,
            "lake_uri_override": env.get("TRADE_PIPELINE_LAKE") or None,
            "executor": env.get("TRADE_PIPELINE_EXECUTOR") or "in_process",
            "partitions_start": env.get("TRADE_PIPELINE_PARTITIONS_START")
            or in_home.get("partitions_start") or DEFAULT_PARTITIONS_START,
            "model_ref": env.get("TRADE_PIPELINE_MODEL") or cls.model_ref,
            "dask_scheduler": env.get("TRADE_PIPELINE_DASK_SCHEDULER") or None,
            "train_memory_gb": _positive_float(env, "TRADE_PIPELINE_TRAIN_MEMORY_GB",
                                               DEFAULT_TRAIN_MEMORY_GB),
        }
        opts.update({k: v for k, v in overrides.items() if v is not None})
        return cls(home=home_path, **opts)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    # ---- derived locations --------------------------------------------------------------
    @property
    def home_settings_path(self) -> Path:
        return home_settings_path(self.home)

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


def home_settings_path(home: Path) -> Path:
    return Path(home) / HOME_SETTINGS_FILE


def read_home_settings(home: Path) -> dict[str, str]:
    """The home's `settings.toml` ({} when there is none); unknown keys and bad values are
    errors that name the file."""
    path = home_settings_path(home)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(HOME_SETTINGS_KEYS))
    if unknown:
        raise SettingsError(
            f"{path}: unknown keys {unknown}; known: {', '.join(HOME_SETTINGS_KEYS)}"
        )
    out = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise SettingsError(f"{path}: {key} must be a string, got {value!r}")
        out[key] = value
    if "partitions_start" in out:
        try:
            check_date(out["partitions_start"])
        except SettingsError as exc:
            raise SettingsError(f"{path}: partitions_start: {exc}") from None
    return out


def render_home_settings(values: dict[str, str]) -> str:
    """`settings.toml` text for `values` (keys of HOME_SETTINGS_KEYS)."""
    lines = ["# Settings of this trade-pipeline home (environment variables override them)."]
    for key in HOME_SETTINGS_KEYS:
        if key in values:
            lines.append(f'{key} = "{check_date(values[key]) if key == "partitions_start" else values[key]}"')
    return "\n".join(lines) + "\n"
