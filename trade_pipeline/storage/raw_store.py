"""The raw capture store: append-only, compressed, one folder per UTC day and symbol.

Layout (docs/RAW_STORE.md describes it in full):
`<raw_dir>/exchange=<x>/symbol=<S>/date=<YYYY-MM-DD>/<HHMMSSffffff>-<8 hex>.raw.gz`.
Each line is `<receive_ts_ns> <WebSocket text frame as received>`. A file is a sequence of
gzip members, one per flush: every flushed member is complete on disk, so a process killed
with SIGKILL loses at most the unflushed buffer (at most `flush_interval` seconds).
Recorded captures are imported unchanged (original name) into the day of their first line; a
capture that runs past UTC midnight is split into one part per day (lines verbatim, in order).
"""

import contextlib
import datetime as dt
import filecmp
import gzip
import os
import re
import secrets
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from trade_pipeline.settings import (
    Settings,
    SettingsError,
    check_date,
    check_exchange,
    check_symbol,
)
from trade_pipeline.storage.gzip_stream import CHUNK_BYTES, gunzip_members, is_gzip

RAW_SUFFIX = ".raw.gz"
NS_PER_DAY = 86_400 * 1_000_000_000


def symbol_dir(raw_dir: Path, exchange: str, symbol: str) -> Path:
    return Path(raw_dir) / f"exchange={check_exchange(exchange)}" / f"symbol={check_symbol(symbol)}"


def day_dir(raw_dir: Path, exchange: str, symbol: str, day: str) -> Path:
    return symbol_dir(raw_dir, exchange, symbol) / f"date={check_date(day)}"


_EPOCH_DAY = dt.date(1970, 1, 1)
_DAY_NS = 86_400 * 10**9


