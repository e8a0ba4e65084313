"""Scale-out end to end, with real processes on loopback: a Dask scheduler and two workers,
moto's S3 server holding the lake, PostgreSQL holding the Dagster instance.

- A two-day backfill runs through `dagster asset materialize` on the real code location with
  `TRADE_PIPELINE_EXECUTOR=dask`: every step executes in a Dask worker process, the lake is
  `s3://...`, and day 2 continues day 1's book checkpoint read back from S3.
- Two runs of the same job at once on one cluster both really run (dagster-dask alone hands
  the second the first's result: dagster-io/dagster#21418).
- `lightgbm.dask` trains on both days with each day held by a different worker.
- A worker killed mid-step: the scheduler gives the step to the other worker, the run
  succeeds, and no partial partition is ever visible.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from trade_pipeline.settings import Settings
from trade_pipeline.storage.layout import PartitionKey, list_partitions, read_partition
from trade_pipeline_tests.conftest import PG_DSN, REPO_ROOT
from trade_pipeline_tests.monitoring.servers import free_port
from trade_pipeline_tests.monitoring.test_postgres_storage import pg_env
from trade_pipeline_tests.scale.cluster import dask_cluster, moto_s3

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DAYS = ["2025-07-07", "2025-07-08"]
KILL_DAY = "2025-07-09"
SELECT = "raw_l2_captures,l2_snapshots,l2_features"


@pytest.fixture(scope="module")
def pg_db():
    psycopg = pytest.importorskip("psycopg")
    name = f"tp_scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pg_db):
    """moto S3 + a Dask cluster whose workers carry the deployment's environment."""
    tmp = tmp_path_factory.mktemp("scale")
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    with moto_s3(tmp) as s3:
        bucket = s3.create_bucket(f"lake-{uuid.uuid4().hex[:8]}")
        port = free_port()
        env = {
            **s3.env, **pg_env(pg_db),
            "DAGSTER_HOME": str(dagster_home),
            "TRADE_PIPELINE_HOME": str(tmp / "home"),
            "TRADE_PIPELINE_LAKE": f"s3://{bucket}/lake",
            "TRADE_PIPELINE_EXECUTOR": "dask",
            "TRADE_PIPELINE_DASK_SCHEDULER": f"tcp://127.0.0.1:{port}",
        }
        with dask_cluster(tmp, env, n_workers=2, port=port) as cluster:
            yield {"env": env, "s3": s3, "bucket": bucket, "cluster": cluster, "tmp": tmp}


def materialize(env: dict, day: str, duration_s: float, log: Path) -> subprocess.Popen:
    config = {"ops": {"raw_l2_captures": {"config": {"duration_s": duration_s}}}}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
             "-m", "trade_pipeline.definitions", "--select", SELECT, "--partition", day,
             "--config-json", json.dumps(config)],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 240) -> str:
    proc.wait(timeout=timeout)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def step_pids(env: dict) -> dict[str, set[int]]:
    """Step key -> pids that executed it, from the PostgreSQL event log of the last runs."""
    import dagster as dg

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with dg.DagsterInstance.get() as instance:
            out: dict[str, set[int]] = {}
            for run in instance.get_runs():
                for record in instance.all_logs(run.run_id):
                    event = record.dagster_event
                    if event is not None and event.event_type_value == "STEP_SUCCESS":
                        out.setdefault(f"{run.tags.get('dagster/partition')}/{event.step_key}",
                                       set()).add(event.pid)
            return out
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def backfilled(stack):
    env, tmp = stack["env"], stack["tmp"]
    # day 1 first (day 2 continues its checkpoint), then day 2 and a rerun of day 1 together:
    # two runs of the same job on one cluster at the same time
    finish(materialize(env, DAYS[0], 300, tmp / "day1.log"), tmp / "day1.log")
    procs = [(materialize(env, DAYS[1], 300, tmp / "day2.log"), tmp / "day2.log"),
             (materialize(env, DAYS[0], 200, tmp / "day1b.log"), tmp / "day1b.log")]
    for proc, log in procs:
        finish(proc, log)
    return stack


def lake_settings(stack, monkeypatch) -> Settings:
    for name, value in stack["env"].items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return Settings.load(home=stack["tmp"] / "home", lake_uri_override=stack["env"][
        "TRADE_PIPELINE_LAKE"])


def test_two_day_backfill_runs_its_steps_on_dask_workers_with_the_lake_on_s3(
        backfilled, monkeypatch) -> None:
    settings = lake_settings(backfilled, monkeypatch)
    for table in ("l2_snapshots", "l2_features"):
        assert [k.date for k in list_partitions(settings.lake_dir, table)] == DAYS
    key1 = PartitionKey("bybit", "BTCUSDT", DAYS[0])
    key2 = PartitionKey("bybit", "BTCUSDT", DAYS[1])
    # the concurrent rerun of day 1 (200 s simulated) really ran: its rows replaced the 300 s
    assert read_partition(settings.lake_dir, "l2_features", key1).height == pytest.approx(2000, abs=20)
    assert read_partition(settings.lake_dir, "l2_features", key2).height == pytest.approx(3000, abs=20)
    keys = backfilled["s3"].keys(backfilled["bucket"])
    assert any(k.startswith("lake/_state/l2_snapshots/") and DAYS[0] in k for k in keys)
    assert not [k for k in keys if "/.tmp-" in k]
    with backfilled["cluster"].client() as client:
        workers = set(backfilled["cluster"].worker_pids(client).values())
    pids = step_pids(backfilled["env"])
    ran = {f"{d}/{s}" for d in DAYS for s in SELECT.split(",")}
    assert ran <= set(pids), pids
    assert set().union(*pids.values()) <= workers, (pids, workers)  # never in the launcher


