"""One drift computation: the retraining sensor and the monitor report the same PSI on the same
lake and champion, and the windowed sample is the one the spec describes."""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trade_pipeline.defs.models import RetrainPolicy, build_retrain_sensors
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.monitoring.drift import (
    DriftError,
    DriftSpec,
    Window,
    champion_drift_spec,
    measure_drift,
    psi,
    window_sample,
)
from trade_pipeline.monitoring.status import drift_section
from trade_pipeline.storage.layout import PartitionKey, read_partition, write_partition

TRAIN_DAY, DRIFT_DAY, CALM_DAY = "2025-07-06", "2025-07-07", "2025-07-08"
TRAIN_START = dt.datetime(2025, 7, 6, 10, 0, tzinfo=dt.UTC)
TRAIN_ROWS = 6000  # 10 minutes at 100 ms
TRAIN_END = TRAIN_START + dt.timedelta(milliseconds=100 * (TRAIN_ROWS - 1))
TOP = ["mid_price", "spread", "order_book_imbalance"]


def _frame(start: dt.datetime, n: int, seed: int, shift: dict[str, float]) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {name: rng.normal(size=n) + shift.get(name, 0.0) for name in FEATURE_NAMES}
    return pl.DataFrame({
        "timestamp": pl.Series([start + dt.timedelta(milliseconds=100 * i) for i in range(n)],
                               dtype=pl.Datetime("us", "UTC")),
        "exchange": "bybit", "symbol": "BTCUSDT",
        "session_id": pl.Series([1] * n, dtype=pl.Int64),
        **cols,
    })


def _write(settings, day: str, frame: pl.DataFrame) -> None:
    write_partition(frame, settings.lake_dir, "l2_features",
                    PartitionKey(settings.exchange, settings.symbol, day))


def _lake(settings) -> None:
    """Training day: the champion's 10 minutes, then 10 more minutes (outside its window) where
    `spread` runs 2 std higher. Drift day: `mid_price` 3 std higher."""
    train = _frame(TRAIN_START, TRAIN_ROWS, seed=1, shift={})
    after = _frame(TRAIN_END + dt.timedelta(milliseconds=100), 6000, seed=2, shift={"spread": 2.0})
    _write(settings, TRAIN_DAY, pl.concat([train, after]))
    _write(settings, DRIFT_DAY, _frame(dt.datetime(2025, 7, 7, 9, tzinfo=dt.UTC), 4000, seed=3,
                                       shift={"mid_price": 3.0}))


def _register_champion(settings) -> None:
    """A registered version with the metadata training logs, alias `champion`, in the home's
    real MLflow store."""
    import mlflow
    import mlflow.pyfunc

    from trade_pipeline.models.registry import MlflowTarget

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    target = MlflowTarget.from_settings(settings)
    client = target.client()
    exp = client.create_experiment("drift-test", artifact_location=settings.mlflow_artifact_uri)
    meta = {"data_start": TRAIN_START.isoformat(), "data_end": TRAIN_END.isoformat(),
            "data_start_date": TRAIN_DAY, "data_end_date": TRAIN_DAY,
            "horizon": "1s", "top_features": TOP}
    with target.active(), mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), metadata=meta,
                                       registered_model_name="btc_l2_1s", pip_requirements=[])
    client.set_registered_model_alias("btc_l2_1s", "champion", info.registered_model_version)


def _sensor_tick(settings, cursor: str | None = None):
    sensor = {s.name: s for s in build_retrain_sensors(RetrainPolicy(horizon="1s"))}[
        "retrain_on_drift"]
    with dg.build_sensor_context(cursor=cursor, resources=build_resources(str(settings.home)),
                                 instance=dg.DagsterInstance.ephemeral()) as context:
        return sensor.evaluate_tick(context)


def _monitor_psi(settings) -> dict:
    section = drift_section(settings)
    assert section["status"] == "ok", section
    (champ,) = section["champions"]
    assert champ["status"] == "ok", champ
    return champ


