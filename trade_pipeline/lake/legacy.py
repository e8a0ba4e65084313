"""Import the old system's SQLite `l2_training_data_practical` into the lake as `l2_snapshots`.

Only the book (levels 1-10), the time, the symbol, the exchange and `update_id` are taken;
the derived and target columns of the old table are never used (the pipeline recomputes
them). Each row is one stored book; a row is imported or quarantined, never dropped:

| reason                 | rule                                                             |
|------------------------|------------------------------------------------------------------|
| bad_timestamp          | not an ISO 8601 string (with or without fraction, 'T' or ' '), or outside 2009..2100 (docs/DATA_FORMATS.md rule 8) |
| bad_symbol             | not a symbol after normalisation (`BTC/USDT:USDT` -> `BTCUSDT`)  |
| bad_exchange           | null or not a valid exchange name                                |
| mock_or_demo_source    | `data_source` mentions mock or demo (`mock_data`, `demo_trading`) |
| non_numeric_book       | a book column holds text or a blob                               |
| empty_side             | no level 1 on a side                                             |
| only_level_1           | levels 2-10 all null on both sides                               |
| crossed_book           | `bid_price_1 >= ask_price_1` (crossed or locked, as docs/DATA_FORMATS.md rule 5) |
| invalid_level          | a price <= 0, a price or size not finite (inf), a present price with a size <= 0 / null, a level after a missing one, or prices out of order |
| duplicate_timestamp    | a second row for the same (exchange, symbol, timestamp), in the file (the lowest id is kept) or already in the lake with another book |
| lake_partition_exists  | the day's partition exists and was not written by a legacy import |

Imports accumulate: a day a previous legacy import wrote is merged with the new rows by time
(sessions recomputed over both); a row already in the lake with the same book is counted
`already_in_lake` (not imported twice, not quarantined), so re-importing a file changes
nothing. `rows_read = rows_imported + already_in_lake + quarantined`.

Timestamps without a zone are UTC (the old writer used UTC); with a zone they are converted.
Sessions: rows of one (exchange, symbol) whose gap to the previous kept row is at most
`max_gap_s` (default 10 s) form one session. session_id follows the sampler's rule: the start
time in microseconds of the session's first row, bumped to previous id + 1 on a collision
(sessions ordered by start, exchange, symbol), so ids are deterministic and unique.
A missing level (null price) gets size 0, the canonical form.
"""

import datetime as dt
import hashlib
import math
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.lake.migrations import refresh_views
from trade_pipeline.market.messages import MAX_TIME_US, MIN_TIME_US
from trade_pipeline.market.readers import normalize_symbol
from trade_pipeline.market.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_SCHEMA,
)
from trade_pipeline.settings import EXCHANGE_RE, SYMBOL_RE, Settings
from trade_pipeline.storage import layout, tables

LEGACY_TABLE = "l2_training_data_practical"
LEGACY_TABLE_SQL = f'"{LEGACY_TABLE}"'
# Column names come from the user's file and end up in SQL text (SQLite cannot bind an
# identifier): each must be a plain identifier AND a column of the legacy table as docs/DATA_FORMATS.md
# ("Legacy database") lists it, and is double-quoted. Anything else refuses the file.
IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # fullmatch: no trailing newline
LEGACY_COLUMNS = frozenset((
    "id", "timestamp", "symbol", "exchange",
    *(f"{side}_{kind}_{i}" for side in ("bid", "ask") for kind in ("price", "size")
      for i in range(1, 11)),
    "mid_price", "spread", "spread_bps", "total_bid_volume_10", "total_ask_volume_10",
    "weighted_bid_price", "weighted_ask_price", "order_book_imbalance", "microprice",
    "price_impact_bid", "price_impact_ask", "target_return_1min", "target_return_5min",
    "target_volatility", "target_direction", "update_id", "sequence_id", "data_quality_score",
    "data_source",
))
BOOK = BID_PRICE + BID_SIZE + ASK_PRICE + ASK_SIZE
DEFAULT_MAX_GAP_S = 10.0
MOCK_PATTERN = "(?i)mock|demo"
REASONS = (
    "bad_timestamp", "bad_symbol", "bad_exchange", "mock_or_demo_source", "non_numeric_book",
    "empty_side", "only_level_1", "crossed_book", "invalid_level", "duplicate_timestamp",
    "lake_partition_exists",
)