def test_lightgbm_dask_trains_across_workers(backfilled, monkeypatch, capsys, tmp_path) -> None:
    import lightgbm as lgb

    from trade_pipeline.cli import main

    settings = lake_settings(backfilled, monkeypatch)  # the AWS variables of this process
    monkeypatch.setenv("TRADE_PIPELINE_LAKE", backfilled["env"]["TRADE_PIPELINE_LAKE"])
    model = tmp_path / "model.txt"
    code = main(["--home", str(backfilled["tmp"] / "home"), "train-distributed",
                 "--scheduler", backfilled["cluster"].address, "--horizon", "1s",
                 "--stride", "1", "--rounds", "40", "--tail-fraction", "0.4",
                 "--output", str(model), "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["workers"] == 2
    assert len(metrics["days_per_worker"]) == 2  # one day on each worker
    per_worker = metrics["rows_per_worker"].values()
    assert all(0 < n < metrics["rows"] for n in per_worker)  # no worker held all the rows
    assert sum(per_worker) == metrics["rows"]
    assert metrics["max_worker_share"] < 1
    assert lgb.Booster(model_file=str(model)).num_trees() == metrics["trees"] == 40
    assert metrics["tail_n"] == metrics["tail_rows"] > 1000
    assert metrics["tail_start"].startswith(DAYS[1])
    assert metrics["tail_ic"] is not None
    # the figures come with their uncertainty, sized for the labels' overlap
    low, high = metrics["tail_ic_ci"]
    assert low <= metrics["tail_ic"] <= high and 0 < metrics["tail_independent_returns"] < metrics["tail_n"]
    assert len(metrics["baseline_ic_ci"]) == 2
    # logged to MLflow for comparison, never registered (the gate runs on one machine)
    from trade_pipeline.models.registry import MlflowTarget

    target = MlflowTarget.from_settings(settings)
    client = target.client()
    run = client.get_run(metrics["mlflow_run_id"])
    assert run.data.tags["registered"] == "no"
    assert run.data.metrics["tail_ic"] == pytest.approx(metrics["tail_ic"])
    assert run.data.metrics["rows"] == metrics["rows"]
    import mlflow.lightgbm

    with target.active():
        logged = mlflow.lightgbm.load_model(run.data.tags["model_uri"])
    assert logged.num_trees() == metrics["trees"]
    assert client.search_registered_models() == []


def test_a_worker_killed_mid_step_reruns_the_step_and_never_shows_a_partial_partition(
        backfilled, monkeypatch) -> None:
    import dagster as dg

    settings = lake_settings(backfilled, monkeypatch)
    env, tmp, cluster = backfilled["env"], backfilled["tmp"], backfilled["cluster"]
    for name in ("DAGSTER_HOME", *(k for k in env if k.startswith("TRADE_PIPELINE_PG_"))):
        monkeypatch.setenv(name, env[name])
    log = tmp / "kill.log"
    seen_partial: list[str] = []
    stop = threading.Event()
    key = PartitionKey("bybit", "BTCUSDT", KILL_DAY)

    def watch() -> None:  # readers during the run: a visible partition is always whole
        while not stop.is_set():
            for table in ("l2_snapshots", "l2_features"):
                if key in list_partitions(settings.lake_dir, table):
                    frame = read_partition(settings.lake_dir, table, key)
                    if frame is None or frame.height < 17_900:
                        seen_partial.append(f"{table}: {None if frame is None else frame.height}")
            time.sleep(0.2)

    def step_events(instance, run_id: str, kind: str) -> list:
        return [r for r in instance.all_logs(run_id)
                if r.dagster_event is not None and r.dagster_event.event_type_value == kind
                and r.dagster_event.step_key == "l2_snapshots"]

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    killed = run_id = None
    try:
        with cluster.client() as client, dg.DagsterInstance.get() as instance:
            pids = cluster.worker_pids(client)
            before = {r.run_id for r in instance.get_runs()}
            proc = materialize(env, KILL_DAY, 1800, log)
            deadline = time.monotonic() + 240
            while killed is None and time.monotonic() < deadline and proc.poll() is None:
                run_id = run_id or next(
                    (r.run_id for r in instance.get_runs(limit=5) if r.run_id not in before),
                    None)
                if run_id and step_events(instance, run_id, "STEP_START"):
                    # l2_snapshots has started in a worker: kill that worker process now
                    for worker, keys in client.processing().items():
                        if any(str(k).endswith(".l2_snapshots") for k in keys):
                            os.kill(pids[worker], signal.SIGKILL)
                            killed = worker
                            break
                time.sleep(0.05)
            assert killed is not None, "never saw l2_snapshots running on a worker"
            text = finish(proc, log, timeout=300)
            client.wait_for_workers(2, timeout=90)  # the nanny restarted the killed worker
            starts = step_events(instance, run_id, "STEP_START")
            successes = step_events(instance, run_id, "STEP_SUCCESS")
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not seen_partial, seen_partial
    rows = read_partition(settings.lake_dir, "l2_snapshots", key).height
    assert rows == pytest.approx(18_000, abs=20)
    assert read_partition(settings.lake_dir, "l2_features", key).height == rows
    assert "RUN_SUCCESS" in text or proc.returncode == 0
    # the step started again after the kill and succeeded in another worker process
    assert len(starts) >= 2, [e.dagster_event.pid for e in starts]
    assert {e.dagster_event.pid for e in successes} - {pids[killed]}
