"""Data freshness and capture gaps per (exchange, symbol), from the raw store and the lake.

- Freshness: the newest raw capture file (its modification time = its last flush), the
  newest `l2_snapshots` / `l2_features` partition and the last row time in it, and their age.
- Capture gaps, per day of `l2_snapshots`: a gap is a step between consecutive rows longer
  than one grid step (rows are missing there: a session break, a disconnect, crossed books);
  the gap rate is the share of grid times between the day's first and last row that have no
  row. Computed from the stored rows themselves, so it holds for any source.
"""

import datetime as dt
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trade_pipeline.settings import Settings
from trade_pipeline.storage import tables
from trade_pipeline.storage.layout import PartitionKey, list_partitions, partition_file

SNAPSHOTS = tables.SNAPSHOTS
FEATURES = tables.FEATURES


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" in root:
        return pafs.FileSystem.from_uri(root)
    return pafs.LocalFileSystem(), os.path.abspath(root)


def read_columns(root: str, table: str, key: PartitionKey, columns: list[str]) -> pl.DataFrame:
    """Only `columns` of one partition (local folder or object store)."""
    fs, base = _filesystem(root)
    path = partition_file(base, table, key)
    with fs.open_input_file(path) as src:
        return pl.from_arrow(pq.read_table(src, columns=columns))


@dataclass(frozen=True)
class DayGaps:
    date: str
    rows: int
    sessions: int
    gaps: int  # steps longer than one grid step
    missing_grid_times: int
    gap_rate: float | None  # missing / expected grid times; None for an empty day
    longest_gap_s: float | None


def day_gaps(frame: pl.DataFrame, cadence_ms: int, day: str) -> DayGaps:
    """Gaps of one day of snapshot rows (needs `timestamp`, optional `session_id`)."""
    if frame.height == 0:
        return DayGaps(day, 0, 0, 0, 0, None, None)
    ts = frame.get_column("timestamp").sort()
    step_us = cadence_ms * 1000
    diffs = ts.diff().dt.total_microseconds().drop_nulls()
    long_steps = diffs.filter(diffs > step_us)
    # Grid times between consecutive rows that have no row of their own.
    missing = int(((long_steps // step_us) - 1).clip(lower_bound=0).sum()) if long_steps.len() else 0
    span_us = (ts.max() - ts.min()).total_seconds() * 1e6
    expected = round(span_us / step_us) + 1
    sessions = frame.get_column("session_id").n_unique() if "session_id" in frame.columns else 1
    longest = float(long_steps.max()) / 1e6 if long_steps.len() else None
    return DayGaps(
        date=day,
        rows=frame.height,
        sessions=int(sessions),
        gaps=int(long_steps.len()),
        missing_grid_times=missing,
        gap_rate=missing / expected if expected else None,
        longest_gap_s=longest,
    )


def _age_s(when: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if when is None else round((now - when).total_seconds(), 3)


def _raw_latest(settings: Settings) -> dict[tuple[str, str], dict]:
    """Newest raw capture file per (exchange, symbol) in the local raw store."""
    out: dict[tuple[str, str], dict] = {}
    root = Path(settings.raw_dir)
    if not root.is_dir():
        return out
    for path in root.glob("exchange=*/symbol=*/date=*/*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        exchange = path.parents[2].name.split("=", 1)[1]
        symbol = path.parents[1].name.split("=", 1)[1]
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        entry = out.setdefault((exchange, symbol), {"files": 0, "bytes": 0, "latest": None})
        entry["files"] += 1
        entry["bytes"] += path.stat().st_size
        if entry["latest"] is None or mtime > entry["latest"][0]:
            entry["latest"] = (mtime, str(path))
    return out


def _last_row_time(settings: Settings, table: str, key: PartitionKey) -> dt.datetime | None:
    ts = read_columns(settings.lake_dir, table, key, ["timestamp"]).get_column("timestamp")
    return ts.max() if ts.len() else None


def freshness_report(
    settings: Settings, now: dt.datetime | None = None, gap_days: int = 3
) -> dict:
    """Freshness and gaps of every (exchange, symbol) found in the raw store or the lake.

    `{"symbols": [{exchange, symbol, raw: {...}|None, l2_snapshots: {...}|None,
    l2_features: {...}|None, gaps: [DayGaps...]}], "now": iso}`; a missing layer is None
    (stated as absent by the monitor, never shown as a number)."""
    now = now or dt.datetime.now(dt.UTC)
    raw = _raw_latest(settings)
    tables = {t: list_partitions(settings.lake_dir, t) for t in (SNAPSHOTS, FEATURES)}
    pairs = set(raw) | {(k.exchange, k.symbol) for keys in tables.values() for k in keys}
    symbols = []
    for exchange, symbol in sorted(pairs):
        entry: dict = {"exchange": exchange, "symbol": symbol}
        r = raw.get((exchange, symbol))
        entry["raw"] = (
            None
            if r is None
            else {
                "files": r["files"],
                "bytes": r["bytes"],
                "last_write": r["latest"][0].isoformat(),
                "age_s": _age_s(r["latest"][0], now),
            }
        )
        for table, keys in tables.items():
            mine = [k for k in keys if (k.exchange, k.symbol) == (exchange, symbol)]
            if not mine:
                entry[table] = None
                continue
            last = _last_row_time(settings, table, mine[-1])
            entry[table] = {
                "partitions": len(mine),
                "first_date": mine[0].date,
                "last_date": mine[-1].date,
                "last_row": last.isoformat() if last else None,
                "age_s": _age_s(last, now),
            }
        snaps = [k for k in tables[SNAPSHOTS] if (k.exchange, k.symbol) == (exchange, symbol)]
        gaps = []
        for key in snaps[-gap_days:] if gap_days > 0 else []:
            cols = read_columns(settings.lake_dir, SNAPSHOTS, key, ["timestamp", "session_id"])
            gaps.append(asdict(day_gaps(cols, settings.cadence_ms, key.date)))
        entry["gaps"] = gaps
        symbols.append(entry)
    return {"now": now.isoformat(), "cadence_ms": settings.cadence_ms, "symbols": symbols}
