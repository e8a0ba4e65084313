"""The simulator's book looks like the real Bybit BTCUSDT captures (July 2025).

Both streams go through the same measuring code (a plain dict book, push by push). The
real figures (all format-2 captures, ~117k pushes) are: 1-tick spread in 99.97 % of pushes,
median best-level size ~10 BTC, median size at levels 2-10 ~0.005-0.03 BTC (the best queue
is ~500x the next ones), ~27 ticks from the best to the 10th level, the mid moves in 0.4 %
of pushes, and Cont's event OFI correlates with the mid change at ~0.48.
"""

import datetime as dt
import gzip
import zlib

import numpy as np
import orjson
import pytest

from trade_pipeline.market.simulator import SimulatorConfig, simulate


def _measure(pushes) -> dict:
    """`pushes` yields (is_snapshot, bids, asks) with [price, size] rows (any numeric text)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    spreads, best_sizes, profile, to_10th, ofi, dmid = [], [], [], [], [], []
    prev = None
    for is_snapshot, b_rows, a_rows in pushes:
        if is_snapshot:  # a new capture: do not difference across the break
            bids.clear()
            asks.clear()
            prev = None
        for book, rows in ((bids, b_rows), (asks, a_rows)):
            for p, q in rows:
                p, q = float(p), float(q)
                if q == 0:
                    book.pop(p, None)
                else:
                    book[p] = q
        if len(bids) < 10 or len(asks) < 10:
            continue
        bb = sorted(bids, reverse=True)[:10]
        aa = sorted(asks)[:10]
        spreads.append(round((aa[0] - bb[0]) * 10))
        best_sizes += [bids[bb[0]], asks[aa[0]]]
        profile += [[bids[p] for p in bb], [asks[p] for p in aa]]
        to_10th += [round((bb[0] - bb[9]) * 10), round((aa[9] - aa[0]) * 10)]
        cur = (bb[0], bids[bb[0]], aa[0], asks[aa[0]])
        if prev is not None:
            pb, pqb, pa, pqa = prev
            cb, cqb, ca, cqa = cur
            e = (cqb if cb >= pb else 0) - (pqb if cb <= pb else 0)
            e -= (cqa if ca <= pa else 0) - (pqa if ca >= pa else 0)
            ofi.append(e)
            dmid.append(round((cb + ca - pb - pa) * 10) / 20)  # in price units, no float dust
        prev = cur
    prof = np.median(np.array(profile), axis=0)
    dmid_a = np.array(dmid)
    return {
        "pushes": len(spreads),
        "one_tick_spread": float(np.mean(np.array(spreads) == 1)),
        "best_size_median": float(np.median(best_sizes)),
        "deep_size_median": float(np.median(prof[1:])),
        "best_to_deep_ratio": float(prof[0] / np.median(prof[1:])),
        "ticks_to_10th": float(np.median(to_10th)),
        "mid_change_rate": float(np.mean(dmid_a != 0)),
        "ofi_mid_corr": float(np.corrcoef(ofi, dmid_a)[0, 1]),
    }


def _real_pushes(files):
    for path in files:
        try:
            with gzip.open(path, "rb") as src:
                for line in src:
                    m = orjson.loads(line)
                    yield m["type"] == "snapshot", m["bids"], m["asks"]
        except (EOFError, zlib.error):
            continue  # the truncated capture: lines before the break were used


def _sim_pushes(seconds: float, seed: int):
    cfg = SimulatorConfig(start=dt.datetime(2025, 7, 7, tzinfo=dt.UTC), duration_s=seconds,
                          seed=seed)
    for _, text in simulate(cfg):
        m = orjson.loads(text)
        yield m["type"] == "snapshot", m["data"]["b"], m["data"]["a"]


@pytest.fixture(scope="module")
def real_stats(bybit_delta_files):
    return _measure(_real_pushes(bybit_delta_files))


@pytest.fixture(scope="module")
def sim_stats():
    return _measure(_sim_pushes(900, seed=20250707))


def test_real_data_figures_are_what_the_simulator_was_fitted_to(real_stats):
    # guards the comparison below: if the real files change, the targets must be revisited
    assert real_stats["pushes"] > 100_000
    assert real_stats["one_tick_spread"] > 0.99
    assert 5 < real_stats["best_size_median"] < 20
    assert real_stats["ofi_mid_corr"] > 0.3


def test_spread_is_mostly_one_tick(real_stats, sim_stats):
    assert sim_stats["one_tick_spread"] > 0.98
    assert abs(sim_stats["one_tick_spread"] - real_stats["one_tick_spread"]) < 0.02


def test_best_level_size_same_order_of_magnitude(real_stats, sim_stats):
    ratio = sim_stats["best_size_median"] / real_stats["best_size_median"]
    assert 0.5 < ratio < 2.0, (sim_stats, real_stats)


def test_depth_profile_shape(real_stats, sim_stats):
    # a huge best queue over thin levels 2-10, spread over a similar number of ticks
    assert sim_stats["best_to_deep_ratio"] > 100 and real_stats["best_to_deep_ratio"] > 100
    assert 0.1 < sim_stats["deep_size_median"] / real_stats["deep_size_median"] < 10
    assert abs(sim_stats["ticks_to_10th"] - real_stats["ticks_to_10th"]) <= 8


def test_mid_moves_rarely_and_with_the_order_flow(real_stats, sim_stats):
    rate = sim_stats["mid_change_rate"] / real_stats["mid_change_rate"]
    assert 0.33 < rate < 3.0, (sim_stats, real_stats)
    assert sim_stats["ofi_mid_corr"] > 0.25
    assert abs(sim_stats["ofi_mid_corr"] - real_stats["ofi_mid_corr"]) < 0.25
