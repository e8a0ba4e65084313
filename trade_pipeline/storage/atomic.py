"""One writer per output file, and never a half-written file.

The rule, for every file the pipeline produces on a local disk (lake partitions, every
command's `--output`, checkpoints and settings it writes):

- **Atomic**: the bytes go to a temporary file in the target's own folder
  (`.<name>.tmp-<pid>-<random>`), which is flushed to disk and then renamed over the target.
  A reader sees the previous complete file or the new complete file, never a mix. A writer
  that dies, even by `kill -9`, leaves the previous file as it was; the next writer of the
  same target removes the dead writer's temporary file.
- **Single writer**: while writing, the writer holds an exclusive lock (`flock`) on
  `.<name>.lock` beside the target. A second writer of the same target fails at once with
  `OutputBusy`, naming the holder (pid, host, since when, its command line), instead of
  racing it. Commands take the lock when they start and keep it until their output is in
  place, so two runs on the same `--output` never both compute; the lake's partition writers
  take it for the write. The kernel drops the lock when its holder dies, so a killed writer
  never blocks the next one; the lock file is removed on release.

Object stores (s3://...) have no such lock: there each object PUT is atomic and the last
complete writer wins (`layout.write_partition`).
"""

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from trade_pipeline.errors import TradePipelineError

TMP_MARK = ".tmp-"


class OutputError(TradePipelineError, OSError):
    """An output path cannot be written (a directory, a folder that cannot be created...)."""


class OutputBusy(OutputError):
    """Another process is writing the same output right now."""


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}{TMP_MARK}"


# Locks this process holds, per thread: (lock path, thread id) -> [fd, depth]. A thread that
# already holds a target's lock may take it again (a command holds its --output from the
# start; the write inside takes it once more). Another thread opens its own descriptor and
# is refused by flock like another process would be.
_held: dict[tuple[str, int], list[int]] = {}
_held_guard = threading.Lock()


def _holder_text(fd: int) -> str:
    # The holder writes its description just after taking the lock: give it a moment.
    info: dict = {}
    for _ in range(40):
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            info = {}
        if info:
            break
        time.sleep(0.005)
    if not info:
        return "another process"
    command = info.get("command", "")
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
            + (f" ({command})" if command else ""))


def _describe_self() -> bytes:
    return json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(os.path.basename(a) if i == 0 else a
                            for i, a in enumerate(sys.argv))[:300],
    }).encode()


def _try_lock(path: Path) -> int | str:
    """An fd holding the lock on `path`, or the holder's description when it is taken."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
            holder = _holder_text(fd)
            os.close(fd)
            return holder
        # The previous holder unlinks the file on release: if it did so between our open and
        # our flock, we locked an orphan inode; start again on the current file.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino):
            os.close(fd)
            continue
        return fd


def _check_target(target: Path, what: str) -> None:
    if target.is_dir():
        raise OutputError(f"{what} {target} is a directory; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {target}: cannot create its folder "
                          f"({exc.strerror or exc})") from None
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {target}: its folder {target.parent} is not writable")


def _remove_stale_tmps(target: Path) -> None:
    # Only the lock holder runs this: every other temporary file of this target belongs to a
    # writer that died before renaming it.
    prefix = _tmp_prefix(target)
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if entry.name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def exclusive(target: str | os.PathLike, what: str = "output",
              wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the single-writer lock of `target` (see the module docstring) for the block.

    Raises `OutputBusy` naming the holder when another writer has it (after retrying for
    up to `wait_s` seconds), `OutputError` when the target is a directory or its folder
    cannot be written. Yields the target as an absolute Path."""
    target = Path(target).absolute()
    _check_target(target, what)
    lock = lock_path(target)
    key = (str(lock), threading.get_ident())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield target
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    deadline = time.monotonic() + wait_s
    while True:
        got = _try_lock(lock)
        if isinstance(got, int):
            break
        if time.monotonic() >= deadline:
            raise OutputBusy(f"{what} {target} is being written by {got}; wait for it to "
                             "finish or write elsewhere")
        time.sleep(0.05)
    fd = got
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _describe_self(), 0)
        _remove_stale_tmps(target)
        with _held_guard:
            _held[key] = [fd, 1]
        yield target
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # while still holding it: see _try_lock
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, what: str = "output",
                wait_s: float = 0.0) -> Iterator[Path]:
    """`with atomic_path(out) as tmp:` write the file `tmp`; when the block ends normally it
    replaces `out` (flushed first). If the block raises, or writes nothing at all (no `tmp`
    file), `out` is left as it was. Holds `exclusive(out)` throughout."""
    with exclusive(target, what, wait_s) as final:
        tmp = final.with_name(f"{_tmp_prefix(final)}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            yield tmp
            if tmp.exists():
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
                _fsync_dir(final.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def write_bytes_atomic(data: bytes, target: str | os.PathLike, what: str = "output") -> Path:
    with atomic_path(target, what) as tmp:
        tmp.write_bytes(data)
    return Path(target).absolute()


def write_text_atomic(text: str, target: str | os.PathLike, what: str = "output") -> Path:
    return write_bytes_atomic(text.encode(), target, what)


def write_parquet_atomic(table, target: str | os.PathLike, what: str = "output",
                         wait_s: float = 0.0, **parquet_options) -> Path:
    """A polars DataFrame or pyarrow Table as one Parquet file, atomically (options go to
    pyarrow's writer)."""
    import pyarrow.parquet as pq

    arrow = table.to_arrow() if hasattr(table, "to_arrow") else table
    with atomic_path(target, what, wait_s) as tmp:
        pq.write_table(arrow, tmp, **parquet_options)
    return Path(target).absolute()
