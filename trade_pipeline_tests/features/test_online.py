"""The online engine equals the batch engine, row by row, for all 118 features."""

import numpy as np
import pytest

from trade_pipeline.features.batch import compute_features
from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.features.online import OnlineFeatures
from trade_pipeline.market.schema import BOOK_COLUMNS
from trade_pipeline_tests.features.books import frame, l1, random_frame


def assert_engines_agree(snaps, params=None):
    batch = compute_features(snaps, params).select(FEATURE_NAMES).to_numpy()
    online = OnlineFeatures(params).run(snaps.iter_rows())
    assert online.shape == batch.shape
    same_null = np.isnan(batch) == np.isnan(online)
    bad = np.argwhere(~same_null)
    assert not len(bad), f"null mismatch at rows/features {[(r, FEATURE_NAMES[c]) for r, c in bad[:5]]}"
    b, o = np.nan_to_num(batch), np.nan_to_num(online)
    ok = np.abs(b - o) <= np.maximum(1e-12, 1e-9 * np.abs(b))
    bad = np.argwhere(~ok)
    assert not len(bad), f"value mismatch at {[(r, FEATURE_NAMES[c]) for r, c in bad[:5]]}"
    return batch, online


def test_online_equals_batch_on_random_sessions():
    snaps = random_frame(np.random.default_rng(7), 3000, n_sessions=4, gap_prob=0.05,
                         depth_missing_prob=0.2)
    assert_engines_agree(snaps, params={"delta_bp": 0.3, "lambda_bp": 1.0, "impact_qty": 2.0})


def test_online_equals_batch_when_the_ring_grows():
    # 10 ms rows: 90 s of them all sit in the 5 minute window, more than the initial ring
    snaps = random_frame(np.random.default_rng(8), 9000, step_ms=10)
    engine = OnlineFeatures()
    engine.run(snaps.iter_rows())
    assert len(engine.state.ring_ts) > 4096
    assert_engines_agree(snaps)


def test_update_inputs_dict_tuple_and_arrays():
    snaps = frame([l1(0, 100, 1, 101, 2), l1(0.1, 100.5, 1, 101, 2)])
    rows = snaps.to_dicts()
    a, b, c = OnlineFeatures(), OnlineFeatures(), OnlineFeatures()
    for d, t in zip(rows, snaps.iter_rows(), strict=True):
        x = a.update(d)
        y = b.update(t)
        book = np.array([np.nan if d[k] is None else d[k] for k in BOOK_COLUMNS])
        ts = int(d["timestamp"].timestamp() * 1e6)
        z = c.update_book(ts, d["session_id"], book)
        assert np.array_equal(x, y, equal_nan=True) and np.array_equal(x, z, equal_nan=True)
    as_dict = OnlineFeatures.as_dict(x)
    assert list(as_dict) == list(FEATURE_NAMES)
    assert as_dict["bid_price_2"] is None and as_dict["bid_size_2"] == 0.0
    assert as_dict["ofi_10s"] == 1.0  # bid up: + bq_n


def test_online_rejects_rows_out_of_order_and_bad_rows():
    eng = OnlineFeatures()
    eng.update(l1_row(1.0))
    with pytest.raises(ValueError, match="out of time order"):
        eng.update(l1_row(0.5))
    bad = frame([l1(2.0, 100, 1, 101, 1)]).to_dicts()[0]
    bad["bid_size_1"] = None
    with pytest.raises(ValueError, match="NaN size"):
        eng.update(bad)
    naive = frame([l1(2.0, 100, 1, 101, 1)]).to_dicts()[0]
    naive["timestamp"] = naive["timestamp"].replace(tzinfo=None)
    with pytest.raises(ValueError, match="naive"):
        eng.update(naive)


def l1_row(t):
    return frame([l1(t, 100, 1, 101, 1)]).to_dicts()[0]


def test_batch_rejects_bad_input():
    snaps = frame([l1(0, 100, 1, 101, 1)])
    with pytest.raises(ValueError, match="lack columns"):
        compute_features(snaps.drop("ask_size_3"))
    with pytest.raises(ValueError, match="nulls"):
        compute_features(snaps.with_columns(bid_size_1=None))
    with pytest.raises(ValueError, match="unknown feature parameter"):
        compute_features(snaps, params={"gamma": 1})
    with pytest.raises(ValueError, match="positive"):
        compute_features(snaps, params={"delta_bp": 0})


def test_batch_orders_rows_and_separates_streams():
    a = random_frame(np.random.default_rng(1), 50)
    b = random_frame(np.random.default_rng(2), 50).with_columns(exchange=pl_lit("binance"))
    mixed = a.vstack(b).sample(fraction=1.0, shuffle=True, seed=3)
    f = compute_features(mixed)
    fa = compute_features(a)
    fb = compute_features(b)
    assert f.filter(exchange="bybit").equals(fa)
    assert f.filter(exchange="binance").equals(fb)


def pl_lit(v):
    import polars as pl

    return pl.lit(v)


@pytest.mark.slow
def test_online_equals_batch_on_all_shared_data(real_snapshots):
    for name, snaps in real_snapshots.items():
        assert snaps.height > 1000, name
        assert_engines_agree(snaps)


@pytest.mark.slow
def test_batch_matches_slow_reference_on_real_books(real_snapshots):
    from trade_pipeline_tests.features.reference import assert_close, reference

    for snaps in real_snapshots.values():
        part = snaps.slice(snaps.height // 2, 600)
        f = compute_features(part)
        for i, row in enumerate(reference(part)):
            for name, expected in row.items():
                assert_close(f[name][i], expected, name, i)


@pytest.mark.slow
def test_real_day_split_mid_session_equals_the_whole(real_snapshots):
    """A partition cut inside a long real session, warmed up, equals the uncut run."""
    from trade_pipeline.features.warmup import compute_partition

    snaps = real_snapshots["bybit_format3"]  # one 50 minute session
    cut = snaps.height * 2 // 3
    head, tail = snaps.head(cut), snaps.slice(cut)
    feats, warm = compute_partition(tail, lambda k: head if k == 1 else None)
    assert warm.complete and 0 < warm.n_rows < cut
    whole = compute_features(snaps).slice(cut)
    x, y = feats.select(FEATURE_NAMES).to_numpy(), whole.select(FEATURE_NAMES).to_numpy()
    assert (np.isnan(x) == np.isnan(y)).all()
    x, y = np.nan_to_num(x), np.nan_to_num(y)
    assert (np.abs(x - y) <= np.maximum(1e-12, 1e-9 * np.abs(y))).all()
