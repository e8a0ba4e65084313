"""Security: loopback binds, no secrets in code/config/logs/metadata, parameterized SQL,
strict identifiers (a hostile symbol is refused everywhere), no exchange API keys."""

import argparse
import ast
import contextlib
import gzip
import io
import re
import shutil
import sys
from pathlib import Path

import dagster as dg
import pytest

from trade_pipeline.cli import build_parser, main
from trade_pipeline.defs.resources import PipelineResource, build_resources
from trade_pipeline_tests.conftest import REPO_ROOT

from .servers import free_port, listening_addresses, server

HOSTILE_SYMBOL = "BTC'; DROP TABLE trades; --"
HOSTILE_DATE = "2025-07-07'; DROP TABLE trades; --"
SECRETS = {
    "TRADE_PIPELINE_PG_PASSWORD": "dummy-secret-7f3a",
    "AWS_ACCESS_KEY_ID": "AKIADUMMYKEY7F3A0000",
    "AWS_SECRET_ACCESS_KEY": "dummy-aws-secret-9c1e",
    "TRADE_PIPELINE_REDIS_URL": "redis://:dummy-redis-pw-5b2d@127.0.0.1:6379/15",
}
SECRET_VALUES = ("dummy-secret-7f3a", "AKIADUMMYKEY7F3A0000", "dummy-aws-secret-9c1e",
                 "dummy-redis-pw-5b2d")
PACKAGE = REPO_ROOT / "trade_pipeline"
COMMITTED_CONFIG = [REPO_ROOT / p for p in ("Makefile", "workspace.yaml", "pyproject.toml")] + [
    p for p in (REPO_ROOT / "deploy").rglob("*") if p.is_file()
]


# ---- servers bind loopback ----------------------------------------------------------------


def test_make_ui_binds_loopback():
    makefile = (REPO_ROOT / "Makefile").read_text()
    ui = makefile.split("\nui:", 1)[1].split("\n\n", 1)[0]
    assert "-h 127.0.0.1" in ui and "0.0.0.0" not in makefile


def test_mlflow_script_defaults_to_loopback():
    script = (REPO_ROOT / "deploy" / "mlflow" / "run-server.sh").read_text()
    assert 'HOST="${MLFLOW_HOST:-127.0.0.1}"' in script and '--host "$HOST"' in script
    assert "--disable-security-middleware" not in script


def test_no_server_code_binds_all_interfaces():
    offenders = [
        f"{p.relative_to(REPO_ROOT)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"""["'](0\.0\.0\.0|::)["']""", line)
    ]
    assert not offenders, f"servers must bind 127.0.0.1 by default: {offenders}"


def _capture(tmp_path: Path) -> Path:
    import orjson

    record = {"exchange": "bybit", "symbol": "BTCUSDT", "timestamp_ms": 1751882400000,
              "received_timestamp_ms": 1751882400100, "type": "snapshot",
              "bids": [[100.0, 1.0]], "asks": [[100.1, 1.0]], "update_id": 1,
              "sequence_id": 1}
    path = tmp_path / "capture.jsonl.gz"
    path.write_bytes(gzip.compress(orjson.dumps(record) + b"\n"))
    return path


def test_replay_server_binds_loopback_by_default(tmp_path):
    from .servers import wait_http  # noqa: F401  (same helpers as the other server tests)

    port = free_port()
    args = [sys.executable, "-m", "trade_pipeline", "--home", str(tmp_path / "home"),
            "replay-server", str(_capture(tmp_path)), "--port", str(port)]
    import os
    import time

    with server(args, dict(os.environ), tmp_path / "replay.log") as proc:
        deadline = time.monotonic() + 60
        addrs: set = set()
        while time.monotonic() < deadline and not addrs:
            addrs = {a for a in listening_addresses(proc.pid) if a[1] == port}
            time.sleep(0.3)
        assert addrs, (tmp_path / "replay.log").read_text()[-2000:]
        assert {ip for ip, _ in addrs} == {"127.0.0.1"}


# ---- credentials --------------------------------------------------------------------------

# A literal credential: a quoted value for a password-like key, an unquoted YAML value for
# one, or `user:pass@` in a URL. Placeholders (ALL-CAPS words, `...`) and env references are
# not values.
SECRET_KEYS = r"(?:password|passwd|pg_password|secret_access_key|access_key_id|api_key|api_secret)"
QUOTED = re.compile(rf"""(?i)\b{SECRET_KEYS}\b["']?\s*[:=]\s*["']([^"'\s]{{3,}})["']""")
YAML_BARE = re.compile(rf"(?i)^\s*{SECRET_KEYS}\s*:\s*([^\s{{#\"']+)\s*(?:#.*)?$")
URL_CREDS = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@'\"]*:([^\s/@'\"]{3,})@")


