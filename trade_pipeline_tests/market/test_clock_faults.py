"""Issue 15 item 1 and DATA.md rules 7-8 on damaged copies of the real captures: a bad clock
invents no rows, implausible values are counted bad lines, a cadence far too fine is refused,
and the memory of `snapshots` never follows the timestamps."""

import copy
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from trade_pipeline import cli
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.streams import write_lines

TRADE_PIPELINE = Path(sys.executable).parent / "trade-pipeline"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def _records(path: Path) -> list[dict]:
    with gzip.open(path, "rb") as src:
        return [orjson.loads(line) for line in src if line.strip()]


@pytest.fixture(scope="module")
def capture(shared_data) -> Path:
    """4,455 messages, one session, 1,193 grid rows at 100 ms."""
    return shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250706_070028.jsonl.gz"


@pytest.fixture(scope="module")
def small_capture(shared_data) -> Path:
    """548 messages."""
    return shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250706_064238.jsonl.gz"


@pytest.fixture(scope="module")
def clean(capture):
    return build_snapshots([capture])


def _damaged(tmp_path: Path, recs: list[dict], name: str = "damaged.jsonl.gz") -> Path:
    return write_lines(tmp_path / name, recs)


@pytest.mark.parametrize("where, shift_ms", [
    ("last", DAY_MS),  # issue: 865,193 rows instead of 1,193
    ("middle", HOUR_MS),  # issue: 36,593 rows, the second half frozen
    ("middle", -HOUR_MS),  # behind the previous message: re-timed, not clamped for good
])
def test_one_bad_time_of_record_creates_and_removes_no_row(tmp_path, capture, clean, where,
                                                          shift_ms):
    recs = _records(capture)
    k = len(recs) - 1 if where == "last" else len(recs) // 2
    recs[k]["timestamp_ms"] += shift_ms
    res = build_snapshots([_damaged(tmp_path, recs)])
    rep = res.report.to_dict()
    assert rep["clock_faults"] == 1 and rep["time_backwards"] == (shift_ms < 0)
    assert rep["gaps"] == 0 and rep["bad_lines"] == 0 and rep["applied"] == len(recs)
    # applied at the previous time plus the receive clock's advance: the same grid rows
    assert res.frame.height == clean.frame.height == 1193
    assert res.frame.equals(clean.frame)


@pytest.mark.parametrize("field, value", [
    ("timestamp_ms", 9 * 10**15),  # issue: grew past 3 GB
    ("timestamp_ms", 1000),  # 1970
    ("update_id", 2**63),  # issue: OverflowError traceback
    ("update_id", -5),
    ("update_id", True),  # a boolean is not an id (True would be 1: a restart)
])
def test_implausible_time_or_id_is_a_counted_bad_line(tmp_path, capture, field, value):
    recs = _records(capture)
    k = len(recs) // 2
    recs[k][field] = value
    res = build_snapshots([_damaged(tmp_path, recs)])
    rep = res.report.to_dict()
    assert rep["bad_lines"] == 1 and rep["messages"] == len(recs) - 1
    assert rep["out_of_range_lines"] == (field != "update_id" or value is not True)
    assert any(f":{k + 1}:" in e for e in rep["bad_line_examples"])
    assert rep["gaps"] == 1  # the line's update is missing: the book is invalid after it
    assert rep["clock_faults"] == 0
    # nothing after the bad line is invented: the session ends before it
    assert res.frame["timestamp"].max().timestamp() * 1000 < recs[k + 1]["timestamp_ms"]