def day_of_ns(ts_ns: int) -> str:
    """The UTC day of a time in ns, in integers: a float would round 23:59:59.9999999 up
    into the next day and file the line under the wrong date."""
    return (_EPOCH_DAY + dt.timedelta(days=int(ts_ns) // _DAY_NS)).isoformat()


def raw_file_name(ts_ns: int, token: str | None = None) -> str:
    """`HHMMSSffffff-<8 hex>.raw.gz` for a file opened at receive time `ts_ns` (UTC); the hex
    token is random unless given (the simulator derives it from its seed: same run, same name)."""
    stamp = dt.datetime.fromtimestamp(ts_ns // 1000 / 1e6, dt.UTC).strftime("%H%M%S%f")
    if token is None:
        token = secrets.token_hex(4)
    elif len(token) != 8 or any(c not in "0123456789abcdef" for c in token):
        raise ValueError(f"name token must be 8 lower-case hex digits, got {token!r}")
    return f"{stamp}-{token}{RAW_SUFFIX}"


def _sort_key(path: Path) -> tuple[int, str]:
    # Our own files sort by their start time (name); imported captures by their name, which
    # carries their start time too (l2_data_..._YYYYMMDD_HHMMSS).
    return (0 if path.name.endswith(RAW_SUFFIX) else 1, path.name)


def raw_files_for_day(settings: Settings, exchange: str, symbol: str, day: str) -> list[Path]:
    """Every capture file of one day and symbol, in time order (collected/simulated first by
    name, then imported captures by name). Hidden/temporary files are skipped."""
    folder = day_dir(settings.raw_dir, exchange, symbol, day)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=_sort_key)


def raw_days(settings: Settings, exchange: str, symbol: str) -> list[str]:
    """The days that hold at least one capture file, sorted (used by retention)."""
    folder = symbol_dir(settings.raw_dir, exchange, symbol)
    if not folder.is_dir():
        return []
    days = []
    for sub in folder.iterdir():
        if sub.is_dir() and sub.name.startswith("date="):
            day = sub.name.split("=", 1)[1]
            try:
                check_date(day)
            except SettingsError:
                continue  # not ours
            if any(p.is_file() for p in sub.iterdir()):
                days.append(day)
    return sorted(days)


@dataclass
class WriterStats:
    lines: int = 0  # appended
    lines_written: int = 0  # flushed to disk
    flushes: int = 0
    bytes_written: int = 0  # compressed bytes on disk
    files: int = 0
    lines_lost: int = 0  # buffered lines a failed write could not keep (disk full, I/O error)


class RawWriteError(OSError):
    """Writing the raw store failed (e.g. the disk is full). Every member flushed before is
    intact: the failed member was cut off the file again."""

    def __init__(self, errno_: int | None, message: str) -> None:
        super().__init__(message)  # str() is the message alone (no "[Errno n]")
        self.errno = errno_


class RawStoreWriter:
    """Append frames with their receive time; one gzip member per flush; rotates at UTC
    midnight (of the receive time) into the next day's folder.

    `append` buffers; `flush` (called by the owner at least once a second, and by `append`
    when the buffer is older than `flush_interval`) writes one complete gzip member with a
    single `write` on an unbuffered file, then fsyncs if `fsync` is set.
    """

    def __init__(
        self,
        raw_dir: Path,
        exchange: str,
        symbol: str,
        flush_interval: float = 1.0,
        fsync: bool = False,
        compresslevel: int = 6,
        name_token: str | None = None,
    ) -> None:
        self.raw_dir = Path(raw_dir)
        self.exchange = check_exchange(exchange)
        self.symbol = check_symbol(symbol)
        self.flush_interval = flush_interval
        self.fsync = fsync
        self.compresslevel = compresslevel
        self.name_token = name_token
        self.stats = WriterStats()
        self.paths: list[Path] = []
        self._fd: int | None = None
        self._day: str | None = None
        self._day_end_ns = 0
        self._buf: list[bytes] = []
        self._buf_since = 0.0
        self._closed = False
        self.failed: OSError | None = None  # the first write error; the writer is then spent

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def append(self, receive_ts_ns: int, frame: str | bytes) -> None:
        """Buffer one frame (flushing when the buffer is older than `flush_interval`).
        Raises RawWriteError when the store cannot be written (then and after)."""
        if self._closed:
            raise RuntimeError("RawStoreWriter is closed")
        if self.failed is not None:
            self.stats.lines_lost += 1
            raise RawWriteError(self.failed.errno, f"raw store not writable: {self.failed.strerror}")
        if isinstance(frame, str):
            frame = frame.encode()
        if b"\n" in frame:
            raise ValueError("a frame must not contain a newline (one frame per line)")
        if self._fd is None or receive_ts_ns >= self._day_end_ns or receive_ts_ns < self._day_end_ns - NS_PER_DAY:
            try:
                self._rotate(receive_ts_ns)
            except FileExistsError:
                raise  # a name taken (a rerun of the same simulation): the caller's decision
            except OSError as exc:
                if self.failed is None:  # (a failed flush inside _rotate already did)
                    self._fail(exc, self._buf)
                self.stats.lines_lost += 1  # this frame
                raise self.failed from exc
        if not self._buf:
            self._buf_since = time.monotonic()
        self._buf.append(b"%d %s\n" % (receive_ts_ns, frame))
        self.stats.lines += 1
        if time.monotonic() - self._buf_since >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines as one complete gzip member (no-op when empty).

        On a write error (ENOSPC, EIO, ...) the partly written member is cut off the file
        again, so everything flushed before stays readable with no break; the buffered lines
        are counted lost and RawWriteError is raised (once: the writer is spent after)."""
        if not self._buf or self._fd is None or self.failed is not None:
            return
        member = gzip.compress(b"".join(self._buf), compresslevel=self.compresslevel, mtime=0)
        view = memoryview(member)
        size_before = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            # (if even that fails, the file ends in a cut member: readers keep every line
            # before it and report the break)
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size_before)
            self._fail(exc, self._buf)
            raise self.failed from exc
        self.stats.lines_written += len(self._buf)
        self._buf.clear()
        self.stats.flushes += 1
        self.stats.bytes_written += len(member)

    def _fail(self, exc: OSError, lost: list) -> None:
        self.stats.lines_lost += len(lost)
        lost.clear()
        path = self.paths[-1] if self.paths else self.raw_dir
        self.failed = RawWriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")

    def _rotate(self, receive_ts_ns: int) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._day = day_of_ns(receive_ts_ns)
        day_start = dt.datetime.fromisoformat(self._day).replace(tzinfo=dt.UTC)
        self._day_end_ns = int(day_start.timestamp()) * 1_000_000_000 + NS_PER_DAY
        folder = day_dir(self.raw_dir, self.exchange, self.symbol, self._day)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / raw_file_name(receive_ts_ns, self.name_token)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.paths.append(path)
        self.stats.files += 1

    def close(self) -> None:
        """Flush and close. A write error on this last flush is raised (after closing)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True

    def __enter__(self) -> "RawStoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def newest_capture(raw_dir: Path, exchange: str, symbol: str) -> Path | None:
    """The newest file this store's writer made for a symbol (the latest day folder holding
    one, latest name), or None."""
    folder = symbol_dir(raw_dir, exchange, symbol)
    if not folder.is_dir():
        return None
    days = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("date=")),
                  reverse=True)
    for day in days:
        ours = sorted(p for p in day.iterdir()
                      if p.is_file() and p.name.endswith(RAW_SUFFIX) and not p.name.startswith("."))
        if ours:
            return ours[-1]
    return None