def _is_placeholder(value: str) -> bool:
    return (value.isupper() or set(value) <= {"."} or value[0] in "${<"
            or value.lower() in {"true", "false", "null", "~", "none"})


def _literal_secrets(path: Path) -> list[str]:
    hits = []
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        for pattern in (QUOTED, YAML_BARE, URL_CREDS):
            for m in pattern.finditer(line):
                if not _is_placeholder(m.group(1)):
                    hits.append(f"{path.relative_to(REPO_ROOT)}:{i}: {m.group(0)}")
    return hits


def test_no_credentials_in_code_or_committed_config():
    files = [p for p in PACKAGE.rglob("*.py")] + [p for p in COMMITTED_CONFIG if p.exists()]
    hits = [h for p in files for h in _literal_secrets(p)]
    assert not hits, "literal credentials found:\n" + "\n".join(hits)


def test_the_literal_secret_scanner_can_fail(tmp_path):
    bad = REPO_ROOT / "deploy" / ".scanner-selftest.yaml"
    try:
        bad.write_text("password: hunter2secret\nuri: postgresql://bob:s3cret@db/x\n"
                       "password:\n  env: X\nuri2: redis://:PASSWORD@h:6379/0\n"
                       'conf = {"api_key": "abc123"}\n')
        assert len(_literal_secrets(bad)) == 3
    finally:
        bad.unlink()


def _hits(data: bytes) -> list[str]:
    return [s for s in SECRET_VALUES if s.encode() in data]


