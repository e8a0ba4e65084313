"""Batch entry point: recorded captures -> canonical `l2_snapshots` rows + report + checkpoint.

`build_snapshots(paths, ...)` returns everything in memory (a day's partition);
`SnapshotBuilder.frames(paths)` streams frames chunk by chunk (the CLI writes them to Parquet
as they come, so memory stays flat for any input size).

Files are processed in the order given, as one stream: a session may continue from one file
into the next (raw store files rotate mid-session). `--depth N` keeps N levels in the output:
levels N+1..10 are written as null price / size 0, like a level the book does not have.
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.book import BookState
from trade_pipeline.market.messages import F_T, NULL_I64
from trade_pipeline.market.readers import (
    CCXT_MAX_GAP_S,
    EXCHANGE_OF,
    EmptyFileError,
    FileStatus,
    FormatError,
    ParseContext,
    parse_tz,
    read_messages,
    resolve_format,
)
from trade_pipeline.market.report import SnapshotReport
from trade_pipeline.market.sampler import (
    GRID_PER_MESSAGE,
    O_RECV,
    O_SID,
    O_T,
    O_UID,
    GridBudgetError,
    Sampler,
)
from trade_pipeline.market.schema import BOOK_COLUMNS, DEPTH, SNAPSHOT_COLUMNS, SNAPSHOT_SCHEMA
from trade_pipeline.market.stage_timer import StageTimer
from trade_pipeline.settings import check_exchange, check_symbol
from trade_pipeline.storage.atomic import atomic_path
from trade_pipeline.storage.input_files import check_input_file

# Parquet options for l2_snapshots (benchmarks/bench_ingest.py: ~27-31 bytes/row on the real
# captures, target <= 120). Dictionary encoding (pyarrow's default) + zstd beats
# byte_stream_split here: prices and sizes repeat from one grid row to the next. zstd level 3
# writes twice as fast as 9 for +2% bytes.
PARQUET_OPTIONS: dict = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
}

STAGES = ("read", "parse", "book", "sample")

_CADENCE_RE = re.compile(r"^(\d+)(us|ms|s)$")
_UNIT_US = {"us": 1, "ms": 1000, "s": 1_000_000}


def parse_cadence(cadence: str | int) -> int:
    """'100ms' / '1s' / '500us' / int milliseconds -> microseconds; 'event' -> 0."""
    if isinstance(cadence, int):
        if cadence <= 0:
            raise ValueError(f"cadence must be positive, got {cadence} ms")
        return cadence * 1000
    if cadence == "event":
        return 0
    m = _CADENCE_RE.match(cadence.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"invalid cadence {cadence!r}: use e.g. 100ms, 1s or event")
    return int(m.group(1)) * _UNIT_US[m.group(2)]


class OutputPathError(TradePipelineError, ValueError):
    """The output would overwrite an input or land inside a protected folder."""


def check_output_path(output: str | Path, inputs: list[str | Path],
                      protected: dict[str, Path] | None = None) -> Path:
    """Refuse an output that is one of the inputs (same path, symlink or hard link) or lies
    inside a protected folder (name -> path, e.g. the raw capture store): captures are
    append-only and are never replaced by derived data."""
    out = Path(output).expanduser().resolve()
    for name in inputs:
        src = Path(name).expanduser()
        same = src.resolve() == out
        if not same and src.exists() and out.exists():
            same = os.path.samefile(src, out)
        if same:
            raise OutputPathError(f"--output {output} is the input {name}: refusing to "
                                  "replace a capture; write the snapshots elsewhere")
    for what, folder in (protected or {}).items():
        if out.is_relative_to(Path(folder).expanduser().resolve()):
            raise OutputPathError(f"--output {output} is inside the {what} ({folder}): "
                                  "nothing but captures is written there")
    return out


def rows_to_frame(out_i: np.ndarray, out_f: np.ndarray, exchange: str, symbol: str) -> pl.DataFrame:
    """Kernel output blocks -> a DataFrame with SNAPSHOT_SCHEMA (NaN price = missing level)."""
    n = len(out_i)
    cols: dict[str, pl.Series] = {
        "timestamp": pl.Series("timestamp", out_i[:, O_T]).cast(pl.Datetime("us", "UTC")),
    }
    for j, name in enumerate(BOOK_COLUMNS):  # out_f columns are in BOOK_COLUMNS order
        cols[name] = pl.Series(name, out_f[:, j], nan_to_null=name.startswith(("bid_p", "ask_p")))
    for name, j in (("update_id", O_UID), ("received_timestamp", O_RECV), ("session_id", O_SID)):
        vals = out_i[:, j]
        arr = pa.array(vals, mask=vals == NULL_I64, type=pa.int64())
        cols[name] = pl.Series(name, arr)
    df = pl.DataFrame(cols).with_columns(
        pl.col("received_timestamp").cast(pl.Datetime("us", "UTC")),
        pl.lit(exchange, dtype=pl.String).alias("exchange"),
        pl.lit(symbol, dtype=pl.String).alias("symbol"),
    )
    assert df.height == n
    return df.select(SNAPSHOT_COLUMNS)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=SNAPSHOT_SCHEMA)


@dataclass
class SnapshotResult:
    frame: pl.DataFrame
    report: SnapshotReport
    final_state: BookState
    timer: StageTimer = field(default_factory=StageTimer)  # time per STAGES entry


class SnapshotBuilder:
    """One run over a list of files; `frames()` streams output, then read `.report`/`.final_state`."""

    def __init__(
        self,
        fmt: str = "auto",
        cadence: str | int = "100ms",
        depth: int = DEPTH,
        initial_state: BookState | dict | None = None,
        tz: str | None = None,
        chunk_messages: int = 65536,
        on_chunk=None,
    ) -> None:
        self.fmt = fmt
        self.on_chunk = on_chunk  # called (path, messages so far) after each parsed chunk
        self.cadence_us = parse_cadence(cadence)
        self.sampler = Sampler(
            cadence_us=self.cadence_us,
            depth=depth,
            max_gap_us=int(CCXT_MAX_GAP_S * 1e6),
            initial_state=initial_state,
        )
        self.ctx = ParseContext(symbol=self.sampler.symbol, exchange=self.sampler.exchange,
                                tz=parse_tz(tz))
        self.chunk_messages = chunk_messages
        self.report = SnapshotReport(cadence=str(cadence), depth=depth)
        self._cadence_checked = False
        # time per stage: read (file + gunzip), parse (lines -> messages), book (the replay
        # kernel: book updates and grid emission, one pass), sample (grid rows -> table)
        self.timer = StageTimer(STAGES)

    def _plan(self, paths: list[str | Path]) -> list[tuple[Path, str | None]]:
        """Resolve every file's format up front: fail before writing anything."""
        plan = []
        for p in paths:
            # Missing, a directory, unreadable: one clear error (an empty capture is counted).
            path = check_input_file(p, "input file", allow_empty=True)
            try:
                fmt = resolve_format(path, self.fmt)
            except EmptyFileError:
                self.report.empty_files.append(str(path))
                fmt = None
            if fmt is not None:
                exchange = EXCHANGE_OF[fmt]
                if self.ctx.exchange is None:
                    self.ctx.exchange = exchange
                elif exchange != self.ctx.exchange:
                    raise FormatError(
                        f"{path}: {exchange} data cannot follow {self.ctx.exchange} data in one run"
                    )
            plan.append((path, fmt))
        return plan

    def _check_cadence(self, msgs: np.ndarray) -> None:
        """Refuse at once a cadence that would make far more grid rows than messages: the
        median step between times of record (robust to a clock fault) over the cadence is the
        grid rows per message. The sampler's grid budget stays the backstop."""
        if self.cadence_us == 0 or len(msgs) < 2:
            return
        self._cadence_checked = True
        step = float(np.median(np.diff(msgs[:, F_T])))
        per_message = step / self.cadence_us
        if per_message > GRID_PER_MESSAGE:
            raise GridBudgetError(
                f"cadence {self.report.cadence} is far too fine for this data: messages come "
                f"every {step / 1000:g} ms (median), so the grid would hold about "
                f"{per_message:,.0f} rows per message (limit {GRID_PER_MESSAGE:,}); use a "
                "coarser --cadence, or 'event' for one row per message")

    def _frame(self, block) -> pl.DataFrame:
        with self.timer.stage("sample", thread=True):  # (the read-ahead thread runs beside)
            out_i, out_f = block
            return rows_to_frame(out_i, out_f, self.ctx.exchange, self.ctx.symbol)

    def frames(self, paths: list[str | Path]) -> Iterator[pl.DataFrame]:
        plan = self._plan(paths)
        for path, fmt in plan:
            if fmt is None:
                continue
            status = FileStatus(str(path))
            for buf in read_messages(path, fmt, self.ctx, status, self.chunk_messages,
                                     self.timer):
                if self.sampler.symbol is None and self.ctx.symbol is not None:
                    check_symbol(self.ctx.symbol)
                    check_exchange(self.ctx.exchange)
                    self.sampler.symbol, self.sampler.exchange = self.ctx.symbol, self.ctx.exchange
                msgs, levels = buf.arrays()
                if not self._cadence_checked:
                    self._check_cadence(msgs)
                if self.on_chunk is not None:
                    self.on_chunk(path, self.ctx.messages)
                # the kernel streams its grid rows in blocks (memory bounded by the input):
                # the book stage is the time spent producing each one
                blocks = self.sampler.iter_feed(msgs, levels)
                while True:
                    with self.timer.stage("book", thread=True):
                        block = next(blocks, None)
                    if block is None:
                        break
                    yield self._frame(block)
            self.report.files.append({"path": str(path), "format": fmt, "lines": status.lines})
            if status.truncated:
                self.report.truncated_files.append({
                    "path": str(path),
                    "reason": status.reason,
                    "lines_kept": status.lines,
                    "partial_line_dropped": status.partial_line_dropped,
                })
        for block in self.sampler.close():
            yield self._frame(block)
        self._finish()

    def _finish(self) -> None:
        r, ctx = self.report, self.ctx
        r.exchange, r.symbol = ctx.exchange, ctx.symbol
        r.messages = ctx.messages
        r.bad_lines = ctx.bad_lines
        r.out_of_range_lines = ctx.out_of_range
        r.bad_receive_times = ctx.bad_receive_times
        r.bad_line_examples = list(ctx.bad_examples)
        r.other_symbol = ctx.other_symbol
        r.control_messages = ctx.control
        r.non_book = dict(ctx.non_book)
        r.counters = self.sampler.counters()

    @property
    def final_state(self) -> BookState:
        return self.sampler.state()


