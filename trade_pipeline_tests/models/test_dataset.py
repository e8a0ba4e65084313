"""models/dataset.py: training rows streamed from the lake equal the whole range labelled at once."""

import datetime as dt

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.models import dataset
from trade_pipeline.models.dataset import (
    DatasetError,
    FeatureMatrix,
    MemoryBudgetError,
    RowSequence,
    load_training_frame,
)
from trade_pipeline.models.labels import forward_returns
from trade_pipeline.models.training import (
    PRICE_LEVEL_FEATURES,
    TrainConfig,
    load_feature_frame,
    train_model,
)
from trade_pipeline.settings import Settings
from trade_pipeline.storage.layout import PartitionKey, write_partition
from trade_pipeline_tests.models.synthetic import feature_frame

MODEL_FEATURES = [n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES]
DAY0 = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)


def write_days(settings: Settings, frame: pl.DataFrame) -> list[str]:
    """Split `frame` by UTC date into lake partitions (as l2_features does)."""
    days = []
    for (day,), part in frame.group_by(pl.col("timestamp").dt.date(), maintain_order=True):
        key = PartitionKey(settings.exchange, settings.symbol, day.isoformat())
        write_partition(part, settings.lake_dir, "l2_features", key)
        days.append(day.isoformat())
    return days


def crossing_frame(seed: int = 0, n: int = 3000) -> pl.DataFrame:
    """Three sessions; the second runs across midnight, with rows missing around it."""
    start = DAY0 + dt.timedelta(days=1) - dt.timedelta(seconds=120)
    frame = feature_frame(n, sessions=3, seed=seed, start=start, gap_s=5.0)
    # drop a few rows (crossed books are skipped in real data), some right at midnight
    rng = np.random.default_rng(seed)
    drop = rng.random(frame.height) < 0.03
    mid = frame.get_column("timestamp") >= DAY0 + dt.timedelta(days=1)
    first_after = int(np.argmax(mid.to_numpy()))
    drop[first_after:first_after + 7] = True
    return frame.filter(pl.Series(~drop))


def whole_range(frame: pl.DataFrame, horizon: str) -> pl.DataFrame:
    ret = forward_returns(frame, horizon)
    return frame.with_columns(ret).filter(ret.is_not_null())


@pytest.fixture
def lake(settings) -> tuple[Settings, pl.DataFrame]:
    frame = crossing_frame()
    assert len(write_days(settings, frame)) == 2
    return settings, frame


def test_labels_cross_midnight_exactly_as_the_whole_range(lake) -> None:
    settings, frame = lake
    streamed, report = load_training_frame(settings, features=MODEL_FEATURES, horizon="5s",
                                           stride=1)
    expected = whole_range(frame, "5s")
    assert streamed.height == expected.height == report.rows_kept
    assert report.rows_read == frame.height
    assert report.unlabelled == frame.height - expected.height
    assert streamed["timestamp"].to_list() == expected["timestamp"].to_list()
    np.testing.assert_array_equal(streamed["fwd_return_5s"].to_numpy(),
                                  expected["fwd_return_5s"].to_numpy())
    # features are float32 casts of the stored float64 values, nothing else changed
    for name in ("order_book_imbalance", "ofi_10s", "mid_price_return"):
        assert streamed.schema[name] == pl.Float32
        np.testing.assert_array_equal(
            streamed[name].to_numpy(), expected[name].cast(pl.Float32).to_numpy())
    assert streamed.schema["mid_price"] == pl.Float64
    assert not set(streamed.columns) & (PRICE_LEVEL_FEATURES - {"mid_price"})
    # a session crossing midnight has labels on both sides of it
    crossing = streamed.filter(pl.col("session_id") == 2)
    assert crossing["timestamp"].dt.date().n_unique() == 2


def test_the_range_end_is_a_hard_edge(lake) -> None:
    """Labels of the last day never read the day after the range (it may be a test window)."""
    settings, frame = lake
    first_day = DAY0.date().isoformat()
    streamed, _ = load_training_frame(settings, first_day, first_day, features=MODEL_FEATURES,
                                      horizon="5s", stride=1)
    alone = whole_range(frame.filter(pl.col("timestamp") < DAY0 + dt.timedelta(days=1)), "5s")
    assert streamed.height == alone.height
    assert streamed["timestamp"].max() < DAY0 + dt.timedelta(days=1) - dt.timedelta(seconds=5)


