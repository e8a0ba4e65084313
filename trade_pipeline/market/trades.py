"""Public trades: every trade source -> the canonical `l2_trades` rows (`schema.TRADE_SCHEMA`).

Sources (the same files the book readers read; trade lines interleave with book lines):
- `bybit`: recorded Bybit captures, format 2b lines (`"type": "trade"`, one trade a line);
- `bybit_raw`: the raw capture store, `<receive_ns> <Bybit v5 publicTrade push>` (one push
  holds one or more trades, oldest first), stored as received beside the orderbook pushes;
- `binance`: raw combined streams (format 4), `btcusdt@trade` lines.
ccxt-style full books (format 3) carry no trades: such a file yields no row.

Rules (the book readers' rules, applied to trades):
- A bad trade is counted per reason and reported, never guessed: price or size not a finite
  positive number (booleans and nulls included), unknown side, missing id, a time of record
  (or receive time) outside 2009..2100, a sequence that is not an int64, a line that is not
  JSON or misses a field. A bad trade inside a Bybit push costs only that trade.
- A repeated trade id is a duplicate: counted, and only its first occurrence is kept.
- Trades of another symbol than the stream's (the first one seen) are counted and skipped.
- Rows keep the order of receipt (file order, then the order inside a push).

Speed: only lines that can be trade lines are parsed (a byte search skips book lines); the
fields of a block go to flat `array`s, checked per block with numpy, and become columns in
one step. Trade ids stay Python strings (they are the table's string column); the duplicate
check keeps the ids seen so far in one set per stream.
"""

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from trade_pipeline.market.messages import NULL_I64
from trade_pipeline.market.readers import (
    EXCHANGE_OF,
    EmptyFileError,
    FileStatus,
    FormatError,
    iter_line_blocks,
    resolve_format,
)
from trade_pipeline.market.schema import TRADE_COLUMNS, TRADE_SCHEMA
from trade_pipeline.settings import check_exchange, check_symbol

TRADE_FORMATS = ("bybit", "bybit_raw", "binance")
# Plausible times of record (docs/DATA_FORMATS.md rule 8), in ms since the epoch.
MIN_TIME_MS = 1_230_768_000_000  # 2009-01-01
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01
INT64_MAX = (1 << 63) - 1

# A line can only be a trade line if it holds this (a cheap test before any JSON parse).
TRADE_MARKERS = {"bybit": b'"trade"', "bybit_raw": b"publicTrade", "binance": b'@trade"'}

SIDE_BUY = 1
SIDE_SELL = -1
_SIDE_NAME = {SIDE_BUY: "buy", SIDE_SELL: "sell"}