def _scan_tree(root: Path) -> list[str]:
    """Every file under root (gzip members decompressed too) that contains a secret value."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError, EOFError), gzip.open(io.BytesIO(data)) as f:
                data += f.read()
        found += [f"{path}: {s}" for s in _hits(data)]
    return found


@pytest.mark.postgres
@pytest.mark.slow
def test_dummy_secrets_never_reach_logs_metadata_or_artifacts(
    settings, tmp_path, monkeypatch, pg_dsn, capfd
):
    """Run the demo with dummy secrets in env, on a Postgres-backed instance
    (deploy/dagster.yaml, which uses the PG password). Then grep every log, artifact and store
    under the home, and the Postgres event log."""
    import psycopg

    from .test_postgres_storage import DEPLOY_YAML, pg_env

    for name, value in {**SECRETS, **pg_env(pg_dsn, SECRETS["TRADE_PIPELINE_PG_PASSWORD"])}.items():
        monkeypatch.setenv(name, value)
    # The demo keeps an existing instance config in its home: give it the deployment's.
    dagster_home = settings.dagster_home
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY_YAML, dagster_home / "dagster.yaml")
    monkeypatch.setenv("TRADE_PIPELINE_HOME", str(settings.home))

    assert main(["--home", str(settings.home), "demo"]) == 0
    out, err = capfd.readouterr()
    assert not _hits((out + err).encode()), "a secret was printed"
    leaks = _scan_tree(settings.home)  # the Dagster home is inside it
    assert not leaks, "secrets leaked into files:\n" + "\n".join(leaks[:20])
    with psycopg.connect(pg_dsn) as conn:
        events = conn.execute("SELECT event FROM event_logs").fetchall()
        runs = conn.execute("SELECT run_body FROM runs").fetchall()
    assert events and runs
    stored = "\n".join(r[0] for r in events + runs).encode()
    assert not _hits(stored), "a secret reached the Dagster event log / run storage"


DAY = "2025-07-07"


# ---- SQL and identifiers ------------------------------------------------------------------

# f-string SQL whose interpolations are reviewed identifiers, never user input:
# (file, interpolated expression) -> why it is safe.
REVIEWED_SQL_INTERPOLATIONS = {
    ("lake/migrations.py", "table"): "one of the constant LAKE_TABLES",
    ("lake/migrations.py", "lake_source(lake_dir, table)"):
        "settings.lake_dir, quoted with '' escaping in lake_source",
    ("trading/store.py", "table"): "a constant table name of the store",
    ("trading/store.py", "cols"): "column names from the store's constant schema",
    # Legacy column names come from the user's SQLite file: every one passes
    # legacy.quote_column (identifier pattern + DATA.md allow-list, double-quoted) before it
    # reaches SQL, and _open refuses a file with any other column name
    # (trade_pipeline_tests/lake/test_legacy.py::test_hostile_column_name_is_refused).
    ("lake/legacy.py", "non_numeric"): "quote_column'd BOOK columns",
    ("lake/legacy.py", "optional['update_id']"): "a quote_column'd legacy column or NULL",
    ("lake/legacy.py", "optional['exchange']"): "a quote_column'd legacy column or NULL",
    ("lake/legacy.py", "optional['data_source']"): "a quote_column'd legacy column or NULL",
    ("lake/legacy.py", "', '.join(numeric)"): "quote_column'd BOOK columns (+ CASE wrappers)",
    ("lake/legacy.py", "', '.join('?' * len(part))"): "placeholders; the ids are parameters",
    ("lake/legacy.py", "raw_json"): "quote_column'd legacy columns, read-only connection",
}


def test_sql_is_parameterized():
    """No SQL built with %-formatting or .format(); f-strings only interpolate UPPER_CASE
    constants or reviewed identifiers (never a symbol, date or path from a user)."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "sql", "query")
                    and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.BinOp) or (
                isinstance(arg, ast.Call) and getattr(arg.func, "attr", "") == "format"
            ):
                problems.append(f"{rel}:{node.lineno}: SQL built by formatting")
            if isinstance(arg, ast.JoinedStr):
                for value in arg.values:
                    if not isinstance(value, ast.FormattedValue):
                        continue
                    expr = ast.unparse(value.value)
                    if expr.isupper() or (rel, expr) in REVIEWED_SQL_INTERPOLATIONS:
                        continue
                    problems.append(f"{rel}:{node.lineno}: interpolates {expr!r} into SQL")
    assert not problems, "\n".join(problems)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _option(parser: argparse.ArgumentParser, *names: str) -> str | None:
    for action in parser._actions:
        for name in names:
            if name in action.option_strings:
                return name
    return None


# Minimal values for required arguments, so the hostile identifier is what gets refused.
REQUIRED_FILLERS = {"--duration": ["1"], "--port": ["0"], "--input": ["missing.parquet"],
                    "--output": ["out.parquet"], "--model": ["btc_l2_5s@champion"]}


def _argv(name: str, parser: argparse.ArgumentParser, option: str, value: str,
          tmp_path: Path) -> list[str]:
    argv = [name, option, value]
    for action in parser._actions:
        if not action.required or option in action.option_strings:
            continue
        if action.option_strings:
            opt = action.option_strings[-1]
            assert opt in REQUIRED_FILLERS, f"{name}: add a filler for required {opt}"
            argv += [opt, *REQUIRED_FILLERS[opt]]
        else:  # a positional: files
            argv.append(str(_capture(tmp_path)))
    for group in parser._mutually_exclusive_groups:
        if group.required:
            opt = next(o for a in group._group_actions for o in a.option_strings
                       if o in REQUIRED_FILLERS)
            argv += [opt, *REQUIRED_FILLERS[opt]]
    return argv


