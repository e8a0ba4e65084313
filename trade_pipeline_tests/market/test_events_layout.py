"""Our event layout is hftbacktest's, bit for bit (the comparison benchmark relies on it)."""

import pytest

from trade_pipeline.market import events


def test_layout_matches_hftbacktest():
    hbt = pytest.importorskip("hftbacktest.types", reason="hftbacktest (bench extra) not installed")
    assert hbt.event_dtype == events.EVENT_DTYPE
    for name in ("DEPTH_EVENT", "TRADE_EVENT", "DEPTH_CLEAR_EVENT", "DEPTH_SNAPSHOT_EVENT",
                 "BUY_EVENT", "SELL_EVENT", "LOCAL_EVENT", "EXCH_EVENT"):
        assert getattr(events, name) == getattr(hbt, name), name
