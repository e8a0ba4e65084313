"""Streaming readers for recorded captures: format detection, gzip handling, line parsing.

Formats (docs/DATA_FORMATS.md, docs/RAW_STORE.md), as returned by `detect_format`:
- `bybit`: format 2, recorded jsonl (`timestamp_ms`, `update_id`, float levels).
- `bybit_raw`: the raw capture store, `<receive_ns> <Bybit v5 wire frame>` per line.
- `ccxt`: format 3, ccxt-style books (`timestamp` ISO, `symbol` BTC/USDT:USDT, `b`/`a`).
- `binance`: format 4, `<local_ns> <combined stream json>` plus a REST depth snapshot line.

Files are read in fixed-size chunks (gzip members decompressed incrementally, any number of
members), so memory stays flat however large a file is. A truncated or corrupt gzip keeps
every complete line before the break and records the break in the file's status.

ccxt lines: format 3 was described as one full book per line, but the real capture
(`..._20250707_175705`) holds one full 50-level book followed by deltas (few levels, size 0 =
delete). So a ccxt line counts as a full book when both sides carry at least
`CCXT_FULL_LEVELS` levels and no size is 0; any other line is a delta. Full books replace the
book inside one continuous session; there are no update ids, so continuity is broken only by
silence longer than `CCXT_MAX_GAP_S` (then the book is invalid until the next full book).
"""

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market import bybit_lines
from trade_pipeline.market.messages import (
    F_RECV,
    F_T,
    F_UFIRST,
    F_ULAST,
    K_DELTA,
    K_FULL,
    K_REPLAY,
    K_REST,
    K_SNAPSHOT,
    NFIELDS,
    NULL_I64,
    R_BYBIT,
    R_NONE,
    R_SPOT,
    R_USDM,
    MessageBlock,
    MessageBuffer,
    extend_decimal_pairs,
    has_bool,
    id_in_range,
    time_in_range,
)
from trade_pipeline.market.stage_timer import StageTimer
from trade_pipeline.storage.gzip_stream import CHUNK_BYTES, GZIP_MAGIC, gunzip_members, is_gzip
from trade_pipeline.storage.read_ahead import ReadAhead

FORMATS = ("bybit", "bybit_raw", "ccxt", "binance")
FORMAT_CHOICES = ("auto", "bybit", "ccxt", "binance")  # user-facing; bybit covers bybit_raw
EXCHANGE_OF = {"bybit": "bybit", "bybit_raw": "bybit", "ccxt": "bybit", "binance": "binance"}
CCXT_FULL_LEVELS = 50
CCXT_MAX_GAP_S = 5.0
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


class FormatError(TradePipelineError, ValueError):
    """A file is not in a format we read; the message says what was detected."""


class EmptyFileError(FormatError):
    """A file holds no lines at all."""


@dataclass
class FileStatus:
    """What happened while reading one file (filled by `iter_line_blocks`)."""

    path: str
    lines: int = 0
    truncated: bool = False
    reason: str | None = None
    partial_line_dropped: bool = False
    bytes_decoded: int = 0


# ---- bytes -> lines ------------------------------------------------------------------------
def iter_line_blocks(path: str | Path, status: FileStatus | None = None) -> Iterator[list[bytes]]:
    """Yield lists of complete lines (bytes, no newline), streaming with flat memory."""
    status = status or FileStatus(str(path))

    def broke(reason: str) -> None:
        status.truncated = True
        status.reason = reason

    with open(path, "rb") as f:
        chunks = gunzip_members(f.read, broke) if is_gzip(f) else iter(lambda: f.read(CHUNK_BYTES), b"")
        tail = b""
        for chunk in chunks:
            status.bytes_decoded += len(chunk)
            data = tail + chunk if tail else chunk
            lines = data.split(b"\n")
            tail = lines.pop()
            if lines:
                status.lines += len(lines)
                yield lines
        if tail:
            if status.truncated:
                status.partial_line_dropped = True  # the line the break cut in half
            else:
                status.lines += 1
                yield [tail]