class LegacyImportError(TradePipelineError, ValueError):
    """The file is not a legacy database we can read."""


@dataclass
class LegacyImportReport:
    source: str
    source_sha256: str
    rows_read: int
    rows_imported: int
    sessions: int
    quarantined: dict[str, int]
    partitions: list[str] = field(default_factory=list)
    dry_run: bool = False
    already_in_lake: int = 0  # rows a previous import already wrote (same time, same book)
    merged_partitions: list[str] = field(default_factory=list)  # days merged with earlier rows

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---- reading ------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_legacy_column(name) -> bool:
    return isinstance(name, str) and bool(IDENTIFIER_RE.fullmatch(name)) and name in LEGACY_COLUMNS


def quote_column(name: str) -> str:
    """A legacy column name, checked (pattern + allow-list) and double-quoted for SQLite."""
    if not _is_legacy_column(name):
        raise LegacyImportError(f"refusing column name {name!r}: not a legacy column")
    return f'"{name}"'


def _open(path: Path) -> tuple[sqlite3.Connection, list[str]]:
    """A read-only connection and the legacy table's columns (clear errors otherwise)."""
    if not path.is_file():
        raise LegacyImportError(f"{path}: no such file")
    # read-only needs a URI; the path is percent-encoded so '#', '?' or '%' in a file name
    # stay part of the name (backup#1.db is not backup + a fragment)
    uri = "file:" + urllib.parse.quote(str(path.resolve()), safe="/") + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({LEGACY_TABLE_SQL})")]
    except sqlite3.DatabaseError as exc:
        raise LegacyImportError(f"{path}: not a SQLite database: {exc}") from None
    if not cols:
        conn.close()
        raise LegacyImportError(f"{path}: no table {LEGACY_TABLE}")
    unknown = [c for c in cols if not _is_legacy_column(c)]
    if unknown:
        conn.close()
        raise LegacyImportError(
            f"{path}: {LEGACY_TABLE} has column(s) {unknown!r} that are not legacy columns "
            "(plain identifiers listed in docs/DATA_FORMATS.md 'The legacy database'); refusing the file")
    missing = [c for c in ("id", "timestamp", "symbol", *BOOK) if c not in cols]
    if missing:
        conn.close()
        raise LegacyImportError(f"{path}: {LEGACY_TABLE} lacks columns {missing}")
    return conn, cols


def read_legacy(path: str | Path, chunk_rows: int = 100_000) -> pl.DataFrame:
    """The legacy rows as stored: id, raw timestamp/symbol/exchange/data_source text, the book
    (Float64, null where SQLite holds NULL), update_id, and `_non_numeric` (a book cell holds
    text or a blob; that row's book values are not trusted, it is quarantined)."""
    path = Path(path)
    conn, cols = _open(path)
    q = {c: quote_column(c) for c in cols}
    optional = {c: q.get(c, "NULL") for c in ("exchange", "data_source", "update_id")}
    schema = {
        "legacy_id": pl.Int64, "timestamp_raw": pl.String, "timestamp_type": pl.String,
        "symbol_raw": pl.String, "exchange_raw": pl.String, "data_source": pl.String,
        **{c: pl.Float64 for c in BOOK}, "update_id": pl.Int64,
    }
    try:
        non_numeric = " OR ".join(f"typeof({q[c]}) NOT IN ('real', 'integer', 'null')" for c in BOOK)
        bad_ids = [r[0] for r in conn.execute(
            f'SELECT "id" FROM {LEGACY_TABLE_SQL} WHERE {non_numeric}'
            f" OR typeof({optional['update_id']}) NOT IN ('integer', 'null')")]
        numeric = [*(q[c] for c in BOOK), optional["update_id"]]
        if bad_ids:  # slower path: null out text cells (their rows are flagged below)
            numeric = [f"CASE WHEN typeof({c}) IN ('real', 'integer') THEN {c} END" for c in numeric]
        cursor = conn.execute(
            f'SELECT "id", CAST("timestamp" AS TEXT), typeof("timestamp"), CAST("symbol" AS TEXT),'
            f" CAST({optional['exchange']} AS TEXT), CAST({optional['data_source']} AS TEXT),"
            f' {", ".join(numeric)} FROM {LEGACY_TABLE_SQL} ORDER BY "id"')
        frames = []
        while rows := cursor.fetchmany(chunk_rows):
            frames.append(pl.DataFrame(rows, schema=schema, orient="row"))
    finally:
        conn.close()
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    return frame.with_columns(pl.col("legacy_id").is_in(bad_ids).alias("_non_numeric"))


