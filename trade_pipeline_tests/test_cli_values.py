"""Issue 15 items 4 and 9: values the CLI must refuse with one line and exit 2, and outputs
that would replace a capture or land in the raw store."""

import hashlib
import os
import shutil

import pytest

from trade_pipeline import cli


def _run(tmp_path, capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main(["--home", str(tmp_path / "home"), *argv])
    except SystemExit as exc:  # argparse's own validation
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, option", [
    (["train", "--margin", "nan"], "--margin"),  # issue: the champion was never replaced
    (["train", "--margin", "inf"], "--margin"),
    (["train", "--margin", "-0.1"], "--margin"),
    (["train", "--threads", "0"], "--threads"),
    (["train", "--threads", "-2"], "--threads"),
    (["train", "--trials", "0"], "--trials"),
    (["train", "--folds", "0"], "--folds"),
    (["train", "--top-k", "0"], "--top-k"),
    (["features", "--input", "x.parquet", "--output", "y.parquet", "--params", "[]"], "--params"),
    (["features", "--input", "x.parquet", "--output", "y.parquet", "--params", "3"], "--params"),
    (["features", "--input", "x.parquet", "--output", "y.parquet", "--params", "{bad"], "--params"),
    (["import-legacy", "x.db", "--max-gap-seconds", "-1"], "--max-gap-seconds"),
])
def test_wrong_values_are_refused_before_any_work(tmp_path, capsys, argv, option):
    code, _, err = _run(tmp_path, capsys, *argv)
    assert code == 2 and option in err and "Traceback" not in err


@pytest.mark.parametrize("params", ['{"impact_qty": true}', '{"ofi_levels": true}'])
def test_boolean_feature_parameters_are_refused(tmp_path, capsys, params):
    src = tmp_path / "s.parquet"
    src.write_bytes(b"PAR1")  # never read: the parameters are checked first
    code, _, err = _run(tmp_path, capsys, "features", "--input", str(src), "--output",
                        str(tmp_path / "f.parquet"), "--params", params)
    assert code == 2 and "must be" in err


@pytest.fixture
def capture(tmp_path, shared_data):
    src = shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250706_064238.jsonl.gz"
    dst = tmp_path / "capture.jsonl.gz"
    shutil.copy(src, dst)
    return dst


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "relative"])
def test_snapshots_output_equal_to_an_input_is_refused(tmp_path, capsys, capture, how,
                                                      monkeypatch):
    """Issue: `--output` equal to an input replaced the capture with Parquet and exited 0."""
    before = _sha(capture)
    out = capture
    if how == "symlink":
        out = tmp_path / "link.parquet"
        out.symlink_to(capture)
    elif how == "hardlink":
        out = tmp_path / "hard.parquet"
        os.link(capture, out)
    elif how == "relative":
        monkeypatch.chdir(tmp_path)
        out = capture.name
    code, out_text, err = _run(tmp_path, capsys, "snapshots", "--input", str(capture),
                               "--output", str(out), "--no-progress")
    assert code == 2 and "refusing to replace a capture" in err and out_text == ""
    assert _sha(capture) == before
    assert not list(tmp_path.glob(".*tmp*"))


def test_snapshots_never_write_inside_the_raw_store(tmp_path, capsys, capture):
    home = tmp_path / "home"
    code, _, _ = _run(tmp_path, capsys, "import-captures", str(capture))
    assert code == 0
    stored = next((home / "raw").rglob("*.jsonl.gz"))
    before = {p: _sha(p) for p in (home / "raw").rglob("*") if p.is_file()}
    for target in (stored.parent / "snap.parquet", home / "raw" / "snap.parquet", stored):
        code, _, err = _run(tmp_path, capsys, "snapshots", "--input", str(stored),
                            "--output", str(target), "--no-progress")
        assert code == 2 and ("raw capture store" in err or "replace a capture" in err), err
    after = {p: _sha(p) for p in (home / "raw").rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing replaced
    code, _, err = _run(tmp_path, capsys, "snapshots", "--input", str(stored), "--output",
                        str(tmp_path / "ok.parquet"), "--state-out", str(stored),
                        "--no-progress")
    assert code == 2 and "replace a capture" in err  # --state-out is checked too
    # the same capture, written outside the store: fine
    code, _, err = _run(tmp_path, capsys, "snapshots", "--input", str(stored), "--output",
                        str(tmp_path / "ok.parquet"), "--no-progress")
    assert code == 0, err
    assert (tmp_path / "ok.parquet").is_file()
