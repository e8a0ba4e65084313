"""Freshness and capture gaps from a hand-made lake and raw store."""

import datetime as dt
import gzip

import pytest

from trade_pipeline.monitoring.freshness import day_gaps, freshness_report
from trade_pipeline.storage.layout import PartitionKey, write_partition

from .helpers import snapshot_frame

T0 = dt.datetime(2025, 7, 7, 10, 0, tzinfo=dt.UTC)


def test_day_gaps_counts_missing_grid_times():
    # Grid 100 ms: rows at 0..4, then 10..12 (5 missing: 5..9), new session at 20 (7 missing).
    offsets = [0, 100, 200, 300, 400, 1000, 1100, 1200, 2000]
    frame = snapshot_frame(T0, offsets, sessions=[1] * 8 + [2])
    gaps = day_gaps(frame, 100, "2025-07-07")
    assert gaps.rows == 9 and gaps.sessions == 2
    assert gaps.gaps == 2
    assert gaps.missing_grid_times == 5 + 7
    assert gaps.gap_rate == pytest.approx(12 / 21)
    assert gaps.longest_gap_s == pytest.approx(0.8)


def test_day_gaps_without_gaps_and_empty():
    frame = snapshot_frame(T0, [0, 100, 200])
    gaps = day_gaps(frame, 100, "2025-07-07")
    assert (gaps.gaps, gaps.missing_grid_times, gaps.gap_rate, gaps.longest_gap_s) == (0, 0, 0.0, None)
    empty = day_gaps(frame.head(0), 100, "2025-07-07")
    assert empty.rows == 0 and empty.gap_rate is None


def test_report_per_symbol_with_absent_layers(settings):
    key = PartitionKey("bybit", "BTCUSDT", "2025-07-07")
    write_partition(snapshot_frame(T0, [0, 100, 500]), settings.lake_dir, "l2_snapshots", key)
    raw = settings.raw_dir / "exchange=bybit" / "symbol=ETHUSDT" / "date=2025-07-07"
    raw.mkdir(parents=True)
    (raw / "100000000000-abcdef01.raw.gz").write_bytes(gzip.compress(b"1 {}\n"))
    now = T0 + dt.timedelta(hours=1)
    report = freshness_report(settings, now=now)
    by_symbol = {s["symbol"]: s for s in report["symbols"]}
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT"}
    btc, eth = by_symbol["BTCUSDT"], by_symbol["ETHUSDT"]
    assert btc["raw"] is None and btc["l2_features"] is None
    snaps = btc["l2_snapshots"]
    assert snaps["last_date"] == "2025-07-07" and snaps["partitions"] == 1
    assert snaps["age_s"] == pytest.approx(3600 - 0.5)
    assert btc["gaps"][0]["missing_grid_times"] == 3
    assert eth["l2_snapshots"] is None and eth["raw"]["files"] == 1