def test_stride_keeps_time_aligned_rows_with_their_full_resolution_labels(lake) -> None:
    settings, _ = lake
    full, _ = load_training_frame(settings, features=MODEL_FEATURES, horizon="5s", stride=1)
    thin, report = load_training_frame(settings, features=MODEL_FEATURES, horizon="5s",
                                       stride=10)
    on_grid = full.filter(pl.col("timestamp").dt.epoch("ms") % 1000 == 0)
    assert report.stride == 10
    assert thin["timestamp"].to_list() == on_grid["timestamp"].to_list()
    np.testing.assert_array_equal(thin["fwd_return_5s"].to_numpy(),
                                  on_grid["fwd_return_5s"].to_numpy())
    assert 0.08 * full.height < thin.height < 0.12 * full.height


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    sessions=st.integers(1, 4),
    offset_s=st.integers(1, 400),
    drop=st.floats(0.0, 0.3),
    horizon=st.sampled_from(["500ms", "1s", "5s", "30s"]),
)
def test_streamed_labels_equal_whole_range_labels(tmp_path_factory, seed, sessions, offset_s,
                                                 drop, horizon) -> None:
    settings = Settings.load(home=tmp_path_factory.mktemp("h") / "home").ensure_dirs()
    start = DAY0 + dt.timedelta(days=1) - dt.timedelta(seconds=offset_s)
    frame = feature_frame(1500, sessions=sessions, seed=seed, start=start, gap_s=3.0)
    keep = np.random.default_rng(seed).random(frame.height) >= drop
    frame = frame.filter(pl.Series(keep))
    write_days(settings, frame)
    expected = whole_range(frame, horizon)
    if expected.height == 0:
        with pytest.raises(DatasetError):
            load_training_frame(settings, features=["order_book_imbalance"], horizon=horizon,
                                stride=1)
        return
    streamed, _ = load_training_frame(settings, features=["order_book_imbalance"],
                                      horizon=horizon, stride=1)
    label = f"fwd_return_{horizon}"
    assert streamed["timestamp"].to_list() == expected["timestamp"].to_list()
    np.testing.assert_array_equal(streamed[label].to_numpy(), expected[label].to_numpy())


def test_a_request_over_the_budget_is_refused_with_the_figures(lake) -> None:
    settings, _ = lake
    with pytest.raises(MemoryBudgetError) as err:
        load_training_frame(settings, features=MODEL_FEATURES, horizon="5s", stride=1,
                            budget_bytes=dataset.FIXED_BYTES + 100_000)
    text = str(err.value)
    assert "needs about" in text and "GB" in text and "stride >=" in text
    assert "2 day(s)" in text and f"{crossing_frame().height:,} rows" in text


def test_budget_comes_from_settings(lake, monkeypatch) -> None:
    settings, _ = lake
    small = settings.with_(train_memory_gb=0.5)  # below the fixed process overhead
    with pytest.raises(MemoryBudgetError, match=r"budget 0\.50 GB"):
        load_training_frame(small, features=MODEL_FEATURES, horizon="5s", stride=1)
    monkeypatch.setenv("TRADE_PIPELINE_TRAIN_MEMORY_GB", "zero")
    with pytest.raises(ValueError, match="TRADE_PIPELINE_TRAIN_MEMORY_GB"):
        Settings.load(home=settings.home)