@dataclass(frozen=True)
class LastRecord:
    receive_ns: int
    frame: bytes
    truncated: bool  # the file ends in a cut member (e.g. the writer was killed mid-write)


def last_record(path: Path, tail_bytes: int = 4 << 20) -> LastRecord | None:
    """The last complete line of a raw file, reading only its tail: every flush is a gzip
    member of its own, so decoding can start at any member boundary in the last few MB."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        start = max(0, size - tail_bytes)
        f.seek(start)
        data = f.read()
    # member starts: gzip magic + deflate method; a false match inside compressed data fails
    # to decode and the next candidate is tried
    offsets = [0] if start == 0 else []
    k = data.find(b"\x1f\x8b\x08", 1 if start == 0 else 0)
    while k >= 0:
        offsets.append(k)
        k = data.find(b"\x1f\x8b\x08", k + 1)
    for off in offsets:
        breaks: list[str] = []
        pos = [off]

        def read(n: int, pos=pos) -> bytes:
            chunk = data[pos[0]:pos[0] + n]
            pos[0] += len(chunk)
            return chunk

        text = b"".join(gunzip_members(read, breaks.append))
        if breaks and breaks[0].startswith("corrupt") and not text:
            continue  # not a member boundary
        lines = text.split(b"\n")
        complete = lines[:-1]
        for line in reversed(complete):
            head, sep, frame = line.partition(b" ")
            if sep and head.isdigit():
                return LastRecord(int(head), frame, bool(breaks))
        if start == 0 or not complete:
            return None
    return None


@dataclass
class RawReadResult:
    lines: list[tuple[int, str]]
    truncated: bool  # the file ends in an incomplete gzip member (kept every complete line)


def iter_raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Stream `(receive_ts_ns, frame)` from a raw file. A truncated last member raises
    EOFError after every complete line was yielded (callers count it)."""
    with gzip.open(path, "rb") as src:
        for line in src:
            if not line.endswith(b"\n"):
                raise EOFError(f"{path}: last line incomplete")
            ts, _, frame = line.rstrip(b"\n").partition(b" ")
            yield int(ts), frame


def read_raw_file(path: Path) -> RawReadResult:
    """Whole-file read for tests and tools (small files): complete lines + truncation flag."""
    lines: list[tuple[int, str]] = []
    truncated = False
    try:
        for ts, frame in iter_raw_lines(path):
            lines.append((ts, frame.decode()))
    except (EOFError, gzip.BadGzipFile, zlib.error):
        truncated = True
    return RawReadResult(lines, truncated)


# ---- importing recorded captures ------------------------------------------------------------

class CaptureImportError(SettingsError):
    """A capture file cannot be placed in the store (unreadable or unknown first line)."""


