"""`trade-pipeline backtest --events CAPTURE --orders ORDERS.parquet --json` on a real capture:
fills checked against the book rebuilt independently from the capture's messages."""

import datetime as dt
import json

import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.market.readers import FileStatus, ParseContext, detect_format, read_messages

MS_NS = 1_000_000


def _book_at(path, t_ns: int) -> tuple[dict, dict]:
    """The capture's book after every message with time of record <= t (a plain dict replay)."""
    bids, asks = {}, {}
    ctx, st = ParseContext(), FileStatus(str(path))
    for buf in read_messages(path, detect_format(path), ctx, st):
        msgs, levels = buf.arrays()
        for m in msgs:
            if m[0] * 1000 > t_ns:
                return bids, asks
            lv = levels[m[9]: m[9] + m[7] + m[8]]
            if m[2] != 0:  # snapshot: replace
                bids, asks = {}, {}
            for j, (px, q) in enumerate(lv):
                side = bids if j < m[7] else asks
                if q == 0:
                    side.pop(px, None)
                else:
                    side[px] = q
    return bids, asks


def _orders(path, rows) -> None:
    pl.DataFrame(rows, schema={"timestamp": pl.Datetime("us", "UTC"), "order_id": pl.String,
                               "action": pl.String, "side": pl.String, "price": pl.Float64,
                               "qty": pl.Float64, "post_only": pl.Boolean},
                 orient="row").write_parquet(path)


