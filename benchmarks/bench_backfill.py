"""Backfill: N daily partitions through Dagster on a PostgreSQL-backed instance.

Starts `dagster dev` (webserver + daemon) on loopback with deploy/dagster.yaml (storage in a
fresh PostgreSQL database, run queue limits, `duckdb_writer` pool) and the project's code
location, then launches two asset backfills exactly as the UI does:

1. `raw_l2_captures` (simulator, `--duration` seconds per day, default a full day) for the N
   days - skipped with `--reuse-raw` when the home already holds them;
2. `l2_snapshots`, `l2_features`, `feature_stats` for the same days: the figure.

Reports, per phase: wall time, runs, most runs and steps at once, the busy ratio (sum of step
time over wall time), seconds per step kind, the peak RSS of the whole process tree (sum) and
of its largest process, sampled every 2 s, and the load average.
Usage: trade-pipeline bench backfill --json [--days 30] [--duration 86400] [--home DIR]
[--reuse-raw] [--pg postgresql://postgres@127.0.0.1:5432/test]. Measures only; never asserts.
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _database(base_dsn: str):
    import psycopg

    name = f"tp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(base_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextlib.contextmanager
def _dagster_dev(workdir: Path, env: dict, port: int):
    dagster = Path(sys.executable).parent / "dagster"
    log = open(workdir / "dagster_dev.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(dagster), "dev", "-w", str(REPO / "workspace.yaml"),
                             "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=workdir,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dagster dev did not start; see {log.name}") from None
                time.sleep(1)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


class _Rss:
    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.total = self.one = 0
        self.loads: list[float] = []

    def sample(self, *_) -> None:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                rss = proc.memory_info().rss
            except self._psutil.Error:
                continue
            total += rss
            self.one = max(self.one, rss)
        self.total = max(self.total, total)
        self.loads.append(os.getloadavg()[0])


def _phase(url: str, days: list[str], assets: list[str], rss: _Rss, timeout: float,
           run_config: dict | None = None) -> dict:
    from trade_pipeline.commands.backfill import (
        backfill_runs,
        launch_backfill,
        parallelism,
        wait_backfill,
    )

    rss.total = rss.one = 0
    rss.loads = []
    started = time.monotonic()
    backfill = launch_backfill(url, days, assets, tags={"trade_pipeline/bench": "backfill"},
                               run_config=run_config)
    status = wait_backfill(url, backfill, timeout, poll_s=2.0, on_poll=rss.sample)
    wall = time.monotonic() - started
    figures = parallelism(backfill_runs(url, backfill))
    return {
        "assets": assets,
        "status": status,
        "wall_s_launch_to_done": round(wall, 1),
        **figures,
        "peak_rss_mb_all_processes": round(rss.total / 2**20),
        "peak_rss_mb_one_process": round(rss.one / 2**20),
        "load_average_max": round(max(rss.loads), 2) if rss.loads else None,
        "load_average_mean": round(sum(rss.loads) / len(rss.loads), 2) if rss.loads else None,
    }


def run(settings=None, argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench backfill")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", default="2025-06-01", help="first day (YYYY-MM-DD)")
    parser.add_argument("--duration", type=float, default=86_400.0,
                        help="simulated seconds per day (default: a full day)")
    parser.add_argument("--home", default=None, help="pipeline home (default: temporary)")
    parser.add_argument("--reuse-raw", action="store_true",
                        help="skip the raw phase when the home already has every day's raw files")
    parser.add_argument("--pg", default=os.environ.get(
        "TRADE_PIPELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL DSN to create the bench's own database from")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0)
    args, _ = parser.parse_known_args(argv or [])

    from psycopg.conninfo import conninfo_to_dict

    from trade_pipeline.defs.instance_setup import pin_duckdb_pool
    from trade_pipeline.settings import Settings
    from trade_pipeline.storage import raw_store

    first = dt.date.fromisoformat(args.start)
    days = [(first + dt.timedelta(days=k)).isoformat() for k in range(args.days)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    home = Path(args.home) if args.home else tmp / "home"
    out: dict = {"days": args.days, "first_day": days[0], "simulated_s_per_day": args.duration,
                 "cpus": os.cpu_count()}
    try:
        with _database(args.pg) as db:
            info = conninfo_to_dict(args.pg)
            dagster_home = tmp / "dagster_home"
            dagster_home.mkdir()
            shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
            env = {**os.environ, "DAGSTER_HOME": str(dagster_home),
                   "TRADE_PIPELINE_HOME": str(home),
                   "TRADE_PIPELINE_PG_HOST": info.get("host", "127.0.0.1"),
                   "TRADE_PIPELINE_PG_PORT": str(info.get("port", 5432)),
                   "TRADE_PIPELINE_PG_USER": info.get("user", "postgres"),
                   "TRADE_PIPELINE_PG_PASSWORD": info.get("password") or "unused",
                   "TRADE_PIPELINE_PG_DB": db}
            pin_duckdb_pool(env)  # as a deployment does (see its docstring)
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            with _dagster_dev(tmp, env, port) as proc:
                rss = _Rss(proc.pid)
                settings_ = Settings.load(home=home)
                have = all(raw_store.raw_files_for_day(settings_, settings_.exchange,
                                                       settings_.symbol, d) for d in days)
                if not (args.reuse_raw and have):
                    config = {"ops": {"raw_l2_captures": {"config": {
                        "source": "simulator", "duration_s": args.duration}}}}
                    out["raw_phase"] = _phase(url, days, ["raw_l2_captures"], rss, args.timeout,
                                              run_config=config)
                out["lake_phase"] = _phase(url, days, ["l2_snapshots", "l2_features",
                                                       "feature_stats"], rss, args.timeout)
        lake = out["lake_phase"]
        out["lake_days_per_minute"] = (round(args.days / (lake["wall_s"] / 60), 2)
                                       if lake.get("wall_s") else None)
        out["note"] = ("wall_s: first run start to last run end; wall_s_launch_to_done adds "
                       "the backfill daemon's ticks (30 s) before the first and after the last "
                       "run; busy_ratio = step seconds / wall (2 cores)")
        return out
    finally:
        if args.home is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp / "dagster_home", ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(None, sys.argv[1:]), indent=2))