def first_record_ns(path: Path) -> int:
    """Receive time (or time of record) of the first line of a capture file, in ns.

    Understands docs/DATA_FORMATS.md formats 2 (`received_timestamp_ms`), 3 (ISO `timestamp`, UTC) and
    4 / this store's raw format (`<ns> <json>`)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as src:
            line = src.readline()
    except (OSError, EOFError) as exc:
        raise CaptureImportError(f"{path}: cannot read the first line: {exc}") from None
    line = line.strip()
    if not line:
        raise CaptureImportError(f"{path}: empty file, nothing to import")
    head, _, rest = line.partition(b" ")
    if head.isdigit() and rest.startswith(b"{"):
        return int(head)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise CaptureImportError(f"{path}: first line is neither JSON nor '<ns> <json>'") from None
    if isinstance(obj, dict):
        for key in ("received_timestamp_ms", "timestamp_ms"):
            if isinstance(obj.get(key), int):
                return obj[key] * 1_000_000
        if isinstance(obj.get("timestamp"), str):
            ts = dt.datetime.fromisoformat(obj["timestamp"])
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=dt.UTC)
            return int(ts.timestamp() * 1e6) * 1000
    raise CaptureImportError(f"{path}: unknown capture format (no receive time in the first line)")


# Per-line receive time (or time of record), by the same rule as `first_record_ns`: the
# `<ns>` prefix, else format 2's `received_timestamp_ms`, else `timestamp_ms`, else format 3's ISO
# `timestamp` (UTC). A regex, not a JSON parse: imports scan every line of big files.
_RECV_MS = re.compile(rb'"received_timestamp_ms":\s*(\d+)')
_TIME_MS = re.compile(rb'"timestamp_ms":\s*(\d+)')
_ISO = re.compile(rb'"timestamp":\s*"([^"]+)"')


def line_record_ns(line: bytes) -> int | None:
    """Receive time (ns) of one capture line, or None when the line carries none (bad line)."""
    head, sep, rest = line.partition(b" ")
    if sep and head.isdigit() and rest.lstrip().startswith(b"{"):
        return int(head)
    for pattern in (_RECV_MS, _TIME_MS):
        m = pattern.search(line)
        if m:
            return int(m.group(1)) * 1_000_000
    m = _ISO.search(line)
    if m:
        try:
            ts = dt.datetime.fromisoformat(m.group(1).decode())
        except ValueError:
            return None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        return int(ts.timestamp() * 1e6) * 1000
    return None


@dataclass
class _Scan:
    days: list[str]  # the UTC day of each part, in file order
    starts: list[int]  # index of each part's first line
    gz: bool
    truncated: bool  # gzip stream breaks (a truncated last member): the last part keeps the break
    tail: bytes  # bytes after the last newline (a partial line)


def iter_capture_lines(path: Path, on_break=None, tail_out: list[bytes] | None = None):
    """Complete lines (with their newline) of a capture, gzip or plain; the bytes after the last
    newline are put in `tail_out`; a gzip break ends the lines (reported to `on_break`)."""
    with open(path, "rb") as f:
        chunks = gunzip_members(f.read, on_break or (lambda reason: None)) if is_gzip(f) else iter(lambda: f.read(CHUNK_BYTES), b"")
        tail = b""
        for chunk in chunks:
            parts = (tail + chunk).split(b"\n")
            tail = parts.pop()
            for line in parts:
                yield line + b"\n"
        if tail_out is not None:
            tail_out.append(tail)


def _scan_days(path: Path) -> _Scan:
    """Where a capture's lines change UTC day (contiguous parts: a line whose day is not later
    than the current part's stays in it, so file order is never changed)."""
    broke: list[str] = []
    tails: list[bytes] = []
    with open(path, "rb") as f:
        gz = is_gzip(f)
    days: list[str] = []
    starts: list[int] = []
    current = None
    n = 0
    for n, line in enumerate(iter_capture_lines(path, broke.append, tails)):
        ns = line_record_ns(line)
        if ns is None:
            continue  # a bad line stays with its neighbours; readers count it
        index = ns // NS_PER_DAY
        if current is None or index > current:
            current = index
            days.append(day_of_ns(ns))
            starts.append(n if days[1:] else 0)
    tail = tails[0] if tails else b""
    if not broke and tail:
        ns = line_record_ns(tail)
        if ns is not None and (current is None or ns // NS_PER_DAY > current):
            days.append(day_of_ns(ns))
            starts.append(n + 1 if days[1:] else 0)
    if not days:
        raise CaptureImportError(f"{path}: no line carries a receive time; nothing to import")
    return _Scan(days, starts, gz, bool(broke), tail)


def _part_name(name: str, k: int) -> str:
    # `l2_data_X_20250706_235900.jsonl.gz` -> `l2_data_X_20250706_235900.part02.jsonl.gz`: the
    # extension (gzip or not) is kept for retention's restore, the base for the name sort
    base, dot, ext = name.partition(".")
    return f"{base}.part{k:02d}{dot}{ext}"


def _write_parts(path: Path, scan: _Scan, tmps: list[Path]) -> None:
    """Write each part's lines verbatim into `tmps` (gzip, one member per part, or plain)."""
    tails: list[bytes] = []
    sinks = []
    try:
        for tmp in tmps:
            raw = open(tmp, "wb")  # noqa: SIM115 - closed below
            sinks.append((raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6)
                          if scan.gz else raw))
        k = 0
        bounds = [*scan.starts[1:], None]
        for n, line in enumerate(iter_capture_lines(path, None, tails)):
            while bounds[k] is not None and n >= bounds[k]:
                k += 1
            sinks[k][1].write(line)
        tail = tails[0] if tails else b""
        raw, sink = sinks[-1]
        if scan.gz:
            sink.close()
            if scan.truncated:
                # keep the break where it was: a member cut before its trailer, holding the
                # partial line (readers keep every complete line and report the break)
                raw.write(gzip.compress(tail, mtime=0)[:-8])
        elif tail:
            sink.write(tail)
    finally:
        for raw, sink in sinks:
            sink.close()
            raw.close()


