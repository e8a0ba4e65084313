"""One UTC day of the canonical snapshot table from the raw capture store.

The one implementation behind the `l2_snapshots` asset and `trade-pipeline snapshots --day`:

- the day's raw files (`storage.raw_store`) are rebuilt as one stream, continuing the book
  checkpoint the previous day's build stored (`storage.checkpoints`), so a session that
  crosses midnight keeps its id;
- only the day's own grid rows are kept: rows before midnight that the continuation re-derives
  belong to the previous day (which wrote them), rows after the next midnight to the next day;
- the day's last rows are settled by reading ahead into the next day's first raw lines. Raw
  folders go by receive time, rows by time of record: a message received just after midnight
  may carry a time just before it, so the rows between the day's last message and midnight
  (and whether its session even continues) depend on the next day's first lines. The next
  day's own build re-derives those rows from the same checkpoint and leaves them out as not
  its day, so every row is written by exactly one day.
"""

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.book import BookState
from trade_pipeline.market.report import SnapshotReport
from trade_pipeline.market.snapshots import STAGES, build_snapshots, empty_frame
from trade_pipeline.market.stage_timer import StageTimer
from trade_pipeline.settings import Settings
from trade_pipeline.storage import checkpoints, raw_store, tables
from trade_pipeline.storage.layout import PartitionKey

SNAPSHOTS_TABLE = tables.SNAPSHOTS
LOOKAHEAD_LINES = 2000  # first look-ahead; grows 8x until a time of record reaches midnight
_FROM_CHECKPOINT = object()


class NoRawCaptures(TradePipelineError):
    """The raw store holds no capture file for the requested day."""


def load_day_checkpoint(settings: Settings, key: PartitionKey) -> dict | None:
    """The book checkpoint a day's build stored, or None."""
    return checkpoints.load_checkpoint(settings.lake_dir, SNAPSHOTS_TABLE, key)


def save_day_checkpoint(settings: Settings, key: PartitionKey, state: dict) -> str:
    return checkpoints.save_checkpoint(settings.lake_dir, SNAPSHOTS_TABLE, key, state)


@dataclass
class DaySnapshots:
    """A day's rows, the build's report and checkpoint, and where each row came from."""

    key: PartitionKey
    frame: pl.DataFrame
    report: SnapshotReport
    final_state: BookState
    initial_state: dict | None
    files: list[Path]
    rows_of_previous_day: int  # re-derived from the checkpoint, written by the previous day
    rows_of_next_day: int  # after midnight: the next day's build writes them
    rows_from_next_day_files: int  # the day's last rows, settled by the look-ahead
    next_day_lines_read: int
    timer: StageTimer = field(default_factory=lambda: StageTimer(STAGES))

    @property
    def continued(self) -> bool:
        """The day's first session is the previous day's (same session id)."""
        initial = self.initial_state
        if not (initial and initial.get("valid")) or not self.frame.height:
            return False
        return self.frame["session_id"][0] == initial.get("session_id")

    def summary(self) -> dict:
        """Counts for reports and asset metadata (JSON-able)."""
        report = self.report.to_dict()
        return {
            "day": self.key.date,
            "rows": self.frame.height,
            "sessions": self.frame["session_id"].n_unique() if self.frame.height else 0,
            "messages": report["messages"],
            "gaps": report["gaps"],
            "crossed": report["crossed_skipped"],
            "bad_lines": report["bad_lines"],
            # docs/DATA_FORMATS.md rules 7 and 8: messages re-timed by the receive clock,
            # implausible lines
            "clock_faults": report["clock_faults"],
            "out_of_range_lines": report["out_of_range_lines"],
            "truncated_files": report["truncated_files"],
            "rows_of_previous_day": self.rows_of_previous_day,
            "rows_of_next_day": self.rows_of_next_day,
            "rows_from_next_day_files": self.rows_from_next_day_files,
            "next_day_lines_read": self.next_day_lines_read,
            "continued_from_previous_day": self.continued,
            "files": len(self.files),
        }


def day_bounds(day: str) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def build_day(settings: Settings, day: str, *, initial_state=_FROM_CHECKPOINT) -> DaySnapshots:
    """Build one day of `l2_snapshots` (settings' exchange, symbol and cadence) from the raw
    store; `initial_state` defaults to the previous day's stored checkpoint (None: start cold).

    Raises NoRawCaptures when the day has no raw file. Stores nothing: the caller writes the
    rows and `save_day_checkpoint(settings, key, result.final_state.to_dict())`.
    """
    key = PartitionKey(settings.exchange, settings.symbol, day)
    files = raw_store.raw_files_for_day(settings, key.exchange, key.symbol, day)
    if not files:
        raise NoRawCaptures(f"no raw captures for {key.exchange}/{key.symbol} on {day}")
    if initial_state is _FROM_CHECKPOINT:
        previous = PartitionKey(key.exchange, key.symbol,
                                (key.day - dt.timedelta(days=1)).isoformat())
        initial_state = load_day_checkpoint(settings, previous)
    if isinstance(initial_state, BookState):
        initial_state = initial_state.to_dict()
    cadence = f"{settings.cadence_ms}ms"
    result = build_snapshots(files, cadence=cadence, initial_state=initial_state,
                             rechunk=False)
    timer = result.timer
    start, end = day_bounds(day)
    with timer.stage("sample"):
        frame = result.frame
        ts = frame["timestamp"]
        before = int((ts < start).sum())
        after = int((ts >= end).sum())
        if before or after:  # (usually every row is the day's: no copy then)
            frame = frame.filter(pl.col("timestamp").is_between(start, end, closed="left"))
    tail, lines_read = _rows_before_next_day(settings, key, result.final_state, end, cadence,
                                             timer)
    if tail.height:
        with timer.stage("sample"):
            frame = pl.concat([frame, tail], rechunk=False)
    return DaySnapshots(key=key, frame=frame, report=result.report,
                        final_state=result.final_state, initial_state=initial_state,
                        files=files, rows_of_previous_day=before, rows_of_next_day=after,
                        rows_from_next_day_files=tail.height, next_day_lines_read=lines_read,
                        timer=timer)


def _rows_before_next_day(settings: Settings, key: PartitionKey, state: BookState,
                          day_end: dt.datetime, cadence: str, timer: StageTimer,
                          first_lines: int = LOOKAHEAD_LINES) -> tuple[pl.DataFrame, int]:
    """The day's last grid rows that only the next day's raw files can settle.

    Continues the day's final state over the head of the next day's files until a time of
    record reaches midnight, and keeps the rows before it. Returns (rows, lines read)."""
    nxt = day_end.date().isoformat()
    files = raw_store.raw_files_for_day(settings, key.exchange, key.symbol, nxt)
    day_end_us = int(day_end.timestamp()) * 1_000_000
    if not files:  # not collected yet: re-build the day once it is, to settle its end
        return empty_frame(), 0
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
            result = build_snapshots(heads, cadence=cadence,
                                     initial_state=state) if heads else None
        if result is not None:
            timer.merge(result.timer)
        last = result.final_state.last_time_us if result else None
        if complete or (last is not None and last >= day_end_us):
            if result is None:
                return empty_frame(), taken
            return result.frame.filter(pl.col("timestamp") < day_end), taken
        n *= 8
