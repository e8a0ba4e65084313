"""Strategy rule, online store (local Redis) and the live risk controls."""

import math
import os
import signal

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.online_store import OnlineStore
from trade_pipeline.trading.risk import KillSwitch, StaleDataGuard
from trade_pipeline.trading.strategy import StrategyConfig, next_signal, signals_from_predictions


def test_next_signal_thresholds_and_hysteresis():
    cfg = StrategyConfig(entry_threshold=1.0, exit_threshold=0.2)
    preds = [0.5, 1.0, 0.5, 0.1, -0.5, -1.2, -0.1, float("nan"), 0.3, 2.0, -3.0]
    assert signals_from_predictions(preds, cfg).tolist() == [0, 1, 1, 0, 0, -1, 0, 0, 0, 1, -1]


@given(st.lists(st.floats(-5, 5) | st.just(math.nan), max_size=60), st.floats(0.01, 2), st.floats(0, 1))
def test_signal_invariants(preds, entry, frac):
    exit_ = entry * frac
    prev = 0
    for p in preds:
        s = next_signal(prev, p, entry, exit_)
        assert s in (-1, 0, 1)
        if p != p:
            assert s == prev  # no prediction: no new decision
        elif p >= entry:
            assert s == 1
        elif p <= -entry:
            assert s == -1
        elif prev == 0:
            assert s == 0  # no entry inside the band
        prev = s


def test_strategy_config_validation():
    with pytest.raises(SettingsError, match="exit_threshold"):
        StrategyConfig(entry_threshold=0.1, exit_threshold=0.2)
    with pytest.raises(SettingsError, match="drawdown_stop"):
        StrategyConfig(drawdown_stop=1.5)


def test_online_store_roundtrip_ttl_and_nulls(redis_target):
    client = redis.Redis.from_url(redis_target.url)
    store = OnlineStore(client, redis_target.prefix, list(FEATURE_NAMES), ttl_s=5)
    values = [float(i) for i in range(len(FEATURE_NAMES))]
    values[5] = math.nan
    store.put("bybit", "BTCUSDT", 1_751_865_300_100_000, values, "7")
    got = store.get("bybit", "BTCUSDT")
    assert got["timestamp"] == "2025-07-07T05:15:00.100000+00:00"
    assert got["model_version"] == "7" and got["n_features"] == 118
    assert list(got["features"]) == list(FEATURE_NAMES)
    assert got["features"][FEATURE_NAMES[5]] is None  # a null stays null, never 0
    assert got["features"][FEATURE_NAMES[6]] == 6.0
    assert 0 < client.pttl(store.key("bybit", "BTCUSDT")) <= 5000
    with pytest.raises(ValueError, match="118"):
        store.put("bybit", "BTCUSDT", 0, values[:10], "7")
    with pytest.raises(SettingsError):
        store.key("bybit", "btc/usdt")
    with pytest.raises(SettingsError):
        OnlineStore(client, "bad prefix*", list(FEATURE_NAMES))


def test_kill_switch_sources(tmp_path, redis_target):
    client = redis.Redis.from_url(redis_target.url)
    ks = KillSwitch(path=tmp_path / "KILL", redis_client=client, redis_key=f"{redis_target.prefix}:kill",
                    check_every_s=0.0)
    assert ks.check() is None
    client.set(f"{redis_target.prefix}:kill", "1")
    assert ks.check() == f"kill_switch:redis:{redis_target.prefix}:kill"
    ks2 = KillSwitch(path=tmp_path / "KILL", check_every_s=0.0)
    (tmp_path / "KILL").touch()
    assert ks2.check().startswith("kill_switch:file")
    ks3 = KillSwitch(install_signal=True)
    old = signal.getsignal(signal.SIGUSR1)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert ks3.check() == "kill_switch:signal"
    finally:
        signal.signal(signal.SIGUSR1, old if old is not None else signal.SIG_DFL)


def test_stale_data_guard():
    g = StaleDataGuard(2.0)
    g.touch(100.0)
    assert not g.stale(101.9) and g.stale(102.1)
    with pytest.raises(ValueError):
        StaleDataGuard(0)