def import_capture_parts(settings: Settings, path: Path, exchange: str, symbol: str) -> list[Path]:
    """Place one recorded capture in the store: unchanged (original name) in the day folder of
    its first line when all its lines are of that day; else split at each UTC midnight of the
    receive time (the store's day rule) into `<base>.partNN.<ext>`, one per day, each holding
    its lines verbatim and in order, in the same format and compression. `l2_snapshots` of a
    day then continues the previous day's book checkpoint, so a session keeps its id.

    Refuses to overwrite a different file of the same name; re-importing is a no-op."""
    path = Path(path)
    if not path.is_file():
        raise CaptureImportError(f"{path}: no such file")
    first_day = day_of_ns(first_record_ns(path))
    scan = _scan_days(path)
    if len(scan.days) == 1:
        return [import_capture(settings, path, exchange, symbol, first_day)]
    targets = [day_dir(settings.raw_dir, exchange, symbol, day) / _part_name(path.name, k + 1)
               for k, day in enumerate(scan.days)]
    tmps = [t.with_name(f".{t.name}.{secrets.token_hex(4)}.tmp") for t in targets]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_parts(path, scan, tmps)
        for tmp, target in zip(tmps, targets, strict=True):  # check all before placing any
            if target.exists() and not filecmp.cmp(tmp, target, shallow=False):
                raise CaptureImportError(f"{target} exists with different content; remove it first")
        for tmp, target in zip(tmps, targets, strict=True):
            if not target.exists():
                os.replace(tmp, target)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return targets


def import_capture(
    settings: Settings, path: Path, exchange: str, symbol: str, day: str | None = None
) -> Path:
    """Copy one recorded capture unchanged into the folder of `day`; without `day`, place it by
    `import_capture_parts` (split at UTC midnight if it spans days) and return its first part.

    Refuses to overwrite a different file of the same name; re-importing the same file is a
    no-op that returns the existing path."""
    path = Path(path)
    if not path.is_file():
        raise CaptureImportError(f"{path}: no such file")
    if not day:
        return import_capture_parts(settings, path, exchange, symbol)[0]
    target_day = check_date(day)
    folder = day_dir(settings.raw_dir, exchange, symbol, target_day)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        if target.stat().st_size == path.stat().st_size:
            return target
        raise CaptureImportError(f"{target} exists with different content; remove it first")
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)
    return target