def build_snapshots(
    paths: list[str | Path] | str | Path,
    fmt: str = "auto",
    cadence: str | int = "100ms",
    depth: int = DEPTH,
    initial_state: BookState | dict | None = None,
    tz: str | None = None,
    rechunk: bool = True,
) -> SnapshotResult:
    """Rebuild the book from recorded captures and sample it (the canonical stream of
    docs/DATA_FORMATS.md).

    `initial_state` (a BookState or its dict) continues a previous run: an open session
    continues with the same session_id. The result's `final_state` is the checkpoint to pass
    to the next run (e.g. the next day's partition). `rechunk=False` keeps the frame in the
    blocks it was built in (no copy; Parquet writing and the features read chunks as they
    are).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    builder = SnapshotBuilder(fmt=fmt, cadence=cadence, depth=depth,
                              initial_state=initial_state, tz=tz)
    frames = list(builder.frames(list(paths)))
    with builder.timer.stage("sample"):
        frame = pl.concat(frames, rechunk=rechunk) if frames else empty_frame()
    return SnapshotResult(frame=frame, report=builder.report, final_state=builder.final_state,
                          timer=builder.timer)


def write_snapshots(
    paths: list[str | Path],
    output: str | Path,
    fmt: str = "auto",
    cadence: str | int = "100ms",
    depth: int = DEPTH,
    initial_state: BookState | dict | None = None,
    tz: str | None = None,
    progress: bool = False,
    row_group_rows: int = 1 << 18,
) -> tuple[SnapshotReport, BookState]:
    """Stream captures into one Parquet file (flat memory); returns (report, final state).

    Written atomically by one writer (`storage.atomic`: a second run on the same output is
    refused at once; a killed run leaves the previous output whole). Nothing is written when
    the input holds no book message at all (the caller reports that as an error).
    """
    import pyarrow.parquet as pq

    output = Path(output)
    check_output_path(output, paths)
    pending: list[pl.DataFrame] = []
    pending_rows = 0
    schema = empty_frame().to_arrow().schema
    options = dict(PARQUET_OPTIONS)
    task_progress = _Progress(len(paths)) if progress else None
    builder = SnapshotBuilder(fmt=fmt, cadence=cadence, depth=depth, initial_state=initial_state,
                              tz=tz, on_chunk=task_progress.update if task_progress else None)
    try:
        with atomic_path(output, "--output") as tmp:
            writer: pq.ParquetWriter | None = None

            def flush() -> None:
                nonlocal writer, pending, pending_rows
                if writer is None:
                    writer = pq.ParquetWriter(tmp, schema, **options)
                if pending:
                    table = pl.concat(pending).to_arrow().cast(schema)
                    writer.write_table(table, row_group_size=row_group_rows)
                pending, pending_rows = [], 0

            try:
                for frame in builder.frames(list(paths)):
                    pending.append(frame)
                    pending_rows += frame.height
                    if pending_rows >= row_group_rows:
                        flush()
                if builder.report.messages > 0:
                    flush()
            finally:
                if writer is not None:
                    writer.close()
            if builder.report.messages == 0:
                tmp.unlink(missing_ok=True)  # nothing to write: the output stays as it was
    finally:
        if task_progress is not None:
            task_progress.stop()
    return builder.report, builder.final_state


class _Progress:
    """A rich progress line on stderr: files and messages done."""

    def __init__(self, n_files: int) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._files: set = set()
        self._n_files = n_files
        self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                             TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task("snapshots: starting", total=None)
        self._bar.start()

    def update(self, path, messages: int) -> None:
        self._files.add(str(path))
        self._bar.update(self._task, description=(
            f"snapshots: file {len(self._files)}/{self._n_files}, {messages:,} messages"))

    def stop(self) -> None:
        self._bar.stop()
