"""Property: archive then restore gives back exactly the decompressed bytes, for any lines,
any gzip member boundaries, with or without a final newline."""

import gzip
import hashlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trade_pipeline.lake import retention
from trade_pipeline.settings import Settings

line = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line, min_size=1, max_size=60), member=st.integers(1, 10),
       final_newline=st.booleans())
def test_archive_restore_round_trip(lines: list[bytes], member: int, final_newline: bool) -> None:
    content = b"\n".join(lines) + (b"\n" if final_newline else b"")
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load(home=Path(tmp) / "home")
        day = s.raw_dir / "exchange=bybit" / "symbol=BTCUSDT" / "date=2024-01-01"
        day.mkdir(parents=True)
        src = day / "000000000000-00000000.raw.gz"
        pieces = content.split(b"\n")
        with open(src, "wb") as out:  # several gzip members, as the collector flushes
            for i in range(0, len(pieces), member):
                chunk = b"\n".join(pieces[i:i + member])
                if i + member < len(pieces):
                    chunk += b"\n"
                out.write(gzip.compress(chunk))
        report = retention.archive_old(s, 1)
        assert [f.action for f in report.files] == ["archived_deleted"]
        assert not src.exists()
        assert [o.action for o in retention.restore(s)] == ["restored"]
        restored = gzip.decompress(src.read_bytes())
        assert hashlib.sha256(restored).digest() == hashlib.sha256(content).digest()