BAD_REASONS = (
    "invalid_json",  # not JSON / not an object
    "malformed",  # a required field missing or of the wrong shape
    "bad_price",
    "bad_size",
    "bad_side",
    "missing_id",
    "bad_time",  # time of record missing, not an integer, or outside 2009..2100
    "bad_received_time",
    "bad_sequence",
)

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class BadTrade(ValueError):
    """One trade (or a whole trade line) that cannot be used; `reason` is in BAD_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# ---- field checks: return the clean value or raise BadTrade ------------------------------------
def _positive(value, reason: str) -> float:
    kind = type(value)  # bool is a subclass of int: `type(...) is` keeps it out
    if kind is float or kind is int or (
            # plain decimals (the common case) by a cheap test, anything else by the pattern
            kind is str and value.isascii()
            and (value.replace(".", "", 1).isdigit() or _DECIMAL.fullmatch(value))):
        x = float(value)
    else:
        raise BadTrade(reason, f"{reason.removeprefix('bad_')} {value!r} is not a number")
    if not 0.0 < x < float("inf"):
        raise BadTrade(reason, f"{reason.removeprefix('bad_')} {value!r} is not positive and finite")
    return x


def _time_ms(value, reason: str = "bad_time") -> int:
    if type(value) is not int or not MIN_TIME_MS <= value < MAX_TIME_MS:
        raise BadTrade(reason, f"time {value!r} is not an integer ms between 2009 and 2100")
    return value


def _trade_id(value) -> str:
    kind = type(value)
    if kind is str and value:
        return value
    if kind is int and 0 <= value <= INT64_MAX:
        return str(value)
    raise BadTrade("missing_id", f"trade id {value!r} missing or not a string/integer")


def _sequence(value) -> int:
    if value is None:
        return NULL_I64
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise BadTrade("bad_sequence", f"sequence {value!r} is not an int64")
    return value


# ---- the columnar buffer ----------------------------------------------------------------------
class TradeBuffer:
    """Trades in flat columns (times in us since the epoch, side +1 buy / -1 sell)."""

    __slots__ = ("ids", "price", "recv", "seq", "side", "size", "time")

    def __init__(self) -> None:
        self.time = array("q")
        self.recv = array("q")
        self.side = array("b")
        self.price = array("d")
        self.size = array("d")
        self.seq = array("q")
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, t_us: int, recv_us: int, side: int, price: float, size: float, seq: int,
               trade_id: str) -> None:
        self.time.append(t_us)
        self.recv.append(recv_us)
        self.side.append(side)
        self.price.append(price)
        self.size.append(size)
        self.seq.append(seq)
        self.ids.append(trade_id)

    def columns(self) -> dict[str, np.ndarray]:
        """Numpy views of the numeric columns (valid until the next append)."""
        return {
            "time": np.frombuffer(self.time, dtype=np.int64),
            "recv": np.frombuffer(self.recv, dtype=np.int64),
            "side": np.frombuffer(self.side, dtype=np.int8),
            "price": np.frombuffer(self.price, dtype=np.float64),
            "size": np.frombuffer(self.size, dtype=np.float64),
            "seq": np.frombuffer(self.seq, dtype=np.int64),
        }

    def to_frame(self, exchange: str, symbol: str) -> pl.DataFrame:
        """The rows as a DataFrame with TRADE_SCHEMA."""
        c = {k: v.copy() for k, v in self.columns().items()}  # own memory: buffers may grow

        def nullable(values: np.ndarray) -> pl.Series:
            return pl.Series(pa.array(values, mask=values == NULL_I64, type=pa.int64()))

        utc = pl.Datetime("us", "UTC")
        frame = pl.DataFrame({
            "timestamp": pl.Series("timestamp", c["time"]).cast(utc),
            "trade_id": pl.Series("trade_id", self.ids, dtype=pl.String),
            "side": pl.Series("side", c["side"]),
            "price": pl.Series("price", c["price"]),
            "size": pl.Series("size", c["size"]),
            "received_timestamp": nullable(c["recv"]).cast(utc),
            "sequence_id": nullable(c["seq"]),
        })
        return frame.with_columns(
            pl.lit(exchange, dtype=pl.String).alias("exchange"),
            pl.lit(symbol, dtype=pl.String).alias("symbol"),
            pl.when(pl.col("side") > 0).then(pl.lit("buy")).otherwise(pl.lit("sell"))
            .alias("side"),
        ).select(TRADE_COLUMNS).cast(TRADE_SCHEMA)


def empty_trades() -> pl.DataFrame:
    return pl.DataFrame(schema=TRADE_SCHEMA)


# ---- parsing ----------------------------------------------------------------------------------
@dataclass
class TradeCounters:
    """What a trade parser saw (summed over every file of a run)."""

    trade_lines: int = 0  # lines holding trades (a Bybit push may hold several)
    trades_read: int = 0  # trades in those lines, good or bad
    trades: int = 0  # rows kept
    duplicates: int = 0
    known_duplicates: int = 0  # of those, ids already in earlier data (e.g. the previous day)
    other_symbol: int = 0
    bad: dict[str, int] = field(default_factory=dict)  # per reason (BAD_REASONS)
    bad_examples: list[str] = field(default_factory=list)
    first_time_us: int | None = None
    last_time_us: int | None = None

    @property
    def bad_trades(self) -> int:
        return sum(self.bad.values())

    def count_bad(self, where: str, exc: BadTrade) -> None:
        self.bad[exc.reason] = self.bad.get(exc.reason, 0) + 1
        if len(self.bad_examples) < 20:
            self.bad_examples.append(f"{where}: {exc.reason}: {exc}")


class _Symbols:
    """Holds the stream's symbol (the first one seen); a book ParseContext works too."""

    def __init__(self, symbol: str | None = None) -> None:
        self.symbol = symbol


