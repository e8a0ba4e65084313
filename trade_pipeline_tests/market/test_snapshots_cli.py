"""`trade-pipeline snapshots` end to end, and damaged copies of real captures."""

import gzip
import json
import subprocess
import sys

import orjson
import polars as pl
import pyarrow.parquet as pq

from trade_pipeline.cli import main
from trade_pipeline.market.live import LiveSampler
from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.streams import read_records, to_wire_line, write_lines


def run_cli(args, capsys):
    code = main(["snapshots", "--no-progress", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_on_real_files_report_and_schema(tmp_path, capsys, bybit_delta_files,
                                             bybit_truncated_file):
    out = tmp_path / "out.parquet"
    files = [bybit_delta_files[1], bybit_truncated_file]
    code, stdout, _ = run_cli(["--input", *map(str, files), "--output", str(out)], capsys)
    assert code == 0
    rep = json.loads(stdout)
    for key in ("messages", "rows", "sessions", "gaps", "crossed_skipped", "bad_lines",
                "truncated_files"):
        assert key in rep
    assert rep["messages"] == 4455 + 846 and rep["sessions"] == 2 and rep["gaps"] == 0
    assert rep["truncated_files"] == 1 and rep["bad_lines"] == 0
    df = pl.read_parquet(out)
    assert df.schema == pl.Schema(SNAPSHOT_SCHEMA)
    assert df.height == rep["rows"] > 1000
    assert df["timestamp"].is_sorted() and df["timestamp"].is_unique().all()
    assert (df["bid_price_1"] < df["ask_price_1"]).all()
    meta = pq.ParquetFile(out).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_cli_subprocess_event_cadence_depth(tmp_path, bybit_delta_files):
    out = tmp_path / "e.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "trade_pipeline", "snapshots", "--input", str(bybit_delta_files[0]),
         "--cadence", "event", "--depth", "5", "--output", str(out), "--no-progress"],
        capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["rows"] == rep["messages"] == 548
    df = pl.read_parquet(out)
    assert df["bid_price_6"].null_count() == df.height and (df["bid_size_6"] == 0).all()
    assert df["bid_price_5"].null_count() == 0


def test_cli_unknown_format_and_empty_input(tmp_path, capsys):
    odd = write_lines(tmp_path / "odd.jsonl", [{"foo": 1}], gz=False)
    code, _, err = run_cli(["--input", str(odd), "--output", str(tmp_path / "x.parquet")], capsys)
    assert code == 2 and "unknown format" in err and "['foo']" in err
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(gzip.compress(b""))
    code, stdout, err = run_cli(["--input", str(empty), "--output", str(tmp_path / "y.parquet")],
                                capsys)
    assert code == 1 and "no book message" in err
    assert json.loads(stdout)["empty_files"] == [str(empty)]
    assert not (tmp_path / "y.parquet").exists()


def test_cli_state_roundtrip_continues_session(tmp_path, capsys, bybit_delta_files):
    recs = read_records(bybit_delta_files[0])
    a = write_lines(tmp_path / "a.jsonl.gz", recs[:300])
    b = write_lines(tmp_path / "b.jsonl.gz", recs[300:])
    state = tmp_path / "state.json"
    code, _out1, _ = run_cli(["--input", str(a), "--output", str(tmp_path / "a.parquet"),
                             "--state-out", str(state)], capsys)
    assert code == 0
    code, out2, _ = run_cli(["--input", str(b), "--output", str(tmp_path / "b.parquet"),
                             "--state-in", str(state)], capsys)
    assert code == 0 and json.loads(out2)["deltas_before_snapshot"] == 0
    both = pl.concat([pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")])
    whole = build_snapshots([bybit_delta_files[0]]).frame
    assert both.equals(whole)
    assert both["session_id"].n_unique() == 1


def test_update_id_gap_in_real_capture_starts_new_session_at_next_snapshot(
        tmp_path, bybit_delta_files):
    recs = read_records(bybit_delta_files[1])
    assert recs[0]["type"] == "snapshot"
    dropped = recs[1000]
    damaged = recs[:1000] + recs[1001:2000] + [recs[0] | {"update_id": recs[1999]["update_id"] + 1,
                                                           "timestamp_ms": recs[1999]["timestamp_ms"] + 1,
                                                           "received_timestamp_ms": recs[1999]["received_timestamp_ms"]}]
    res = build_snapshots([write_lines(tmp_path / "gap.jsonl.gz", damaged)])
    rep = res.report.to_dict()
    assert rep["gaps"] == 1 and rep["sessions"] == 2
    assert rep["skipped_after_gap"] == 999
    last_before = recs[999]["timestamp_ms"] * 1000
    ts = res.frame["timestamp"].dt.epoch("us")
    first_session = res.frame.filter(pl.col("session_id") == res.frame["session_id"][0])
    assert first_session["timestamp"].dt.epoch("us").max() <= last_before
    assert ts.filter((ts > last_before) & (ts < recs[1999]["timestamp_ms"] * 1000)).len() == 0
    assert dropped["update_id"] not in res.frame["update_id"].to_list()


def test_duplicated_and_reordered_real_messages(tmp_path, bybit_delta_files):
    recs = read_records(bybit_delta_files[0])
    dup = [*recs[:100], recs[99], *recs[100:]]
    res = build_snapshots([write_lines(tmp_path / "d.jsonl.gz", dup)])
    clean = build_snapshots([bybit_delta_files[0]])
    assert res.report.to_dict()["duplicates"] == 1 and res.frame.equals(clean.frame)
    swapped = [*recs[:100], recs[101], recs[100], *recs[102:]]
    res = build_snapshots([write_lines(tmp_path / "s.jsonl.gz", swapped)])
    rep = res.report.to_dict()
    assert rep["gaps"] == 1 and rep["skipped_after_gap"] == len(recs) - 100


def test_batch_and_live_identical_on_real_capture(bybit_delta_files):
    src = bybit_delta_files[3]
    batch = build_snapshots([src])
    live = LiveSampler(fmt="bybit_raw")
    rows = []
    for m in read_records(src):
        recv_ns = m["received_timestamp_ms"] * 1_000_000
        frame = to_wire_line(m).split(b" ", 1)[1]  # the bare WebSocket frame
        rows.extend(live.on_message(frame, recv_ns))
    rows.extend(live.close())
    got = pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA)
    assert got.height == batch.frame.height > 100
    assert got.equals(batch.frame)
    assert live.report()["messages"] == batch.report.messages


def test_live_counts_control_frames_and_bad_input():
    live = LiveSampler()
    assert live.on_message(orjson.dumps({"success": True, "op": "subscribe"}), 1) == []
    assert live.on_message(b"{not json", 2) == []
    rep = live.report()
    assert rep["control_messages"] == 1 and rep["bad_lines"] == 1 and rep["messages"] == 0
