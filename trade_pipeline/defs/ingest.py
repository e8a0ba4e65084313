"""Dagster objects for the ingest area: thin wrappers over trade_pipeline.<domain> code.

- `raw_l2_captures` (daily): fills the raw capture store for the partition's day from the
  simulator (the embedded default), recorded files, or what the live collector wrote.
- `l2_snapshots` (daily): that day's raw files -> the canonical table (Parquet zstd, hive
  layout `l2_snapshots/exchange=/symbol=/date=`), continuing the previous day's book
  checkpoint so a session crossing midnight keeps its id. The checkpoint of each day is kept
  at `<lake>/_state/l2_snapshots/exchange=/symbol=/date=/final_state.json`. Its last rows
  before midnight are settled by reading ahead into the next day's first raw lines (raw
  folders go by receive time, rows by time of record), so no row falls between two days.
"""

import datetime as dt
import json
from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import PipelineResource
from trade_pipeline.settings import Settings
from trade_pipeline.storage import raw_store
from trade_pipeline.storage.layout import PartitionKey, write_partition

SNAPSHOTS_TABLE = "l2_snapshots"
STATE_DIR = "_state"
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = ["timestamp", "bid_price_1", "bid_size_1", "ask_price_1", "ask_size_1",
                   "update_id", "session_id"]


class RawCapturesConfig(dg.Config):
    """Where the day's raw captures come from."""

    source: Literal["simulator", "recorded", "collected"] = Field(
        default="simulator",
        description="simulator: synthesize the day (embedded default); recorded: import "
        "`files`; collected: use what `trade-pipeline collect` already wrote for the day",
    )
    duration_s: float = Field(
        default=3600.0, gt=0, le=86_400 + 3600,
        description="simulator: simulated seconds (3600 keeps the demo to seconds; 86400 = "
        "the whole day; more spills into the next day's folder)",
    )
    start_offset_s: float = Field(
        default=0.0, ge=0, lt=86_400,
        description="simulator: start time within the partition's day, in seconds",
    )
    seed: int | None = Field(
        default=None, description="simulator: random seed (default: derived from the day)"
    )
    files: list[str] = Field(
        default_factory=list, description="recorded: capture files to import (formats 2/3/4)"
    )


def _key(settings: Settings, day: str) -> PartitionKey:
    return PartitionKey(settings.exchange, settings.symbol, day)


@dg.asset(
    partitions_def=DAILY,
    group_name="ingest",
    kinds={"python", "file"},
    description="Raw order-book captures of one UTC day (append-only, gzip) in "
    "<home>/raw/exchange=/symbol=/date=/.",
)
def raw_l2_captures(
    context: dg.AssetExecutionContext, config: RawCapturesConfig, pipeline: PipelineResource
) -> dg.MaterializeResult:
    settings = pipeline.settings().ensure_dirs()
    day = context.partition_key
    exchange, symbol = settings.exchange, settings.symbol
    meta: dict = {"source": config.source}
    if config.source == "simulator":
        from trade_pipeline.market.simulator import (
            SimulationConflict,
            SimulatorConfig,
            simulate_to_store,
        )

        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(
            seconds=config.start_offset_s
        )
        seed = config.seed if config.seed is not None else int(day.replace("-", ""))
        sim = SimulatorConfig(start=start, duration_s=config.duration_s, seed=seed, symbol=symbol,
                              trades=True)
        try:  # replaces this seed's earlier files; never deletes anything else
            result = simulate_to_store(settings, sim, replace=True)
        except SimulationConflict as exc:
            raise dg.Failure(f"{day}: {exc}") from None
        # messages: book pushes (what l2_snapshots reads); the trade feed beside them
        meta.update(messages=result["book_pushes"], trade_pushes=result["trade_pushes"],
                    trades=result["trades"], seed=seed, simulated_days=result["days"],
                    simulate_seconds=result["seconds"])
        context.log.info(f"simulated {result['messages']} pushes in {result['seconds']} s")
    elif config.source == "recorded":
        if not config.files:
            raise dg.Failure("source 'recorded' needs `files` (capture files to import)")
        from pathlib import Path

        paths = [Path(name) for name in config.files]
        for path in paths:  # check every file before copying any
            if not path.is_file():
                raise dg.Failure(f"recorded capture not found: {path}")
            file_day = raw_store.day_of_ns(raw_store.first_record_ns(path))
            if file_day != day:
                raise dg.Failure(f"{path} starts on {file_day}, not on partition {day}; "
                                 "materialize that day's partition for it")
        # a capture running past midnight is split per day: its later parts land in the next
        # days' folders, where those days' l2_snapshots continue this day's checkpoint
        imported = [str(part) for p in paths
                    for part in raw_store.import_capture_parts(settings, p, exchange, symbol)]
        meta["imported"] = dg.MetadataValue.json(imported)
    files = raw_store.raw_files_for_day(settings, exchange, symbol, day)
    if not files:
        raise dg.Failure(f"no raw captures for {exchange}/{symbol} on {day} "
                         f"(source {config.source!r}); nothing to ingest")
    folder = raw_store.day_dir(settings.raw_dir, exchange, symbol, day)
    meta.update(
        files=len(files),
        bytes=sum(p.stat().st_size for p in files),
        path=dg.MetadataValue.path(str(folder)),
    )
    return dg.MaterializeResult(metadata=meta)


