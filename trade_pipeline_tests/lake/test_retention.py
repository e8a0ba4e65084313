"""Retention: archive old raw days to Parquet, verify before delete, restore byte-identically."""

import datetime as dt
import gzip
import hashlib
import shutil
import zlib
from pathlib import Path

import pytest

from trade_pipeline.cli import main
from trade_pipeline.lake import retention
from trade_pipeline.settings import SettingsError

TODAY = dt.date(2025, 7, 20)


def day_dir(settings, day: str) -> Path:
    d = settings.raw_dir / "exchange=bybit" / "symbol=BTCUSDT" / f"date={day}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def decompressed(path: Path) -> bytes:
    """Every readable byte of a (possibly truncated) multi-member gzip file."""
    scan = retention.SourceScan()
    return b"".join(retention._decompressed(path, scan))


def write_members(path: Path, lines: list[bytes], per_member: int = 50) -> None:
    """A collector-style file: one gzip member per flush."""
    with open(path, "wb") as out:
        for i in range(0, len(lines), per_member):
            out.write(gzip.compress(b"".join(line + b"\n" for line in lines[i:i + per_member])))


def test_archive_deletes_only_verified_copies_and_restore_is_identical(
        settings, bybit_delta_files) -> None:
    old = day_dir(settings, "2025-07-07")
    src = bybit_delta_files[0]
    shutil.copy(src, old / src.name)
    collector = old / "101500000000-0a1b2c3d.raw.gz"
    frames = [f"{1751865309219000000 + i} {{\"topic\":\"orderbook.50.BTCUSDT\",\"i\":{i}}}".encode()
              for i in range(500)]
    write_members(collector, frames)
    recent = day_dir(settings, "2025-07-19")
    shutil.copy(src, recent / src.name)
    before = {p.name: hashlib.sha256(decompressed(p)).hexdigest() for p in old.iterdir()}

    report = retention.archive_old(settings, 7, today=TODAY)
    assert report.counts() == {"archived_deleted": 2}
    assert not old.exists()  # emptied day folder removed
    assert (recent / src.name).exists()  # too recent: untouched
    arch = retention.archive_path(settings, "bybit", "BTCUSDT", "2025-07-07", collector.name)
    meta = retention.read_archive_meta(arch)
    assert int(meta["lines"]) == 500 and meta["break_reason"] == ""

    again = retention.archive_old(settings, 7, today=TODAY)
    assert again.files == []

    restored = retention.restore(settings, day="2025-07-07", symbol="BTCUSDT")
    assert sorted(o.action for o in restored) == ["restored", "restored"]
    after = {p.name: hashlib.sha256(decompressed(p)).hexdigest() for p in old.iterdir()}
    assert after == before
    # Restoring again never overwrites.
    assert {o.action for o in retention.restore(settings)} == {"present"}


def test_truncated_file_is_archived_to_the_break_and_kept(settings, bybit_truncated_file) -> None:
    old = day_dir(settings, "2025-07-10")
    hot = old / bybit_truncated_file.name
    shutil.copy(bybit_truncated_file, hot)
    report = retention.archive_old(settings, 3, today=TODAY)
    [outcome] = report.files
    assert outcome.action == "archived_kept_truncated"
    assert "truncated" in outcome.detail or "corrupt" in outcome.detail
    assert hot.exists() and hot.read_bytes() == bybit_truncated_file.read_bytes()
    # The archive holds every complete line before the break.
    readable = decompressed(bybit_truncated_file)
    complete = readable[: readable.rfind(b"\n") + 1]
    arch = Path(outcome.archive)
    assert b"".join(retention.archived_content(arch)) == complete
    assert outcome.lines == complete.count(b"\n") > 700
    # A second run reports it as already archived and still keeps it.
    assert [f.action for f in retention.archive_old(settings, 3, today=TODAY).files] == ["already_archived"]
    assert hot.exists()
    # Restore does not replace the kept original.
    assert [o.action for o in retention.restore(settings)] == ["kept_existing"]
    hot.unlink()
    assert [o.action for o in retention.restore(settings)] == ["restored"]
    assert decompressed(hot) == complete


def test_verification_failure_keeps_the_hot_copy(settings, bybit_delta_files, monkeypatch) -> None:
    old = day_dir(settings, "2025-07-06")
    hot = old / bybit_delta_files[0].name
    shutil.copy(bybit_delta_files[0], hot)
    monkeypatch.setattr(retention, "verify_archive", lambda path, scan: "line count: archive 1, source 2")
    [outcome] = retention.archive_old(settings, 7, today=TODAY).files
    assert outcome.action == "error" and "verification failed" in outcome.detail
    assert hot.exists()
    assert not retention.archive_path(settings, "bybit", "BTCUSDT", "2025-07-06", hot.name).exists()


def test_archive_detects_a_tampered_archive(settings, bybit_delta_files, tmp_path) -> None:
    src = bybit_delta_files[0]
    dest = tmp_path / "a.parquet"
    scan = retention.write_archive(src, dest)
    assert retention.verify_archive(dest, scan) is None
    scan.content_sha256 = "0" * 64
    assert "sha256" in retention.verify_archive(dest, scan)


def test_corrupt_member_is_reported(settings, tmp_path) -> None:
    good = gzip.compress(b"1 {}\n2 {}\n")
    path = day_dir(settings, "2025-07-01") / "000000000000-deadbeef.raw.gz"
    path.write_bytes(good + b"\x1f\x8b\x08\x00garbage-not-deflate")
    [outcome] = retention.archive_old(settings, 7, today=TODAY).files
    assert outcome.action == "archived_kept_truncated" and outcome.lines == 2
    assert zlib.crc32(path.read_bytes())  # still there


@pytest.mark.parametrize("days", [0, -1])
def test_bad_age_is_rejected(settings, days) -> None:
    with pytest.raises(SettingsError, match="older_than_days"):
        retention.archive_old(settings, days)


def test_cli_archive_and_restore(tmp_path, bybit_delta_files, capsys) -> None:
    home = tmp_path / "h"
    d = home / "raw" / "exchange=bybit" / "symbol=BTCUSDT" / "date=2020-01-01"
    d.mkdir(parents=True)
    shutil.copy(bybit_delta_files[0], d / bybit_delta_files[0].name)
    assert main(["--home", str(home), "archive", "--older-than-days", "30"]) == 0
    assert "archived_deleted" in capsys.readouterr().out
    assert not d.exists()
    assert main(["--home", str(home), "restore", "--date", "2020-01-01", "--symbol", "BTCUSDT"]) == 0
    assert "restored" in capsys.readouterr().out
    assert (d / bybit_delta_files[0].name).exists()
    assert main(["--home", str(home), "restore", "--symbol", "btc;rm"]) == 2