def test_update_id_beyond_int64_cli_reports_no_traceback(tmp_path, capture, capsys):
    recs = _records(capture)
    recs[100]["update_id"] = 2**63
    code = cli.main(["--home", str(tmp_path / "home"), "snapshots", "--input",
                     str(_damaged(tmp_path, recs)), "--output", str(tmp_path / "o.parquet"),
                     "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    report = json.loads(out)
    assert report["out_of_range_lines"] == 1 and report["bad_lines"] == 1


def test_receive_time_out_of_range_is_dropped_and_counted(tmp_path, capture, clean):
    recs = _records(capture)
    recs[10]["received_timestamp_ms"] = 9 * 10**15
    rep = build_snapshots([_damaged(tmp_path, recs)]).report.to_dict()
    assert rep["bad_receive_times"] == 1 and rep["bad_lines"] == 0
    assert rep["applied"] == len(recs) and rep["rows"] == clean.frame.height


def test_boolean_price_or_size_is_a_bad_line(tmp_path, capture):
    """false would delete a level, true would become 1.0: both lines are refused."""
    recs = _records(capture)
    d1, d2 = (next(i for i in range(start, len(recs)) if recs[i]["type"] == "delta"
                   and recs[i]["bids"]) for start in (200, 400))
    recs[d1]["bids"][0][1] = False
    recs[d2]["bids"][0][0] = True
    res = build_snapshots([_damaged(tmp_path, recs)])
    rep = res.report.to_dict()
    assert rep["bad_lines"] == 2
    assert all("boolean" in e for e in rep["bad_line_examples"])
    assert res.frame["bid_price_1"].min() > 1000  # never a bid of 1.0


def test_boolean_in_wire_frames_is_a_bad_line(tmp_path, capture):
    """The raw store's wire frames carry decimal strings; a JSON boolean is refused there too
    (the live parser is the same handler)."""
    from trade_pipeline.market.live import LiveSampler

    recs = _records(capture)[:50]
    lines = []
    for m in recs:
        levels = {"b": [[repr(float(p)), repr(float(s))] for p, s in m["bids"]],
                  "a": [[repr(float(p)), repr(float(s))] for p, s in m["asks"]]}
        frame = {"topic": "orderbook.50.BTCUSDT", "type": m["type"], "ts": m["timestamp_ms"],
                 "data": {"s": "BTCUSDT", **levels, "u": m["update_id"], "seq": 1}}
        lines.append((m["received_timestamp_ms"] * 10**6, frame))
    lines[20][1]["data"]["b"] = [[True, "1.0"]]
    lines[30][1]["data"]["u"] = False
    raw = [b"%d %s" % (ns, orjson.dumps(f)) for ns, f in lines]
    rep = build_snapshots([write_lines(tmp_path / "w.raw.gz", raw)]).report.to_dict()
    assert rep["bad_lines"] == 2
    live = LiveSampler(fmt="bybit_raw", symbol="BTCUSDT")
    for line in raw:
        live.on_message(line)
    assert live.report()["bad_lines"] == 2


def test_deltas_before_the_first_snapshot_do_not_move_the_clock(tmp_path, capture, clean):
    """Issue item 10: deltas of a later time read before the first snapshot used to push the
    session start forward and lose the first rows after the snapshot."""
    recs = _records(capture)
    assert recs[0]["type"] == "snapshot"
    t0 = recs[0]["timestamp_ms"]
    later = [copy.deepcopy(m) for m in recs if m["timestamp_ms"] > t0 + 1300][:5]
    res = build_snapshots([_damaged(tmp_path, later + recs)])
    rep = res.report.to_dict()
    assert rep["deltas_before_snapshot"] == 5 and rep["clock_faults"] == 0
    assert res.frame.equals(clean.frame)


def test_format_bybit_accepts_a_file_whose_first_lines_are_garbage(tmp_path, capture, clean,
                                                                    capsys):
    garbage = [b"garbage", b"{not json", b'{"a": 1}', b"[1, 2, 3]", b"\xff\xfe binary"]
    with gzip.open(capture) as src:
        good = src.read().splitlines()
    path = write_lines(tmp_path / "g.jsonl.gz", [*garbage, *good])
    out_file = tmp_path / "g.parquet"
    code = cli.main(["--home", str(tmp_path / "home"), "snapshots", "--input", str(path),
                     "--format", "bybit", "--output", str(out_file), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["bad_lines"] == 5 and report["messages"] == 4455
    assert report["rows"] == clean.frame.height


def test_cadence_far_too_fine_is_refused_at_once(tmp_path, small_capture, capsys):
    """Issue: 1 us made 548 messages into 19.6M rows."""
    out_file = tmp_path / "c.parquet"
    code = cli.main(["--home", str(tmp_path / "home"), "snapshots", "--input",
                     str(small_capture), "--cadence", "1us", "--output", str(out_file),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "too fine" in err and "--cadence" in err
    assert not out_file.exists() and not list(tmp_path.glob(".c.parquet*"))


def _run_measured(args: list[str], tmp_path: Path) -> tuple[int, float, str, str]:
    """Run the CLI; (exit code, the child's own peak RSS in MB, stdout, stderr)."""
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([str(TRADE_PIPELINE), *args], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, usage.ru_maxrss / 1024, out_path.read_text(),
            err_path.read_text())


def test_peak_memory_follows_the_input_not_its_timestamps(tmp_path, small_capture):
    """A time of record of 9e15 ms (rule 8: a bad line; the issue saw 3 GB and growing), and
    both clocks jumping 30 days together (no clock check can see it: the grid budget refuses
    it), in `snapshots` subprocesses: the second one's peak RSS stays at the first's, which
    is the clean run's (one bad line less to apply)."""
    home = ["--home", str(tmp_path / "home")]
    recs = _records(small_capture)
    far = copy.deepcopy(recs)
    far[len(far) // 2]["timestamp_ms"] = 9 * 10**15
    both = copy.deepcopy(recs)
    for m in both[len(both) // 2:]:
        m["timestamp_ms"] += 30 * DAY_MS
        m["received_timestamp_ms"] += 30 * DAY_MS
    runs = {}
    for name, recs_ in (("far", far), ("both", both)):
        path = _damaged(tmp_path, recs_, f"{name}.jsonl.gz")
        runs[name] = _run_measured([*home, "snapshots", "--input", str(path), "--output",
                                    str(tmp_path / f"{name}.parquet"), "--no-progress"], tmp_path)
    code, far_mb, out, err = runs["far"]
    assert code == 0, err
    assert json.loads(out)["out_of_range_lines"] == 1
    code, both_mb, _, err = runs["both"]
    assert code == 2 and "grid" in err and "Traceback" not in err
    assert not (tmp_path / "both.parquet").exists()
    print(f"peak RSS: 9e15 line {far_mb:.0f} MB, both clocks +30 days {both_mb:.0f} MB")
    assert far_mb < 1000 and both_mb < far_mb + 300, (far_mb, both_mb)


def test_clock_faults_in_the_asset_metadata(tmp_path, capture):
    import dagster as dg

    from trade_pipeline.defs.ingest import l2_snapshots, raw_l2_captures
    from trade_pipeline.defs.resources import build_resources

    recs = _records(capture)
    recs[len(recs) // 2]["timestamp_ms"] += HOUR_MS
    recs[len(recs) // 3]["update_id"] = 2**63
    damaged = _damaged(tmp_path, recs, capture.name)
    result = dg.materialize(
        [raw_l2_captures, l2_snapshots], partition_key="2025-07-06",
        resources=build_resources(str(tmp_path / "home")),
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"raw_l2_captures": {"config": {"source": "recorded",
                                                           "files": [str(damaged)]}}}},
    )
    assert result.success
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey("l2_snapshots"))
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["clock_faults"] == 1 and meta["out_of_range_lines"] == 1
    assert meta["report"]["clock_faults"] == 1 and meta["bad_lines"] == 1
