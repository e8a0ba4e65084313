"""The A/B `role` of stored predictions (champion / shadow of a paper run, NULL for a
backtest), against a real DuckDB warehouse, and the monitor grouping by it."""

import datetime as dt

import duckdb
import numpy as np
import pytest

from trade_pipeline.lake.warehouse import ensure_warehouse, session
from trade_pipeline.monitoring.status import performance_section
from trade_pipeline.trading.store import predictions_frame, read_run, write_run

T0_US = int(dt.datetime(2025, 7, 7, tzinfo=dt.UTC).timestamp() * 1e6)


def _frame(role, version=1, source="paper", run_id="paper-1"):
    ts = T0_US + np.arange(5, dtype=np.int64) * 100_000
    return predictions_frame(ts, np.linspace(-1, 1, 5), [0, 1, 1, 0, -1], exchange="bybit",
                             symbol="BTCUSDT", model_name="btc_l2_1s", model_version=version,
                             source=source, run_id=run_id, role=role)


def _write(settings, run_id, source, predictions):
    return write_run(settings, run_id=run_id, source=source, model="btc_l2_1s@champion",
                     start_us=T0_US, end_us=T0_US + 400_000, metrics={}, config={}, trades=[],
                     predictions=predictions)


def test_roles_are_stored_and_grouped(settings) -> None:
    settings.ensure_dirs()
    ensure_warehouse(settings)
    # The same version on both arms: only the role tells champion and shadow apart.
    _write(settings, "paper-1", "paper", [_frame("champion"), _frame("shadow")])
    _write(settings, "bt-1", "backtest", [_frame(None, source="backtest", run_id="bt-1")])
    paper = read_run(settings, "paper-1")["predictions"]
    assert sorted(paper["role"].to_list()) == ["champion"] * 5 + ["shadow"] * 5
    assert read_run(settings, "bt-1")["predictions"]["role"].to_list() == [None] * 5

    with session(settings, read_only=True) as conn:
        section = performance_section(settings, conn, dt.datetime(2025, 7, 7, 1, tzinfo=dt.UTC))
    groups = sorted((m["source"], m["role"] or "", m["predictions"]) for m in section["models"])
    assert groups == [("backtest", "", 5), ("paper", "champion", 5), ("paper", "shadow", 5)]


def test_unknown_role_is_refused(settings) -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        _frame("challenger ")
    settings.ensure_dirs()
    ensure_warehouse(settings)
    with session(settings) as conn, pytest.raises(duckdb.ConstraintException):
        conn.execute("INSERT INTO predictions (timestamp, exchange, symbol, model_name, "
                     "model_version, source, role) VALUES (now(), 'bybit', 'BTCUSDT', 'm', 1, "
                     "'paper', 'bogus')")
