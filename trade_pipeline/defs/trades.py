"""Dagster objects for the trade feed: the daily `l2_trades` lake table and its checks.

`l2_trades` (daily) reads the day's raw capture files (as `l2_snapshots` does) and writes the
day's public trades (Parquet zstd, hive layout `l2_trades/exchange=/symbol=/date=`, atomic
through storage.layout), de-duplicated against the previous day's last trades. The DuckDB
view `l2_trades` over the partitions comes from migration 004.

Checks: `schema` (exact columns and types, blocking), `row_count` (rows when the captures
carry a trade feed, blocking; a warning when they carry none, e.g. old book-only captures),
`duplicates` (trade ids unique in the partition, blocking) and `bad_lines` (warns when bad
trades were counted; counts per reason in its metadata).
"""

import datetime as dt

import dagster as dg
import polars as pl

from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import PipelineResource
from trade_pipeline.market.schema import TRADE_SCHEMA
from trade_pipeline.storage import raw_store, tables
from trade_pipeline.storage.layout import PartitionKey, read_partition, write_partition

TRADES_TABLE = tables.TRADES
PREVIEW_ROWS = 5


def _key(settings, day: str) -> PartitionKey:
    return PartitionKey(settings.exchange, settings.symbol, day)


def _preview(frame: pl.DataFrame) -> str:
    head = frame.select("timestamp", "trade_id", "side", "price", "size").head(PREVIEW_ROWS)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join(lines)


@dg.asset(
    name=TRADES_TABLE,
    partitions_def=DAILY,
    deps=[
        dg.AssetKey("raw_l2_captures"),
        # a day is de-duplicated against the previous day's last trades
        dg.AssetDep(TRADES_TABLE, partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-1, end_offset=-1)),
    ],
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Public trades (taker side, price, size, exchange and receive times) of one "
    "UTC day of raw captures, in order of receipt: Parquet zstd in the lake's hive layout; "
    "bad trades and repeated ids counted, never kept.",
    check_specs=[
        dg.AssetCheckSpec("schema", asset=TRADES_TABLE, blocking=True,
                          description="exact column names, order and types of the contract"),
        dg.AssetCheckSpec("row_count", asset=TRADES_TABLE, blocking=True,
                          description="the partition has trades when the captures carry a trade "
                          "feed (warns when they carry none)"),
        dg.AssetCheckSpec("duplicates", asset=TRADES_TABLE, blocking=True,
                          description="every trade id appears once in the partition"),
        dg.AssetCheckSpec("bad_lines", asset=TRADES_TABLE,
                          description="trades that could not be read (warns when any; counts "
                          "per reason)"),
    ],
)
def l2_trades(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    from trade_pipeline.market.trades import PARQUET_OPTIONS, day_trades

    settings = pipeline.settings().ensure_dirs()
    day = context.partition_key
    key = _key(settings, day)
    files = raw_store.raw_files_for_day(settings, key.exchange, key.symbol, day)
    if not files:
        raise dg.Failure(f"no raw captures for {key.exchange}/{key.symbol} on {day}: "
                         "materialize raw_l2_captures for this day first")
    previous = read_partition(settings.lake_dir, TRADES_TABLE,
                              _key(settings, (key.day - dt.timedelta(days=1)).isoformat()))
    result = day_trades(files, day, previous)
    frame = result.frame
    path = write_partition(frame, settings.lake_dir, TRADES_TABLE, key, **PARQUET_OPTIONS)
    report = result.report.to_dict()
    if report["trade_lines"] == 0:
        context.log.warning(f"{day}: the captures carry no trade feed (book-only recordings)")
    context.log.info(f"{day}: {report['trade_lines']} trade lines -> {frame.height} trades")
    volume = float(frame["size"].sum()) if frame.height else 0.0
    return dg.MaterializeResult(
        metadata={
            "rows": frame.height,
            "trade_lines": report["trade_lines"],
            "trades_read": report["trades_read"],
            "duplicates": report["duplicates"],
            "duplicates_of_previous_day": report["known_duplicates"],
            "bad_trades": report["bad_trades"],
            "bad_by_reason": dg.MetadataValue.json(report["bad_by_reason"]),
            "other_symbol": report["other_symbol"],
            "truncated_files": report["truncated_files"],
            "files": len(files),
            "trades_before_day": result.before_day,
            "trades_after_day": result.after_day,
            "volume": volume,
            "buy_share": float((frame["side"] == "buy").mean()) if frame.height else None,
            "vwap": float((frame["price"] * frame["size"]).sum() / volume) if volume else None,
            "first_trade": report["first_trade"],
            "last_trade": report["last_trade"],
            "preview": dg.MetadataValue.md(_preview(frame)),
            "path": dg.MetadataValue.path(path),
            "dagster/row_count": frame.height,
        },
        check_results=check_results(frame, report),
    )


# ---- checks: computed on what the materialization wrote, emitted with it ----------------------

def check_results(frame: pl.DataFrame, report: dict) -> list[dg.AssetCheckResult]:
    """`schema`, `row_count`, `duplicates` and `bad_lines` of one written partition (`report`:
    the trade reader's counts)."""
    expected = list(TRADE_SCHEMA.items())
    actual = list(frame.schema.items())
    problems = [] if actual == expected else [f"columns {actual} != contract {expected}"]
    sides = set(frame["side"].unique().to_list()) - {"buy", "sell"} if frame.height else set()
    if sides:
        problems.append(f"unknown sides {sorted(sides)}")
    schema = dg.AssetCheckResult(check_name="schema", passed=not problems,
                                 description="; ".join(problems) or "matches the contract",
                                 metadata={"columns": frame.width})

    lines = report["trade_lines"]
    if frame.height == 0 and lines == 0:
        rows = dg.AssetCheckResult(check_name="row_count", passed=False,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   description="the day's captures carry no trade feed",
                                   metadata={"rows": 0, "trade_lines": 0})
    else:
        rows = dg.AssetCheckResult(check_name="row_count", passed=frame.height > 0,
                                   description=f"{frame.height} trades",
                                   metadata={"rows": frame.height, "trade_lines": lines})

    repeated = frame.height - frame["trade_id"].n_unique() if frame.height else 0
    duplicates = dg.AssetCheckResult(
        check_name="duplicates", passed=repeated == 0,
        description=f"{repeated} repeated trade ids" if repeated else
        f"unique ids; {report['duplicates']} repeats in the captures were kept once",
        metadata={"repeated_ids": repeated, "duplicates_read": report["duplicates"],
                  "duplicates_of_previous_day": report["known_duplicates"]})

    bad, reasons = report["bad_trades"], report["bad_by_reason"] or {}
    bad_lines = dg.AssetCheckResult(
        check_name="bad_lines", passed=bad == 0, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{bad} bad trades: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
        if bad else "no bad trade",
        metadata={"bad_trades": bad, "bad_by_reason": dg.MetadataValue.json(reasons)})
    return [schema, rows, duplicates, bad_lines]
