"""Fixtures of the feature tests: real-data snapshots, built once per test session."""

import pytest


@pytest.fixture(scope="session")
def real_snapshots(bybit_delta_files, bybit_ccxt_file, binance_files) -> dict:
    """All of ../shared/data as l2_snapshots frames (Bybit format 2, format 3, Binance)."""
    from trade_pipeline.market.snapshots import build_snapshots

    return {
        "bybit_format2": build_snapshots(bybit_delta_files).frame,
        "bybit_format3": build_snapshots([bybit_ccxt_file]).frame,
        "binance": build_snapshots(binance_files).frame,
    }