# ---- checkpoints ------------------------------------------------------------------------------

def _state_file(settings: Settings, key: PartitionKey) -> str:
    return f"{settings.lake_dir.rstrip('/')}/{STATE_DIR}/{key.relpath(SNAPSHOTS_TABLE)}/final_state.json"


def _fs(path: str):
    import pyarrow.fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def load_checkpoint(settings: Settings, key: PartitionKey) -> dict | None:
    """The book checkpoint stored by `l2_snapshots` for one day, or None."""
    import pyarrow.fs as pafs

    fs, path = _fs(_state_file(settings, key))
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as src:
        return json.loads(src.read())


def save_checkpoint(settings: Settings, key: PartitionKey, state: dict) -> str:
    fs, path = _fs(_state_file(settings, key))
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.tmp"
    with fs.open_output_stream(tmp) as sink:
        sink.write(json.dumps(state).encode())
    fs.move(tmp, path)
    return path


def _rows_before_next_day(settings: Settings, key: PartitionKey, state, day_end: dt.datetime,
                          first_lines: int = 2000) -> tuple[pl.DataFrame, int]:
    """The day's last grid rows that only the next day's raw files can settle.

    Raw folders go by receive time, rows by time of record: a message received just after
    midnight may carry a time just before it, so the rows between the day's last message and
    midnight (and whether its session even continues) depend on the next day's first lines.
    Continue this day's final state over the head of the next day's files until a time of
    record reaches midnight, and keep the rows before it. The next day's own run re-derives
    them from the same checkpoint and leaves them out as not its day. Returns (rows, lines read).
    """
    from trade_pipeline.market.snapshots import build_snapshots, empty_frame

    nxt = day_end.date().isoformat()
    files = raw_store.raw_files_for_day(settings, key.exchange, key.symbol, nxt)
    day_end_us = int(day_end.timestamp()) * 1_000_000
    if not files:  # not collected yet: re-materialize the day once it is, to settle its end
        return empty_frame(), 0
    import tempfile
    from pathlib import Path

    n = first_lines
    while True:
        with tempfile.TemporaryDirectory(prefix="l2-lookahead-") as tmp:
            heads, taken, complete = [], 0, True
            for i, path in enumerate(files):
                head = Path(tmp) / f"{i:04d}.head"
                with open(head, "wb") as sink:
                    for line in raw_store.iter_capture_lines(path):
                        if taken >= n:
                            complete = False
                            break
                        sink.write(line)
                        taken += 1
                heads.append(head)
                if not complete:
                    break
            heads = [h for h in heads if h.stat().st_size]
            result = build_snapshots(heads, cadence=f"{settings.cadence_ms}ms",
                                     initial_state=state) if heads else None
        last = result.final_state.last_time_us if result else None
        if complete or (last is not None and last >= day_end_us):
            rows = (result.frame.filter(pl.col("timestamp") < day_end) if result
                    else empty_frame())
            return rows, taken
        n *= 8


