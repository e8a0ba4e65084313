"""The daily l2_features asset: exact warm-up across midnight, checks, metadata."""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest

from trade_pipeline.defs.features import l2_features
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.features.batch import compute_features
from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.storage.layout import PartitionKey, read_partition, write_partition

DAY1, DAY2 = "2024-08-10", "2024-08-11"
MIDNIGHT = dt.datetime(2024, 8, 11, tzinfo=dt.UTC)


def _session(start: dt.datetime, seconds: float, sid: int, rng, bid_frozen_after: float | None,
             step_ms: int = 100) -> pl.DataFrame:
    n = int(seconds * 1000 / step_ms)
    moves = rng.integers(-1, 2, n) * (rng.random(n) < 0.3) * 0.5
    bid = 60_000 + np.cumsum(moves)
    if bid_frozen_after is not None:  # the best bid stops changing: lifetimes reach far back
        k = int(bid_frozen_after * 1000 / step_ms)
        bid[k:] = bid[k]
    spread = rng.integers(1, 3, n) * 0.5
    ts = [start + dt.timedelta(milliseconds=step_ms * i) for i in range(n)]
    cols = {"timestamp": ts, "exchange": ["bybit"] * n, "symbol": ["BTCUSDT"] * n}
    for i in range(1, 11):
        cols[f"bid_price_{i}"] = bid - 0.5 * (i - 1)
        cols[f"bid_size_{i}"] = rng.integers(1, 80, n) / 10
        cols[f"ask_price_{i}"] = bid + spread + 0.5 * (i - 1)
        cols[f"ask_size_{i}"] = rng.integers(1, 80, n) / 10
    cols.update(update_id=np.arange(n), received_timestamp=ts, session_id=[sid] * n)
    return pl.DataFrame(cols).cast(SNAPSHOT_SCHEMA).select(list(SNAPSHOT_SCHEMA))


@pytest.fixture
def two_days(settings):
    rng = np.random.default_rng(11)
    early = _session(MIDNIGHT - dt.timedelta(minutes=30), 300, 4, rng, None)
    # session 5: 10 min before midnight to 6 min after; its bid freezes 1 min in, so at
    # midnight the bid lifetime reaches back 9 min, further than any window
    crossing = _session(MIDNIGHT - dt.timedelta(minutes=10), 960, 5, rng, 60)
    later = _session(MIDNIGHT + dt.timedelta(minutes=8), 120, 6, rng, None)
    both = pl.concat([early, crossing, later])
    day1 = both.filter(pl.col("timestamp") < MIDNIGHT)
    day2 = both.filter(pl.col("timestamp") >= MIDNIGHT)
    write_partition(day1, settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", DAY1))
    write_partition(day2, settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", DAY2))
    return both, day2


def _materialize(settings, day):
    return dg.materialize([l2_features], resources=build_resources(str(settings.home)),
                          partition_key=day, instance=dg.DagsterInstance.ephemeral())


def _close(a: pl.DataFrame, b: pl.DataFrame) -> None:
    x, y = a.select(FEATURE_NAMES).to_numpy(), b.select(FEATURE_NAMES).to_numpy()
    assert (np.isnan(x) == np.isnan(y)).all()
    x, y = np.nan_to_num(x), np.nan_to_num(y)
    assert (np.abs(x - y) <= np.maximum(1e-12, 1e-9 * np.abs(y))).all()


def test_a_day_alone_equals_the_day_inside_the_range(settings, two_days):
    both, day2 = two_days
    result = _materialize(settings, DAY2)
    assert result.success
    alone = read_partition(settings.lake_dir, "l2_features", PartitionKey("bybit", "BTCUSDT", DAY2))
    ranged = compute_features(both).filter(pl.col("timestamp") >= MIDNIGHT)
    assert alone.height == day2.height
    assert alone.select("timestamp", "session_id").equals(ranged.select("timestamp", "session_id"))
    _close(alone, ranged)
    first = alone.row(0, named=True)
    assert first["bid_quote_lifetime"] > 530  # bid frozen ~9 min before midnight
    # without the warm-up the day would differ (the test can fail)
    cold = compute_features(day2)
    assert cold["bid_quote_lifetime"][0] == 0.0
    assert cold["ofi_5m"][0] != ranged["ofi_5m"][0] or cold["l2_volatility_10"][0] is None

    mats = result.asset_materializations_for_node("l2_features")
    meta = mats[0].metadata
    assert meta["rows"].value == day2.height
    assert meta["warmup_rows"].value > 3000  # 5 min of rows + change rows
    assert meta["warmup_complete"].value is True
    assert meta["bytes_per_row"].value <= 500
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"schema_matches_catalog": True, "no_infinities": True,
                      "null_rates_within_warmup": True}


def test_first_day_starts_cold_and_missing_snapshots_fail(settings, two_days):
    result = _materialize(settings, DAY1)
    assert result.success
    meta = result.asset_materializations_for_node("l2_features")[0].metadata
    assert meta["warmup_rows"].value == 0
    assert "no previous partition" in meta["warmup_notes"].value
    with pytest.raises(dg.Failure, match="no partition"):
        _materialize(settings, "2024-08-12")
