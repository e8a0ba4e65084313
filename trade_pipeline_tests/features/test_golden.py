"""Golden vectors worked by hand, one or more per group (FEATURES.md)."""

import math

import numpy as np
import pytest

from trade_pipeline.features.batch import compute_features
from trade_pipeline_tests.features.books import frame, l1, random_frame
from trade_pipeline_tests.features.reference import assert_close, reference

H5 = 1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5

# FEATURES.md's OFI golden vector (level 1, consecutive rows).
BP = [100, 100, 100.5, 100.5, 100, 100]
BQ = [5, 7, 2, 1, 9, 9]
AP = [101, 101, 101, 101.5, 101.5, 101]
AQ = [4, 4, 3, 6, 6, 2]


def col(df, name):
    return df[name].to_list()


def test_ofi_golden_vector():
    rows = [l1(0.1 * i, BP[i], BQ[i], AP[i], AQ[i]) for i in range(6)]
    f = compute_features(frame(rows))
    # e = [0, 2, 3, 2, -1, -2]: every window holds all rows so far
    assert col(f, "ofi_10s") == [0, 2, 5, 7, 6, 4]
    assert col(f, "ofi_5m")[-1] == 4
    # levels 2..5 are missing in both rows: e^m = 0, only level 1 counts (weight 1 / H5)
    assert f["ofi_weighted_10s"][-1] == pytest.approx(4 / H5, rel=1e-12)
    depth = [(b + a) / 2 for b, a in zip(BQ, AQ, strict=True)]
    assert f["ofi_normalized_10s"][-1] == pytest.approx(4 / np.mean(depth), rel=1e-12)
    assert f["ofi_normalized_10s"][-1] == pytest.approx(24 / 29, rel=1e-12)


def test_ofi_weighted_uses_deeper_levels():
    # level 2 bid size grows by 3 at an unchanged price: e^2 = 3, weight 1/2
    a = {"t": 0.0, "bids": [(100, 1), (99, 2)], "asks": [(101, 1), (102, 1)]}
    b = {"t": 0.1, "bids": [(100, 1), (99, 5)], "asks": [(101, 1), (102, 1)]}
    f = compute_features(frame([a, b]))
    assert f["ofi_10s"][-1] == 0
    assert f["ofi_weighted_10s"][-1] == pytest.approx((3 / 2) / H5, rel=1e-12)


def test_windows_at_a_gap_count_only_present_rows():
    # the golden rows at irregular times: rows missing from the grid are not counted
    times = [0.0, 0.1, 3.0, 10.05, 10.1, 15.0]
    rows = [l1(times[i], BP[i], BQ[i], AP[i], AQ[i]) for i in range(6)]
    f = compute_features(frame(rows))
    # e = [0, 2, 3, 2, -1, -2]
    # t=10.05: window (0.05, 10.05] -> rows 0.1, 3.0, 10.05 -> 2 + 3 + 2 = 7
    # t=10.1:  window (0.1, 10.1] excludes t=0.1 (open at t - w) -> 3 + 2 - 1 = 4
    # t=15:    window (5, 15] -> 2 - 1 - 2 = -1
    assert col(f, "ofi_10s") == [0, 2, 5, 7, 4, -1]
    assert col(f, "ofi_30s") == [0, 2, 5, 7, 6, 4]
    # 1 s volatility at t=3.0 sees one return only -> null; at t=10.1, two returns
    vol = col(f, "l2_volatility_10")
    assert vol[:4] == [None, None, None, None]
    mids = [(b + a) / 2 for b, a in zip(BP, AP, strict=True)]
    rets = [mids[i] / mids[i - 1] - 1 for i in range(1, 6)]
    assert vol[4] == pytest.approx(np.std(rets[2:4], ddof=1), rel=1e-12)
    assert vol[5] is None


