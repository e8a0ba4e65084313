"""`trade-pipeline snapshots --day` builds a day exactly as the `l2_snapshots` asset does
(one implementation: market.day_snapshots), across midnight, with the stored checkpoint and
the look-ahead into the next day's files."""

import datetime as dt
import json

import dagster as dg
import polars as pl

from trade_pipeline.cli import main
from trade_pipeline.defs.ingest import l2_snapshots, raw_l2_captures
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.market.day_snapshots import load_day_checkpoint
from trade_pipeline.settings import Settings
from trade_pipeline.storage.layout import PartitionKey, read_partition

DAY, DAY2 = "2025-07-07", "2025-07-08"


def _materialize(home, partition, selection, raw_config=None):
    run_config = {"ops": {"raw_l2_captures": {"config": raw_config}}} if raw_config else None
    result = dg.materialize([raw_l2_captures, l2_snapshots], partition_key=partition,
                            resources=build_resources(str(home)),
                            instance=dg.DagsterInstance.ephemeral(), run_config=run_config,
                            selection=selection)
    assert result.success
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey("l2_snapshots")]
    return {k: v.value for k, v in events[0].materialization.metadata.items()} if events else {}


def _cli_day(home, day, out, capsys, *extra) -> dict:
    assert main(["--home", str(home), "snapshots", "--day", day, "--output", str(out),
                 *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _late_stream(home) -> None:
    """A simulated stream 23:58:30 -> 00:01:30 in the raw store whose pushes of the last half
    second before midnight were received after it (they land in day 2's folder)."""
    from trade_pipeline.market.simulator import SimulatorConfig, simulate
    from trade_pipeline.storage.raw_store import RawStoreWriter

    midnight = dt.datetime(2025, 7, 8, tzinfo=dt.UTC)
    midnight_ns = int(midnight.timestamp()) * 10**9
    config = SimulatorConfig(start=midnight - dt.timedelta(seconds=90), duration_s=180, seed=3)
    settings = Settings.load(home=home).ensure_dirs()
    last = 0
    with RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT", flush_interval=1e9) as writer:
        for recv_ns, frame in simulate(config):
            ts_ms = json.loads(frame)["ts"]
            if midnight_ns - 500_000_000 <= ts_ms * 10**6 < midnight_ns:
                recv_ns = midnight_ns + 1_000_000  # delayed past midnight
            last = max(last + 1, recv_ns)
            writer.append(last, frame)


def test_cli_day_equals_asset_across_midnight(tmp_path, capsys):
    home = tmp_path / "home"
    # one session over two days and two raw folders
    _late_stream(home)
    # day 2 first: its look-back needs day 1's checkpoint, which does not exist yet
    cold = _cli_day(home, DAY2, tmp_path / "cold.parquet", capsys)
    assert cold["rows"] == 0 and cold["continued_from_previous_day"] is False
    meta1 = _materialize(home, DAY, [l2_snapshots])
    meta2 = _materialize(home, DAY2, [l2_snapshots])
    settings = Settings.load(home=home)
    for day, meta in ((DAY, meta1), (DAY2, meta2)):
        out = tmp_path / f"{day}.parquet"
        summary = _cli_day(home, day, out, capsys)
        lake = read_partition(settings.lake_dir, "l2_snapshots",
                              PartitionKey("bybit", "BTCUSDT", day))
        cli = pl.read_parquet(out)
        assert cli.equals(lake) and lake.height > 800
        for name in ("rows", "sessions", "messages", "gaps", "bad_lines", "rows_of_previous_day",
                     "rows_from_next_day_files", "next_day_lines_read",
                     "continued_from_previous_day"):
            assert summary[name] == meta[name], name
        assert set(summary["stage_seconds"]["wall"]) == {"read", "parse", "book", "sample",
                                                        "write"}
    assert meta2["continued_from_previous_day"] is True
    assert meta1["next_day_lines_read"] > 0 and meta1["rows_of_next_day"] == 0
    # the simulator's receive latency puts pushes of 23:59:59.99x in day 2's folder: day 1's
    # last rows come from the look-ahead, and day 2 re-derives them without writing them
    assert meta1["rows_from_next_day_files"] == meta2["rows_of_previous_day"] > 0
    # the CLI stores nothing: the lake's checkpoint is still the asset's
    key2 = PartitionKey("bybit", "BTCUSDT", DAY2)
    before = load_day_checkpoint(settings, key2)
    _cli_day(home, DAY2, tmp_path / "again.parquet", capsys, "--state-out",
             str(tmp_path / "state.json"))
    assert load_day_checkpoint(settings, key2) == before
    assert json.loads((tmp_path / "state.json").read_text()) == before


def test_cli_day_errors_are_one_line(tmp_path, capsys):
    home = tmp_path / "home"
    code = main(["--home", str(home), "snapshots", "--day", DAY, "--output",
                 str(tmp_path / "x.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and "no raw captures for bybit/BTCUSDT on 2025-07-07" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["--home", str(home), "snapshots", "--day", DAY, "--cadence", "1s",
                 "--output", str(tmp_path / "x.parquet")])
    assert code == 2 and "--cadence" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