class TradeParser:
    """Parses trade lines of one format into a TradeBuffer, with counters and the set of
    trade ids seen (duplicates are counted and skipped across every call)."""

    def __init__(self, fmt: str, symbols=None, counters: TradeCounters | None = None,
                 known_ids: set[str] | frozenset[str] = frozenset()) -> None:
        if fmt not in TRADE_FORMATS:
            raise FormatError(f"format {fmt!r} carries no trades; trade formats: {TRADE_FORMATS}")
        self.fmt = fmt
        self.marker = TRADE_MARKERS[fmt]
        self.symbols = symbols if symbols is not None else _Symbols()
        self.counters = counters if counters is not None else TradeCounters()
        self.seen: set[str] = set()
        self.known = known_ids  # ids already stored elsewhere: a repeat is a duplicate too
        self._handle = {"bybit": self._record, "bybit_raw": self._wire, "binance": self._binance}[fmt]

    def switch(self, fmt: str) -> None:
        """Read another file of the same stream in `fmt` (ids and counters carry on)."""
        if fmt != self.fmt:
            if fmt not in TRADE_FORMATS:
                raise FormatError(f"format {fmt!r} carries no trades")
            self.fmt = fmt
            self.marker = TRADE_MARKERS[fmt]
            self._handle = {"bybit": self._record, "bybit_raw": self._wire,
                            "binance": self._binance}[fmt]

    def is_candidate(self, line: bytes) -> bool:
        """Whether a line may be a trade line (never False for one)."""
        return self.marker in line

    def parse(self, lines: list[bytes], buf: TradeBuffer, name: str = "live", base: int = 0,
              counts: list[int] | None = None) -> int:
        """Parse `lines` (trade lines, or any lines: non-trade ones are skipped) into buf.

        Returns the number of lines that were trade lines. `counts`, when given, receives
        one entry per line: the trades that line added to buf, or -1 for a line that is not
        a trade line (a trade line may add 0: all its trades bad or repeated).
        """
        handle = self._handle
        c = self.counters
        found = 0
        marker = self.marker
        for lineno, line in enumerate(lines, base + 1):
            before = len(buf)
            is_trade = 0
            if marker in line:
                try:
                    is_trade = handle(line, buf, f"{name}:{lineno}")
                except BadTrade as exc:  # unreadable before it could even be identified
                    c.trade_lines += 1
                    c.trades_read += 1
                    c.count_bad(f"{name}:{lineno}", exc)
                    is_trade = 1
                found += is_trade
            if counts is not None:
                counts.append(len(buf) - before if is_trade else -1)
        return found

    # -- one trade, after its fields were checked
    def _keep(self, buf: TradeBuffer, symbol: str, t_ms: int, recv_us: int, side: int,
              price: float, size: float, seq: int, trade_id: str) -> None:
        c = self.counters
        holder = self.symbols
        if symbol != holder.symbol:
            if holder.symbol is None:
                holder.symbol = symbol
            else:
                c.other_symbol += 1
                return
        if trade_id in self.seen:
            c.duplicates += 1
            return
        if trade_id in self.known:
            c.duplicates += 1
            c.known_duplicates += 1
            self.seen.add(trade_id)
            return
        self.seen.add(trade_id)
        t_us = t_ms * 1000
        buf.append(t_us, recv_us, side, price, size, seq, trade_id)
        c.trades += 1
        if c.first_time_us is None:
            c.first_time_us = t_us
        c.last_time_us = t_us

    @staticmethod
    def _load(text: bytes):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadTrade("invalid_json", f"invalid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise BadTrade("invalid_json", "not a JSON object")
        return obj

    @staticmethod
    def _prefix(line: bytes) -> tuple[int, bytes]:
        head, sep, rest = line.partition(b" ")
        if not (sep and head.isdigit()):
            raise BadTrade("malformed", "no '<receive_ns> ' prefix")
        ns = int(head)
        if not MIN_TIME_MS * 1_000_000 <= ns < MAX_TIME_MS * 1_000_000:
            raise BadTrade("bad_received_time", f"receive time {ns} ns outside 2009..2100")
        return ns // 1000, rest

    # -- format 2b: one trade a line
    def _record(self, line: bytes, buf: TradeBuffer, where: str) -> int:
        obj = self._load(line)
        if obj.get("type") != "trade":
            return 0  # a book line that happens to hold the marker
        c = self.counters
        c.trade_lines += 1
        c.trades_read += 1
        try:
            symbol = obj.get("symbol")
            if type(symbol) is not str:
                raise BadTrade("malformed", f"symbol {symbol!r} missing or not a string")
            t_ms = _time_ms(obj.get("timestamp_ms"))
            recv = obj.get("received_timestamp_ms")
            recv_us = NULL_I64 if recv is None else _time_ms(recv, "bad_received_time") * 1000
            side_name = obj.get("side")
            if side_name == "buy":
                side = SIDE_BUY
            elif side_name == "sell":
                side = SIDE_SELL
            else:
                raise BadTrade("bad_side", f"side {side_name!r} is not 'buy' or 'sell'")
            price = _positive(obj.get("price"), "bad_price")
            size = _positive(obj.get("size"), "bad_size")
            trade_id = _trade_id(obj.get("trade_id"))
            seq = _sequence(obj.get("sequence_id"))
        except BadTrade as exc:
            c.count_bad(where, exc)
            return 1
        self._keep(buf, symbol, t_ms, recv_us, side, price, size, seq, trade_id)
        return 1

    # -- Bybit v5 publicTrade push, as the raw store keeps it
    def _wire(self, line: bytes, buf: TradeBuffer, where: str) -> int:
        recv_us, text = self._prefix(line)
        obj = self._load(text)
        topic = obj.get("topic")
        if type(topic) is not str or not topic.startswith("publicTrade."):
            return 0  # e.g. an orderbook push whose text holds the marker
        data = obj.get("data")
        c = self.counters
        c.trade_lines += 1
        if type(data) is not list:
            c.trades_read += 1
            c.count_bad(where, BadTrade("malformed", f"publicTrade data is {type(data).__name__}, not a list"))
            return 1
        for k, item in enumerate(data):
            c.trades_read += 1
            try:
                if type(item) is not dict:
                    raise BadTrade("malformed", f"trade #{k} is not an object")
                symbol = item.get("s")
                if type(symbol) is not str:
                    raise BadTrade("malformed", f"symbol {symbol!r} missing or not a string")
                t_ms = _time_ms(item.get("T"))
                side_name = item.get("S")
                if side_name == "Buy":
                    side = SIDE_BUY
                elif side_name == "Sell":
                    side = SIDE_SELL
                else:
                    raise BadTrade("bad_side", f"side {side_name!r} is not 'Buy' or 'Sell'")
                price = _positive(item.get("p"), "bad_price")
                size = _positive(item.get("v"), "bad_size")
                trade_id = _trade_id(item.get("i"))
                seq = _sequence(item.get("seq"))
            except BadTrade as exc:
                c.count_bad(f"{where}#{k}", exc)
                continue
            self._keep(buf, symbol, t_ms, recv_us, side, price, size, seq, trade_id)
        return 1

    # -- Binance `<symbol>@trade` (spot and USD-M futures)
    def _binance(self, line: bytes, buf: TradeBuffer, where: str) -> int:
        recv_us, text = self._prefix(line)
        obj = self._load(text)
        stream = obj.get("stream")
        if type(stream) is not str or not stream.endswith("@trade"):
            return 0
        c = self.counters
        c.trade_lines += 1
        c.trades_read += 1
        try:
            data = obj.get("data")
            if type(data) is not dict:
                raise BadTrade("malformed", "trade data is not an object")
            symbol = data.get("s")
            if type(symbol) is not str:
                raise BadTrade("malformed", f"symbol {symbol!r} missing or not a string")
            t_ms = _time_ms(data.get("T"))
            maker = data.get("m")  # the buyer is the maker: the taker sold
            if maker is True:
                side = SIDE_SELL
            elif maker is False:
                side = SIDE_BUY
            else:
                raise BadTrade("bad_side", f"buyer-is-maker flag {maker!r} is not a boolean")
            price = _positive(data.get("p"), "bad_price")
            size = _positive(data.get("q"), "bad_size")
            trade_id = _trade_id(data.get("t"))
        except BadTrade as exc:
            c.count_bad(where, exc)
            return 1
        self._keep(buf, symbol, t_ms, recv_us, side, price, size, NULL_I64, trade_id)
        return 1


# ---- files -> frames ----------------------------------------------------------------------------
@dataclass
class TradeReport:
    """The run report of a trade read: every line, trade and skip, counted."""

    files: list[dict] = field(default_factory=list)  # per file: path, format, lines, trade_lines
    exchange: str | None = None
    symbol: str | None = None
    lines: int = 0  # lines read (book and trade)
    counters: TradeCounters = field(default_factory=TradeCounters)
    truncated_files: list[dict] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        c = self.counters
        return {
            "trades": c.trades,
            "trade_lines": c.trade_lines,
            "trades_read": c.trades_read,
            "duplicates": c.duplicates,
            "known_duplicates": c.known_duplicates,
            "bad_trades": c.bad_trades,
            "bad_by_reason": {r: c.bad.get(r, 0) for r in BAD_REASONS if c.bad.get(r)},
            "other_symbol": c.other_symbol,
            "lines": self.lines,
            "non_trade_lines": self.lines - c.trade_lines,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "first_trade": _iso(c.first_time_us),
            "last_trade": _iso(c.last_time_us),
            "truncated_files": len(self.truncated_files),
            "truncated": self.truncated_files,
            "empty_files": self.empty_files,
            "bad_examples": c.bad_examples,
            "files": self.files,
        }


def _iso(t_us: int | None) -> str | None:
    if t_us is None:
        return None
    import datetime as dt

    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=t_us)).isoformat()


