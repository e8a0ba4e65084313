"""Retention of raw captures: archive old days into Parquet, delete the hot copy only when the
archive is verified, and restore archives back into the raw store.

- Hot: `<raw_dir>/exchange=X/symbol=S/date=D/<name>` (docs/RAW_STORE.md; gzip, multi-member).
- Archive: `<archive_dir>/raw/exchange=X/symbol=S/date=D/<name>.parquet`, one per raw file,
  rows `(file_name, line_no, line)` (line = the decompressed bytes without the newline),
  zstd-compressed. The file-level facts are in the Parquet key-value metadata: the source
  file's sha256 and size, the sha256 and byte count of its decompressed content as archived,
  the line count, whether the content ends with a newline, and the break (if truncated).
- A day is eligible when its date folder is older than `older_than_days` (UTC days).
- After writing, the archive is read back and its line count and content sha256 compared
  with the source's; the hot file is deleted only when both match AND the source file still
  has the sha256 it had when it was read. A truncated source (a broken last gzip member) is
  archived up to the break (its complete lines; the half line the break cut is not) and the
  break is reported, but the hot copy is KEPT: its unreadable tail is data we could not
  archive, and retention never deletes what it did not archive.
- Restore writes `<name>` back as one gzip member whose decompressed bytes are identical to
  the archived content (checked with the sha256); the compressed bytes differ from the
  original (gzip output depends on the writer and its flushes). An existing hot file is never
  overwritten.
"""

import contextlib
import datetime as dt
import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from trade_pipeline.settings import (
    Settings,
    SettingsError,
    check_date,
    check_exchange,
    check_symbol,
)
from trade_pipeline.storage.gzip_stream import CHUNK_BYTES, gunzip_members, is_gzip

ARCHIVE_SUBDIR = "raw"
ARCHIVE_SCHEMA = pa.schema([
    ("file_name", pa.string()),
    ("line_no", pa.int64()),
    ("line", pa.binary()),
])
BATCH_LINES = 50_000
META_PREFIX = "trade_pipeline."


@dataclass
class SourceScan:
    """What reading one raw file produced."""

    source_sha256: str = ""
    source_bytes: int = 0
    content_sha256: str = ""
    content_bytes: int = 0
    lines: int = 0
    final_newline: bool = True
    break_reason: str | None = None  # set when the gzip stream is truncated or corrupt
    dropped_partial_line: bool = False


@dataclass
class FileOutcome:
    path: str
    archive: str | None
    action: str  # 'archived_deleted' | 'archived_kept_truncated' | 'already_archived' | 'error'
    lines: int = 0
    detail: str | None = None


@dataclass
class RetentionReport:
    cutoff: str
    dry_run: bool
    files: list[FileOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.action] = out.get(f.action, 0) + 1
        return out

    def as_dict(self) -> dict:
        return {"cutoff": self.cutoff, "dry_run": self.dry_run, "counts": self.counts(),
                "files": [f.__dict__ for f in self.files]}


# ---- reading a raw file ---------------------------------------------------------------------

def _decompressed(path: Path, scan: SourceScan) -> Iterator[bytes]:
    """Decompressed bytes of a (multi-member) gzip file or a plain file; a truncated or
    corrupt gzip stream ends the iteration and sets `scan.break_reason`. Hashes the source."""
    src_hash = hashlib.sha256()

    def read(n: int) -> bytes:
        block = f.read(n)
        src_hash.update(block)
        scan.source_bytes += len(block)
        return block

    def broke(reason: str) -> None:
        scan.break_reason = reason

    with open(path, "rb") as f:
        if is_gzip(f):
            yield from gunzip_members(read, broke, read_bytes=CHUNK_BYTES)
            for _ in iter(lambda: read(CHUNK_BYTES), b""):
                pass  # after a break: keep hashing the whole source
        else:
            yield from iter(lambda: read(CHUNK_BYTES), b"")
    scan.source_sha256 = src_hash.hexdigest()


def iter_lines(path: Path, scan: SourceScan) -> Iterator[list[bytes]]:
    """Blocks of lines (no newline). After a break, the half line it cut is not yielded
    (recorded in `scan.dropped_partial_line`); content hash and counts cover what is yielded."""
    content = hashlib.sha256()
    tail = b""
    for chunk in _decompressed(path, scan):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        if lines:
            for line in lines:
                content.update(line)
                content.update(b"\n")
                scan.content_bytes += len(line) + 1
            scan.lines += len(lines)
            yield lines
    if tail:
        if scan.break_reason:
            scan.dropped_partial_line = True
        else:
            content.update(tail)
            scan.content_bytes += len(tail)
            scan.lines += 1
            scan.final_newline = False
            yield [tail]
    scan.content_sha256 = content.hexdigest()


