"""The one truncation-tolerant multi-member gzip reader, and its two users agreeing."""

import gzip
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.lake.retention import SourceScan, iter_lines
from trade_pipeline.market.readers import FileStatus, iter_line_blocks
from trade_pipeline.storage.gzip_stream import gunzip_members, is_gzip


def _members(blocks: list[bytes]) -> bytes:
    return b"".join(gzip.compress(b, mtime=0) for b in blocks)


def _gunzip(blob: bytes, read_bytes: int = 7, max_out: int = 5) -> tuple[bytes, list[str]]:
    breaks: list[str] = []
    out = b"".join(gunzip_members(io.BytesIO(blob).read, breaks.append, read_bytes, max_out))
    return out, breaks


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=5), st.data())
def test_any_cut_yields_a_prefix_and_reports_a_break_inside_a_member(blocks, data) -> None:
    blob = _members(blocks)
    content = b"".join(blocks)
    out, breaks = _gunzip(blob)
    assert out == content and breaks == []
    cut = data.draw(st.integers(0, len(blob)))
    out, breaks = _gunzip(blob[:cut])
    assert content.startswith(out)
    ends = [0]
    for b in blocks:
        ends.append(ends[-1] + len(gzip.compress(b, mtime=0)))
    if cut in ends:  # cut between members: nothing is broken, whole members come out
        assert breaks == [] and out == b"".join(blocks[: ends.index(cut)])
    else:
        assert len(breaks) == 1 and "truncated" in breaks[0]


def test_corrupt_member_stops_after_the_good_ones_and_says_where() -> None:
    good = gzip.compress(b"a\nb\n", mtime=0)
    bad = bytearray(gzip.compress(b"c\n" * 100, mtime=0))
    bad[2] = 0  # compression method 0: zlib rejects the member header
    out, breaks = _gunzip(good + bytes(bad), read_bytes=1 << 16, max_out=1 << 20)
    assert out == b"a\nb\n"
    assert len(breaks) == 1 and breaks[0].startswith("corrupt gzip data at source byte ~")
    with io.BytesIO(b"\x1f\x8bxx") as f:
        assert is_gzip(f) and f.tell() == 0
    with io.BytesIO(b"{}") as f:
        assert not is_gzip(f)


def test_readers_and_retention_read_the_same_lines(tmp_path) -> None:
    lines = [b'{"n":%d}' % i for i in range(3000)]
    blob = _members([b"\n".join(lines[i:i + 400]) + b"\n" for i in range(0, 3000, 400)])
    for name, data in (("whole", blob), ("cut", blob[:-37])):
        path = tmp_path / f"{name}.gz"
        path.write_bytes(data)
        status = FileStatus(str(path))
        scan = SourceScan()
        got_readers = [ln for block in iter_line_blocks(path, status) for ln in block]
        got_retention = [ln for block in iter_lines(path, scan) for ln in block]
        assert got_readers == got_retention == lines[: len(got_readers)]
        assert status.reason == scan.break_reason
        assert (name == "cut") == status.truncated == scan.dropped_partial_line
        assert scan.source_bytes == len(data)
