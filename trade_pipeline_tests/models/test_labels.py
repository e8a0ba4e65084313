"""Labels: forward returns within a session, null at session end, no look-ahead."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.models.labels import (
    LabelError,
    add_labels,
    dead_zone,
    direction_labels,
    forward_returns,
    horizon_name,
    parse_horizon,
)

T0 = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)


def frame(ms: list[int], mids: list[float], sessions: list[int], spread: float = 0.1) -> pl.DataFrame:
    return pl.DataFrame({
        "timestamp": [T0 + dt.timedelta(milliseconds=m) for m in ms],
        "exchange": "bybit", "symbol": "BTCUSDT",
        "session_id": sessions, "mid_price": mids, "spread": [spread] * len(ms),
    }).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))


def test_forward_return_uses_last_row_at_or_before_t_plus_h() -> None:
    # grid row 300 ms missing (crossed book skipped): the label at 0 uses the row at 200 ms
    f = frame([0, 100, 200, 400, 500], [100.0, 101, 102, 104, 105], [1] * 5)
    r = forward_returns(f, "300ms").to_list()
    assert r[0] == pytest.approx(102 / 100 - 1)
    assert r[1] == pytest.approx(104 / 101 - 1)  # 400 <= 100 + 300
    assert r[2] == pytest.approx(105 / 102 - 1)  # the session reaches exactly t + h
    assert r[3] is None and r[4] is None  # session ends before t + h


def test_session_end_gives_null_and_never_crosses_sessions() -> None:
    f = frame([0, 100, 200, 300, 400, 500], [100.0, 101, 102, 500, 501, 502], [1, 1, 1, 2, 2, 2])
    r = forward_returns(f, "200ms").to_list()
    assert r[0] == pytest.approx(0.02)
    assert r[1] is None and r[2] is None  # session 1 ends at 200 ms < t + h
    assert r[3] == pytest.approx(502 / 500 - 1)
    # exactly reaching t + h at the session's last row is enough
    assert forward_returns(f, "100ms").to_list()[1] == pytest.approx(102 / 101 - 1)


def test_output_order_follows_input_order() -> None:
    f = frame([0, 100, 200, 300], [100.0, 101, 102, 103], [1] * 4)
    shuffled = f[[2, 0, 3, 1]]
    r = forward_returns(shuffled, "100ms").to_list()
    assert r[0] == pytest.approx(103 / 102 - 1)
    assert r[1] == pytest.approx(0.01)
    assert r[2] is None
    assert r[3] == pytest.approx(102 / 101 - 1)


def test_null_mid_stays_null_and_nothing_is_filled() -> None:
    f = frame([0, 100, 200], [100.0, None, 102], [1] * 3)
    r = forward_returns(f, "100ms").to_list()
    assert r == [None, None, None]


def test_direction_dead_zone() -> None:
    zone = 0.5 * 0.1 / 100.0
    r = pl.Series("fwd_return_1s", [0.01, zone, zone * 0.99, -zone * 0.99, -zone, None])
    assert direction_labels(r, zone).to_list() == [1, 1, 0, 0, -1, None]
    f = frame([0, 100], [100.0, 100.0], [1, 1])
    assert dead_zone(f) == pytest.approx(0.5 * 0.1 / 100.0)


def test_add_labels_default_horizons() -> None:
    f = frame(list(range(0, 40_000, 100)), list(100 + np.arange(400) * 0.01), [1] * 400)
    out = add_labels(f)
    for h in ("1s", "5s", "30s"):
        assert out[f"fwd_return_{h}"].null_count() == int(parse_horizon(h).total_seconds() * 10)
        assert set(out[f"direction_{h}"].drop_nulls().unique()) == {1}


def test_bad_inputs_raise() -> None:
    with pytest.raises(LabelError):
        parse_horizon("5 seconds")
    with pytest.raises(LabelError):
        parse_horizon("0s")
    with pytest.raises(LabelError):
        forward_returns(frame([0, 0], [1.0, 2.0], [1, 1]), "1s")  # duplicate times
    assert horizon_name("5000ms") == "5s" and horizon_name("60s") == "1m"


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.integers(1, 4), min_size=5, max_size=60),
    breaks=st.lists(st.booleans(), min_size=60, max_size=60),
    horizon_ms=st.sampled_from([100, 200, 300, 500, 1000]),
    pivot=st.integers(0, 59),
    seed=st.integers(0, 2**16),
)
def test_rows_after_t_plus_h_never_change_the_label_at_t(steps, breaks, horizon_ms, pivot, seed) -> None:
    """Change every value of every row after t + h (and of other sessions): the label at t
    and the labels of all rows whose window ends before the change stay the same, unless the
    change removes rows (it does not here)."""
    ms = np.cumsum([0, *[s * 100 for s in steps]]).tolist()
    n = len(ms)
    sessions = np.cumsum([1, *[int(b) for b in breaks[: n - 1]]]).tolist()
    rng = np.random.default_rng(seed)
    mids = (100 + rng.normal(size=n)).tolist()
    f = frame(ms, mids, sessions)
    base = forward_returns(f, f"{horizon_ms}ms").to_list()
    t = ms[min(pivot, n - 1)]
    cut = t + horizon_ms
    changed = f.with_columns(
        pl.when(pl.col("timestamp") > T0 + dt.timedelta(milliseconds=cut))
        .then(pl.col("mid_price") * 3 + 7).otherwise(pl.col("mid_price")).alias("mid_price")
    )
    after = forward_returns(changed, f"{horizon_ms}ms").to_list()
    for i in range(n):
        if ms[i] + horizon_ms <= cut:
            assert after[i] == base[i]