# ---- archive ---------------------------------------------------------------------------------

def archive_path(settings: Settings, exchange: str, symbol: str, day: str, name: str) -> Path:
    return (settings.archive_dir / ARCHIVE_SUBDIR / f"exchange={check_exchange(exchange)}"
            / f"symbol={check_symbol(symbol)}" / f"date={check_date(day)}" / f"{name}.parquet")


def _meta(scan: SourceScan) -> dict[str, str]:
    facts = {
        "source_sha256": scan.source_sha256, "source_bytes": str(scan.source_bytes),
        "content_sha256": scan.content_sha256, "content_bytes": str(scan.content_bytes),
        "lines": str(scan.lines), "final_newline": "1" if scan.final_newline else "0",
        "break_reason": scan.break_reason or "",
    }
    return {META_PREFIX + k: v for k, v in facts.items()}


def read_archive_meta(path: Path) -> dict[str, str]:
    raw = pq.read_metadata(path).metadata or {}
    return {k.decode().removeprefix(META_PREFIX): v.decode() for k, v in raw.items()
            if k.decode().startswith(META_PREFIX)}


def write_archive(src: Path, dest: Path, compression_level: int = 19) -> SourceScan:
    """Stream `src` into the archive Parquet `dest` (atomic: temp file then rename)."""
    scan = SourceScan()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
    line_no = 0
    with pq.ParquetWriter(tmp, ARCHIVE_SCHEMA, compression="zstd",
                          compression_level=compression_level,
                          use_dictionary=["file_name"], data_page_size=8 << 20) as writer:
        for block in _batched(iter_lines(src, scan), BATCH_LINES):
            n = len(block)
            writer.write_table(pa.table({
                "file_name": pa.array([src.name] * n, pa.string()),
                "line_no": pa.array(range(line_no, line_no + n), pa.int64()),
                "line": pa.array(block, pa.binary()),
            }, schema=ARCHIVE_SCHEMA))
            line_no += n
        writer.add_key_value_metadata(_meta(scan))
    os.replace(tmp, dest)
    return scan


def _batched(blocks: Iterator[list[bytes]], size: int) -> Iterator[list[bytes]]:
    buf: list[bytes] = []
    for block in blocks:
        buf.extend(block)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def archived_content(path: Path) -> Iterator[bytes]:
    """The archived decompressed bytes, in order (lines joined back with newlines)."""
    meta = read_archive_meta(path)
    final_newline = meta.get("final_newline", "1") == "1"
    total = int(meta["lines"])
    expected = 0
    pf = pq.ParquetFile(path)
    for i in range(pf.num_row_groups):
        group = pf.read_row_group(i, columns=["line_no", "line"])
        nos = group.column("line_no").to_pylist()
        if nos != list(range(expected, expected + len(nos))):
            raise ValueError(f"{path}: line numbers out of sequence near {expected}")
        for no, line in zip(nos, group.column("line").to_pylist(), strict=True):
            last = no == total - 1
            yield line if (last and not final_newline) else line + b"\n"
        expected += len(nos)
    if expected != total:
        raise ValueError(f"{path}: {expected} lines, metadata says {total}")


def verify_archive(path: Path, scan: SourceScan) -> str | None:
    """None if the archive holds exactly what the scan read, else what differs."""
    meta = read_archive_meta(path)
    digest = hashlib.sha256()
    lines = 0
    try:
        for piece in archived_content(path):
            digest.update(piece)
            lines += 1
    except ValueError as exc:
        return str(exc)
    if lines != scan.lines:
        return f"line count: archive {lines}, source {scan.lines}"
    if digest.hexdigest() != scan.content_sha256 or meta["content_sha256"] != scan.content_sha256:
        return "content sha256 differs between archive and source"
    return None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _day_dirs(raw_dir: Path) -> Iterator[tuple[str, str, str, Path]]:
    for ex_dir in sorted(Path(raw_dir).glob("exchange=*")):
        for sym_dir in sorted(ex_dir.glob("symbol=*")):
            for day_dir in sorted(sym_dir.glob("date=*")):
                exchange = ex_dir.name.split("=", 1)[1]
                symbol = sym_dir.name.split("=", 1)[1]
                day = day_dir.name.split("=", 1)[1]
                try:
                    check_exchange(exchange)
                    check_symbol(symbol)
                    check_date(day)
                except SettingsError:
                    continue  # not a store folder: never touch it
                yield exchange, symbol, day, day_dir