def _preview(frame: pl.DataFrame) -> str:
    head = frame.select(PREVIEW_COLUMNS).head(PREVIEW_ROWS)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join(lines)


@dg.asset(
    partitions_def=DAILY,
    deps=[
        raw_l2_captures,
        # each day continues the previous day's book checkpoint: backfills run in day order
        dg.AssetDep(
            "l2_snapshots",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1
            ),
        ),
    ],
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Canonical 100 ms order-book snapshots (docs/DATA_FORMATS.md) of one UTC day: Parquet zstd "
    "in the lake's hive layout; sessions continue across midnight via the previous day's "
    "book checkpoint.",
)
def l2_snapshots(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    from trade_pipeline.market.snapshots import PARQUET_OPTIONS, build_snapshots

    settings = pipeline.settings().ensure_dirs()
    day = context.partition_key
    key = _key(settings, day)
    files = raw_store.raw_files_for_day(settings, key.exchange, key.symbol, day)
    if not files:
        raise dg.Failure(f"no raw captures for {key.exchange}/{key.symbol} on {day}: "
                         "materialize raw_l2_captures for this day first")
    previous = _key(settings, (key.day - dt.timedelta(days=1)).isoformat())
    initial = load_checkpoint(settings, previous)
    result = build_snapshots(files, cadence=f"{settings.cadence_ms}ms", initial_state=initial)
    day_start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    in_day = pl.col("timestamp").is_between(day_start, day_start + dt.timedelta(days=1),
                                            closed="left")
    frame = result.frame.filter(in_day)
    before = result.frame.filter(pl.col("timestamp") < day_start).height
    after = result.frame.height - frame.height - before
    tail, next_read = _rows_before_next_day(settings, key, result.final_state,
                                            day_start + dt.timedelta(days=1))
    if tail.height:
        frame = pl.concat([frame, tail], rechunk=True)
    path = write_partition(frame, settings.lake_dir, SNAPSHOTS_TABLE, key, **PARQUET_OPTIONS)
    state = result.final_state.to_dict()
    save_checkpoint(settings, key, state)
    report = result.report.to_dict()
    continued = bool(initial and initial.get("valid"))
    if continued and frame.height:
        continued = frame["session_id"][0] == initial.get("session_id")
    context.log.info(f"{day}: {report['messages']} messages -> {frame.height} rows")
    return dg.MaterializeResult(
        metadata={
            "rows": frame.height,
            "sessions": frame["session_id"].n_unique() if frame.height else 0,
            "gaps": report["gaps"],
            "crossed": report["crossed_skipped"],
            "bad_lines": report["bad_lines"],
            # docs/DATA_FORMATS.md rules 7 and 8: messages re-timed by the receive clock, implausible lines
            "clock_faults": report["clock_faults"],
            "out_of_range_lines": report["out_of_range_lines"],
            "truncated_files": report["truncated_files"],
            "messages": report["messages"],
            # rows of the neighbour days, found (and written) by their own partitions
            "rows_of_previous_day": before,
            "rows_of_next_day": after,
            "rows_from_next_day_files": tail.height,
            "next_day_lines_read": next_read,
            "continued_from_previous_day": continued,
            "files": len(files),
            "report": dg.MetadataValue.json(
                {k: v for k, v in report.items() if k not in ("files", "bad_line_examples")}
            ),
            "preview": dg.MetadataValue.md(_preview(frame)),
            "path": dg.MetadataValue.path(path),
            "dagster/row_count": frame.height,
        }
    )


defs = dg.Definitions(assets=[raw_l2_captures, l2_snapshots])
