"""One writer per output, never a half-written file: `storage.atomic` with real processes.

- a second writer (another process, another thread) is refused at once, naming the holder;
- two processes racing on one lake partition or one `--output`: one complete file, the loser
  told (`OutputBusy`, exit 2 with one line for a command);
- `kill -9` in the middle of a write leaves the previous good file, and the next writer
  removes the dead writer's temporary file.
"""

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.storage import atomic
from trade_pipeline.storage.layout import PartitionKey, partition_file, read_partition

BIN = Path(sys.executable).parent
KEY = PartitionKey("bybit", "BTCUSDT", "2025-07-07")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshots(n: int, seed: int = 0) -> pl.DataFrame:
    """n canonical snapshot rows (a random-walk book), built with numpy (fast at 10^5+)."""
    rng = np.random.default_rng(seed)
    mid = 100_000 + np.cumsum(rng.normal(0, 0.5, n)).round(1)
    t0 = int(dt.datetime(2025, 7, 7, tzinfo=dt.UTC).timestamp() * 1e6)
    ts = pl.Series(t0 + 100_000 * np.arange(n, dtype=np.int64)).cast(pl.Datetime("us", "UTC"))
    cols = {"timestamp": ts, "exchange": ["bybit"] * n, "symbol": ["BTCUSDT"] * n}
    for i in range(1, 11):
        cols[f"bid_price_{i}"] = mid - 0.05 - 0.1 * (i - 1)
        cols[f"bid_size_{i}"] = rng.uniform(0.1, 5, n)
        cols[f"ask_price_{i}"] = mid + 0.05 + 0.1 * (i - 1)
        cols[f"ask_size_{i}"] = rng.uniform(0.1, 5, n)
    cols["update_id"] = np.arange(n, dtype=np.int64)
    cols["received_timestamp"] = ts
    cols["session_id"] = np.ones(n, dtype=np.int64)
    return pl.DataFrame(cols).select([pl.col(c).cast(t) for c, t in SNAPSHOT_SCHEMA.items()])


HOLDER = """
import sys, time
from trade_pipeline.storage.atomic import exclusive
with exclusive(sys.argv[1], "--output"):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def _hold(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "features.parquet"
    holder = _hold(out)
    try:
        with pytest.raises(atomic.OutputBusy, match=rf"is being written by pid {holder.pid} "):
            atomic.write_bytes_atomic(b"x", out)
        # A command on the same --output: one line naming the holder, exit 2, nothing written.
        snaps = tmp_path / "snaps.parquet"
        _snapshots(500).write_parquet(snaps)
        done = subprocess.run([BIN / "trade-pipeline", "--home", tmp_path / "h", "features",
                               "--input", snaps, "--output", out], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"being written by pid {holder.pid}" in lines[0], done.stderr
        assert " since " in lines[0] and f"(-c {out})" in lines[0]  # when, its command line
        assert not out.exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert not atomic.lock_path(out).exists()  # released and removed
    atomic.write_bytes_atomic(b"ok", out)
    assert out.read_bytes() == b"ok"


def test_threads_exclude_each_other_and_a_thread_may_reenter(tmp_path):
    out = tmp_path / "out.bin"
    errors: list[Exception] = []
    with atomic.exclusive(out):
        atomic.write_bytes_atomic(b"inner", out)  # the holder itself writes: re-entrant

        def other() -> None:
            try:
                atomic.write_bytes_atomic(b"other", out)
            except atomic.OutputBusy as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and out.read_bytes() == b"inner"
    with pytest.raises(atomic.OutputError, match="is a directory"):
        atomic.write_bytes_atomic(b"x", tmp_path)


RACER = """
import sys, time
import numpy as np, polars as pl
from trade_pipeline.storage import atomic, layout
mode, target, who, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
n = 1_500_000
frame = pl.DataFrame({"writer": np.full(n, who, dtype=np.int64),
                      "x": np.random.default_rng(who).normal(size=n)})
while time.time() < start_at:
    time.sleep(0.001)
try:
    if mode == "partition":
        key = layout.PartitionKey("bybit", "BTCUSDT", "2025-07-07")
        layout.write_partition(frame, target, "racing", key, compression="zstd",
                               compression_level=19)
    else:
        atomic.write_parquet_atomic(frame, target, "--output", compression="zstd",
                                    compression_level=19)
    print("wrote")
