"""Streaming decompression of multi-member gzip files that tolerates a broken tail.

Raw captures are written as one gzip member per flush, so a file holds any number of members
and a crash can leave its last member cut short. `gunzip_members` yields the decompressed
bytes of every member in pieces of bounded size (memory stays flat however large the file)
and, when the stream breaks (truncated member, corrupt data), stops after the last bytes it
could decompress and reports the break through `on_break` instead of raising: callers keep
every complete line before the break and record it. The capture readers (batch ingest) and
retention (archiving) both read raw files through it.
"""

import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1 << 20  # most decompressed bytes yielded at once


def is_gzip(f: BinaryIO) -> bool:
    """Whether the seekable binary file `f` starts with the gzip magic (position kept at 0)."""
    f.seek(0)
    magic = f.read(2)
    f.seek(0)
    return magic == GZIP_MAGIC


def gunzip_members(
    read: Callable[[int], bytes],
    on_break: Callable[[str], None],
    read_bytes: int = CHUNK_BYTES // 4,
    max_out: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """Decompressed bytes of a (multi-member) gzip stream, in pieces of at most `max_out`.

    `read(n)` returns the next compressed bytes (b"" at the end), e.g. `file.read`. A break
    ends the iteration and calls `on_break(reason)` once; the reason names the kind of break
    and, for corrupt data, about where in the compressed stream it was met.
    """
    d = zlib.decompressobj(31)
    fed = False  # the current member has input that has not reached its end yet
    consumed = 0
    while True:
        data = read(read_bytes)
        if not data:
            break
        consumed += len(data)
        while data:
            fed = True
            try:
                out = d.decompress(data, max_out)
            except zlib.error as exc:
                on_break(f"corrupt gzip data at source byte ~{consumed}: {exc}")
                return
            if out:
                yield out
            if d.eof:  # next member
                data = d.unused_data
                d = zlib.decompressobj(31)
                fed = False
            else:
                data = d.unconsumed_tail
    if fed and not d.eof:
        tail = d.flush()
        if tail:
            yield tail
        on_break("gzip stream ends inside a member (truncated file)")