def test_sensor_and_monitor_report_the_same_psi(settings) -> None:
    _lake(settings)
    _register_champion(settings)

    # Drift day: the sensor requests a retrain; its PSI is the monitor's, to the last bit.
    monitor = _monitor_psi(settings)
    assert monitor["reference"]["rows"] == TRAIN_ROWS  # the exact window, not the whole day
    tick = _sensor_tick(settings)
    (run,) = tick.run_requests
    worst = run.tags["trade_pipeline/drift_feature"]
    assert worst == "mid_price" and monitor["top"][0]["feature"] == "mid_price"
    assert float(run.tags["trade_pipeline/drift_psi"]) == monitor["psi"]["mid_price"]
    assert monitor["max_psi_top_features"] == monitor["psi"]["mid_price"] > 1.0
    # `spread` is stable inside the training window; over the whole training day (the old
    # sensor's reference) it would look drifted: the shared window rule matters.
    assert monitor["psi"]["spread"] < 0.1
    whole_day = read_partition(settings.lake_dir, "l2_features",
                               PartitionKey("bybit", "BTCUSDT", TRAIN_DAY))
    drift_day = read_partition(settings.lake_dir, "l2_features",
                               PartitionKey("bybit", "BTCUSDT", DRIFT_DAY))
    assert psi(whole_day["spread"].to_numpy(), drift_day["spread"].to_numpy()) > 0.25

    # A calm newest day: no retrain, and the skip names the monitor's worst top feature.
    _write(settings, CALM_DAY, _frame(dt.datetime(2025, 7, 8, 9, tzinfo=dt.UTC), 4000, seed=4,
                                      shift={}))
    monitor = _monitor_psi(settings)
    tick = _sensor_tick(settings, cursor=DRIFT_DAY)
    assert not tick.run_requests and tick.cursor == CALM_DAY
    name, value = max(((n, monitor["psi"][n]) for n in TOP), key=lambda kv: kv[1])
    assert f"max PSI {value:.4f} ({name}) on {CALM_DAY}" in tick.skip_message


def test_champion_spec_and_empty_windows(settings) -> None:
    _lake(settings)
    champ = {"data_start": TRAIN_START.isoformat(), "data_end": TRAIN_END.isoformat()}
    spec = champion_drift_spec(champ, DRIFT_DAY, ["spread"])
    assert spec.reference == Window(TRAIN_START, TRAIN_END)
    assert spec.current == Window.of_day(DRIFT_DAY) and spec.current.days() == [DRIFT_DAY]
    report = measure_drift(settings.lake_dir, "bybit", "BTCUSDT", spec)
    assert (report.reference_rows, report.current_rows) == (TRAIN_ROWS, 4000)
    with pytest.raises(DriftError, match="no training data range"):
        champion_drift_spec({"data_start": TRAIN_START.isoformat()}, DRIFT_DAY, ["spread"])
    empty = DriftSpec(spec.reference, Window.of_day("2025-07-09"), ("spread",))
    with pytest.raises(DriftError, match="current window"):
        measure_drift(settings.lake_dir, "bybit", "BTCUSDT", empty)


@hsettings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
       cap=st.integers(1, 60))
def test_window_sample_is_every_kth_row_of_the_whole_window(tmp_path_factory, sizes, cap):
    """Reading day by day keeps exactly the rows `gather_every(k)` keeps on the concatenated
    window, k = ceil(rows / cap), so the figure does not depend on partition boundaries."""
    lake = str(tmp_path_factory.mktemp("lake"))
    start = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    frames = []
    for i, n in enumerate(sizes):
        day = start + dt.timedelta(days=i)
        frame = pl.DataFrame({
            "timestamp": pl.Series([day + dt.timedelta(seconds=j) for j in range(n)],
                                   dtype=pl.Datetime("us", "UTC")),
            "x": np.arange(n, dtype=np.float64) + 1000 * i,
        })
        if n:
            write_partition(frame, lake, "t", PartitionKey("bybit", "BTCUSDT",
                                                           day.date().isoformat()))
        frames.append(frame)
    window = Window(start, start + dt.timedelta(days=len(sizes)) - dt.timedelta(microseconds=1))
    sample, rows = window_sample(lake, "bybit", "BTCUSDT", window, ["x"], cap, table="t")
    whole = pl.concat(frames)
    assert rows == whole.height
    step = max(1, -(-whole.height // cap))
    assert sample["x"].to_list() == whole["x"].gather_every(step).to_list()
    assert sample.height <= cap