def test_pressure_weights():
    # mid = 100; bid levels at 50 and 100 bp, ask level at 50 bp from the mid
    row = {"t": 0, "bids": [(99.5, 2.0), (99.0, 3.0)], "asks": [(100.5, 1.0)]}
    f = compute_features(frame([row]), params={"delta_bp": 10.0, "lambda_bp": 25.0})
    bid = 2 / (1 + 50 / 10) + 3 / (1 + 100 / 10)
    ask = 1 / (1 + 50 / 10)
    bid_w = 2 * math.exp(-50 / 25) + 3 * math.exp(-100 / 25)
    ask_w = 1 * math.exp(-2)
    got = f.row(0, named=True)
    assert got["bid_pressure"] == pytest.approx(bid, rel=1e-12)
    assert got["ask_pressure"] == pytest.approx(ask, rel=1e-12)
    assert got["bid_pressure_weighted"] == pytest.approx(bid_w, rel=1e-12)
    assert got["ask_pressure_weighted"] == pytest.approx(ask_w, rel=1e-12)
    assert got["pressure_imbalance"] == pytest.approx((bid - ask) / (bid + ask), rel=1e-12)
    assert got["pressure_imbalance_weighted"] == pytest.approx(
        (bid_w - ask_w) / (bid_w + ask_w), rel=1e-12)
    assert got["book_depth_asymmetry"] == pytest.approx((5 - 1) / (5 + 1), rel=1e-12)
    # default params: delta 0.1 bp, lambda 0.5 bp
    d = compute_features(frame([row])).row(0, named=True)
    assert d["bid_pressure"] == pytest.approx(2 / 501 + 3 / 1001, rel=1e-12)
    assert d["ask_pressure_weighted"] == pytest.approx(math.exp(-100), rel=1e-9)


def test_microstructure_and_impact():
    row = {"t": 0, "bids": [(99.0, 2.0), (98.0, 1.0)],
           "asks": [(100.0, 0.4), (101.0, 0.5), (102.0, 1.0)]}
    g = compute_features(frame([row])).row(0, named=True)
    mid = 99.5
    assert g["mid_price"] == mid and g["spread"] == 1.0 and g["bid_ask_spread"] == 1.0
    assert g["spread_bps"] == pytest.approx(1 / mid * 1e4, rel=1e-12)
    assert g["bid_ask_spread_pct"] == pytest.approx(1 / mid * 100, rel=1e-12)
    micro = (99 * 0.4 + 100 * 2) / 2.4
    assert g["microprice"] == pytest.approx(micro, rel=1e-12)
    assert g["weighted_mid_price"] == pytest.approx((99 * 2 + 100 * 0.4) / 2.4, rel=1e-12)
    assert g["order_book_imbalance"] == pytest.approx(1.6 / 2.4, rel=1e-12)
    assert g["order_book_imbalance_2"] == pytest.approx((3 - 0.9) / 3.9, rel=1e-12)
    assert g["total_bid_volume_10"] == 3.0 and g["total_ask_volume_10"] == pytest.approx(1.9)
    assert g["total_bid_volume_1"] == 2.0 and g["total_ask_volume_3"] == pytest.approx(1.9)
    assert g["weighted_bid_price"] == pytest.approx((99 * 2 + 98) / 3, rel=1e-12)
    assert g["price_impact_bid"] == pytest.approx((micro - 99) / mid, rel=1e-12)
    assert g["price_impact_ask"] == pytest.approx((100 - micro) / mid, rel=1e-12)
    # market buy of Q = 1: 0.4 @ 100 + 0.5 @ 101 + 0.1 @ 102
    assert g["price_impact_buy"] == pytest.approx((100.7 - mid) / mid, rel=1e-12)
    assert g["price_impact_sell"] == pytest.approx((mid - 99) / mid, rel=1e-12)
    va5 = (100 * 0.4 + 101 * 0.5 + 102) / 1.9
    vb5 = (99 * 2 + 98) / 3
    assert g["price_impact_5"] == pytest.approx((va5 - vb5) / (2 * mid), rel=1e-12)
    assert g["price_impact_1"] == pytest.approx((100 - 99) / (2 * mid), rel=1e-12)
    # Q larger than the book's side -> null
    big = compute_features(frame([row]), params={"impact_qty": 2.5}).row(0, named=True)
    assert big["price_impact_buy"] is None
    assert big["price_impact_sell"] == pytest.approx((mid - (2 * 99 + 0.5 * 98) / 2.5) / mid)