@pytest.mark.parametrize("kind", ["symbol", "date"])
def test_cli_refuses_hostile_identifiers(kind, tmp_path, capsys):
    """Every subcommand with a --symbol (or --date/--start/--end) option refuses the hostile
    value with a clear error (exit 2) before touching any store."""
    home = tmp_path / "home"
    tried = []
    for name, parser in _subcommands().items():
        options = ("--symbol",) if kind == "symbol" else ("--date", "--start", "--end")
        for option in options:
            if _option(parser, option) is None:
                continue
            value = HOSTILE_SYMBOL if kind == "symbol" else HOSTILE_DATE
            argv = ["--home", str(home), *_argv(name, parser, option, value, tmp_path)]
            with contextlib.suppress(SystemExit):
                code = main(argv)
            err = capsys.readouterr().err
            assert code == 2, f"{argv}: exit {code}"
            # A clear error: it says invalid and shows the refused value.
            assert "invalid" in err.lower() and repr(value)[1:-1] in err.replace('"', "'"), \
                f"{argv}: unclear error {err!r}"
            tried.append(f"{name} {option}")
    expected_min = 3 if kind == "symbol" else 2
    assert len(tried) >= expected_min, tried
    # Nothing was written under the hostile name anywhere.
    assert not any("DROP" in str(p) for p in tmp_path.rglob("*"))


def test_assets_refuse_a_hostile_symbol(settings):
    """Every asset that uses the pipeline resource fails with the symbol error, first."""
    from trade_pipeline.definitions import defs

    hostile = build_resources(str(settings.home),
                              pipeline=PipelineResource(home=str(settings.home),
                                                        symbol=HOSTILE_SYMBOL))
    graph = defs.resolve_asset_graph()
    tried = []
    for asset in defs.assets or []:
        if not isinstance(asset, dg.AssetsDefinition) or "pipeline" not in asset.required_resource_keys:
            continue
        if not all(graph.get(k).is_materializable for k in asset.keys):
            continue
        schema = asset.op.config_schema
        if schema is not None and schema.as_field().is_required:
            continue  # needs run config of its own (e.g. a file to import): not generic
        partition = DAY if asset.partitions_def is not None else None
        result = dg.materialize([asset], resources=hostile, partition_key=partition,
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        assert not result.success, asset.key
        failures = [e for e in result.all_events if e.is_step_failure]
        message = str(failures[0].step_failure_data.error) if failures else ""
        assert "invalid symbol" in message, f"{asset.key.to_user_string()}: {message[:300]}"
        tried.append(asset.key.to_user_string())
    assert "feature_stats" in tried and len(tried) >= 2, tried


def test_a_hostile_partition_key_is_refused(settings):
    from trade_pipeline.defs.monitoring import feature_stats_asset

    with pytest.raises(Exception, match=r"(?i)partition"):
        dg.materialize([feature_stats_asset], resources=build_resources(str(settings.home)),
                       partition_key=HOSTILE_DATE, instance=dg.DagsterInstance.ephemeral())


# ---- public endpoints only ----------------------------------------------------------------

KEY_NAMES = re.compile(
    r"(?i)(api[_-]?key|api[_-]?secret|secret[_-]?key|X-BAPI-API-KEY|X-MBX-APIKEY|"
    r"BYBIT_(KEY|SECRET)|BINANCE_(KEY|SECRET)|x-bapi-sign|hmac)"
)


def test_no_exchange_api_key_is_read_or_sent():
    hits = [
        f"{p.relative_to(REPO_ROOT)}:{i}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if KEY_NAMES.search(line)
    ]
    assert not hits, "exchange credentials referenced:\n" + "\n".join(hits)


def test_only_public_market_data_endpoints():
    urls = {
        m.group(0).rstrip(".,)\"'")
        for p in PACKAGE.rglob("*.py")
        for m in re.finditer(r"\b(?:wss?|https?)://[^\s\"'<>]+", p.read_text())
    }
    exchange = {u for u in urls if re.search(r"bybit|binance", u)}
    assert exchange, "expected the public Bybit stream URL in the package"
    private = {u for u in exchange if "/public/" not in u and "stream.binance" not in u}
    assert not private, f"non-public exchange endpoints: {private}"
