"""Every command that reads an input file answers a wrong one with one line and exit code 2.

The matrix: each command's input option x each way a file can be wrong (missing, a
directory, empty, unreadable, not the format, the format with the wrong columns, truncated).
The command runs in-process through `cli.main`, as the console script does; stdout stays
empty (no partial result) and stderr holds exactly one line naming the file.
"""

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline_tests.monitoring.helpers import random_walk_mids, snapshot_frame

T0 = dt.datetime(2025, 7, 7, 10, 0, tzinfo=dt.UTC)
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """A folder every user can enter and write (the unreadable case runs unprivileged)."""
    folder = Path(tempfile.mkdtemp(prefix="tp-bad-inputs-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _good_snapshots(folder: Path) -> Path:
    path = folder / "snapshots.parquet"
    n = 300
    snapshot_frame(T0, [100 * i for i in range(n)], mids=random_walk_mids(n)).write_parquet(path)
    return path


def _good_predictions(folder: Path) -> Path:
    path = folder / "predictions.parquet"
    pl.DataFrame({
        "timestamp": [T0 + dt.timedelta(milliseconds=100 * i) for i in range(300)],
        "signal": [0] * 300,
    }).write_parquet(path)
    return path


# ---- the bad files ---------------------------------------------------------------------

def _missing(folder: Path, kind: str) -> Path:
    return folder / "absent.input"


def _directory(folder: Path, kind: str) -> Path:
    path = folder / "a-folder"
    path.mkdir()
    return path


def _empty(folder: Path, kind: str) -> Path:
    path = folder / "empty.input"
    path.write_bytes(b"")
    return path


def _text(folder: Path, kind: str) -> Path:
    path = folder / "passwd.input"
    path.write_bytes(PASSWD)
    return path


def _wrong_columns(folder: Path, kind: str) -> Path:
    """The right format with the wrong content: Parquet with other columns, a SQLite file
    without the legacy table, JSON that is not a checkpoint."""
    if kind == "parquet":
        path = folder / "other.parquet"
        pl.DataFrame({"a": [1, 2], "timestamp": ["x", "y"]}).write_parquet(path)
    elif kind == "sqlite":
        path = folder / "other.db"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE notes (x TEXT)")
            conn.commit()
    elif kind == "json":
        path = folder / "list.json"
        path.write_text("[1, 2, 3]")
    elif kind == "toml":
        path = folder / "other.toml"
        path.write_text("[nonsense]\nx = 1\n")
    else:  # capture: a Parquet file where JSON lines are expected
        path = folder / "capture.jsonl"
        _good_snapshots(folder).rename(path)
    return path


def _truncated(folder: Path, kind: str) -> Path:
    """The first half of a valid file of the kind (a copy cut short)."""
    if kind == "parquet":
        whole = _good_snapshots(folder).read_bytes()
    elif kind == "sqlite":
        db = folder / "whole.db"
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("CREATE TABLE l2_training_data_practical (id INTEGER, timestamp TEXT)")
            conn.executemany("INSERT INTO l2_training_data_practical VALUES (?, ?)",
                             [(i, "2025-07-07T10:00:00") for i in range(2000)])
            conn.commit()
        whole = db.read_bytes()
    else:
        whole = b'{"time_ms": 1751882400000, "bids": [[100.0, 1.0]], "asks": [[100.1, 1'
    path = folder / f"truncated.{kind}"
    path.write_bytes(whole[: len(whole) // 2])
    return path


CASES: dict[str, Callable[[Path, str], Path]] = {
    "missing": _missing, "directory": _directory, "empty": _empty, "text": _text,
    "wrong_columns": _wrong_columns, "truncated": _truncated,
}


# ---- the commands --------------------------------------------------------------------------

def _features(p, f):
    return "parquet", ["features", "--input", p, "--output", f / "out.parquet"]


def _train(p, f):
    return "parquet", ["train", "--features", p, "--no-register", "--trials", "1"]


def _backtest_snapshots(p, f):
    return "parquet", ["backtest", "--predictions", _good_predictions(f), "--snapshots", p,
                       "--no-store"]


def _backtest_predictions(p, f):
    return "parquet", ["backtest", "--predictions", p, "--snapshots", _good_snapshots(f),
                       "--no-store"]


def _backtest_config(p, f):
    return "toml", ["backtest", "--predictions", _good_predictions(f), "--snapshots",
                    _good_snapshots(f), "--config", p, "--no-store"]


def _paper_config(p, f):
    return "toml", ["paper", "--duration", "1", "--config", p, "--no-redis",
                    "--url", "ws://127.0.0.1:9"]


def _snapshots(p, f):
    return "capture", ["snapshots", "--input", p, "--output", f / "s.parquet", "--no-progress"]


def _snapshots_state(p, f):
    return "json", ["snapshots", "--input", _good_capture(f), "--state-in", p,
                    "--output", f / "s.parquet", "--no-progress"]


def _replay_server(p, f):
    return "capture", ["replay-server", p, "--port", "0"]


def _import_captures(p, f):
    return "capture", ["import-captures", p]


def _import_legacy(p, f):
    return "sqlite", ["import-legacy", p, "--dry-run"]


def _good_capture(folder: Path) -> Path:
    import orjson

    path = folder / "good.jsonl"
    line = {"exchange": "bybit", "symbol": "BTCUSDT", "timestamp_ms": 1751882400000,
            "received_timestamp_ms": 1751882400100, "type": "snapshot",
            "bids": [[100.0, 1.0]], "asks": [[100.1, 1.0]], "update_id": 1, "sequence_id": 1}
    path.write_bytes(orjson.dumps(line) + b"\n")
    return path


COMMANDS = {
    "features --input": _features,
    "train --features": _train,
    "backtest --snapshots": _backtest_snapshots,
    "backtest --predictions": _backtest_predictions,
    "backtest --config": _backtest_config,
    "paper --config": _paper_config,
    "snapshots --input": _snapshots,
    "snapshots --state-in": _snapshots_state,
    "replay-server FILE": _replay_server,
    "import-captures FILE": _import_captures,
    "import-legacy SQLITE_FILE": _import_legacy,
}

# Documented exception: `snapshots` counts an empty capture among its inputs
# (a collector's rollover can leave one) and reports them; a run where nothing at all holds a
# book message exits 1 with the report (trade_pipeline_tests/market/test_snapshots_cli.py).
COUNTED = {("snapshots --input", "empty")}


def _run(argv: list, home: Path, capsys) -> tuple[int, str, str]:
    code = main(["--home", str(home), *[str(a) for a in argv]])
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_one_line(code: int, out: str, err: str, path: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("trade-pipeline"), err
    assert str(path) in lines[0] or path.name in lines[0], err
    assert out == "", out


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_wrong_input_file_is_one_line_and_exit_2(command, case, world, capsys):
    home = world / "home"
    path = CASES[case](world, COMMANDS[command](Path("x"), world)[0])
    _, argv = COMMANDS[command](path, world)
    if (command, case) in COUNTED:
        code, _, err = _run(argv, home, capsys)
        assert code == 1 and err.strip().splitlines()[-1].endswith("nothing written"), err
        return
    _assert_one_line(*_run(argv, home, capsys), path)


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Run as `nobody` for the block when the tests run as root (root reads any file)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unreadable_input_file_is_one_line_and_exit_2(command, world, capsys):
    home = world / "home"
    kind, _ = COMMANDS[command](Path("x"), world)
    path = _wrong_columns(world, kind) if kind != "capture" else _good_capture(world)
    for f in world.rglob("*"):
        f.chmod(0o777 if f.is_dir() else 0o666)
    _, warm = COMMANDS[command](world / "absent", world)
    _run(warm, home, capsys)  # imports done while privileged (the stdlib lives under /root)
    _, argv = COMMANDS[command](path, world)
    path.chmod(0)
    with _unprivileged():
        code, out, err = _run(argv, home, capsys)
    assert "permission denied" in err
    _assert_one_line(code, out, err, path)


def test_the_input_checks_name_what_is_wrong(tmp_path):
    from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
    from trade_pipeline.storage.input_files import (
        InputFileError,
        check_input_file,
        read_parquet_input,
    )

    assert check_input_file(_text(tmp_path, "")) == tmp_path / "passwd.input"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in [
        (tmp_path / "nope", "not found"), (tmp_path, "is a directory"),
        (_empty(tmp_path, ""), r"empty file \(0 bytes\)"), (fifo, "not a regular file"),
        (_text(tmp_path, "") / "below", "Not a directory"),
    ]:
        with pytest.raises(InputFileError, match=words):
            check_input_file(path, "--input")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    good = _good_snapshots(tmp_path)
    assert read_parquet_input(good, "--input", dict(SNAPSHOT_SCHEMA)).height == 300
    for path, words in [
        (_text(tmp_path, ""), "not a Parquet file"),
        (_wrong_columns(tmp_path, "parquet"), "missing columns"),
        (_truncated(tmp_path, "parquet"), "not a Parquet file"),
    ]:
        with pytest.raises(InputFileError, match=words):
            read_parquet_input(path, "--input", dict(SNAPSHOT_SCHEMA), "an l2_snapshots table")
    # Columns present with the wrong kind of values; a table without rows.
    typed = tmp_path / "typed.parquet"
    pl.DataFrame({"timestamp": [1, 2]}).write_parquet(typed)
    with pytest.raises(InputFileError, match="timestamp is Int64, expected a time"):
        read_parquet_input(typed, "--input", {"timestamp": SNAPSHOT_SCHEMA["timestamp"]})
    no_rows = tmp_path / "no_rows.parquet"
    pl.DataFrame(schema=SNAPSHOT_SCHEMA).write_parquet(no_rows)
    with pytest.raises(InputFileError, match="holds no rows"):
        read_parquet_input(no_rows, "--input", dict(SNAPSHOT_SCHEMA))
    # Damaged pages behind an intact footer.
    data = bytearray(good.read_bytes())
    for i in range(200, 2200):
        data[i] ^= 0x5A
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"damaged Parquet file|not a Parquet file"):
        read_parquet_input(damaged, "--input", dict(SNAPSHOT_SCHEMA))


def test_features_refuses_an_output_that_is_its_input_or_a_directory(world, capsys):
    snaps = _good_snapshots(world)
    before = snaps.read_bytes()
    code, out, err = _run(["features", "--input", snaps, "--output", snaps], world / "h", capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "is the --input file" in err and snaps.read_bytes() == before
    folder = world / "out-folder"
    folder.mkdir()
    code, out, err = _run(["features", "--input", snaps, "--output", folder], world / "h", capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "is a directory" in err and list(folder.iterdir()) == []