def test_quote_lifetimes_across_a_session_break():
    rows = [
        l1(0, 100, 1, 105, 1, s=7), l1(1, 100, 1, 105, 1, s=7), l1(2, 101, 1, 105, 1, s=7),
        l1(3, 101, 1, 105, 1, s=7),
        # new session: same prices as before the break, the clock restarts
        l1(4, 101, 1, 105, 1, s=8), l1(5, 101, 1, 105, 1, s=8), l1(6, 102, 1, 105, 1, s=8),
    ]
    f = compute_features(frame(rows))
    assert col(f, "bid_quote_lifetime") == [0, 1, 0, 1, 0, 1, 0]
    assert col(f, "ask_quote_lifetime") == [0, 1, 2, 3, 0, 1, 2]
    assert col(f, "quote_lifetime") == [0, 1, 1, 2, 0, 1, 1]
    # consecutive-row features restart too
    assert col(f, "mid_price_return")[4] is None
    assert col(f, "ofi_10s")[4] == 0


def test_nulls_on_zero_denominators_and_first_rows():
    # level-1 sizes 0 on both sides; level 5 missing; 2 rows of one session
    rows = [{"t": 0, "bids": [(100, 0.0), (99, 1.0)], "asks": [(101, 0.0), (102, 1.0)]},
            {"t": 0.1, "bids": [(100, 0.0), (99, 1.0)], "asks": [(101, 0.0), (102, 1.0)]}]
    f = compute_features(frame(rows))
    first, second = f.row(0, named=True), f.row(1, named=True)
    for name in ("order_book_imbalance", "microprice", "weighted_mid_price", "price_impact_bid",
                 "price_impact_ask", "price_impact_1", "book_shape_1_5", "ofi_normalized_10s",
                 "book_shape_stability"):
        assert first[name] is None, name
    for name in ("mid_price_return", "l2_volatility_10", "spread_stability_10",
                 "spread_stability_norm_10"):
        assert first[name] is None, name
    assert first["price_impact_5"] is not None  # A_5 = 1 > 0
    assert first["book_resilience"] == 1.0
    assert second["mid_price_return"] == 0.0
    assert second["l2_volatility_10"] is None  # one return: too few values
    assert second["spread_stability_10"] == 0.0  # two equal spreads
    assert second["bid_volume_concentration"] == 0.0
    assert second["ofi_10s"] == 0.0
    # exactly Q = 1 unit on the ask side (at level 2): fills, null only when less than Q
    assert second["price_impact_buy"] == pytest.approx((102 - 100.5) / 100.5, rel=1e-12)


def test_exactly_q_available_fills():
    row = {"t": 0, "bids": [(99, 0.3), (98, 0.7)], "asks": [(100, 0.3), (101, 0.7)]}
    g = compute_features(frame([row])).row(0, named=True)
    assert g["price_impact_buy"] == pytest.approx(((0.3 * 100 + 0.7 * 101) - 99.5) / 99.5)
    assert g["price_impact_sell"] == pytest.approx((99.5 - (0.3 * 99 + 0.7 * 98)) / 99.5)


def test_stability_golden():
    # spreads 1, 1, 2 ticks at 100 ms; mid constant 100
    rows = [l1(0.0, 99.5, 1, 100.5, 1), l1(0.1, 99.5, 1, 100.5, 1), l1(0.2, 99.0, 4, 101.0, 2)]
    f = compute_features(frame(rows))
    spr = [1 / 100 * 1e4, 1 / 100 * 1e4, 2 / 100 * 1e4]
    assert f["spread_stability_10"][2] == pytest.approx(np.std(spr, ddof=1), rel=1e-12)
    assert f["spread_stability_norm_10"][2] == pytest.approx(
        np.std(spr, ddof=1) / np.mean(spr), rel=1e-12)
    assert f["spread_stability_10"][1] == 0.0
    # book_resilience: D5 = 2, 2, 6 -> 6 / mean(2, 2, 6)
    assert f["book_resilience"][2] == pytest.approx(6 / (10 / 3), rel=1e-12)
    assert f["bid_volume_concentration"][2] == 1.0
    assert f["volume_concentration"][2] == 1.0


def test_matches_slow_reference_on_random_books():
    rng = np.random.default_rng(42)
    snaps = random_frame(rng, 700, n_sessions=3, step_ms=100, gap_prob=0.05,
                         depth_missing_prob=0.2)
    f = compute_features(snaps)
    ref = reference(snaps)
    for name in ref[0]:
        got = f[name].to_list()
        for i, row in enumerate(ref):
            assert_close(got[i], row[name], name, i)
