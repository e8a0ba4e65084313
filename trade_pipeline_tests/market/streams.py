"""Helpers for market tests: hand-made capture lines and damaged copies of real captures."""

import gzip
from pathlib import Path

import orjson

# Hand-made streams give their times in ms after T0_MS, a plausible day: DATA.md rule 8 makes
# a time of record before 2009 a bad line. T0_MS is a whole second, so grid alignment is kept.
T0_MS = 1_751_760_000_000  # 2025-07-06T00:00:00Z
T0_US = T0_MS * 1000


def rec(t_ms: int, typ: str, u: int, bids=(), asks=(), symbol: str = "BTCUSDT",
        recv_ms: int | None = None) -> dict:
    """One format-2 (recorded Bybit) message at T0_MS + t_ms (received 5 ms later unless
    `recv_ms`, also relative to T0_MS, says otherwise)."""
    return {
        "exchange": "bybit", "symbol": symbol, "timestamp_ms": T0_MS + t_ms,
        "received_timestamp_ms": T0_MS + (t_ms + 5 if recv_ms is None else recv_ms), "type": typ,
        "bids": [list(x) for x in bids], "asks": [list(x) for x in asks],
        "update_id": u, "sequence_id": u * 10,
    }


def write_lines(path: Path, items, gz: bool = True) -> Path:
    """Write dicts (as JSON) or raw bytes/str lines, one per line."""
    out = bytearray()
    for item in items:
        if isinstance(item, dict):
            out += orjson.dumps(item)
        elif isinstance(item, str):
            out += item.encode()
        else:
            out += item
        out += b"\n"
    path.write_bytes(gzip.compress(bytes(out)) if gz else bytes(out))
    return path


def read_records(path: Path) -> list[dict]:
    with gzip.open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def to_wire_line(m: dict) -> bytes:
    """A format-2 record as a raw-store line: '<recv_ns> <Bybit v5 wire frame>'."""
    frame = {
        "topic": f"orderbook.50.{m['symbol']}", "type": m["type"], "ts": m["timestamp_ms"],
        "data": {"s": m["symbol"], "b": [[repr(float(p)), repr(float(s))] for p, s in m["bids"]],
                 "a": [[repr(float(p)), repr(float(s))] for p, s in m["asks"]],
                 "u": m["update_id"], "seq": m["sequence_id"]},
        "cts": m["timestamp_ms"] - 1,
    }
    return str(m["received_timestamp_ms"] * 1_000_000).encode() + b" " + orjson.dumps(frame)


def with_trades(records: list[dict], every: int = 5) -> list[dict]:
    """A real capture's records with DATA.md format-2b trade lines interleaved in order of
    receipt: after every `every`-th delta, one trade at that delta's first level (a taker
    sell hitting a bid level, or a taker buy lifting an ask level), at the delta's times."""
    out: list[dict] = []
    n = 0
    for m in records:
        out.append(m)
        if m["type"] != "delta" or not (m["bids"] or m["asks"]):
            continue
        n += 1
        if n % every:
            continue
        side, (price, _) = ("sell", m["bids"][0]) if m["bids"] else ("buy", m["asks"][0])
        out.append({
            "exchange": "bybit", "symbol": m["symbol"], "timestamp_ms": m["timestamp_ms"],
            "received_timestamp_ms": m["received_timestamp_ms"], "type": "trade", "side": side,
            "price": price, "size": round(0.001 * (n % 7 + 1), 3), "trade_id": f"t{n}",
            "sequence_id": m.get("sequence_id"),
        })
    return out


def trade_rec(t_ms: int, trade_id, side: str = "buy", price=100.0, size=1.0,
              symbol: str = "BTCUSDT", recv_ms: int | None = None, seq: int | None = None) -> dict:
    """One format-2b (recorded Bybit trade) line."""
    out = {"exchange": "bybit", "symbol": symbol, "timestamp_ms": t_ms,
           "received_timestamp_ms": t_ms + 3 if recv_ms is None else recv_ms, "type": "trade",
           "side": side, "price": price, "size": size, "trade_id": trade_id}
    if seq is not None:
        out["sequence_id"] = seq
    return out


def wire_trade_line(recv_ns: int, trades: list[dict], symbol: str = "BTCUSDT") -> bytes:
    """A raw-store publicTrade push: trades given as format-2b records."""
    data = [{"T": t["timestamp_ms"], "s": t.get("symbol", symbol),
             "S": {"buy": "Buy", "sell": "Sell"}.get(t["side"], t["side"]),
             "v": t["size"] if isinstance(t["size"], str | bool | type(None)) else repr(float(t["size"])),
             "p": t["price"] if isinstance(t["price"], str | bool | type(None)) else repr(float(t["price"])),
             "L": "PlusTick", "i": t["trade_id"], "BT": False, "seq": t.get("sequence_id", 1)}
            for t in trades]
    frame = {"topic": f"publicTrade.{symbol}", "type": "snapshot",
             "ts": max((t["timestamp_ms"] for t in trades), default=0), "data": data}
    return str(recv_ns).encode() + b" " + orjson.dumps(frame)


def interleave_trades(records: list[dict], every: int = 3, start_id: int = 0) -> tuple[list, list]:
    """Real format-2 records with a made-up trade line after every `every`-th one (at that
    record's times, at its best ask/bid); returns (lines in order, the trades)."""
    out: list = []
    trades: list[dict] = []
    best_bid = best_ask = None
    for i, m in enumerate(records):
        out.append(m)
        if m["bids"]:
            best_bid = max(p for p, s in m["bids"] if s > 0) if any(s > 0 for _, s in m["bids"]) else best_bid
        if m["asks"]:
            best_ask = min(p for p, s in m["asks"] if s > 0) if any(s > 0 for _, s in m["asks"]) else best_ask
        if i % every == every - 1 and best_bid is not None and best_ask is not None:
            side = "buy" if (i // every) % 2 else "sell"
            t = trade_rec(m["timestamp_ms"], f"t{start_id + len(trades)}", side,
                          best_ask if side == "buy" else best_bid, 0.001 * (1 + i % 7),
                          recv_ms=m["received_timestamp_ms"], seq=m["sequence_id"])
            out.append(t)
            trades.append(t)
    return out, trades