def archive_old(
    settings: Settings,
    older_than_days: int,
    *,
    today: dt.date | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Archive every raw file whose day is older than `older_than_days` (see module doc)."""
    if not isinstance(older_than_days, int) or older_than_days < 1:
        raise SettingsError(f"older_than_days must be an integer >= 1, got {older_than_days!r}")
    today = today or dt.datetime.now(dt.UTC).date()
    cutoff = today - dt.timedelta(days=older_than_days)
    report = RetentionReport(cutoff=cutoff.isoformat(), dry_run=dry_run)
    for exchange, symbol, day, day_dir in _day_dirs(settings.raw_dir):
        if dt.date.fromisoformat(day) >= cutoff:
            continue
        for src in sorted(p for p in day_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            dest = archive_path(settings, exchange, symbol, day, src.name)
            report.files.append(_archive_one(src, dest, dry_run))
        if not dry_run and day_dir.is_dir() and not any(day_dir.iterdir()):
            day_dir.rmdir()
    return report


def _archive_one(src: Path, dest: Path, dry_run: bool) -> FileOutcome:
    if dest.exists():
        meta = read_archive_meta(dest)
        if meta.get("source_sha256") == _sha256_file(src):
            # Archived by an earlier run and kept (truncated), or deleted failed: report.
            return FileOutcome(str(src), str(dest), "already_archived",
                               int(meta.get("lines", 0)), meta.get("break_reason") or None)
        return FileOutcome(str(src), str(dest), "error", 0,
                           "an archive of another file with this name exists; kept both")
    if dry_run:
        return FileOutcome(str(src), str(dest), "would_archive")
    scan = write_archive(src, dest)
    problem = verify_archive(dest, scan)
    if problem:
        dest.unlink()
        return FileOutcome(str(src), None, "error", scan.lines, f"verification failed: {problem}")
    if scan.break_reason:
        return FileOutcome(str(src), str(dest), "archived_kept_truncated", scan.lines,
                           scan.break_reason)
    if _sha256_file(src) != scan.source_sha256:
        return FileOutcome(str(src), str(dest), "error", scan.lines,
                           "source changed while archiving; hot copy kept")
    src.unlink()
    return FileOutcome(str(src), str(dest), "archived_deleted", scan.lines)


# ---- restore ---------------------------------------------------------------------------------

def restore(
    settings: Settings,
    *,
    day: str | None = None,
    symbol: str | None = None,
    exchange: str | None = None,
) -> list[FileOutcome]:
    """Write archived files back into the raw store (see module doc); filters are optional."""
    base = settings.archive_dir / ARCHIVE_SUBDIR
    ex_glob = f"exchange={check_exchange(exchange)}" if exchange else "exchange=*"
    sym_glob = f"symbol={check_symbol(symbol)}" if symbol else "symbol=*"
    day_glob = f"date={check_date(day)}" if day else "date=*"
    out = []
    for arch in sorted(base.glob(f"{ex_glob}/{sym_glob}/{day_glob}/*.parquet")):
        if arch.name.startswith("."):
            continue
        rel = arch.parent.relative_to(base)
        target = settings.raw_dir / rel / arch.name.removesuffix(".parquet")
        out.append(_restore_one(arch, target))
    return out


def _restore_one(arch: Path, target: Path) -> FileOutcome:
    meta = read_archive_meta(arch)
    lines = int(meta["lines"])
    if target.exists():
        scan = SourceScan()
        for _ in iter_lines(target, scan):
            pass
        same = scan.content_sha256 == meta["content_sha256"] and not scan.break_reason
        return FileOutcome(str(target), str(arch), "present" if same else "kept_existing", lines,
                           None if same else "a different hot file exists (e.g. the truncated "
                           "original); not overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    digest = hashlib.sha256()
    with open(tmp, "wb") as raw:
        # The store's files are gzip; a plain file (no .gz) is restored plain.
        sink = (gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if target.name.endswith(".gz")
                else contextlib.nullcontext(raw))
        with sink as out:
            for piece in archived_content(arch):
                digest.update(piece)
                out.write(piece)
    if digest.hexdigest() != meta["content_sha256"]:
        tmp.unlink()
        return FileOutcome(str(target), str(arch), "error", lines, "archive content sha256 mismatch")
    os.replace(tmp, target)
    return FileOutcome(str(target), str(arch), "restored", lines)
