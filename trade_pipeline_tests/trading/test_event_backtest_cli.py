"""`trade-pipeline backtest --events CAPTURE --orders ORDERS.parquet --json` on a real capture:
fills checked against the book rebuilt independently from the capture's messages."""

import datetime as dt
import json

import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.market.readers import FileStatus, ParseContext, detect_format, read_messages


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
