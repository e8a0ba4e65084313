"""Shared fixtures: the real data in ../shared/data, isolated homes, real PostgreSQL and Redis."""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from trade_pipeline.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRADE_PIPELINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
REQUIRE_SHARED_DATA = os.environ.get("REQUIRE_SHARED_DATA") == "1"
PG_DSN = os.environ.get("TRADE_PIPELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TRADE_PIPELINE_TEST_REDIS", "redis://127.0.0.1:6379")


def _need_shared(path: Path) -> Path:
    if not path.exists():
        reason = f"real market data not found at {path} (clone with ../shared beside the repo)"
        if REQUIRE_SHARED_DATA:
            pytest.fail(f"REQUIRE_SHARED_DATA=1 but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need_shared(SHARED_DATA)


@pytest.fixture(scope="session")
def bybit_delta_files(shared_data: Path) -> list[Path]:
    """Format-2 captures (snapshot + delta), in name (= time) order."""
    files = sorted(p for p in (shared_data / "bybit").glob("*.jsonl.gz") if "175705" not in p.name)
    assert files, "no format-2 Bybit captures in shared data"
    return files


@pytest.fixture(scope="session")
def bybit_ccxt_file(shared_data: Path) -> Path:
    return _need_shared(shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250707_175705.jsonl.gz")


@pytest.fixture(scope="session")
def bybit_truncated_file(shared_data: Path) -> Path:
    return _need_shared(shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250710_040421.jsonl.gz")


@pytest.fixture(scope="session")
def binance_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "binance").glob("*.gz"))
    assert files, "no Binance captures in shared data"
    return files


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An isolated pipeline home under the test's tmp dir."""
    return Settings.load(home=tmp_path / "home").ensure_dirs()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"tp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@dataclass(frozen=True)
class RedisTarget:
    url: str  # a dedicated db number on the local server
    prefix: str  # unique key prefix for this test


@pytest.fixture
def redis_target() -> Iterator[RedisTarget]:
    """The local Redis (db 15) with a unique key prefix; the test's keys are removed after."""
    redis = pytest.importorskip("redis")
    target = RedisTarget(url=f"{REDIS_URL}/15", prefix=f"tp_test_{uuid.uuid4().hex[:12]}")
    client = redis.Redis.from_url(target.url)
    client.ping()
    try:
        yield target
    finally:
        for key in client.scan_iter(f"{target.prefix}*"):
            client.delete(key)