def plan_files(paths: list[str | Path], fmt: str = "auto", report=None) -> list[tuple[Path, str | None]]:
    """Resolve every file's format up front (fail before reading anything); one exchange per
    run. Empty files are listed in `report.empty_files` and planned with format None."""
    plan: list[tuple[Path, str | None]] = []
    exchange = None
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        try:
            found = resolve_format(path, fmt)
        except EmptyFileError:
            if report is not None:
                report.empty_files.append(str(path))
            plan.append((path, None))
            continue
        ex = EXCHANGE_OF[found]
        if exchange is None:
            exchange = ex
        elif ex != exchange:
            raise FormatError(f"{path}: {ex} data cannot follow {exchange} data in one run")
        plan.append((path, found))
    return plan


class TradeReader:
    """One run over a list of files (one stream: duplicates are found across files);
    `frames()` streams DataFrames, then read `.report`."""

    def __init__(self, fmt: str = "auto", chunk_trades: int = 1 << 18,
                 known_ids: set[str] | frozenset[str] = frozenset()) -> None:
        self.fmt = fmt
        self.chunk_trades = chunk_trades
        self.known_ids = known_ids
        self.report = TradeReport()
        self.parser: TradeParser | None = None

    def _frame(self, buf: TradeBuffer) -> pl.DataFrame:
        r = self.report
        return buf.to_frame(r.exchange, r.symbol)

    def frames(self, paths: list[str | Path]) -> Iterator[pl.DataFrame]:
        r = self.report
        plan = plan_files(paths, self.fmt, r)
        buf = TradeBuffer()
        for path, fmt in plan:
            if fmt is None:
                continue
            r.exchange = EXCHANGE_OF[fmt]
            status = FileStatus(str(path))
            lines_before = r.counters.trade_lines
            if fmt == "ccxt":  # full books only: no trade can be in it
                for _ in iter_line_blocks(path, status):
                    pass
            else:
                if self.parser is None:
                    self.parser = TradeParser(fmt, counters=r.counters, known_ids=self.known_ids)
                self.parser.switch(fmt)
                base = 0
                for lines in iter_line_blocks(path, status):
                    self.parser.parse(lines, buf, path.name, base)
                    base += len(lines)
                    if len(buf) >= self.chunk_trades:
                        self._check_ids()
                        yield self._frame(buf)
                        buf = TradeBuffer()
            r.lines += status.lines
            r.files.append({"path": str(path), "format": fmt, "lines": status.lines,
                            "trade_lines": r.counters.trade_lines - lines_before})
            if status.truncated:
                r.truncated_files.append({"path": str(path), "reason": status.reason,
                                          "lines_kept": status.lines,
                                          "partial_line_dropped": status.partial_line_dropped})
        if len(buf):
            self._check_ids()
            yield self._frame(buf)

    def _check_ids(self) -> None:
        r = self.report
        if self.parser is not None and r.symbol is None and self.parser.symbols.symbol:
            r.symbol = check_symbol(self.parser.symbols.symbol)
            check_exchange(r.exchange)