def iter_text_blocks(path: str | Path, status: FileStatus | None = None,
                     piece_bytes: int = CHUNK_BYTES) -> Iterator[tuple[bytes, int, int]]:
    """Yield `(data, start, end)`: data[start:end] holds complete lines (each ending in a
    newline, except a last line the file does not end with). Same bytes, line count and
    truncation handling as `iter_line_blocks`, but no object per line and (mostly) no copy:
    a decompressed piece is handed out whole, and only the line cut by a piece boundary is
    joined into a small block of its own."""
    status = status or FileStatus(str(path))

    def broke(reason: str) -> None:
        status.truncated = True
        status.reason = reason

    with open(path, "rb") as f:
        chunks = (gunzip_members(f.read, broke, read_bytes=piece_bytes // 4, max_out=piece_bytes)
                  if is_gzip(f) else iter(lambda: f.read(piece_bytes), b""))
        tail = b""
        for chunk in chunks:
            status.bytes_decoded += len(chunk)
            first = chunk.find(b"\n")
            if first < 0:
                tail += chunk
                continue
            if tail:
                joined = tail + chunk[:first + 1]
                status.lines += 1
                yield joined, 0, len(joined)
                start = first + 1
            else:
                start = 0
            last = chunk.rfind(b"\n") + 1
            if last > start:
                status.lines += chunk.count(b"\n", start, last)
                yield chunk, start, last
            tail = chunk[last:]
        if tail:
            if status.truncated:
                status.partial_line_dropped = True  # the line the break cut in half
            else:
                status.lines += 1
                yield tail, 0, len(tail)


DETECT_LINES = 200  # lines examined to detect a format: garbage at the head is skipped
DETECT_BYTES = 4 << 20


def _head_lines(path: str | Path, n: int = 5, limit: int = 1 << 20) -> Iterator[bytes]:
    """The first n non-blank complete lines (at most `limit` bytes decoded), lazily:
    decompressing only as much as the caller reads."""
    with open(path, "rb") as f:
        gz = is_gzip(f)
        # a break only ends the sample: reading the file reports it
        chunks = (gunzip_members(f.read, lambda reason: None, read_bytes=16384) if gz
                  else iter(lambda: f.read(16384), b""))
        tail = b""
        decoded = 0
        given = 0
        for chunk in chunks:
            decoded += len(chunk)
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if line.strip():
                    yield line
                    given += 1
                    if given >= n:
                        return
            if decoded >= limit:
                return
    # a last line without newline: kept in a plain file; in gzip it may be cut by a break,
    # so only when it is the whole sample
    if tail.strip() and (not gz or not given):
        yield tail


def _first_lines(path: str | Path, n: int = 5, limit: int = 1 << 20) -> list[bytes]:
    """The first n non-blank complete lines, decompressing only as much as needed."""
    return list(_head_lines(path, n, limit))


# ---- format detection ----------------------------------------------------------------------
def _split_ns(line: bytes) -> tuple[int, bytes] | None:
    head, sep, rest = line.partition(b" ")
    if sep and head.isdigit():
        return int(head), rest
    return None


def _classify(obj) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "update_id" in obj and "bids" in obj and "timestamp_ms" in obj:
        return "bybit"
    if obj.get("type") == "trade" and "timestamp_ms" in obj:  # format 2b, same files
        return "bybit"
    if "timestamp" in obj and "b" in obj and "a" in obj and "symbol" in obj:
        return "ccxt"
    return None


def _classify_prefixed(obj) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "stream" in obj or "lastUpdateId" in obj:
        return "binance"
    if str(obj.get("topic", "")).startswith(("orderbook.", "publicTrade.")) or obj.get("op") or "success" in obj:
        return "bybit_raw"
    return None


def detect_format(path: str | Path) -> str:
    """One of FORMATS, from the first lines; raises FormatError naming what was seen."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    container = "gzip" if magic == GZIP_MAGIC else "plain"
    seen = []  # what the unrecognised lines were (the first lines may be garbage: keep looking)
    examined = 0
    for line in _head_lines(path, DETECT_LINES, DETECT_BYTES):
        examined += 1
        prefixed = _split_ns(line)
        try:
            obj = orjson.loads(prefixed[1] if prefixed else line)
        except orjson.JSONDecodeError:
            seen.append(f"not JSON: {line[:60]!r}")
            continue
        fmt = _classify_prefixed(obj) if prefixed else _classify(obj)
        if fmt:
            return fmt
        keys = sorted(obj)[:12] if isinstance(obj, dict) else type(obj).__name__
        prefix = "<number> + " if prefixed else ""
        seen.append(f"{prefix}JSON with keys {keys}")
    if not examined:
        raise EmptyFileError(f"{path}: empty file ({container}, no lines)")
    kinds = list(dict.fromkeys(seen))
    shown = "; ".join(kinds[:5]) + (f"; ... ({len(kinds) - 5} more kinds)" if len(kinds) > 5 else "")
    raise FormatError(
        f"{path}: unknown format ({container}); no book line among the first {examined} "
        f"lines; detected: {shown}. Known: {', '.join(FORMATS)}"
    )


def resolve_format(path: str | Path, requested: str = "auto") -> str:
    """Detect the file's format and check it against the user's --format choice."""
    if requested not in FORMAT_CHOICES and requested not in FORMATS:
        raise FormatError(f"unknown --format {requested!r}; choose from {', '.join(FORMAT_CHOICES)}")
    detected = detect_format(path)
    if requested == "auto" or detected == requested:
        return detected
    if requested == "bybit" and detected == "bybit_raw":
        return detected
    raise FormatError(f"{path}: --format {requested} requested but the file looks like {detected}")


# ---- line parsers: one per format, shared by batch and live --------------------------------
@dataclass
class ParseContext:
    """Per-stream parse state: the symbol being built, counters of skipped lines."""

    symbol: str | None = None
    exchange: str | None = None
    tz: dt.tzinfo | None = None  # zone of naive ccxt timestamps (None: UTC)
    messages: int = 0  # book messages read (lines that became a normalized message)
    replays: int = 0  # buffer entries that re-feed an already-read Binance diff
    bad_lines: int = 0
    out_of_range: int = 0  # bad lines whose time of record or id is implausible (rule 8)
    bad_receive_times: int = 0  # receive times outside 2009..2100: dropped (null), line kept
    other_symbol: int = 0
    control: int = 0  # Bybit acks/pongs in a wire stream
    non_book: dict[str, int] = field(default_factory=dict)  # Binance trade/bookTicker lines
    bad_examples: list[str] = field(default_factory=list)
    # Binance: the last diffs read, re-fed after a REST snapshot (see `_binance`)
    recent_diffs: deque = field(default_factory=lambda: deque(maxlen=BINANCE_WINDOW))

    def bad(self, where: str, reason: str) -> None:
        self.bad_lines += 1
        if len(self.bad_examples) < 20:
            self.bad_examples.append(f"{where}: {reason}")

    def checkpoint(self) -> tuple:
        """What parsing may change here, to undo a block parsed in one call (`rollback`)."""
        return (self.symbol, self.bad_lines, self.out_of_range, self.bad_receive_times,
                len(self.bad_examples), self.other_symbol, self.control, dict(self.non_book),
                self.replays, list(self.recent_diffs))

    def rollback(self, saved: tuple) -> None:
        (self.symbol, self.bad_lines, self.out_of_range, self.bad_receive_times, n_examples,
         self.other_symbol, self.control, self.non_book, self.replays, recent) = saved
        del self.bad_examples[n_examples:]
        self.recent_diffs.clear()
        self.recent_diffs.extend(recent)

    def accept_symbol(self, symbol: str) -> bool:
        if self.symbol is None:
            self.symbol = symbol
            return True
        if symbol == self.symbol:
            return True
        self.other_symbol += 1
        return False


def normalize_symbol(symbol: str) -> str:
    """ccxt 'BTC/USDT:USDT' -> exchange-native 'BTCUSDT'."""
    return symbol.split(":", 1)[0].replace("/", "").upper()


def parse_tz(tz: str | None) -> dt.tzinfo | None:
    """'UTC'/None, an IANA zone ('Asia/Tokyo') or a fixed offset ('+10:00')."""
    if tz is None or tz.upper() in ("UTC", "Z"):
        return None
    if tz[:1] in "+-":
        sign = 1 if tz[0] == "+" else -1
        hh, _, mm = tz[1:].partition(":")
        return dt.timezone(sign * dt.timedelta(hours=int(hh), minutes=int(mm or 0)))
    return ZoneInfo(tz)


def iso_to_us(text: str, tz: dt.tzinfo | None) -> int:
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        if tz is None:
            return (stamp - _EPOCH) // _US
        stamp = stamp.replace(tzinfo=tz)
    return (stamp - _EPOCH_UTC) // _US


_cf = chain.from_iterable


def _kind(typ: str) -> int:
    if typ == "delta":
        return K_DELTA
    if typ == "snapshot":
        return K_SNAPSHOT
    raise ValueError(f"unknown message type {typ!r}")


def _bybit_record(obj: dict, recv_ns: int | None, buf: MessageBuffer, ctx: ParseContext) -> None:
    # Format 2, one line (the careful path; `_block_bybit_record_fast` is the bulk path).
    if obj["type"] == "trade":  # format 2b: not a book message (market.trades reads it)
        _count_trade_line(ctx)
        return
    sym = obj["symbol"]
    if sym != ctx.symbol and not ctx.accept_symbol(sym):
        return
    kind = _kind(obj["type"])
    b = obj["bids"]
    a = obj["asks"]
    t_ms = obj["timestamp_ms"]
    recv = obj.get("received_timestamp_ms")
    u = obj["update_id"]
    _integers(t_ms=t_ms, update_id=u)
    if recv is not None:
        _integers(received_timestamp_ms=recv)
    flat = [*_cf(b), *_cf(a)]
    if has_bool(flat):
        raise ValueError("a price or size is a boolean")
    lv = buf.levels
    start = len(lv)
    lv.extend(flat)
    if len(lv) - start != 2 * (len(b) + len(a)):
        raise ValueError("a level is not a [price, size] pair")
    buf.fields.extend((t_ms * 1000, NULL_I64 if recv is None else recv * 1000,
                       kind, R_BYBIT, u, u, NULL_I64, len(b), len(a), 0))


def _integers(**values) -> None:
    """JSON integers only: a boolean (`true` is 1 to Python) or a float is not an id or a time."""
    for name, v in values.items():
        if type(v) is not int:
            raise ValueError(f"{name} is not an integer: {v!r}")


def _count_trade_line(ctx: ParseContext, n: int = 1) -> None:
    """Trade lines share the book files (docs/DATA_FORMATS.md 1b/2b): book readers skip them, counted as
    `non_book["trade"]` (like Binance's trade stream), never as bad lines."""
    ctx.non_book["trade"] = ctx.non_book.get("trade", 0) + n


_COMPILED_LEVELS = 4  # see `_bybit_wire`


def _bybit_wire(obj: dict, recv_ns: int | None, buf: MessageBuffer, ctx: ParseContext) -> None:
    data = obj.get("data")
    if data is None:  # subscription ack / pong: not a book message
        ctx.control += 1
        return
    if str(obj["topic"]).startswith("publicTrade."):  # market.trades reads these
        _count_trade_line(ctx)
        return
    if not str(obj["topic"]).startswith("orderbook."):
        raise ValueError(f"unexpected topic {obj['topic']!r}")
    sym = data["s"]
    if sym != ctx.symbol and not ctx.accept_symbol(sym):
        return
    typ = obj["type"]
    kind = K_DELTA if typ == "delta" else _kind(typ)
    u = data["u"]
    ts = obj["ts"]
    if type(u) is not int or type(ts) is not int:
        _integers(ts=ts, u=u)
    b = data["b"]
    a = data["a"]
    nb, na = len(b), len(a)
    b += a  # our own parsed list: one conversion pass (the live path's hot spot)
    lv = buf.levels
    start = len(lv)
    # string levels: a compiled pass beats float() per value from a few levels on; both give
    # the same doubles, anything unusual takes the float() path
    if nb + na < _COMPILED_LEVELS or not extend_decimal_pairs(lv, b):
        flat = [*_cf(b)]
        if has_bool(flat):
            raise ValueError("a price or size is a boolean")
        lv.extend(map(float, flat))
    if len(lv) - start != 2 * (nb + na):
        raise ValueError("a level is not a [price, size] pair")
    buf.fields.extend((ts * 1000, NULL_I64 if recv_ns is None else recv_ns // 1000, kind,
                       R_BYBIT, u, u, NULL_I64, nb, na, 0))


def _is_full(side: list) -> bool:
    if len(side) < CCXT_FULL_LEVELS:
        return False
    return all(float(s) > 0.0 for _, s in side)


def _ccxt(obj: dict, recv_ns: int | None, buf: MessageBuffer, ctx: ParseContext) -> None:
    if not ctx.accept_symbol(normalize_symbol(obj["symbol"])):
        return
    b, a = obj["b"], obj["a"]
    kind = K_FULL if _is_full(b) and _is_full(a) else K_DELTA
    t = iso_to_us(obj["timestamp"], ctx.tz)
    buf.add(t, NULL_I64, kind, R_NONE, NULL_I64, NULL_I64, NULL_I64, b, a, strings=True)


BINANCE_WINDOW = 2000  # recent diffs kept to re-feed after a REST snapshot


def _binance(obj: dict, recv_ns: int | None, buf: MessageBuffer, ctx: ParseContext) -> None:
    recv = NULL_I64 if recv_ns is None else recv_ns // 1000
    stream = obj.get("stream")
    if stream is None:
        # REST depth snapshot (no symbol, no exchange time). Binance's procedure buffers the
        # diffs received before it and applies those with u > lastUpdateId: re-feed them.
        lid = obj["lastUpdateId"]
        buf.add(recv, recv, K_REST, R_SPOT, lid, lid, NULL_I64, obj["bids"], obj["asks"],
                strings=True)
        for t, r, rule, d in ctx.recent_diffs:
            if d["u"] > lid:
                ctx.replays += 1
                buf.add(t, r, K_REPLAY, rule, d["U"], d["u"], d.get("pu", NULL_I64),
                        d["b"], d["a"], strings=True)
        return
    kind_name = stream.rpartition("@")[2] if "@depth" not in stream else "depth"
    if kind_name != "depth":
        ctx.non_book[kind_name] = ctx.non_book.get(kind_name, 0) + 1
        return
    data = obj["data"]
    if not ctx.accept_symbol(data["s"]):
        return
    if "pu" in data:  # USD-M futures
        t, rule = data["T"] * 1000, R_USDM
        buf.add(t, recv, K_DELTA, R_USDM, data["U"], data["u"], data["pu"],
                data["b"], data["a"], strings=True)
    else:
        t, rule = data["E"] * 1000, R_SPOT
        buf.add(t, recv, K_DELTA, R_SPOT, data["U"], data["u"], NULL_I64,
                data["b"], data["a"], strings=True)
    ctx.recent_diffs.append((t, recv, rule, data))


Handler = Callable[[dict, "int | None", MessageBuffer, ParseContext], None]
HANDLERS: dict[str, Handler] = {
    "bybit": _bybit_record,
    "bybit_raw": _bybit_wire,
    "ccxt": _ccxt,
    "binance": _binance,
}
PREFIXED = {"bybit_raw", "binance"}  # lines carry '<receive_ns> ' before the JSON


_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


class _OutOfRange(ValueError):
    """Rule 8: an implausible time of record or id (the line is a bad line)."""


def _check_ranges(fields, n_fields: int, ctx: ParseContext) -> None:
    """Check the messages one line appended (rule 8); raises _OutOfRange. An implausible
    receive time is dropped (null) and counted: the message itself is still good."""
    for m in range(n_fields, len(fields), NFIELDS):
        t = fields[m + F_T]
        if not time_in_range(t):
            raise _OutOfRange(f"time of record {t} us is outside 2009..2100")
        for k in (F_UFIRST, F_ULAST):
            if not id_in_range(fields[m + k]):
                raise _OutOfRange(f"update id {fields[m + k]} is out of range")
        recv = fields[m + F_RECV]
        if recv != NULL_I64 and not time_in_range(recv):
            fields[m + F_RECV] = NULL_I64
            ctx.bad_receive_times += 1


def _bad_value(ctx: ParseContext, where: str, exc: Exception) -> None:
    if isinstance(exc, _OutOfRange | OverflowError):
        ctx.out_of_range += 1
        reason = exc if isinstance(exc, _OutOfRange) else "a number beyond int64"
        ctx.bad(where, f"out of range ({reason})")
    else:
        ctx.bad(where, f"malformed message ({type(exc).__name__}: {exc})")


def _block_generic(fmt: str, lines: list, buf: MessageBuffer, ctx: ParseContext, name: str,
                   base: int, recv_ns: int | None = None) -> None:
    handler = HANDLERS[fmt]
    prefixed = fmt in PREFIXED
    loads = orjson.loads
    for lineno, line in enumerate(lines, base + 1):
        n_levels = len(buf.levels)
        n_fields = len(buf.fields)
        try:
            recv = recv_ns
            if prefixed:
                head, sep, rest = line.partition(b" " if isinstance(line, bytes) else " ")
                if sep and head.isdigit():
                    recv, line = int(head), rest
            handler(loads(line), recv, buf, ctx)
            _check_ranges(buf.fields, n_fields, ctx)
        except orjson.JSONDecodeError as exc:
            if line and not line.isspace():  # blank lines are not bad lines
                ctx.bad(f"{name}:{lineno}", f"invalid JSON ({exc})")
        except (*_ERRORS, OverflowError) as exc:
            del buf.levels[n_levels:]  # no half-added message
            del buf.fields[n_fields:]
            _bad_value(ctx, f"{name}:{lineno}", exc)




# The compiled fast path (`bybit_lines.parse_lines`) for the Bybit formats; every line it
# does not accept goes, alone and in order, through the handlers above.
FAST_FORMS = {"bybit": bybit_lines.RECORD, "bybit_raw": bybit_lines.WIRE}
READ_AHEAD_PIECE = 1 << 18
_NEVER = np.frombuffer(b'"', dtype=np.uint8)  # a symbol no unescaped JSON string equals


def _symbol_bytes(ctx: ParseContext) -> np.ndarray:
    # until the stream's symbol is known, the handler sees every line and picks it
    return _NEVER if ctx.symbol is None else np.frombuffer(ctx.symbol.encode(), dtype=np.uint8)


class _TextParser:
    """Drives `parse_lines` over text blocks of one stream: the compiled kernel for the lines
    it accepts, `_block_generic` (the per-line handlers) for each line it does not, in line
    order. Full output blocks are handed to `emit` as they fill."""

    def __init__(self, fmt: str, ctx: ParseContext, name: str, capacity: int, emit) -> None:
        self.form = FAST_FORMS[fmt]
        self.fmt = fmt
        self.ctx = ctx
        self.name = name
        self.capacity = capacity
        self.emit = emit
        self.block = MessageBlock(capacity)
        self.slow = MessageBuffer()
        self.line_no = 0  # lines consumed so far (the next line is line_no + 1)
        self.slow_lines = 0  # lines the handlers parsed

    def _full(self) -> None:
        if len(self.block):
            self.emit(self.block)
            self.block = MessageBlock(self.capacity, len(self.block.levels) // 2)
        else:  # one line has more levels than a whole block holds: grow it
            self.block = MessageBlock(self.capacity, len(self.block.levels))

    def feed(self, data: bytes, start: int, end: int) -> None:
        text = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
        pos = 0
        ctx = self.ctx
        sym = _symbol_bytes(ctx)
        while pos < len(text):
            block = self.block
            pos, block.n, block.n_floats, self.line_no, status, eol = bybit_lines.parse_lines(
                text, pos, self.form, sym, block.fields, block.n, block.levels, block.n_floats,
                self.line_no)
            if status == bybit_lines.FULL:
                self._full()
            elif status == bybit_lines.SLOW:
                slow = self.slow
                slow.reset()
                _block_generic(self.fmt, [data[start + pos:start + eol]], slow, ctx, self.name,
                               self.line_no)
                while not self.block.extend(slow):
                    self._full()
                self.slow_lines += 1
                self.line_no += 1
                pos = eol + 1
                sym = _symbol_bytes(ctx)

    def finish(self) -> None:
        if len(self.block):
            self.emit(self.block)
            self.block = MessageBlock(self.capacity)


def _read_fast(path: str | Path, fmt: str, ctx: ParseContext, status: FileStatus,
               chunk_messages: int, timer: StageTimer | None) -> Iterator[MessageBlock]:
    """The Bybit formats: decompression in a read-ahead thread (it releases the GIL, as the
    compiled parser does), parsing here. Timer: `read` = the reader thread's CPU time and
    the time waited for it, `parse` = this thread's."""
    ready: list[MessageBlock] = []
    parser = _TextParser(fmt, ctx, Path(path).name, chunk_messages, ready.append)
    wall, cpu = time.perf_counter, time.thread_time
    # pieces of 256 KB, at most 4 ahead: memory stays flat (~1 MB), whatever the file
    reader = ReadAhead(lambda: iter_text_blocks(path, status, READ_AHEAD_PIECE), depth=4)
    parse_w = parse_c = 0.0
    for piece in reader:
        w0, c0 = wall(), cpu()
        parser.feed(*piece)
        parse_w += wall() - w0
        parse_c += cpu() - c0
        while ready:
            block = ready.pop(0)
            ctx.messages += len(block)
            yield block
    parser.finish()
    for block in ready:
        ctx.messages += len(block)
        yield block
    if timer is not None:
        timer.add("read", reader.wait_s, reader.cpu_s)
        timer.add("parse", parse_w, parse_c)


def parse_block(fmt: str, lines: list, buf: MessageBuffer, ctx: ParseContext, name: str = "live",
                base: int = 0, recv_ns: int | None = None) -> None:
    """Parse lines into buf; bad lines are counted in ctx (never raised).

    Prefixed formats read the `<ns> ` prefix when present, else use recv_ns (the live path
    passes the bare WebSocket frame and its receive time). Bybit lines (bytes) go through the
    compiled parser, the others (and every line it does not accept) through the handlers.
    """
    if fmt in FAST_FORMS and recv_ns is None and lines and all(
            isinstance(ln, bytes) and b"\n" not in ln for ln in lines):
        out: list[MessageBlock] = []
        parser = _TextParser(fmt, ctx, name, len(lines) + 1, out.append)
        parser.line_no = base
        text = b"\n".join(lines)
        parser.feed(text, 0, len(text))
        parser.finish()
        for block in out:
            msgs, levels = block.arrays()
            buf.fields.frombytes(msgs.tobytes())
            buf.levels.frombytes(levels.tobytes())
        return
    _block_generic(fmt, lines, buf, ctx, name, base, recv_ns)


def parse_line(fmt: str, line: bytes | str, buf: MessageBuffer, ctx: ParseContext,
               recv_ns: int | None = None) -> bool:
    """Parse one line / live frame into buf; True when a book message was added.

    Same handlers as the batch readers. Bad input is counted in ctx, never raised.
    """
    n_levels = len(buf.levels)
    n_fields = len(buf.fields)
    replays = ctx.replays
    try:
        if fmt in PREFIXED and line[:1].isdigit():
            head, _, line = line.partition(b" " if isinstance(line, bytes) else " ")
            recv_ns = int(head)
        HANDLERS[fmt](orjson.loads(line), recv_ns, buf, ctx)
        _check_ranges(buf.fields, n_fields, ctx)
    except orjson.JSONDecodeError as exc:
        if line and not line.isspace():
            ctx.bad("live", f"invalid JSON ({exc})")
        return False
    except (*_ERRORS, OverflowError) as exc:
        del buf.levels[n_levels:]
        del buf.fields[n_fields:]
        _bad_value(ctx, "live", exc)
        return False
    added = (len(buf.fields) - n_fields) // NFIELDS
    ctx.messages += added - (ctx.replays - replays)
    return added > 0


def read_messages(
    path: str | Path,
    fmt: str,
    ctx: ParseContext,
    status: FileStatus,
    chunk_messages: int = 65536,
    timer: StageTimer | None = None,
) -> Iterator[MessageBuffer | MessageBlock]:
    """Stream one file as message buffers of about `chunk_messages` messages each (both
    kinds have `len()` and `arrays()`).

    Bybit formats go through the compiled line parser; `timer` (if given) accumulates the
    time spent reading + decompressing (`read`) and parsing (`parse`); other formats read
    and parse line blocks together (all of it counts as `parse`)."""
    if fmt in FAST_FORMS:
        yield from _read_fast(path, fmt, ctx, status, chunk_messages, timer)
        return
    wall, cpu = time.perf_counter, time.thread_time
    w_start, c_start = wall(), cpu()
    name = Path(path).name
    buf = MessageBuffer()
    base = 0
    replays = ctx.replays
    spent_w = spent_c = 0.0  # time in this generator
    for lines in iter_line_blocks(path, status):
        parse_block(fmt, lines, buf, ctx, name, base)
        base += len(lines)
        if len(buf) >= chunk_messages:
            ctx.messages += len(buf) - (ctx.replays - replays)
            replays = ctx.replays
            spent_w += wall() - w_start
            spent_c += cpu() - c_start
            yield buf
            w_start, c_start = wall(), cpu()
            buf = MessageBuffer()
    if timer is not None:
        timer.add("parse", spent_w + wall() - w_start, spent_c + cpu() - c_start)
    if len(buf):
        ctx.messages += len(buf) - (ctx.replays - replays)
        yield buf


@dataclass(frozen=True)
class BookTicker:
    recv_ns: int
    update_id: int
    bid: float
    bid_size: float
    ask: float
    ask_size: float


def read_binance_book_tickers(path: str | Path) -> Iterator[BookTicker]:
    """Binance's own best bid/ask messages (to check a reconstruction against)."""
    for lines in iter_line_blocks(path):
        for line in lines:
            if b"@bookTicker" not in line:
                continue
            head, _, rest = line.partition(b" ")
            d = orjson.loads(rest)["data"]
            yield BookTicker(int(head), d["u"], float(d["b"]), float(d["B"]), float(d["a"]),
                             float(d["A"]))