def test_scripted_orders_cli(bybit_delta_files, settings, tmp_path, capsys):
    capture = next(p for p in bybit_delta_files if "20250706_064238" in p.name)
    t0 = dt.datetime(2025, 7, 6, 6, 42, 45, tzinfo=dt.UTC)
    arrive_ns = int((t0 + dt.timedelta(milliseconds=10)).timestamp() * 1e9)  # 10 ms entry latency
    bids, asks = _book_at(capture, arrive_ns)
    best_bid, best_ask = max(bids), min(asks)
    levels = sorted(asks.items())[:3]
    walk_qty = round(levels[0][1] + levels[1][1] + levels[2][1] / 2, 3)
    far = round(best_bid - 50.0, 1)
    _orders(tmp_path / "orders.parquet", [
        (t0, "walk", "market", "buy", None, walk_qty, False),
        (t0 + dt.timedelta(seconds=1), "cross", "limit", "sell", best_bid - 20.0, 0.001, True),
        (t0 + dt.timedelta(seconds=2), "rest", "limit", "buy", far, 0.002, False),
        (t0 + dt.timedelta(seconds=3), "rest", "cancel", None, None, None, None),
        (t0 + dt.timedelta(seconds=4), "ghost", "cancel", None, None, None, None),
    ])
    (tmp_path / "exec.toml").write_text("[event_execution]\nentry_latency_ms = 10.0\nresponse_latency_ms = 10.0\n")
    rc = main(["--home", str(settings.home), "backtest", "--events", str(capture),
               "--orders", str(tmp_path / "orders.parquet"), "--queue-model", "prob",
               "--config", str(tmp_path / "exec.toml"), "--json", "--no-store"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    walk = [f for f in out["fills"] if f["order_id"] == "walk"]
    # one fill per level, at the levels the book held when the order arrived
    assert [f["price"] for f in walk] == [levels[0][0], levels[1][0], levels[2][0]]
    assert [f["qty"] for f in walk] == pytest.approx([levels[0][1], levels[1][1], walk_qty - levels[0][1] - levels[1][1]])
    assert {f["liquidity"] for f in walk} == {"taker"}
    assert walk[0]["fill_at"] == (t0 + dt.timedelta(milliseconds=10)).isoformat()
    assert all(f["order_id"] != "cross" for f in out["fills"])  # post-only that would cross
    status = {o["order_id"]: o["status"] for o in out["orders"]}
    assert status == {"walk": "filled", "cross": "expired", "rest": "cancelled"}
    assert out["refused"] == [{"row": 4, "order_id": "ghost", "action": "cancel", "reason": "unknown order id"}]
    assert out["config"]["event_execution"]["queue_model"] == "prob_power"
    assert out["report"]["fills"] == 3 and out["report"]["fill_ratio_orders"] == 0.0
    assert best_ask == levels[0][0]


def test_orders_file_errors_are_one_line(bybit_delta_files, settings, tmp_path, capsys):
    capture = next(p for p in bybit_delta_files if "20250706_064238" in p.name)
    t0 = dt.datetime(2025, 7, 6, 6, 42, 45, tzinfo=dt.UTC)
    _orders(tmp_path / "bad.parquet", [(t0, "a", "market", "buy", 100.0, 0.01, False)])
    rc = main(["--home", str(settings.home), "backtest", "--events", str(capture),
               "--orders", str(tmp_path / "bad.parquet"), "--json", "--no-store"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "row 0: a market order has no price" in err
    rc = main(["--home", str(settings.home), "backtest", "--orders", str(tmp_path / "bad.parquet")])
    assert rc == 2 and "need --events" in capsys.readouterr().err


def test_orders_file_is_checked_before_the_captures_are_read(settings, tmp_path, capsys):
    """The ORDERS file is read and checked first: with a capture path that does not exist,
    a bad ORDERS file is what the error names (the captures were never opened); a good one
    gets as far as the capture."""
    missing = tmp_path / "no_such_capture.jsonl.gz"
    t0 = dt.datetime(2025, 7, 6, 6, 42, 45, tzinfo=dt.UTC)
    _orders(tmp_path / "bad.parquet", [(t0, "a", "market", "buy", 100.0, 0.01, False)])
    _orders(tmp_path / "good.parquet", [(t0, "a", "market", "buy", None, 0.01, False)])
    (tmp_path / "not_parquet.parquet").write_text("timestamp,order_id\n")

    def error(orders) -> str:
        rc = main(["--home", str(settings.home), "backtest", "--events", str(missing),
                   "--orders", str(orders), "--json", "--no-store"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.count("\n") == 0, err
        return err

    err = error(tmp_path / "bad.parquet")
    assert "bad.parquet: row 0: a market order has no price" in err and str(missing) not in err
    assert "not a readable Parquet file" in error(tmp_path / "not_parquet.parquet")
    assert "does not exist" in error(tmp_path / "absent.parquet")
    assert f"input file not found: {missing}" in error(tmp_path / "good.parquet")


def test_resting_maker_order_fills_on_the_captures_trades(binance_files, settings, tmp_path,
                                                           capsys):
    """The Binance capture carries its trades (`@trade` lines): they reach the engine, and a
    resting post-only bid fills as maker when a taker sells through it, before the book
    alone (the same capture without its trade lines) would fill it."""
    import gzip

    import numpy as np

    from trade_pipeline.market.event_stream import build_event_stream, event_type
    from trade_pipeline.market.events import BUY_EVENT, TRADE_EVENT
    from trade_pipeline_tests.market.event_book import book_rows_at

    stream, _ = build_event_stream(binance_files)
    t0_ns = int(stream["exch_ts"][0]) + 60 * 10**9
    t0_ns -= t0_ns % 1000  # the orders file holds microseconds
    bid = float(book_rows_at(stream, np.array([t0_ns + 10 * MS_NS]))[0][0])  # at arrival
    t0 = dt.datetime.fromtimestamp(t0_ns / 1e9, dt.UTC)
    _orders(tmp_path / "orders.parquet", [(t0, "bid", "limit", "buy", bid, 0.001, True)])
    (tmp_path / "exec.toml").write_text(
        "[event_execution]\nfeed_latency_ms = 5.0\nentry_latency_ms = 10.0\n"
        "response_latency_ms = 10.0\ntick_size = 0.01\nlot_size = 0.00001\n")
    book_only = tmp_path / "book_only.gz"
    lines = []
    for path in binance_files:
        with gzip.open(path, "rb") as f:
            lines += [ln for ln in f.read().splitlines() if b"@trade" not in ln]
    book_only.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))

    def run(captures) -> dict:
        rc = main(["--home", str(settings.home), "backtest", "--events", *map(str, captures),
                   "--orders", str(tmp_path / "orders.parquet"), "--config",
                   str(tmp_path / "exec.toml"), "--json", "--no-store"])
        assert rc == 0
        return json.loads(capsys.readouterr().out)

    out = run(binance_files)
    assert out["input"]["trade_events"] == out["input"]["trades"] == 19_904
    assert out["counts"]["trade_events"] == 19_904  # what the engine ran on
    fill = out["fills"][0]
    assert (fill["liquidity"], fill["side"], fill["price"]) == ("maker", "buy", bid)
    # at the exchange time of a taker sell at or through the bid: a trade filled it
    fill_ns = int(dt.datetime.fromisoformat(fill["fill_at"]).timestamp() * 10**6) * 1000
    trades = stream[event_type(stream) == TRADE_EVENT]
    sells = trades[(trades["ev"] & BUY_EVENT == 0) & (trades["px"] <= bid)
                   & (trades["exch_ts"] > t0_ns)]
    assert fill_ns in sells["exch_ts"].tolist()
    # the book alone fills it later (when the asks come down to it), or never
    alone = run([book_only])
    assert alone["input"]["trade_events"] == alone["counts"]["trade_events"] == 0
    assert all(dt.datetime.fromisoformat(f["fill_at"]) > dt.datetime.fromisoformat(fill["fill_at"])
               for f in alone["fills"])


def test_event_run_is_filed_under_the_captures_market(binance_files, settings, tmp_path, capsys):
    """Binance captures under a home whose settings say Bybit: the MLflow run goes to the
    experiment of the market the captures hold (the builder's report), not the settings'."""
    import mlflow

    from trade_pipeline.trading.event_service import run_market

    assert (settings.exchange, settings.symbol) == ("bybit", "BTCUSDT")
    (tmp_path / "exec.toml").write_text(
        "[event_execution]\nfeed_latency_ms = 5.0\ntick_size = 0.01\nlot_size = 0.00001\n")
    rc = main(["--home", str(settings.home), "backtest", "--events", *map(str, binance_files),
               "--config", str(tmp_path / "exec.toml"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["input"]["exchange"], out["input"]["symbol"]) == ("binance", "BTCUSDT")
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name("trading/binance/BTCUSDT")
    assert exp is not None and exp.artifact_location.endswith("trading_binance_BTCUSDT")
    run = client.get_run(out["mlflow_run_id"])
    assert run.info.experiment_id == exp.experiment_id
    assert (run.data.tags["exchange"], run.data.tags["run_id"]) == ("binance", out["run_id"])
    assert client.get_experiment_by_name("trading/bybit/BTCUSDT") is None
    # what the data does not say (or says unusably) comes from the settings
    assert run_market(settings, {"exchange": None, "symbol": "BTCUSDT"}) == ("bybit", "BTCUSDT")
    assert run_market(settings, {"exchange": "binance", "symbol": "btc/usdt"}) == ("binance", "BTCUSDT")