@dataclass
class TradeResult:
    frame: pl.DataFrame
    report: TradeReport


def read_trades(paths: list[str | Path] | str | Path, fmt: str = "auto",
                known_ids: set[str] | frozenset[str] = frozenset()) -> TradeResult:
    """Every trade of the captures, in order of receipt (one DataFrame, TRADE_SCHEMA).

    known_ids: trade ids already stored (e.g. the previous day's partition): a trade with
    one of them is a duplicate (counted in `duplicates` and `known_duplicates`)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    reader = TradeReader(fmt, known_ids=known_ids)
    frames = list(reader.frames(list(paths)))
    frame = pl.concat(frames, rechunk=True) if frames else empty_trades()
    return TradeResult(frame, reader.report)


# Parquet options for l2_trades: ids and times dominate; zstd over dictionary-encoded sides,
# exchange and symbol.
PARQUET_OPTIONS: dict = {"compression": "zstd", "compression_level": 3, "use_dictionary": True}


def write_trades(paths: list[str | Path], output: str | Path, fmt: str = "auto",
                 row_group_rows: int = 1 << 18) -> TradeReport:
    """Stream captures' trades into one Parquet file (flat memory), atomically (temp file +
    rename). Nothing is written when the input holds no trade line at all."""
    import os

    import pyarrow.parquet as pq

    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    schema = empty_trades().to_arrow().schema
    reader = TradeReader(fmt, chunk_trades=row_group_rows)
    writer = None
    try:
        for frame in reader.frames(list(paths)):
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema, **PARQUET_OPTIONS)
            writer.write_table(frame.to_arrow().cast(schema), row_group_size=row_group_rows)
        if writer is None and reader.report.counters.trade_lines > 0:
            writer = pq.ParquetWriter(tmp, schema, **PARQUET_OPTIONS)  # lines, all bad: 0 rows
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
        tmp.replace(output)
    return reader.report


# ---- one day of the lake table --------------------------------------------------------------------
DAY_OVERLAP_S = 600  # the previous day's last trades a day is de-duplicated against


@dataclass
class DayTrades:
    frame: pl.DataFrame
    report: TradeReport
    before_day: int  # rows whose trade time is before the day (received after midnight)
    after_day: int  # rows whose trade time is after the day (a receive clock behind)


def day_trades(files: list[str | Path], day: str, previous: pl.DataFrame | None = None,
               fmt: str = "auto", overlap_s: float = DAY_OVERLAP_S) -> DayTrades:
    """The `l2_trades` rows of one UTC day: every trade of that day's raw capture files.

    A day's partition holds the trades *received* that day (the raw store files its folder
    by receive time), so each trade lands in exactly one partition and none is lost at
    midnight; a trade executed just before midnight and received after it sits in the next
    day's partition, counted in `before_day`. `previous` (the previous day's partition, if
    any): a trade whose id is among its trades of the last `overlap_s` seconds is a duplicate
    across days (a reconnect replays recent trades), counted and left out."""
    import datetime as dt

    known: set[str] = set()
    if previous is not None and previous.height:
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        recent = previous.filter(
            pl.col("timestamp") >= start - dt.timedelta(seconds=overlap_s))
        known = set(recent["trade_id"].to_list())
    result = read_trades(files, fmt, known_ids=known)
    frame = result.frame
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    before = frame.filter(pl.col("timestamp") < start).height
    after = frame.filter(pl.col("timestamp") >= end).height
    return DayTrades(frame, result.report, before, after)
