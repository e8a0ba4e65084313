"""Loading the definitions: the daily partitions start where the settings say (where the
data begins), and nothing Dagster deprecates, supersedes or ships as a preview is used.

Each case loads `trade_pipeline.definitions` in a fresh interpreter: the partitions are
built at import, and warnings fire only on the first use.
"""

import json
import os
import re
import subprocess
import sys

import pytest

PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import dagster as dg
    import trade_pipeline.definitions as d
    graph = d.defs.resolve_asset_graph()
    for job in d.defs.jobs or []:
        d.defs.resolve_job_def(job.name)
    d.defs.resolve_all_job_defs()
    d.defs.get_repository_def()
from trade_pipeline.defs.partitions import DAILY
found = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
         if "dagster" in w.filename or "trade_pipeline" in w.filename
         or w.category.__module__.startswith("dagster")]
print(json.dumps({"start": DAILY.start.strftime("%Y-%m-%d"), "warnings": found}))
"""


def _load(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRADE_PIPELINE_PARTITIONS_START", "TRADE_PIPELINE_HOME")}
    return {**env, "TRADE_PIPELINE_HOME": str(tmp_path / "home"), **extra}


# Beta (stable API, may still change in minor releases) and used on purpose: a backfill of
# l2_snapshots runs its days in one run, in order, because each day continues the previous
# day's book checkpoint (defs/ingest.py). Jobs that mix that policy with the per-day default
# (the daily schedule's job, the demo) then run one partition per run, as Dagster says: what
# they do anyway (one day each).
DELIBERATE = re.compile(
    r"BetaWarning: Parameter `backfill_policy` of function `asset`"
    r"|UserWarning: Asset job \w+ materializes assets with varying BackfillPolicies\. Using "
    r"backfill policy with minimum `max_partitions_per_run`: "
    r"BackfillPolicy\.multi_run\(max_partitions_per_run=1\)")


def test_no_dagster_deprecation_preview_or_supersession_warnings(tmp_path):
    loaded = _load(_env(tmp_path))
    assert [w for w in loaded["warnings"] if not DELIBERATE.match(w)] == []
    assert loaded["start"] == "2024-08-01"  # the default, without a setting


def test_partitions_start_from_the_home_then_the_environment(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text('partitions_start = "2025-07-06"\n')
    assert _load(_env(tmp_path))["start"] == "2025-07-06"
    env = _env(tmp_path, TRADE_PIPELINE_PARTITIONS_START="2025-07-01")
    assert _load(env)["start"] == "2025-07-01"  # the environment overrides the home


@pytest.mark.parametrize("content, words", [
    ('partitions_start = "2025-13-01"\n', "partitions_start: invalid date '2025-13-01'"),
    ("partitions_start = 20250701\n", "partitions_start must be a string"),
    ('start = "2025-07-01"\n', "unknown keys ['start']"),
    ("partitions_start = \n", "not valid TOML"),
])
def test_a_wrong_home_setting_is_one_line(tmp_path, content, words):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(content)
    done = subprocess.run([sys.executable, "-m", "trade_pipeline", "--home", str(home),
                           "monitor", "--json"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"trade-pipeline: error: {home / 'settings.toml'}: ")
    assert words in lines[0], lines


def test_the_demo_records_where_its_data_begins(tmp_path):
    from trade_pipeline.commands.demo import record_partitions_start
    from trade_pipeline.settings import Settings

    settings = Settings.load(home=tmp_path / "h").ensure_dirs()
    assert record_partitions_start(settings, "2026-01-10") == "2026-01-10"
    assert Settings.load(home=settings.home).partitions_start == "2026-01-10"
    assert record_partitions_start(settings, "2026-01-12") == "2026-01-10"  # keeps the earliest
    assert record_partitions_start(settings, "2026-01-05") == "2026-01-05"
    assert Settings.load(home=settings.home).partitions_start == "2026-01-05"
