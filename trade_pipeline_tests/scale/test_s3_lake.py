"""The lake on S3-compatible storage (moto's standalone server on loopback): the same layout
code as a local lake, polars and pyarrow natively, DuckDB through pyarrow datasets, atomic
publication, and clear errors when the server is unreachable or fails mid-write."""

import datetime as dt
import subprocess
import sys
import time
import uuid

import numpy as np
import polars as pl
import pytest

from trade_pipeline.lake import warehouse
from trade_pipeline.models.dataset import load_training_frame
from trade_pipeline.models.training import PRICE_LEVEL_FEATURES
from trade_pipeline.settings import Settings
from trade_pipeline.storage import lake_fs
from trade_pipeline.storage.layout import (
    PartitionKey,
    bytes_on_disk,
    list_partitions,
    partition_file,
    read_partition,
    write_partition,
)
from trade_pipeline_tests.models.synthetic import feature_frame
from trade_pipeline_tests.monitoring.servers import free_port
from trade_pipeline_tests.scale.cluster import S3FaultProxy, is_copy, moto_s3

KEY = PartitionKey("bybit", "BTCUSDT", "2025-07-07")
DAY0 = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def lake(s3, monkeypatch, tmp_path) -> tuple[Settings, str, str]:
    """A fresh bucket; the process environment points the AWS SDK at the moto server."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3.create_bucket(f"lake-{uuid.uuid4().hex[:10]}")
    uri = f"s3://{bucket}/prefix/lake"
    settings = Settings.load(home=tmp_path / "home", lake_uri_override=uri).ensure_dirs()
    return settings, bucket, uri


def days_frame(n_days: int = 2) -> pl.DataFrame:
    start = DAY0 + dt.timedelta(days=1) - dt.timedelta(seconds=90)
    return feature_frame(2000 * n_days, sessions=2, seed=4, start=start, gap_s=2.0)


def write_by_day(root: str, frame: pl.DataFrame, table: str = "l2_features") -> list[str]:
    days = []
    for (day,), part in frame.group_by(pl.col("timestamp").dt.date(), maintain_order=True):
        write_partition(part, root, table, PartitionKey("bybit", "BTCUSDT", day.isoformat()))
        days.append(day.isoformat())
    return days


def test_layout_round_trip_on_s3(lake, s3) -> None:
    _, bucket, uri = lake
    frame = feature_frame(500, sessions=1)
    path = write_partition(frame, uri, "l2_features", KEY)
    assert path == f"{uri}/{KEY.relpath('l2_features')}/part-0.parquet"
    assert read_partition(uri, "l2_features", KEY).equals(frame)
    assert list_partitions(uri, "l2_features") == [KEY]
    assert bytes_on_disk(uri, "l2_features") > 0
    files = [k for k in s3.keys(bucket) if not k.endswith("/")]
    assert files == [f"prefix/lake/{KEY.relpath('l2_features')}/part-0.parquet"]  # no temp left
    # a re-materialized partition replaces the old one whole
    write_partition(frame.head(10), uri, "l2_features", KEY)
    assert read_partition(uri, "l2_features", KEY).height == 10


def test_polars_and_pyarrow_read_and_write_s3_natively(lake) -> None:
    import pyarrow.dataset as pads

    _, _, uri = lake
    frame = feature_frame(300, sessions=1)
    write_partition(frame, uri, "l2_features", KEY)
    got = pl.scan_parquet(partition_file(uri, "l2_features", KEY)).select("timestamp").collect()
    assert got.height == 300
    target = f"{uri}/scratch/polars.parquet"
    frame.select("timestamp", "order_book_imbalance").write_parquet(target)
    assert pl.read_parquet(target).height == 300
    table = pads.dataset(f"{uri}/l2_features", format="parquet").to_table()
    assert table.num_rows == 300


def test_duckdb_reads_the_s3_lake_through_pyarrow_datasets(lake) -> None:
    settings, _, uri = lake
    frame = days_frame()
    days = write_by_day(uri, frame)
    warehouse.ensure_warehouse(settings)  # migrations create the views over the S3 lake
    with warehouse.session(settings) as conn:
        n, first, last = conn.execute(
            "SELECT count(*), min(date), max(date) FROM l2_features "
            "WHERE symbol = 'BTCUSDT'").fetchone()
        latest = conn.execute("SELECT count(*) FROM v_latest_l2_features").fetchone()[0]
    assert n == frame.height
    assert (first.isoformat(), last.isoformat()) == (days[0], days[-1])
    assert latest >= 1
    # a connection that did not register the datasets is told what is missing
    import duckdb

    raw = duckdb.connect(str(settings.warehouse_path))
    with pytest.raises(duckdb.CatalogException, match="_lake_l2_features"):
        raw.execute("SELECT count(*) FROM l2_features").fetchone()
    raw.close()


def test_training_rows_from_s3_equal_those_from_a_local_lake(lake, tmp_path) -> None:
    settings, _, uri = lake
    frame = days_frame()
    write_by_day(uri, frame)
    local = Settings.load(home=tmp_path / "local").ensure_dirs()
    write_by_day(local.lake_dir, frame)
    features = ["order_book_imbalance", "spread_bps"]
    a, _ = load_training_frame(settings, features=features, horizon="5s", stride=1)
    b, _ = load_training_frame(local, features=features, horizon="5s", stride=1)
    assert a.equals(b)
    crossing = a.filter(pl.col("session_id") == 1)["timestamp"].dt.date().n_unique()
    assert crossing == 2  # a session across midnight, labelled on both sides


def test_a_failed_publish_leaves_the_old_partition_and_nothing_visible(s3, monkeypatch,
                                                                       tmp_path) -> None:
    """The S3 server refuses the publishing copy: a clear error, the previous partition
    intact, the new bytes only in a hidden temporary that readers never see."""
    proxy = S3FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    try:
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        bucket = s3.create_bucket(f"fault-{uuid.uuid4().hex[:10]}")
        uri = f"s3://{bucket}/lake"
        old = feature_frame(200, sessions=1, seed=1)
        write_partition(old, uri, "l2_features", KEY)

        proxy.refuse = is_copy
        new = feature_frame(400, sessions=1, seed=2)
        started = time.monotonic()
        with pytest.raises(lake_fs.LakeUnavailableError) as err:
            write_partition(new, uri, "l2_features", KEY)
        assert time.monotonic() - started < 60
        message = str(err.value)
        assert uri in message and proxy.endpoint in message and "\n" not in message
        assert proxy.refused and proxy.refused[0].startswith("PUT ")

        proxy.refuse = lambda head: False
        assert read_partition(uri, "l2_features", KEY).equals(old)  # untouched
        assert list_partitions(uri, "l2_features") == [KEY]
        keys = [k for k in s3.keys(bucket) if not k.endswith("/")]
        temps = [k for k in keys if k.rsplit("/", 1)[-1].startswith(lake_fs.TEMP_PREFIX)]
        assert len(temps) == 1 and len(keys) == 2  # the old part + one hidden temporary
        import pyarrow.dataset as pads

        fs, base = lake_fs.resolve(uri)
        assert pads.dataset(f"{base}/l2_features", filesystem=fs,
                            format="parquet").count_rows() == old.height
        # a writer that might still be running keeps its temporary; an old one is swept
        directory = f"{base}/{KEY.relpath('l2_features')}"
        assert lake_fs.sweep_stale_temps(fs, directory) == []
        assert len(lake_fs.sweep_stale_temps(fs, directory, now=time.time() + 7200)) == 1
        write_partition(new, uri, "l2_features", KEY)
        assert read_partition(uri, "l2_features", KEY).equals(new)
    finally:
        proxy.close()


def test_an_unreachable_s3_server_is_one_clear_error(monkeypatch, tmp_path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    uri = "s3://unreachable-bucket/lake"
    with pytest.raises(lake_fs.LakeUnavailableError) as err:
        write_partition(feature_frame(50, sessions=1), uri, "l2_features", KEY)
    assert uri in str(err.value) and endpoint in str(err.value)
    with pytest.raises(lake_fs.LakeUnavailableError, match="listing partitions"):
        list_partitions(uri, "l2_features")
    # the command line: one line naming the lake and the endpoint, exit code 2
    env = {**__import__("os").environ, "TRADE_PIPELINE_LAKE": uri}
    out = subprocess.run(
        [sys.executable, "-m", "trade_pipeline.cli", "--home", str(tmp_path / "home"),
         "train", "--trials", "1", "--no-register"],
        env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and uri in lines[0] and endpoint in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_the_model_features_survive_the_float32_cast(lake) -> None:
    """A guard on what training reads from S3: the model features, float32, no price levels."""
    settings, _, uri = lake
    write_by_day(uri, days_frame())
    frame, report = load_training_frame(
        settings, features=["order_book_imbalance", "ofi_10s", "bid_price_1"],
        horizon="1s", stride=2)
    assert report.stride == 2 and "bid_price_1" in frame.columns
    assert frame.schema["bid_price_1"] == frame.schema["order_book_imbalance"]
    assert np.isfinite(frame["fwd_return_1s"].to_numpy()).all()
    assert not (set(frame.columns) & (PRICE_LEVEL_FEATURES - {"bid_price_1", "mid_price"}))
