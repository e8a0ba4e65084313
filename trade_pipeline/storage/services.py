"""Preflight checks of the services a command needs, before it starts its work.

A command that trains for minutes and then finds MLflow unreachable loses the work; one that
waits on a dead host hangs for minutes in library retries. So commands check first, with a
timeout of seconds, and stop with one line naming the URL (credentials masked):

- `check_mlflow(uri, timeout)`: http(s) -> GET `<uri>/health`; a database URI (postgresql,
  mysql, ...) -> open one connection with a connect timeout; sqlite / file stores are local
  (their folder must be creatable).
- `check_redis(url, timeout)`: PING with connect and socket timeouts.
"""

import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from trade_pipeline.errors import TradePipelineError


class ServiceUnavailable(TradePipelineError, ConnectionError):
    """A service the command needs did not answer its preflight check."""


def redact(uri: str) -> str:
    """The URI with its password masked (for messages and logs)."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and exc.reason is not None:
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def check_mlflow(uri: str, timeout_s: float) -> None:
    """Raise ServiceUnavailable unless the MLflow tracking store at `uri` answers."""
    scheme = uri.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        _check_http(uri, timeout_s)
    elif scheme.split("+", 1)[0] in ("postgresql", "postgres", "mysql", "mssql"):
        _check_database(uri, timeout_s)
    elif scheme == "sqlite":
        folder = Path(uri.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceUnavailable(f"MLflow store {redact(uri)}: cannot create {folder}: "
                                     f"{exc.strerror}") from None
    # file:, plain paths, databricks, ...: nothing to reach before the work


def _check_http(uri: str, timeout_s: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if resp.status == 200:
                return
            problem = f"answered HTTP {resp.status} at /health"
    except urllib.error.HTTPError as exc:
        problem = f"answered HTTP {exc.code} at /health (is it an MLflow server?)"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        problem = f"unreachable ({_reason(exc)} after at most {timeout_s:g} s)"
    raise ServiceUnavailable(
        f"MLflow tracking server {redact(uri)} {problem}; start it, or point "
        "TRADE_PIPELINE_MLFLOW_TRACKING_URI elsewhere")


def _check_database(uri: str, timeout_s: float) -> None:
    import sqlalchemy

    scheme = uri.split(":", 1)[0].lower()
    args = {"connect_timeout": max(1, round(timeout_s))}  # libpq / pymysql: whole seconds
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # driver errors share no base class worth naming here
        raise ServiceUnavailable(
            f"MLflow backend database {redact(uri)} unreachable ({scheme}: "
            f"{_reason(getattr(exc, 'orig', None) or exc)}); start it, or point "
            "TRADE_PIPELINE_MLFLOW_TRACKING_URI elsewhere") from None


def check_redis(url: str, timeout_s: float) -> None:
    """Raise ServiceUnavailable unless Redis at `url` answers PING."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                      socket_timeout=timeout_s)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ServiceUnavailable(
            f"Redis {redact(url)} unreachable ({_reason(exc)}); start it, or run without the "
            "online store (--no-redis)") from None