except atomic.OutputBusy as exc:
    print("busy:", exc)
"""


@pytest.mark.parametrize("mode", ["partition", "output"])
def test_two_processes_writing_one_target_at_once(tmp_path, mode):
    """Both start within a millisecond; each write takes about a second: the result is one
    writer's complete file, and the other writer is told who holds it."""
    target = tmp_path / "lake" if mode == "partition" else tmp_path / "out.parquet"
    start_at = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", RACER, mode, str(target), str(who),
                               str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for who in (1, 2)]
    outcomes = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outcomes
    said = [out.strip() for out, _ in outcomes]
    assert sorted(s.split(":")[0] for s in said) == ["busy", "wrote"], said
    winner = 1 + [s.split(":")[0] for s in said].index("wrote")
    holder_pid = procs[winner - 1].pid
    assert f"being written by pid {holder_pid} " in next(s for s in said if s.startswith("busy"))
    if mode == "partition":
        frame = read_partition(str(target), "racing", KEY)
        folder = Path(partition_file(str(target), "racing", KEY)).parent
    else:
        frame = pl.read_parquet(target)
        folder = target.parent
    assert frame.height == 1_500_000 and frame["writer"].unique().to_list() == [winner]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no tmp, no lock


def _wait_for_tmp(folder: Path, name: str, proc: subprocess.Popen, timeout: float) -> Path:
    """The writer's temporary file of `name`, once it holds some bytes."""
    prefix = f".{name}{atomic.TMP_MARK}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the writer finished before it could be killed"
        for entry in folder.iterdir():
            if entry.name.startswith(prefix) and entry.stat().st_size > 0:
                return entry
        time.sleep(0.002)
    raise AssertionError(f"no temporary file of {name} appeared in {timeout}s")


def test_kill_9_during_features_output_keeps_the_previous_file(tmp_path):
    """`trade-pipeline features` killed by SIGKILL while its Parquet is being written: the
    previous output stays byte for byte, and the next run cleans up and succeeds."""
    snaps, out = tmp_path / "snaps.parquet", tmp_path / "features.parquet"
    _snapshots(600).write_parquet(snaps)
    cmd = [BIN / "trade-pipeline", "--home", tmp_path / "h", "features", "--input", snaps,
           "--output", out]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    before = _sha(out)
    _snapshots(80_000, seed=1).write_parquet(snaps)  # a run long enough to interrupt
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = _wait_for_tmp(tmp_path, out.name, proc, timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _sha(out) == before and pl.read_parquet(out).height == 600
    assert tmp.exists()  # the dead writer's leftover, until the next writer
    _snapshots(700, seed=2).write_parquet(snaps)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 700 and pl.read_parquet(out).height == 700
    assert not tmp.exists() and not atomic.lock_path(out).exists()


KILLED_PARTITION_WRITER = """
import sys
import numpy as np, polars as pl
from trade_pipeline.storage import layout
n = 3_000_000
frame = pl.DataFrame({"x": np.random.default_rng(0).normal(size=n)})
layout.write_partition(frame, sys.argv[1], "l2_snapshots",
                       layout.PartitionKey("bybit", "BTCUSDT", "2025-07-07"),
                       compression="zstd", compression_level=19)
"""


def test_kill_9_during_a_lake_partition_write_keeps_the_previous_partition(tmp_path):
    from trade_pipeline.storage.layout import write_partition

    lake = str(tmp_path / "lake")
    good = _snapshots(1000)
    path = Path(write_partition(good, lake, "l2_snapshots", KEY))
    before = _sha(path)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PARTITION_WRITER, lake])
    _wait_for_tmp(path.parent, path.name, proc, timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _sha(path) == before
    assert read_partition(lake, "l2_snapshots", KEY).equals(good)
    # DuckDB's lake views read only part-*.parquet: the leftover is never read as data.
    import duckdb

    from trade_pipeline.storage.layout import table_glob

    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{table_glob(lake, 'l2_snapshots')}')")
    assert rows.fetchall() == [(1000,)]
    write_partition(good.head(10), lake, "l2_snapshots", KEY)  # the next writer cleans up
    assert sorted(p.name for p in path.parent.iterdir()) == ["part-0.parquet"]
