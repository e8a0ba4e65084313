"""Backfills: a ranged l2_snapshots run equals day-by-day runs; a real backfill on a
PostgreSQL-backed instance (`dagster dev`: webserver, daemon, run queue, pools) runs lake
writes of several days at once, serializes warehouse writers on the pool, and writes what a
sequential run writes."""

import datetime as dt
import itertools
import os
import shutil
import sys
import time

import dagster as dg
import psutil
import pytest

from trade_pipeline.commands.backfill import (
    backfill_runs,
    launch_backfill,
    parallelism,
    wait_backfill,
)
from trade_pipeline.defs import monitoring as mon
from trade_pipeline.defs.features import l2_features
from trade_pipeline.defs.ingest import l2_snapshots, raw_l2_captures
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.market.day_snapshots import load_day_checkpoint
from trade_pipeline.market.simulator import SimulatorConfig, simulate, simulation_token
from trade_pipeline.settings import Settings
from trade_pipeline.storage.layout import PartitionKey, read_partition
from trade_pipeline.storage.raw_store import RawStoreWriter
from trade_pipeline_tests.conftest import REPO_ROOT
from trade_pipeline_tests.monitoring.servers import free_port, server, wait_http

DAYS = ["2025-07-06", "2025-07-07", "2025-07-08"]
TABLES = ("l2_snapshots", "l2_features", "feature_stats")


def write_raw_days(home) -> None:
    """Three days of raw captures: a minute early in each day, and a stream from 23:59:30 on
    the second day to 00:00:30 on the third (one session across midnight)."""
    settings = Settings.load(home=home).ensure_dirs()
    streams = [(dt.datetime.fromisoformat(f"{d}T00:05:00+00:00"), 60.0) for d in DAYS]
    streams.append((dt.datetime.fromisoformat(f"{DAYS[1]}T23:59:30+00:00"), 60.0))
    for seed, (start, duration) in enumerate(streams, 1):
        config = SimulatorConfig(start=start, duration_s=duration, seed=seed)
        with RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT", flush_interval=1e9,
                            name_token=simulation_token(seed)) as writer:
            for recv_ns, frame in simulate(config):
                writer.append(recv_ns, frame)


def _partition(home, table, day):
    settings = Settings.load(home=home)
    return read_partition(settings.lake_dir, table, PartitionKey("bybit", "BTCUSDT", day))


def sequential_reference(home) -> None:
    """The same days, one in-process run per day, in day order (what a backfill must equal)."""
    for day in DAYS:
        result = dg.materialize([raw_l2_captures, l2_snapshots, l2_features,
                                 mon.feature_stats_asset],
                                selection=[l2_snapshots, l2_features, mon.feature_stats_asset],
                                partition_key=day, resources=build_resources(str(home)),
                                instance=dg.DagsterInstance.ephemeral())
        assert result.success


def test_ranged_snapshots_run_equals_day_by_day_runs(tmp_path):
    """A backfill builds consecutive days of l2_snapshots in one run (BackfillPolicy.single_run):
    same rows, checkpoints and per-day metadata as one run per day; the lake checks pass for
    every day of the range."""
    ranged, daily = tmp_path / "ranged", tmp_path / "daily"
    write_raw_days(ranged)
    shutil.copytree(ranged / "raw", daily / "raw")
    checks = mon.lake_table_checks("l2_snapshots", "l2_snapshots")
    result = dg.materialize([raw_l2_captures, l2_snapshots, *checks], selection=[l2_snapshots],
                            resources=build_resources(str(ranged)),
                            instance=dg.DagsterInstance.ephemeral(),
                            tags={"dagster/asset_partition_range_start": DAYS[0],
                                  "dagster/asset_partition_range_end": DAYS[-1]})
    assert result.success
    events = {e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
              for e in result.get_asset_materialization_events()}
    assert sorted(events) == DAYS
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {"schema", "row_count", "gap_rate"}
    assert all(e.passed for e in evaluations if e.check_name != "gap_rate")
    days_meta = next(e for e in evaluations if e.check_name == "row_count").metadata["days"].value
    assert sorted(days_meta) == DAYS and all(v["passed"] for v in days_meta.values())
    for day in DAYS:
        one = dg.materialize([raw_l2_captures, l2_snapshots], selection=[l2_snapshots],
                             partition_key=day, resources=build_resources(str(daily)),
                             instance=dg.DagsterInstance.ephemeral())
        meta = {k: v.value for k, v in one.get_asset_materialization_events()[0]
                .materialization.metadata.items()}
        for name in ("rows", "sessions", "messages", "continued_from_previous_day",
                     "rows_of_previous_day", "rows_from_next_day_files"):
            assert events[day][name] == meta[name], (day, name)
        assert _partition(ranged, "l2_snapshots", day).equals(_partition(daily, "l2_snapshots", day))
        key = PartitionKey("bybit", "BTCUSDT", day)
        assert (load_day_checkpoint(Settings.load(home=ranged), key)
                == load_day_checkpoint(Settings.load(home=daily), key))
    assert events[DAYS[2]]["continued_from_previous_day"] is True