def test_auto_stride_keeps_every_row_that_fits_the_budget() -> None:
    gb = 2**30
    week, month = 6_048_000, 25_920_000
    assert dataset.auto_stride("5s", 100, week, 93, 8 * gb) == 1  # a week fits: every row
    assert dataset.auto_stride("5s", 100, month, 93, 8 * gb) == 2  # a month: the least thinning
    assert dataset.auto_stride("5s", 100, month, 93, 4 * gb) == 4
    assert dataset.auto_stride("1s", 100, month, 93, 1 * gb) == 10  # at most 1 row per window
    assert dataset.auto_stride(None, 100, month, 93, 1 * gb) == 1
    for s, budget in ((2, 8 * gb), (4, 4 * gb)):  # the chosen stride fits, the one below not
        assert dataset.estimate_bytes(-(-month // s), 93) <= budget
    assert dataset.estimate_bytes(month, 93) > 8 * gb
    assert dataset.estimate_bytes(-(-month // 3), 93) > 4 * gb


def test_empty_range_and_missing_columns_are_clear(settings) -> None:
    with pytest.raises(DatasetError, match="no l2_features partitions"):
        load_training_frame(settings, features=MODEL_FEATURES, horizon="5s")
    frame = feature_frame(400, sessions=1).drop("order_book_imbalance")
    write_days(settings, frame)
    with pytest.raises(DatasetError, match="lacks column"):
        load_training_frame(settings, features=MODEL_FEATURES, horizon="5s")


def test_feature_matrix_indexes_like_numpy() -> None:
    frame = feature_frame(500, sessions=1, seed=3).with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None)
        .otherwise(pl.col("order_book_imbalance")).alias("order_book_imbalance"))
    names = ["order_book_imbalance", "spread_bps", "mid_price_return"]
    dense = frame.select(names).cast(pl.Float64).to_numpy()
    m = FeatureMatrix(frame, names)
    rows = np.array([0, 3, 7, 499, 14])
    assert m.shape == (500, 3) and m.dtype == np.float64
    np.testing.assert_array_equal(m[rows], dense[rows])
    np.testing.assert_array_equal(m[np.ix_(rows, [2, 0])], dense[np.ix_(rows, [2, 0])])
    np.testing.assert_array_equal(m[10:40:3], dense[10:40:3])
    np.testing.assert_array_equal(m[dense[:, 1] > 0], dense[dense[:, 1] > 0])
    np.testing.assert_array_equal(np.asarray(m), dense)
    assert m[rows].flags.c_contiguous
    f32 = FeatureMatrix(frame.cast(dict.fromkeys(names, pl.Float32)), names)
    assert f32[rows].dtype == np.float32


def test_a_dataset_built_from_chunks_equals_one_built_from_an_array() -> None:
    rng = np.random.default_rng(0)
    n = 5 * dataset.SEQUENCE_BATCH + 123
    cols = {f"f{i}": rng.normal(size=n).astype(np.float32) for i in range(6)}
    frame = pl.DataFrame(cols)
    y = cols["f0"] * 0.5 + rng.normal(scale=0.5, size=n)
    m = FeatureMatrix(frame, list(cols))
    rows = np.flatnonzero(rng.random(n) < 0.9)
    seq = dataset.lgb_rows(m, rows, [0, 2, 3])
    assert isinstance(seq, RowSequence) and len(seq) == rows.size
    # Bins from every row on both paths (above 200,000 rows each path draws its own sample).
    params = {"objective": "regression", "verbosity": -1, "num_threads": 1, "seed": 1,
              "deterministic": True, "max_bin": 63, "force_col_wise": True,
              "bin_construct_sample_cnt": n}
    a = lgb.train(params, lgb.Dataset(seq, y[rows]), num_boost_round=20)
    dense = frame.to_numpy()[np.ix_(rows, [0, 2, 3])]
    b = lgb.train(params, lgb.Dataset(dense, y[rows]), num_boost_round=20)
    probe = frame.to_numpy()[:2000, [0, 2, 3]]
    np.testing.assert_array_equal(a.predict(probe), b.predict(probe))


def test_training_on_the_streamed_frame_equals_training_in_memory(settings) -> None:
    frame = pl.concat([
        feature_frame(3000, sessions=2, seed=s, start=DAY0 + dt.timedelta(days=s, hours=23))
        for s in range(2)
    ])
    write_days(settings, frame)
    streamed, _ = load_feature_frame(settings, horizon="1s", stride=1)
    in_memory = frame.cast(dict.fromkeys(MODEL_FEATURES, pl.Float32))
    config = TrainConfig(horizon="1s", trials=1, n_folds=2, max_boost_round=30)
    a = train_model(streamed, config)
    b = train_model(in_memory, config)
    assert a.n_rows == b.n_rows
    assert a.tail_metrics == b.tail_metrics
    np.testing.assert_array_equal(a.tail_predictions, b.tail_predictions)


def test_feature_matrix_over_day_chunks_gathers_from_numpy_views(lake) -> None:
    settings, _ = lake
    frame, _ = load_training_frame(settings, features=MODEL_FEATURES, horizon="5s", stride=1)
    assert frame.get_column("order_book_imbalance").n_chunks() == 2  # one chunk per day
    m = FeatureMatrix(frame, MODEL_FEATURES)
    assert m._views is not None  # no polars gather, no copy of the frame
    dense = frame.select(MODEL_FEATURES).to_numpy()
    rows = np.array([0, 5, frame.height - 1, 1500, 1499, 1501, 7])
    np.testing.assert_array_equal(m[rows], dense[rows])
    np.testing.assert_array_equal(m[np.ix_(rows, [3, 1])], dense[np.ix_(rows, [3, 1])])
    np.testing.assert_array_equal(m[100:2000:7], dense[100:2000:7])
    np.testing.assert_array_equal(m[-3:], dense[-3:])


def test_predictions_in_chunks_equal_one_call(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5000, 4))
    y = x[:, 0] + rng.normal(scale=0.3, size=5000)
    booster = lgb.train({"objective": "regression", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(x, y), num_boost_round=10)
    rows = np.flatnonzero(rng.random(5000) < 0.7)
    whole = booster.predict(x[rows])
    monkeypatch.setattr(dataset, "PREDICT_CHUNK", 333)
    np.testing.assert_array_equal(dataset.predict_rows(booster.predict, x, rows), whole)


def test_the_train_command_refuses_an_over_budget_request_in_one_line(lake, monkeypatch,
                                                                     capsys) -> None:
    from trade_pipeline.cli import main

    settings, _ = lake
    monkeypatch.setenv("TRADE_PIPELINE_TRAIN_MEMORY_GB", "0.5")
    code = main(["--home", str(settings.home), "train", "--trials", "1", "--horizon", "5s",
                 "--stride", "1", "--no-register"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "needs about" in err[0] and "budget 0.50 GB" in err[0], err
    # below the process's own footprint no stride helps, and the message does not offer one
    assert "stride >=" not in err[0] and "larger budget" in err[0]
