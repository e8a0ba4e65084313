"""Dagster objects for the ingest area: thin wrappers over trade_pipeline.<domain> code.

- `raw_l2_captures` (daily): fills the raw capture store for the partition's day from the
  simulator (the embedded default), recorded files, or what the live collector wrote.
- `l2_snapshots` (daily): that day's raw files -> the canonical table (Parquet zstd, hive
  layout `l2_snapshots/exchange=/symbol=/date=`), built by `market.day_snapshots.build_day`
  (the same code as `trade-pipeline snapshots --day`): it continues the previous day's book
  checkpoint (`<lake>/_state/l2_snapshots/exchange=/symbol=/date=/final_state.json`) so a
  session crossing midnight keeps its id, and settles the day's last rows by reading ahead
  into the next day's first raw lines, so no row falls between two days. Metadata: counts,
  seconds per stage (read, parse, book, sample, write; wall and CPU), bytes per row.
"""

import datetime as dt
from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from trade_pipeline.defs import tags
from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import PipelineResource
from trade_pipeline.defs.stage_metadata import bytes_per_row as _bytes_per_row
from trade_pipeline.defs.stage_metadata import stage_metadata
from trade_pipeline.market.day_snapshots import (
    SNAPSHOTS_TABLE,
    NoRawCaptures,
    build_day,
    load_day_checkpoint,
    save_day_checkpoint,
)
from trade_pipeline.settings import Settings
from trade_pipeline.storage import raw_store, tables
from trade_pipeline.storage.layout import write_partition

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


@dg.asset(
    partitions_def=DAILY,
    group_name="ingest",
    kinds={"python", "file"},
    tags=tags.RAW_CAPTURES,
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


# Checkpoints and the day build live in the domain (market.day_snapshots); re-exported for
# callers of this module.
load_checkpoint = load_day_checkpoint
save_checkpoint = save_day_checkpoint


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
            tables.SNAPSHOTS,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1
            ),
        ),
    ],
    # A backfill builds a run of consecutive days in one run, in day order (each day needs the
    # previous day's checkpoint): one run per day would wait a backfill-daemon tick (30 s) per
    # day of the chain. Days downstream (features, stats) still get a run each, in parallel.
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    kinds={"python", "parquet"},
    tags=tags.LAKE_TABLE,
    description="Canonical 100 ms order-book snapshots (docs/DATA_FORMATS.md) of one UTC day: Parquet zstd "
    "in the lake's hive layout; sessions continue across midnight via the previous day's "
    "book checkpoint.",
)
def l2_snapshots(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    settings = pipeline.settings().ensure_dirs()
    days = context.partition_keys  # one day, or a backfill's range (in day order)
    for day in days:
        metadata = _snapshot_day(context, settings, day)
        if len(days) == 1:
            return dg.MaterializeResult(metadata=metadata)
        context.add_asset_metadata(metadata, partition_key=day)
    return dg.MaterializeResult()


def _snapshot_day(context: dg.AssetExecutionContext, settings: Settings, day: str) -> dict:
    """Build, write and checkpoint one day; its materialization metadata."""
    from trade_pipeline.market.snapshots import PARQUET_OPTIONS

    try:
        built = build_day(settings, day)
    except NoRawCaptures as exc:
        raise dg.Failure(f"{exc}: materialize raw_l2_captures for this day first") from None
    frame = built.frame
    with built.timer.stage("write"):
        path = write_partition(frame, settings.lake_dir, SNAPSHOTS_TABLE, built.key,
                               **PARQUET_OPTIONS)
        save_day_checkpoint(settings, built.key, built.final_state.to_dict())
    report = built.report.to_dict()
    summary = built.summary()
    context.log.info(f"{day}: {report['messages']} messages -> {frame.height} rows")
    return {
        **{k: v for k, v in summary.items() if k != "day"},
        "report": dg.MetadataValue.json(
            {k: v for k, v in report.items() if k not in ("files", "bad_line_examples")}
        ),
        "preview": dg.MetadataValue.md(_preview(frame)),
        "path": dg.MetadataValue.path(path),
        "bytes_per_row": _bytes_per_row(path, frame.height),
        **stage_metadata(built.timer, report["messages"]),
        "dagster/row_count": frame.height,
    }