def _instance_env(tmp_path, pg_dsn, home) -> dict:
    from trade_pipeline.defs.instance_setup import pin_duckdb_pool
    from trade_pipeline_tests.monitoring.test_postgres_storage import DEPLOY_YAML, pg_env

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DEPLOY_YAML, dagster_home / "dagster.yaml")  # the deployment's instance
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: trade_pipeline_tests.defs.backfill_location\n"
        f"      working_directory: {REPO_ROOT}\n"
        "      location_name: backfill_test\n")
    env = {**os.environ, **pg_env(pg_dsn), "DAGSTER_HOME": str(dagster_home),
           "TRADE_PIPELINE_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    pin_duckdb_pool(env)
    return env


class RssSampler:
    """Peak RSS of a process tree (sum over its processes, and the largest one)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_total = self.peak_one = 0

    def sample(self, *_) -> None:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.peak_one = max(self.peak_one, rss)
        self.peak_total = max(self.peak_total, total)


@pytest.mark.postgres
@pytest.mark.slow
def test_backfill_on_postgres_runs_days_in_parallel(tmp_path, pg_dsn):
    import duckdb

    from trade_pipeline_tests.defs.backfill_location import PROBE_TABLE

    home, reference = tmp_path / "home", tmp_path / "reference"
    write_raw_days(home)
    shutil.copytree(home / "raw", reference / "raw")
    env = _instance_env(tmp_path, pg_dsn, home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dagster = str(REPO_ROOT / ".venv" / "bin" / "dagster") if (
        REPO_ROOT / ".venv" / "bin" / "dagster").exists() else shutil.which("dagster")
    log = tmp_path / "dagster_dev.log"
    args = [dagster, "dev", "-w", str(tmp_path / "workspace.yaml"), "-h", "127.0.0.1",
            "-p", str(port)]
    with server(args, env, log, cwd=tmp_path) as proc:
        wait_http(f"{url}/server_info", timeout=240, proc=proc, log=log)
        sampler = RssSampler(proc.pid)
        started = time.monotonic()
        backfill = launch_backfill(url, DAYS, [*TABLES, "warehouse_probe"],
                                   tags={"trade_pipeline/test": "backfill"})
        status = wait_backfill(url, backfill, timeout_s=480, on_poll=sampler.sample)
        wall = time.monotonic() - started
        runs = backfill_runs(url, backfill)
    tail = log.read_text()[-3000:]
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, tail)
    figures = parallelism(runs)
    print(f"backfill of {len(DAYS)} days: {wall:.1f} s, {figures}, peak RSS "
          f"{sampler.peak_total / 2**20:.0f} MB total, {sampler.peak_one / 2**20:.0f} MB one "
          "process", file=sys.stderr)
    t0 = min(r["startTime"] for r in runs if r["startTime"])
    for r in sorted(runs, key=lambda r: r["startTime"] or 0):
        print(f"run {r['runId'][:8]} {r['startTime'] - t0:6.1f}..{r['endTime'] - t0:6.1f} " + " ".join(
            f"{st['stepKey']}@{st['startTime'] - t0:.1f}-{st['endTime'] - t0:.1f}"
            for st in r["stepStats"] if st["startTime"] and st["endTime"]), file=sys.stderr)
    assert figures["runs"] == figures["runs_succeeded"] >= 4
    steps = figures["steps"]
    # l2_snapshots: the three days in one run (a chain), the rest one run per day
    assert steps["l2_snapshots"]["count"] == 1
    assert steps["l2_features"]["count"] == steps["feature_stats"]["count"] == 3
    # lake writes of different days ran at the same time ...
    assert max(steps["l2_features"]["overlap"], steps["feature_stats"]["overlap"]) >= 2, figures
    assert figures["max_concurrent_runs"] >= 2
    # ... while the warehouse writers took the pool one at a time, never meeting the lock
    assert steps["warehouse_probe"] == {**steps["warehouse_probe"], "count": 3, "overlap": 1}
    with duckdb.connect(str(Settings.load(home=home).warehouse_path), read_only=True) as conn:
        held = conn.execute(f"SELECT day, started, ended FROM {PROBE_TABLE} "
                            "ORDER BY started").fetchall()
    assert sorted(h[0] for h in held) == DAYS
    assert all(b[1] >= a[2] for a, b in itertools.pairwise(held)), held
    assert sampler.peak_total < 8 * 2**30
    # and it wrote exactly what one run per day, in day order, writes
    sequential_reference(reference)
    for table in TABLES:
        for day in DAYS:
            got, want = _partition(home, table, day), _partition(reference, table, day)
            assert got is not None and got.height > 0 and got.equals(want), (table, day)
    day2, day3 = (_partition(home, "l2_snapshots", d) for d in DAYS[1:])
    assert day3["session_id"][0] == day2["session_id"][-1]  # one session across midnight
