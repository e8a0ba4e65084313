"""The stable CLI, the generated reference page, and warm-up across several partitions."""

import itertools
import json
import subprocess
import sys

import numpy as np
import polars as pl

from trade_pipeline.features.batch import compute_features
from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.features.reference import DEFAULT_PATH, render
from trade_pipeline.features.warmup import compute_partition, select_warmup
from trade_pipeline_tests.features.books import frame, l1, random_frame


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "trade_pipeline", *args], capture_output=True,
                          text=True, check=False)


def test_features_command_both_engines(tmp_path):
    snaps = random_frame(np.random.default_rng(5), 400, n_sessions=2, depth_missing_prob=0.2)
    src = tmp_path / "snaps.parquet"
    snaps.write_parquet(src)
    outs = {}
    for engine in ("batch", "online"):
        out = tmp_path / f"{engine}.parquet"
        res = _cli("features", "--input", str(src), "--output", str(out), "--engine", engine)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.strip().splitlines()[-1])["rows"] == 400
        outs[engine] = pl.read_parquet(out)
    assert outs["batch"].columns[4:] == list(FEATURE_NAMES)
    assert outs["batch"].equals(outs["online"])
    assert outs["batch"].equals(compute_features(snaps))
    bad = _cli("features", "--input", str(tmp_path / "nope.parquet"), "--output", str(out))
    assert bad.returncode == 2 and "not found" in bad.stderr
    bad = _cli("features", "--input", str(src), "--output", str(out), "--params", '{"x": 1}')
    assert bad.returncode == 2 and "unknown feature parameter" in bad.stderr


def test_reference_page_is_generated_from_the_catalog():
    assert DEFAULT_PATH.read_text() == render(), "run `trade-pipeline features-reference`"


def _partitions(snaps: pl.DataFrame, cuts: list[float]) -> list[pl.DataFrame]:
    ts = snaps["timestamp"].dt.epoch("us") - snaps["timestamp"].dt.epoch("us").min()
    edges = [0, *[c * 1e6 for c in cuts], float("inf")]
    return [snaps.filter((ts >= lo) & (ts < hi)) for lo, hi in itertools.pairwise(edges)]


def test_warmup_walks_back_several_partitions_for_a_frozen_quote():
    # one session, 1 row per second for 1000 s; the bid never changes after t = 5 s, the ask
    # changes until the end; partitions cut at 400 s and 800 s (the last one alone needs the
    # bid change 795 s back, two partitions back)
    rows = [l1(t, 100 + (t if t <= 5 else 5), 1 + t % 3, 200 + t % 7, 2) for t in range(1000)]
    snaps = frame(rows)
    parts = _partitions(snaps, [400, 800])
    full = compute_features(snaps)
    reads = []

    def read_previous(k):
        reads.append(k)
        return parts[2 - k] if 2 - k >= 0 else None

    feats, warm = compute_partition(parts[2], read_previous)
    assert reads == [1, 2] and warm.complete
    assert warm.n_rows < 320  # the 5 min tail, its predecessor, the change rows
    tail = full.slice(parts[0].height + parts[1].height)
    assert feats["bid_quote_lifetime"].to_list() == tail["bid_quote_lifetime"].to_list()
    x, y = feats.select(FEATURE_NAMES).to_numpy(), tail.select(FEATURE_NAMES).to_numpy()
    assert np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_select_warmup_needs_more_history_without_a_change():
    snaps = frame([l1(t, 100, 1, 101, 1) for t in range(10)])
    t0 = int(snaps["timestamp"].dt.epoch("us")[-1]) + 1_000_000
    rows, complete = select_warmup(snaps, t0, start_seen=False)
    assert not complete  # no change seen and the session start not seen
    rows, complete = select_warmup(snaps, t0, start_seen=True)
    assert complete and rows.height == 10  # all within 5 min
