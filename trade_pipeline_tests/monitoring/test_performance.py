"""Rolling IC / hit rate against realized returns, and PnL summaries, worked by hand."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trade_pipeline.monitoring.performance import overall, pnl_summary, rolling_ic, with_realized

from .helpers import snapshot_frame

T0 = dt.datetime(2025, 7, 7, 10, 0, tzinfo=dt.UTC)


def _frame(pred, real, start=T0, step_s=1):
    return pl.DataFrame(
        {
            "timestamp": [start + dt.timedelta(seconds=step_s * i) for i in range(len(pred))],
            "prediction": pred,
            "realized": real,
        },
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    )


def test_perfect_and_inverted_predictions():
    real = list(np.linspace(-1, 1, 40))
    stats = overall(_frame(real, real))
    assert stats["ic"] == pytest.approx(1.0) and stats["rank_ic"] == pytest.approx(1.0)
    assert stats["hit_rate"] == 1.0
    inv = overall(_frame([-x for x in real], real))
    assert inv["ic"] == pytest.approx(-1.0) and inv["hit_rate"] == 0.0


def test_hit_rate_ignores_zero_and_null_rows():
    pred = [1.0, -1.0, 0.0, 1.0, None, 1.0]
    real = [0.5, 0.5, 0.5, 0.0, 0.5, -0.5]
    stats = overall(_frame(pred, real), min_rows=1)
    # Scored rows: 5 (the null prediction dropped); directional: rows 0, 1, 5 -> 1 hit of 3.
    assert stats["rows"] == 5 and stats["directional_rows"] == 3
    assert stats["hit_rate"] == pytest.approx(1 / 3)


def test_too_few_rows_give_null_not_zero():
    stats = overall(_frame([1.0, 2.0], [1.0, 2.0]))
    assert stats["ic"] is None and stats["hit_rate"] is None


def test_rolling_windows():
    real = list(np.sin(np.arange(7200) / 50))
    pred = real[:3600] + [-x for x in real[3600:]]
    windows = rolling_ic(_frame(pred, real), every="1h")
    assert windows.height == 2
    assert windows["ic"].to_list() == pytest.approx([1.0, -1.0])
    assert windows["hit_rate"].to_list() == pytest.approx([1.0, 0.0])


def test_realized_returns_come_from_the_same_session():
    # Mids 100, 101, 102 in session 1 then 200 in session 2; horizon 100 ms.
    snaps = snapshot_frame(T0, [0, 100, 200, 300], sessions=[1, 1, 1, 2],
                           mids=[100.0, 101.0, 102.0, 200.0])
    preds = pl.DataFrame(
        {"timestamp": [T0 + dt.timedelta(milliseconds=o) for o in (0, 100, 200, 250)],
         "prediction": [1.0, 1.0, 1.0, 1.0]},
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    )
    joined, unmatched = with_realized(preds, snaps, "100ms")
    assert unmatched == 1  # 250 ms is not a grid row
    realized = joined["realized"].to_list()
    assert realized[0] == pytest.approx(0.01) and realized[1] == pytest.approx(102 / 101 - 1)
    assert realized[2] is None  # session 1 ends before t + h: never the next session's mid
    assert realized[3] is None


def test_pnl_summary_groups():
    trades = pl.DataFrame({"run_id": ["a", "a", "b"], "pnl": [1.0, -0.5, 2.0], "fee": [0.1, 0.1, 0.2]})
    rows = pnl_summary(trades, "pnl", "fee", ["run_id"])
    assert rows == [
        {"run_id": "a", "trades": 2, "pnl": 0.5, "fees": pytest.approx(0.2)},
        {"run_id": "b", "trades": 1, "pnl": 2.0, "fees": 0.2},
    ]