def legacy_rows_json(path: str | Path, ids: list[int], chunk: int = 500) -> pl.DataFrame:
    """`(legacy_id, row_json)`: the given rows exactly as stored, every column, as JSON."""
    conn, cols = _open(Path(path))
    # quote_column vets every name first, so the '{c}' key literal cannot break out either.
    raw_json = "json_object(" + ", ".join(f"'{c}', {quote_column(c)}" for c in cols if c != "id") + ")"
    out: list[tuple[int, str]] = []
    try:
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            out += conn.execute(
                f'SELECT "id", {raw_json} FROM {LEGACY_TABLE_SQL} WHERE "id" IN ({", ".join("?" * len(part))})',
                part).fetchall()
    finally:
        conn.close()
    return pl.DataFrame(out, schema={"legacy_id": pl.Int64, "row_json": pl.String}, orient="row")


# ---- cleaning -----------------------------------------------------------------------------

def parse_timestamp_us(text: str | None, sqlite_type: str | None) -> int | None:
    """Microseconds since the epoch (UTC) of an ISO string, or None if it is not one."""
    if text is None or sqlite_type != "text":
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    try:
        us = (stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    except OverflowError:  # e.g. year 1 with a positive offset
        return None
    # docs/DATA_FORMATS.md rule 8: a time outside 2009..2100 is not a time of this market's data
    return us if MIN_TIME_US <= us < MAX_TIME_US else None


def _clean_symbol(raw: str | None) -> str | None:
    if raw is None:
        return None
    symbol = normalize_symbol(raw.strip())
    return symbol if SYMBOL_RE.match(symbol) else None


def _clean_exchange(raw: str | None) -> str | None:
    if raw is None:
        return None
    exchange = raw.strip().lower()
    return exchange if EXCHANGE_RE.match(exchange) else None


def _per_unique(values: pl.Series, fn) -> pl.Series:
    """`fn` applied once per distinct value (few distinct symbols among millions of rows)."""
    mapping = {v: fn(v) for v in values.unique().to_list()}
    return pl.Series([mapping[v] for v in values.to_list()], dtype=pl.String)


def _invalid_levels(df: pl.DataFrame) -> pl.Series:
    """Per row: a level is inconsistent (see module doc)."""
    bad = pl.lit(False)
    for prices, sizes, better in ((BID_PRICE, BID_SIZE, "gt"), (ASK_PRICE, ASK_SIZE, "lt")):
        for i, (p, q) in enumerate(zip(prices, sizes, strict=True)):
            price, size = pl.col(p), pl.col(q)
            bad = bad | (price.is_not_null() & ((price <= 0) | size.is_null() | (size <= 0)))
            # inf (SQLite stores it; NaN reads back as NULL)
            bad = bad | (price.is_infinite().fill_null(False) | size.is_infinite().fill_null(False))
            bad = bad | (price.is_null() & size.is_not_null() & (size != 0))
            if i > 0:
                prev = pl.col(prices[i - 1])
                bad = bad | (price.is_not_null() & prev.is_null())
                out_of_order = (prev <= price) if better == "gt" else (prev >= price)
                bad = bad | (price.is_not_null() & prev.is_not_null() & out_of_order)
    return df.select(bad.alias("bad")).to_series()


def classify(raw: pl.DataFrame) -> pl.DataFrame:
    """`raw` plus ts_us, exchange, symbol and `reason` (null = importable)."""
    ts = [parse_timestamp_us(t, k) for t, k in zip(raw["timestamp_raw"], raw["timestamp_type"], strict=True)]
    df = raw.with_columns(
        pl.Series("ts_us", ts, dtype=pl.Int64),
        _per_unique(raw["symbol_raw"], _clean_symbol).alias("symbol"),
        _per_unique(raw["exchange_raw"], _clean_exchange).alias("exchange"),
    )
    upper = BID_PRICE[1:] + ASK_PRICE[1:]
    only_l1 = pl.all_horizontal([pl.col(c).is_null() for c in upper])
    checks = [
        ("bad_timestamp", pl.col("ts_us").is_null()),
        ("bad_symbol", pl.col("symbol").is_null()),
        ("bad_exchange", pl.col("exchange").is_null()),
        ("mock_or_demo_source", pl.col("data_source").fill_null("").str.contains(MOCK_PATTERN)),
        ("non_numeric_book", pl.col("_non_numeric")),
        ("empty_side", pl.col("bid_price_1").is_null() | pl.col("ask_price_1").is_null()),
        ("only_level_1", only_l1),
        ("crossed_book", pl.col("bid_price_1") >= pl.col("ask_price_1")),
    ]
    reason = pl.lit(None, dtype=pl.String)
    for name, cond in reversed(checks):  # first matching check wins
        reason = pl.when(cond).then(pl.lit(name)).otherwise(reason)
    df = df.with_columns(reason.alias("reason"))
    df = df.with_columns(
        pl.when(pl.col("reason").is_null() & _invalid_levels(df))
        .then(pl.lit("invalid_level")).otherwise(pl.col("reason")).alias("reason")
    )
    # Duplicates among the otherwise good rows: keep the lowest id.
    ok = pl.col("reason").is_null()
    dup = (
        df.with_row_index("_i")
        .filter(ok)
        .sort("legacy_id")
        .filter(pl.struct("exchange", "symbol", "ts_us").is_duplicated()
                & ~pl.struct("exchange", "symbol", "ts_us").is_first_distinct())["_i"]
    )
    if len(dup):
        mask = pl.Series("m", [False] * df.height)
        mask[dup.to_list()] = True
        df = df.with_columns(
            pl.when(mask).then(pl.lit("duplicate_timestamp")).otherwise(pl.col("reason")).alias("reason")
        )
    return df


def build_snapshots(good: pl.DataFrame, max_gap_s: float = DEFAULT_MAX_GAP_S) -> pl.DataFrame:
    """Canonical `l2_snapshots` rows from classified good rows, with sessions assigned."""
    if good.is_empty():
        return pl.DataFrame(schema=SNAPSHOT_SCHEMA)
    gap_us = int(max_gap_s * 1_000_000)
    df = good.sort("exchange", "symbol", "ts_us")
    new_session = (
        (pl.col("exchange") != pl.col("exchange").shift(1))
        | (pl.col("symbol") != pl.col("symbol").shift(1))
        | ((pl.col("ts_us") - pl.col("ts_us").shift(1)) > gap_us)
    ).fill_null(True)
    df = df.with_columns(new_session.cum_sum().alias("_run"))
    starts = (
        df.group_by("_run").agg(pl.col("ts_us").first(), pl.col("exchange").first(),
                                pl.col("symbol").first())
        .sort("ts_us", "exchange", "symbol")
    )
    ids, prev = [], None
    for start in starts["ts_us"]:
        sid = start if prev is None or start > prev else prev + 1
        ids.append(sid)
        prev = sid
    starts = starts.with_columns(pl.Series("session_id", ids, dtype=pl.Int64)).select("_run", "session_id")
    df = df.join(starts, on="_run", how="left")
    size_fill = [
        pl.when(pl.col(p).is_null()).then(pl.lit(0.0)).otherwise(pl.col(q)).alias(q)
        for p, q in zip(BID_PRICE + ASK_PRICE, BID_SIZE + ASK_SIZE, strict=True)
    ]
    out = df.with_columns(
        *size_fill,
        pl.col("ts_us").cast(pl.Datetime("us", "UTC")).alias("timestamp"),
        pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("received_timestamp"),
    )
    return out.select(SNAPSHOT_COLUMNS).cast(SNAPSHOT_SCHEMA).sort(
        "exchange", "symbol", "timestamp")


# ---- the import ----------------------------------------------------------------------------

def _partition_keys(frame: pl.DataFrame) -> list[tuple[str, str, str]]:
    days = frame.select("exchange", "symbol", pl.col("timestamp").dt.date().cast(pl.String).alias("d"))
    return sorted(set(days.unique().iter_rows()))


def _as_good_rows(part: pl.DataFrame) -> pl.DataFrame:
    """Lake `l2_snapshots` rows back in the shape `build_snapshots` takes (their session ids
    are recomputed with the new rows)."""
    return part.select("exchange", "symbol", pl.col("timestamp").dt.epoch("us").alias("ts_us"),
                       *BOOK, "update_id")


def _canonical_sizes(frame: pl.DataFrame) -> pl.DataFrame:
    """A missing level (null price) has size 0, as in the lake."""
    return frame.with_columns(
        pl.when(pl.col(p).is_null()).then(pl.lit(0.0)).otherwise(pl.col(q)).alias(q)
        for p, q in zip(BID_PRICE + ASK_PRICE, BID_SIZE + ASK_SIZE, strict=True))


def _mark(df: pl.DataFrame, rows: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Set `reason` on the rows of `df` whose legacy_id is in `rows` (and have none yet)."""
    hit = pl.col("legacy_id").is_in(rows["legacy_id"].implode())
    return df.with_columns(pl.when(hit & pl.col("reason").is_null()).then(pl.lit(reason))
                           .otherwise(pl.col("reason")).alias("reason"))


def import_legacy(
    settings: Settings,
    sqlite_path: str | Path,
    conn: duckdb.DuckDBPyConnection,
    *,
    dry_run: bool = False,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> LegacyImportReport:
    """Import one legacy database (see module doc). `conn` is a warehouse connection with the
    migrations applied. With `dry_run`, nothing is written: the report says what would be."""
    if not (isinstance(max_gap_s, int | float) and math.isfinite(max_gap_s) and max_gap_s > 0):
        raise LegacyImportError(f"max gap must be a positive number of seconds, got {max_gap_s!r}")
    path = Path(sqlite_path)
    sha = _sha256(path) if path.is_file() else ""
    raw = read_legacy(path)
    df = classify(raw)
    day = pl.col("timestamp").dt.date().cast(pl.String)
    new = build_snapshots(df.filter(pl.col("reason").is_null()), max_gap_s)

    # Never overwrite a partition the ingestion pipeline wrote.
    ours = {
        (e, s, str(d)) for e, s, d in conn.execute(
            "SELECT exchange, symbol, date FROM legacy_import_log").fetchall()
    }
    existing = {(k.exchange, k.symbol, k.date) for k in layout.list_partitions(settings.lake_dir, tables.SNAPSHOTS)}
    blocked = [k for k in _partition_keys(new) if k in existing and k not in ours]
    if blocked:
        is_blocked = pl.any_horizontal([
            (pl.col("exchange") == e) & (pl.col("symbol") == s) & (day == d) for e, s, d in blocked
        ])
        blocked_ts = new.filter(is_blocked).select(
            "exchange", "symbol", pl.col("timestamp").dt.epoch("us").alias("ts_us"))
        hit = df.join(blocked_ts.with_columns(pl.lit(True).alias("_b")),
                      on=["exchange", "symbol", "ts_us"], how="left")
        df = hit.with_columns(
            pl.when(pl.col("_b") & pl.col("reason").is_null())
            .then(pl.lit("lake_partition_exists")).otherwise(pl.col("reason")).alias("reason")
        ).drop("_b")

    # Accumulate: days an earlier legacy import wrote are merged with these rows by time.
    good = _canonical_sizes(df.filter(pl.col("reason").is_null()))
    touched = _partition_keys(good.with_columns(
        pl.col("ts_us").cast(pl.Datetime("us", "UTC")).alias("timestamp")))
    earlier = [part for k in touched if k in existing and k in ours
               if (part := layout.read_partition(settings.lake_dir, tables.SNAPSHOTS,
                                                 layout.PartitionKey(*k))) is not None]
    already = 0
    merged_keys: list[str] = []
    kept = pl.DataFrame(schema={c: good.schema[c] for c in ("exchange", "symbol", "ts_us",
                                                            *BOOK, "update_id")})
    if earlier:
        kept = _as_good_rows(pl.concat(earlier))
        merged_keys = [f"{e}/{s}/{d}" for e, s, d in _partition_keys(pl.concat(earlier))]
        keys = ["exchange", "symbol", "ts_us"]
        same_time = good.join(kept, on=keys, how="inner", suffix="_lake")
        same_book = pl.all_horizontal(
            [pl.col(c).eq_missing(pl.col(f"{c}_lake")) for c in (*BOOK, "update_id")])
        identical = same_time.filter(same_book)
        conflicting = same_time.filter(~same_book)
        already = identical.height
        df = _mark(df, conflicting, "duplicate_timestamp")
        good = good.filter(~pl.col("legacy_id").is_in(same_time["legacy_id"].implode()))

    fresh = good.height
    snapshots = build_snapshots(pl.concat([kept, good.select(kept.columns)]), max_gap_s) \
        if fresh else pl.DataFrame(schema=SNAPSHOT_SCHEMA)

    quarantine = df.filter(pl.col("reason").is_not_null())
    counts = {r: int(n) for r, n in quarantine.group_by("reason").len().iter_rows()}
    keys = _partition_keys(snapshots)
    report = LegacyImportReport(
        source=str(path), source_sha256=sha, rows_read=raw.height,
        rows_imported=fresh, sessions=snapshots["session_id"].n_unique(),
        quarantined=dict(sorted(counts.items())),
        partitions=[f"{e}/{s}/{d}" for e, s, d in keys], dry_run=dry_run,
        already_in_lake=already, merged_partitions=[k for k in merged_keys
                                                    if k in {f"{e}/{s}/{d}" for e, s, d in keys}],
    )
    if raw.height != report.rows_imported + report.already_in_lake + sum(counts.values()):
        raise AssertionError("legacy import lost rows: imported + in lake + quarantined != read")
    if dry_run:
        return report

    q = quarantine.select(
        pl.lit(sha).alias("source_sha256"), "legacy_id", "reason",
        pl.format("timestamp={} symbol={} exchange={} data_source={}",
                  *(pl.col(c).fill_null("NULL") for c in
                    ("timestamp_raw", "symbol_raw", "exchange_raw", "data_source"))).alias("detail"),
    ).join(legacy_rows_json(path, quarantine["legacy_id"].to_list()), on="legacy_id", how="left")
    log_rows = []
    parts = {}
    for e, s, d in keys:
        part = snapshots.filter((pl.col("exchange") == e) & (pl.col("symbol") == s) & (day == d))
        parts[(e, s, d)] = part
        log_rows.append((e, s, d, sha, part.height, part["session_id"].n_unique()))
    # Record first (a crash between leaves partitions claimed as legacy: a re-run rewrites
    # them), then write the files.
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("DELETE FROM legacy_quarantine WHERE source_sha256 = ?", [sha])
        conn.register("q_frame", q.to_arrow())
        conn.execute(
            "INSERT INTO legacy_quarantine (source_sha256, legacy_id, reason, detail, row_json)"
            " SELECT source_sha256, legacy_id, reason, detail, row_json FROM q_frame")
        conn.unregister("q_frame")
        for row in log_rows:
            conn.execute(
                "INSERT OR REPLACE INTO legacy_import_log (exchange, symbol, date, source_sha256,"
                " row_count, sessions) VALUES (?, ?, ?, ?, ?, ?)", list(row))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    for (e, s, d), part in parts.items():
        layout.write_partition(part, settings.lake_dir, tables.SNAPSHOTS, layout.PartitionKey(e, s, d))
    refresh_views(conn, settings.lake_dir)
    return report
