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
